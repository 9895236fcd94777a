package imapfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/auth"
	"mailferry/core/store"
)

// session is one IMAP connection's state. go-imap calls its methods one at
// a time (Idle runs alone too), so it needs no lock.
type session struct {
	srv    *Server
	ip     string
	acct   *store.Account
	sel    *view
	closed bool
	conn   *imapserver.Conn
	// hang is the connection under TLS and coalescingConn, whose context
	// ends when the client hangs up (hangup.go); nil if it is none.
	hang *hangupConn
	// condstore is set by a CONDSTORE-enabling command (condstore.go).
	condstore bool
	// condstoreAnnounce: CONDSTORE was turned on while a mailbox was
	// selected; the next poll sends its HIGHESTMODSEQ (condstore.go).
	condstoreAnnounce bool
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
	_ imapserver.SessionNamespace   = (*session)(nil)
	_ imapserver.SessionMove        = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ip := ""
	if nc := c.NetConn(); nc != nil && nc.RemoteAddr() != nil {
		ip = nc.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	s.sessions.Add(1)
	s.open.Add(1)
	return &session{srv: s, ip: ip, conn: c, hang: hangupOf(c.NetConn())}, nil, nil
}

// hangupOf finds the hangupConn under nc (the connection go-imap serves,
// under implicit TLS or not).
func hangupOf(nc net.Conn) *hangupConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if cc, ok := nc.(*coalescingConn); ok {
		nc = cc.Conn
	}
	h, _ := nc.(*hangupConn)
	return h
}

// ctx is the context of the store's writes and of what is not the
// command's reading: the server's, which ends with Close.
func (s *session) ctx() context.Context { return s.srv.ctx }

// readCtx is the context of a command's reads of the store (SEARCH, FETCH,
// SORT, THREAD, SELECT: the ones that can go through a whole mailbox): the
// connection's, which also ends when the client hangs up (hangup.go).
func (s *session) readCtx() context.Context {
	if s.hang == nil {
		return s.srv.ctx
	}
	return s.hang.watch()
}

// Close implements imapserver.Session.
func (s *session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.srv.open.Add(-1)
	s.srv.sessions.Done()
	return nil
}

// imapErr builds a tagged NO with a response code.
func imapErr(code imap.ResponseCode, format string, args ...any) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: fmt.Sprintf(format, args...)}
}

// storeErr turns a store error into an IMAP answer; unexpected errors are
// logged and answered with SERVERBUG.
func (s *session) storeErr(err error, what string) error {
	var ie *imap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return err
	case errors.Is(err, store.ErrNotFound):
		if s.selectedGone() {
			return errSelectedDeleted // gone.go
		}
		return imapErr(imap.ResponseCodeNonExistent, "%s: no such mailbox or message", what)
	case errors.Is(err, store.ErrExists):
		return imapErr(imap.ResponseCodeAlreadyExists, "%s: already exists", what)
	case errors.Is(err, store.ErrInvalid):
		return imapErr(imap.ResponseCodeCannot, "%s: %v", what, strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, context.Canceled):
		if s.hang != nil && s.srv.ctx.Err() == nil {
			return imapErr(imap.ResponseCodeUnavailable, "%s: connection closed", what)
		}
		return imapErr(imap.ResponseCodeUnavailable, "server shutting down")
	case errors.Is(err, store.ErrStopped):
		// The change may be committed and seen, yet not on disk: neither
		// OK (not durable) nor NO (the client would do it again, and the
		// first may be there after the restart). The connection ends
		// without a tagged answer, as if the server had crashed.
		s.srv.log.Error("imapfront: store stopped after a failed fsync; restart the server", "op", what, "account", s.address(), "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeUnavailable, Text: "Server error: storage failed, restart needed"}
	case store.IsDiskFull(err):
		// As Dovecot answers (RFC 5530 OVERQUOTA); the admin's log says more.
		s.srv.log.Error("imapfront: disk full", "op", what, "account", s.address(), "err", err)
		return imapErr(imap.ResponseCodeOverQuota, "Not enough disk space")
	}
	s.srv.log.Error("imapfront: store error", "op", what, "account", s.address(), "err", err)
	return imapErr(imap.ResponseCodeServerBug, "%s failed", what)
}

func (s *session) address() string {
	if s.acct == nil {
		return ""
	}
	return s.acct.Address
}

// Login implements imapserver.Session (LOGIN and AUTHENTICATE PLAIN)
// through the login policy (core/auth).
func (s *session) Login(username, password string) error {
	ip, _ := netip.ParseAddr(s.ip)
	acct, err := s.srv.auth.Login(s.ctx(), auth.Request{Service: "imap", Remote: ip, Username: username, Password: password})
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrFailed):
		return imapserver.ErrAuthFailed
	case errors.Is(err, auth.ErrLimited):
		return imapErr(imap.ResponseCodeUnavailable, "Too many failed logins, try again later")
	default:
		return imapErr(imap.ResponseCodeUnavailable, "Temporary failure, try again later")
	}
	s.srv.log.Debug("imapfront: login", "user", acct.Address, "ip", s.ip)
	s.acct = acct
	return nil
}

// Namespace implements imapserver.SessionNamespace (RFC 2342).
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: s.acct.Delim}}}, nil
}

// AppendLimit implements imapserver.SessionAppendLimit (RFC 7889).
func (s *session) AppendLimit() uint32 { return s.srv.limit }

// mailboxName checks a mailbox name from the wire (already UTF-8) and spells
// INBOX, also as a first level, in capitals.
func (s *session) mailboxName(name string) (string, error) {
	d := string(s.acct.Delim)
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if first, rest, ok := strings.Cut(name, d); ok && strings.EqualFold(first, "INBOX") {
		name = "INBOX" + d + rest
	}
	bad := name == "" || !utf8.ValidString(name) || len(name) > 1000 ||
		strings.ContainsAny(name, "\x00\r\n*%") || strings.HasPrefix(name, d) || strings.Contains(name, d+d)
	if !bad {
		for _, r := range name {
			if r < 0x20 || r == 0x7f {
				bad = true
				break
			}
		}
	}
	if bad {
		return "", imapErr(imap.ResponseCodeCannot, "Invalid mailbox name")
	}
	return name, nil
}

// mailbox looks up a mailbox by its wire name.
func (s *session) mailbox(name string) (*store.Mailbox, error) {
	n, err := s.mailboxName(name)
	if err != nil {
		return nil, imapErr(imap.ResponseCodeNonExistent, "No such mailbox")
	}
	mb, err := s.srv.st.Mailbox(s.ctx(), s.acct.ID, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, imapErr(imap.ResponseCodeNonExistent, "No such mailbox")
	}
	return mb, s.storeErr(err, "mailbox")
}

// newName checks the name a CREATE or RENAME gives a mailbox, which may end
// with the hierarchy separator (RFC 3501 6.3.3); INBOX always exists.
func (s *session) newName(name string) (string, error) {
	name, err := s.mailboxName(strings.TrimSuffix(name, string(s.acct.Delim)))
	if err != nil {
		return "", err
	}
	if name == "INBOX" {
		return "", imapErr(imap.ResponseCodeAlreadyExists, "INBOX exists")
	}
	return name, nil
}

// specialUses lists the RFC 6154 attributes Mailferry accepts.
var specialUses = map[imap.MailboxAttr]bool{
	imap.MailboxAttrAll: true, imap.MailboxAttrArchive: true, imap.MailboxAttrDrafts: true,
	imap.MailboxAttrFlagged: true, imap.MailboxAttrJunk: true, imap.MailboxAttrSent: true,
	imap.MailboxAttrTrash: true,
}

// Create implements imapserver.Session (RFC 3501 6.3.3, RFC 6154 USE).
// Missing superiors of the name are not made mailboxes: as in Dovecot 2.3,
// "a" of "CREATE a/b" is a level that only exists as a parent (LIST gives
// it \Noselect, or \NonExistent in an extended LIST; SELECT, STATUS and
// APPEND find no mailbox) until it is created itself, and goes when its
// last child does. RFC 3501 6.3.3 lets the server create superiors; a
// client that made "a/b" never asked for a mailbox "a", and one made
// selectable showed up as an empty folder that no other server has.
func (s *session) Create(name string, options *imap.CreateOptions) error {
	name, err := s.newName(name)
	if err != nil {
		return err
	}
	var uses []string
	if options != nil {
		for _, a := range options.SpecialUse {
			if !specialUses[a] {
				return imapErr(imap.ResponseCode("USEATTR"), "Unsupported special-use attribute %s", a)
			}
			uses = append(uses, string(a))
		}
	}
	if _, err := s.srv.st.Mailbox(s.ctx(), s.acct.ID, name); err == nil {
		return imapErr(imap.ResponseCodeAlreadyExists, "Mailbox exists")
	}
	_, err = s.srv.st.CreateMailbox(s.ctx(), s.acct.ID, name, &store.MailboxOptions{SpecialUse: strings.Join(uses, " ")})
	return s.storeErr(err, "CREATE")
}

// Delete implements imapserver.Session (RFC 3501 6.3.4): children stay.
func (s *session) Delete(name string) error {
	mb, err := s.mailbox(name)
	if err != nil {
		return err
	}
	if mb.Name == "INBOX" {
		return imapErr(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	}
	if err := s.srv.st.DeleteMailbox(s.ctx(), s.acct.ID, mb.Name); err != nil {
		return s.storeErr(err, "DELETE")
	}
	if s.sel != nil && s.sel.mb.ID == mb.ID {
		s.sel.deletedHere() // OK, then BYE at the next command (gone.go)
	}
	s.srv.selects.drop(mb.ID, nil)
	return nil
}

// Rename implements imapserver.Session (RFC 3501 6.3.5): children follow;
// renaming INBOX moves its messages to the new mailbox. A level that only
// exists as a parent (see Create) renames its children, as in Dovecot; the
// new name's missing superiors are not made mailboxes either.
func (s *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	mb, err := s.mailbox(oldName)
	if err != nil {
		if mb, err = s.impliedParent(oldName, err); err != nil {
			return err
		}
	}
	to, err := s.newName(newName)
	if err != nil {
		return err
	}
	if _, err := s.srv.st.Mailbox(s.ctx(), s.acct.ID, to); err == nil {
		return imapErr(imap.ResponseCodeAlreadyExists, "Mailbox exists")
	}
	d := string(s.acct.Delim)
	if strings.HasPrefix(to, mb.Name+d) {
		return imapErr(imap.ResponseCodeCannot, "Cannot move a mailbox below itself")
	}
	return s.storeErr(s.srv.st.RenameMailbox(s.ctx(), s.acct.ID, mb.Name, to), "RENAME")
}

// impliedParent stands for a name that is no mailbox but has mailboxes
// below it (a RENAME source): a Mailbox of that name alone, or notFound
// when nothing is below it either.
func (s *session) impliedParent(name string, notFound error) (*store.Mailbox, error) {
	n, err := s.mailboxName(name)
	if err != nil {
		return nil, notFound
	}
	mbs, err := s.srv.st.Mailboxes(s.ctx(), s.acct.ID)
	if err != nil {
		return nil, s.storeErr(err, "RENAME")
	}
	prefix := n + string(s.acct.Delim)
	for _, mb := range mbs {
		if strings.HasPrefix(mb.Name, prefix) {
			return &store.Mailbox{Name: n}, nil
		}
	}
	return nil, notFound
}

// Status implements imapserver.Session (RFC 3501 6.3.10).
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	mb, err := s.mailbox(name)
	if err != nil {
		return nil, err
	}
	return s.statusData(mb, options)
}

func (s *session) statusData(mb *store.Mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	if options != nil && options.HighestModSeq {
		s.enableCondStore()
	}
	st, err := s.srv.st.Status(s.ctx(), mb.ID)
	if err != nil {
		return nil, s.storeErr(err, "STATUS")
	}
	var zero64 int64
	limit := s.srv.limit
	var recent uint32
	if options != nil && options.NumRecent {
		if recent, err = s.srv.st.RecentCount(s.ctx(), mb.ID); err != nil {
			return nil, s.storeErr(err, "STATUS")
		}
		if s.sel != nil && s.sel.mb.ID == mb.ID {
			// As Dovecot: this session's too (those it claimed).
			n, err := s.sel.numRecentClaimed()
			if err != nil {
				return nil, s.storeErr(err, "STATUS")
			}
			recent += n
		}
	}
	return &imap.StatusData{
		Mailbox:        mb.Name,
		NumMessages:    &st.Messages,
		UIDNext:        imap.UID(st.UIDNext),
		UIDValidity:    st.UIDValidity,
		NumUnseen:      &st.Unseen,
		NumDeleted:     &st.Deleted,
		Size:           &st.Size,
		AppendLimit:    &limit,
		DeletedStorage: &zero64,
		NumRecent:      &recent,
		HighestModSeq:  st.HighestModSeq,
	}, nil
}

// storeFlags turns IMAP flags into store flags, refusing unknown system
// flags and dropping \Recent (RFC 3501 2.3.2: the server sets it).
func storeFlags(flags []imap.Flag) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.HasPrefix(string(f), `\`) {
			switch strings.ToLower(string(f)) {
			case `\recent`:
				continue
			case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
			default:
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown system flag " + string(f)}
			}
		}
		out = append(out, string(f))
	}
	return out, nil
}

// imapFlags turns store flags into IMAP flags, leaving out \Recent and any
// flag that is not an atom (one copied from a lax old server would make
// go-imap's encoder fail the whole response).
func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags))
	for _, f := range flags {
		if validFlag(f) && !strings.EqualFold(f, `\Recent`) {
			out = append(out, imap.Flag(f))
		}
	}
	return out
}

// validFlag reports whether f is a flag-keyword or flag-extension (RFC 3501
// 9), as go-imap's encoder checks it.
func validFlag(f string) bool {
	if f == "" || f == `\` {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c == '\\' && i == 0:
		case c <= ' ' || c >= 0x7f, strings.IndexByte(`(){%*"\]`, c) >= 0:
			return false
		}
	}
	return true
}

// Append implements imapserver.Session (RFC 3501 6.3.11, RFC 4315
// APPENDUID). The bytes are stored exactly as received.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	// The fork calls Append only when MULTIAPPEND is not advertised, and
	// Mailferry always advertises it; Append is the interface's, and goes
	// the same way as every APPEND: the message read as its bytes come and
	// held against appendMem (it allocated the size announced at once, 64
	// MiB for a literal never sent: TestAppendWithoutMultiAppendHoldsWhatCame).
	batch, err := s.MultiAppend(name)
	if err != nil {
		return nil, err
	}
	defer batch.Abort() // harmless after Commit
	if err := batch.Add(r, options); err != nil {
		return nil, err
	}
	validity, uids, err := batch.Commit()
	if err != nil {
		return nil, err
	}
	return &imap.AppendData{UIDValidity: validity, UID: uids[0].Start}, nil
}

// Select implements imapserver.Session (RFC 3501 6.3.1 and 6.3.2).
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	mb, err := s.mailbox(name)
	if err != nil {
		return nil, err
	}
	v, snap, err := s.openView(mb, options != nil && options.ReadOnly)
	if err != nil {
		return nil, err
	}
	if options != nil && (options.CondStore || options.QResync != nil) {
		s.condstore = true // RFC 7162 3.1
	}
	s.sel = v
	var firstUnseen uint32
	for i, m := range snap.msgs {
		if m.flags.unseen {
			firstUnseen = uint32(i + 1)
			break
		}
	}
	if _, err := v.claimRecent(v.uids); err != nil {
		s.srv.log.Warn("imapfront: claim recent", "account", s.address(), "mailbox", mb.Name, "err", err)
	}
	return &imap.SelectData{
		Flags:             append([]imap.Flag{}, v.keywords.list...),
		PermanentFlags:    v.keywords.permanent(v.readOnly),
		NumRecent:         v.numRecent(),
		NumMessages:       uint32(len(v.uids)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(snap.uidNext),
		UIDValidity:       snap.validity,
		HighestModSeq:     snap.highest,
	}, nil
}

// Unselect implements imapserver.Session (CLOSE, UNSELECT).
func (s *session) Unselect() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

// Poll implements imapserver.Session: it tells the client of changes made
// elsewhere since its last command.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	if err := s.sel.sync(w, allowExpunge); err != nil {
		return err
	}
	return s.announceHighestModSeq(w)
}

// Idle implements imapserver.Session (RFC 2177): changes are written as
// they commit, whoever made them.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	v := s.sel
	if v == nil {
		select {
		case <-stop:
		case <-s.ctx().Done():
		}
		return nil
	}
	if err := v.sync(w, true); err != nil {
		return s.bye(err)
	}
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx().Done():
			return nil
		case _, ok := <-v.watch.C:
			if !ok {
				// The store closed: nothing more will change.
				select {
				case <-stop:
				case <-s.ctx().Done():
				}
				return nil
			}
			v.told = true
			if err := v.sync(w, true); err != nil {
				return s.bye(err)
			}
		}
	}
}
