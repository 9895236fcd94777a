package demo

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"
	"mailferry/core/demo/internal/memserver"
)

// account is one demo user: the memserver.User that holds the messages,
// plus what imapmemserver does not keep or does not expose: the list of
// mailbox names, their special-use attributes (RFC 6154) and subscriptions.
type account struct {
	addr, password string
	delim          rune // hierarchy separator (Options.Delimiter)
	mem            *memserver.User

	mu    sync.Mutex
	boxes map[string][]imap.MailboxAttr // existing mailbox → special-use attributes
	subs  map[string]bool               // subscribed mailbox names
}

func newAccount(addr, password string, delim rune) *account {
	return &account{
		addr:     addr,
		password: password,
		delim:    delim,
		mem:      memserver.NewUser(addr, password),
		boxes:    make(map[string][]imap.MailboxAttr),
		subs:     make(map[string]bool),
	}
}

// specialUseAttrs are the attributes of RFC 6154 section 2.
var specialUseAttrs = map[imap.MailboxAttr]bool{
	imap.MailboxAttrAll:     true,
	imap.MailboxAttrArchive: true,
	imap.MailboxAttrDrafts:  true,
	imap.MailboxAttrFlagged: true,
	imap.MailboxAttrJunk:    true,
	imap.MailboxAttrSent:    true,
	imap.MailboxAttrTrash:   true,
}

// create makes a mailbox with the given special-use attributes.
func (a *account) create(name string, use []imap.MailboxAttr) error {
	name = strings.TrimRight(name, string(a.delim))
	if name == "" {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty mailbox name"}
	}
	if err := a.checkName(name); err != nil {
		return err
	}
	for _, attr := range use {
		if !specialUseAttrs[attr] {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("USEATTR"), Text: fmt.Sprintf("Unsupported special-use attribute %v", attr)}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.mem.Create(name, nil); err != nil {
		return err
	}
	a.boxes[name] = append([]imap.MailboxAttr(nil), use...)
	return nil
}

func (a *account) delete(name string) error {
	if name == "INBOX" {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.mem.Delete(name); err != nil {
		return err
	}
	delete(a.boxes, name)
	delete(a.subs, name)
	return nil
}

func (a *account) rename(oldName, newName string, options *imap.RenameOptions) error {
	newName = strings.TrimRight(newName, string(a.delim))
	if err := a.checkName(newName); err != nil {
		return err
	}
	if oldName == "INBOX" || newName == "INBOX" {
		// imapmemserver would move the mailbox itself, not its messages as
		// RFC 3501 section 6.3.5 asks; refuse instead of misbehaving.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Renaming INBOX is not supported"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.mem.Rename(oldName, newName, options); err != nil {
		return err
	}
	a.renamedLocked(oldName, newName)
	// imapmemserver renames only the mailbox itself; RFC 3501 section 6.3.5
	// renames its inferiors too.
	prefix := oldName + string(a.delim)
	var children []string
	for name := range a.boxes {
		if strings.HasPrefix(name, prefix) {
			children = append(children, name)
		}
	}
	sort.Strings(children)
	for _, child := range children {
		to := newName + string(a.delim) + child[len(prefix):]
		if err := a.mem.Rename(child, to, options); err != nil {
			return err
		}
		a.renamedLocked(child, to)
	}
	return nil
}

// checkName refuses a name that imapmemserver would change: it trims a
// trailing '/' whatever the hierarchy separator is.
func (a *account) checkName(name string) error {
	if a.delim != '/' && strings.HasSuffix(name, "/") {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox name may not end with /"}
	}
	return nil
}

// renamedLocked moves the special-use and subscription of a renamed mailbox.
func (a *account) renamedLocked(oldName, newName string) {
	a.boxes[newName] = a.boxes[oldName]
	delete(a.boxes, oldName)
	if a.subs[oldName] {
		delete(a.subs, oldName)
		a.subs[newName] = true
	}
}

func (a *account) subscribe(name string, on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	if on {
		err = a.mem.Subscribe(name)
	} else {
		err = a.mem.Unsubscribe(name)
	}
	if err != nil {
		return err
	}
	if on {
		a.subs[name] = true
	} else {
		delete(a.subs, name)
	}
	return nil
}

// appendMessage stores raw in mailbox with flags and an INTERNALDATE.
func (a *account) appendMessage(mailbox string, raw []byte, flags []imap.Flag, date time.Time) (*imap.AppendData, error) {
	// A *bytes.Reader is an imap.LiteralReader (it has Size).
	return a.mem.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{Flags: flags, Time: date})
}

// list answers LIST and LSUB (RFC 3501 section 6.3.8, RFC 5258, RFC 5819,
// RFC 6154). Unlike imapmemserver it returns special-use attributes on every
// LIST (RFC 6154 allows it, and Dovecot does it), \HasChildren/\HasNoChildren,
// and non-existent parents of existing mailboxes as \Noselect.
func (a *account) list(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: a.delim})
	}

	a.mu.Lock()
	boxes := make(map[string][]imap.MailboxAttr, len(a.boxes))
	for name, use := range a.boxes {
		boxes[name] = use
	}
	subs := make(map[string]bool, len(a.subs))
	for name := range a.subs {
		subs[name] = true
	}
	a.mu.Unlock()

	// Every existing name, plus the parents it implies.
	names := make(map[string]bool) // name → exists
	hasChildren := make(map[string]bool)
	for name := range boxes {
		names[name] = true
		for i := strings.LastIndexByte(name, byte(a.delim)); i > 0; i = strings.LastIndexByte(name[:i], byte(a.delim)) {
			parent := name[:i]
			hasChildren[parent] = true
			if _, ok := names[parent]; !ok {
				names[parent] = false
			}
		}
	}

	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if (sorted[i] == "INBOX") != (sorted[j] == "INBOX") {
			return sorted[i] == "INBOX"
		}
		return sorted[i] < sorted[j]
	})

	for _, name := range sorted {
		match := false
		for _, pattern := range patterns {
			if imapserver.MatchList(name, a.delim, ref, pattern) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		exists := names[name]
		if options.SelectSubscribed && !subs[name] {
			continue
		}
		if options.SelectSpecialUse && len(boxes[name]) == 0 {
			continue
		}

		data := imap.ListData{Mailbox: name, Delim: a.delim}
		if !exists {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		}
		if hasChildren[name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if (options.ReturnSubscribed || options.SelectSubscribed) && subs[name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		data.Attrs = append(data.Attrs, boxes[name]...)
		if options.ReturnStatus != nil && exists {
			status, err := a.mem.Status(name, options.ReturnStatus)
			if err == nil {
				data.Status = status
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

// imapSession is one IMAP connection. Before login it has no user session.
type imapSession struct {
	*memserver.UserSession // nil until Login

	srv      *Server
	acct     *account
	readOnly bool // the selected mailbox was opened with EXAMINE
	selected bool
	mailbox  string // the selected mailbox's name
	once     sync.Once
	capIP    string // counted by Options.MaxConnsPerIP when capped
	capped   bool
}

var (
	_ imapserver.Session            = (*imapSession)(nil)
	_ imapserver.SessionIMAP4rev2   = (*imapSession)(nil)
	_ imapserver.SessionAppendLimit = (*imapSession)(nil)
	_ imapserver.SessionSASL        = (*imapSession)(nil)
)

func (s *Server) newIMAPSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	if !s.sessionStart() {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	ip, err := s.admitConn(conn)
	if err != nil {
		s.sessions.Done()
		return nil, nil, err
	}
	s.log.Debug("IMAP connection", "remote", conn.NetConn().RemoteAddr().String())
	return &imapSession{srv: s, capIP: ip, capped: s.connCap != nil}, nil, nil
}

// Close implements imapserver.Session.
func (sess *imapSession) Close() error {
	defer sess.once.Do(func() {
		if sess.capped {
			sess.srv.connCap.release(sess.capIP)
		}
		sess.srv.sessions.Done()
	})
	if sess.UserSession != nil {
		return sess.UserSession.Close()
	}
	return nil
}

// Login implements imapserver.Session. The username is the full address,
// compared case-insensitively, or its local part with
// Options.LocalPartLogin. With Options.MasterUser, "user*master" and the
// master password log in as user (Dovecot's auth_master_user_separator).
func (sess *imapSession) Login(username, password string) error {
	if m := sess.srv.masterUser; m != "" {
		if i := strings.LastIndex(username, MasterSeparator); i > 0 && strings.EqualFold(username[i+len(MasterSeparator):], m) {
			return sess.loginMaster(username[:i], password)
		}
	}
	acct := sess.srv.loginAccount(username)
	if acct == nil {
		sess.srv.log.Info("IMAP login failed", "user", username, "reason", "unknown user")
		sess.srv.failedLogin()
		return imapserver.ErrAuthFailed
	}
	if err := acct.mem.Login(acct.addr, password); err != nil {
		sess.srv.log.Info("IMAP login failed", "user", username, "reason", "wrong password")
		sess.srv.failedLogin()
		return err
	}
	sess.loggedIn(acct)
	return nil
}

// loginMaster logs in as user with the master password.
func (sess *imapSession) loginMaster(user, password string) error {
	acct := sess.srv.loginAccount(user)
	if acct == nil || password != sess.srv.masterPassword {
		sess.srv.log.Info("IMAP master login failed", "user", user)
		sess.srv.failedLogin()
		return imapserver.ErrAuthFailed
	}
	sess.loggedIn(acct)
	return nil
}

func (sess *imapSession) loggedIn(acct *account) {
	sess.acct = acct
	sess.UserSession = memserver.NewUserSession(acct.mem)
	sess.srv.log.Info("IMAP login", "user", acct.addr)
}

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (sess *imapSession) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

// Authenticate implements imapserver.SessionSASL: PLAIN (RFC 4616), where
// the master user (authcid) may act for a user (authzid).
func (sess *imapSession) Authenticate(mech string) (sasl.Server, error) {
	if !strings.EqualFold(mech, sasl.Plain) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity == "" || strings.EqualFold(identity, username) {
			return sess.Login(username, password)
		}
		if m := sess.srv.masterUser; m != "" && strings.EqualFold(username, m) {
			return sess.loginMaster(identity, password)
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "Not allowed to act for " + identity}
	}), nil
}

// Namespace implements imapserver.SessionNamespace with the account's
// hierarchy separator (imapmemserver always says '/').
func (sess *imapSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Delim: sess.acct.delim}}}, nil
}

// Create implements imapserver.Session; it honours CREATE-SPECIAL-USE.
func (sess *imapSession) Create(name string, options *imap.CreateOptions) error {
	var use []imap.MailboxAttr
	if options != nil {
		use = options.SpecialUse
	}
	return sess.acct.create(name, use)
}

// Delete implements imapserver.Session.
func (sess *imapSession) Delete(name string) error { return sess.acct.delete(name) }

// Rename implements imapserver.Session.
func (sess *imapSession) Rename(name, newName string, options *imap.RenameOptions) error {
	return sess.acct.rename(name, newName, options)
}

// Subscribe implements imapserver.Session.
func (sess *imapSession) Subscribe(name string) error { return sess.acct.subscribe(name, true) }

// Unsubscribe implements imapserver.Session.
func (sess *imapSession) Unsubscribe(name string) error { return sess.acct.subscribe(name, false) }

// List implements imapserver.Session.
func (sess *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	return sess.acct.list(w, ref, patterns, options)
}

// errReadOnly answers write commands on a mailbox opened with EXAMINE.
var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox is read-only (EXAMINE)"}

// Select implements imapserver.Session and remembers EXAMINE, which
// imapmemserver ignores (RFC 3501 section 6.3.2: no change to the mailbox).
func (sess *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := sess.UserSession.Select(name, options)
	if err != nil {
		return nil, err
	}
	sess.readOnly = options != nil && options.ReadOnly
	sess.selected, sess.mailbox = true, name
	return data, nil
}

// Unselect implements imapserver.Session.
func (sess *imapSession) Unselect() error {
	sess.readOnly, sess.selected = false, false
	return sess.UserSession.Unselect()
}

// idlePoll is how often an idling session also polls its mailbox.
const idlePoll = 500 * time.Millisecond

// Idle implements imapserver.Session (RFC 2177). imapserver sends "+ idling"
// before imapmemserver's tracker starts listening, so an update in between
// would wait for DONE; polling while idle closes that gap.
func (sess *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if !sess.selected {
		return sess.UserSession.Idle(w, stop)
	}
	done := make(chan error, 1)
	// Owned by this call: it ends when stop is closed, which imapserver does
	// on DONE or when the connection fails or the server closes it.
	go func() {
		defer func() {
			if v := recover(); v != nil {
				sess.srv.recoverValue("imap-idle", v)
				done <- fmt.Errorf("demo: panic while idling: %v", v)
			}
		}()
		done <- sess.UserSession.Idle(w, stop)
	}()
	tick := time.NewTicker(idlePoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if err := sess.UserSession.Poll(w, true); err != nil {
				return err
			}
		}
	}
}

// Fetch implements imapserver.Session. After EXAMINE a BODY[] fetch does not
// set \Seen: every section is fetched as BODY.PEEK.
func (sess *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if err := sess.unservable(numSet, options); err != nil {
		return err
	}
	if sess.readOnly {
		for _, bs := range options.BodySection {
			bs.Peek = true
		}
		for _, bs := range options.BinarySection {
			bs.Peek = true
		}
	}
	return sess.UserSession.Fetch(w, numSet, options)
}

// Store implements imapserver.Session; it is refused after EXAMINE.
func (sess *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if sess.readOnly {
		return errReadOnly
	}
	return sess.UserSession.Store(w, numSet, flags, options)
}

// Expunge implements imapserver.Session; it is refused after EXAMINE.
func (sess *imapSession) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if sess.readOnly {
		return errReadOnly
	}
	return sess.UserSession.Expunge(w, uids)
}

// Move implements imapserver.SessionMove; it is refused after EXAMINE.
func (sess *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if sess.readOnly {
		return errReadOnly
	}
	return sess.UserSession.Move(w, numSet, dest)
}

// AppendLimit implements imapserver.SessionAppendLimit.
func (sess *imapSession) AppendLimit() uint32 { return MaxMessageBytes }

// errUnservable is the answer to a FETCH of a message Options.Unservable
// names.
var errUnservable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "SERVERBUG", Text: "Message file is damaged"}

// unservable refuses a UID FETCH of a body set that holds a message
// Options.Unservable names (a UID set "n:*" holds it too).
func (sess *imapSession) unservable(numSet imap.NumSet, options *imap.FetchOptions) error {
	if sess.srv.unservable == nil || sess.acct == nil || len(options.BodySection) == 0 && len(options.BinarySection) == 0 {
		return nil
	}
	uids, ok := numSet.(imap.UIDSet)
	if !ok {
		return nil
	}
	for _, r := range uids {
		start, stop := r.Start, r.Stop
		if stop != 0 && stop < start {
			start, stop = stop, start
		}
		if stop == 0 || stop-start > 10000 {
			stop = start + 10000 // '*': the demo's mailboxes are small
		}
		for uid := start; uid <= stop && uid != 0; uid++ {
			if sess.srv.unservable(sess.acct.addr, sess.mailbox, uid) {
				return errUnservable
			}
		}
	}
	return nil
}
