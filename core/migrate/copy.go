package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// mailboxError is a problem with one mailbox (it cannot be selected, its
// UIDVALIDITY changed) that re-connecting would not fix. It is reported and
// the other mailboxes go on.
type mailboxError struct {
	mailbox string
	err     error
}

func (e *mailboxError) Error() string { return fmt.Sprintf("mailbox %q: %v", e.mailbox, e.err) }
func (e *mailboxError) Unwrap() error { return e.err }

// errUIDValidity: the old mailbox's UIDVALIDITY is not the one it was copied
// with, so its UIDs cannot be matched any more.
var errUIDValidity = errors.New("UIDVALIDITY on the old server changed since the copy; new mail in it is not pulled")

// adoptErr is the error of a copy whose local mailbox could not take the old
// server's settled UIDVALIDITY: the store refuses it for a mailbox that
// holds mail (store.ErrInvalid) — then the UIDVALIDITY really changed —
// any other store error is the store's, and says so.
func adoptErr(mailbox string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalid):
		return &mailboxError{mailbox, errUIDValidity}
	}
	return fmt.Errorf("taking the old UIDVALIDITY of %q: %w", mailbox, err)
}

func closeClient(c *imapclient.Client) {
	if c == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	c.Close()
}

// connect opens a logged-in session to the old server.
func (e *Engine) connect(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, error) {
	c, _, err := e.connectAs(ctx, s, cred)
	return c, err
}

// connectAs is connect that also returns the user name the old server
// accepted. With cred.OldLogin it logs in with exactly that name.
func (e *Engine) connectAs(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, string, error) {
	c, err := dialOld(ctx, s, e.opts.Dial)
	if err != nil {
		return nil, "", fmt.Errorf("migrate: connect to old server: %w", err)
	}
	user, ls := cred.Address, s
	if cred.OldLogin != "" {
		user, ls = cred.OldLogin, exactly(s, cred.OldLogin)
	}
	var name string
	if cred.master() {
		name, err = loginMaster(ctx, c, ls, user, cred.MasterUser, cred.MasterPassword)
	} else {
		name, err = loginUser(ctx, c, ls, user, cred.Password)
	}
	if err != nil {
		c.Close()
		if errors.Is(err, errAuthFailed) {
			return nil, "", fmt.Errorf("migrate: %s: %w", cred, ErrBadPassword)
		}
		return nil, "", fmt.Errorf("migrate: log in to old server as %s: %w", cred, err)
	}
	return c, name, nil
}

// connectRetry is connect with the engine's retries for failures other than
// a refused password.
func (e *Engine) connectRetry(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, error) {
	for attempt := 0; ; attempt++ {
		c, err := e.connect(ctx, s, cred)
		if err == nil || errors.Is(err, ErrBadPassword) || attempt >= e.opts.Retries {
			return c, err
		}
		if err := e.backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

func (e *Engine) backoff(ctx context.Context, attempt int) error {
	d := e.opts.RetryBackoff << min(attempt, 6)
	d = min(d, 30*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nsInfo is the old server's personal namespace (RFC 2342).
type nsInfo struct {
	prefix string
	delim  rune
	others []string // prefixes of other users' and shared namespaces
}

func readNamespace(c *imapclient.Client) (nsInfo, error) {
	var ns nsInfo
	if c.Caps().Has(imap.CapNamespace) || c.Caps().Has(imap.CapIMAP4rev2) {
		nd, err := c.Namespace().Wait()
		if err != nil {
			return ns, fmt.Errorf("NAMESPACE: %w", err)
		}
		if len(nd.Personal) > 0 {
			ns.prefix, ns.delim = nd.Personal[0].Prefix, nd.Personal[0].Delim
		}
		for _, d := range append(append([]imap.NamespaceDescriptor{}, nd.Other...), nd.Shared...) {
			if d.Prefix != "" {
				ns.others = append(ns.others, d.Prefix)
			}
		}
	}
	if ns.delim == 0 {
		l, err := c.List("", "", nil).Collect()
		if err != nil {
			return ns, fmt.Errorf("LIST: %w", err)
		}
		if len(l) > 0 {
			ns.delim = l[0].Delim
		}
	}
	if ns.delim == 0 {
		ns.delim = '/'
	}
	return ns, nil
}

// localName maps an old mailbox name to the store's name ("" = skip).
func (ns nsInfo) localName(old string) string {
	if strings.EqualFold(old, "INBOX") {
		return "INBOX"
	}
	for _, p := range ns.others {
		if strings.HasPrefix(old, p) {
			return ""
		}
	}
	if ns.prefix != "" && strings.HasPrefix(old, ns.prefix) {
		return old[len(ns.prefix):]
	}
	return old
}

type statusInfo struct {
	uidValidity, uidNext uint32
	messages             uint32
	size                 int64 // -1 unknown
}

func toStatus(d *imap.StatusData) *statusInfo {
	s := &statusInfo{uidValidity: d.UIDValidity, uidNext: uint32(d.UIDNext), size: -1}
	if d.NumMessages != nil {
		s.messages = *d.NumMessages
	}
	if d.Size != nil {
		s.size = *d.Size
	}
	return s
}

func statusOptions(c *imapclient.Client) *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		Size: c.Caps().Has(imap.CapStatusSize) || c.Caps().Has(imap.CapIMAP4rev2)}
}

// statusOf runs STATUS; with quick, only UIDVALIDITY and UIDNEXT, which a
// server answers from its index at once (SIZE may make it read every
// message).
func statusOf(c *imapclient.Client, name string, quick bool) (*statusInfo, error) {
	opts := statusOptions(c)
	if quick {
		opts = &imap.StatusOptions{UIDNext: true, UIDValidity: true}
	}
	d, err := c.Status(name, opts).Wait()
	if err != nil {
		return nil, err
	}
	return toStatus(d), nil
}

// oldMailbox is one mailbox as listed by the old server.
type oldMailbox struct {
	name       string
	local      string
	noselect   bool
	subscribed bool
	specialUse string
	status     *statusInfo
}

var specialAttrs = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
	imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrImportant}

// guessSpecialUse names the RFC 6154 use of a top-level mailbox of a server
// without SPECIAL-USE from common names.
func guessSpecialUse(name string) string {
	switch strings.ToLower(name) {
	case "sent", "sent items", "sent messages", "sent mail":
		return `\Sent`
	case "drafts":
		return `\Drafts`
	case "trash", "deleted items", "deleted messages":
		return `\Trash`
	case "junk", "spam", "junk e-mail":
		return `\Junk`
	case "archive", "archives":
		return `\Archive`
	}
	return ""
}

// listOld lists the old server's personal mailboxes with their
// subscription (RFC 5258), special use (RFC 6154) and status (RFC 5819),
// INBOX first.
func listOld(c *imapclient.Client, ns nsInfo) ([]*oldMailbox, error) {
	caps := c.Caps()
	ext := caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2)
	var opts *imap.ListOptions
	if ext {
		opts = &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
		if caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2) {
			opts.ReturnStatus = statusOptions(c)
		}
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var out []*oldMailbox
	seen := map[string]bool{}
	for _, l := range list {
		local := ns.localName(l.Mailbox)
		if local == "" || seen[l.Mailbox] {
			continue
		}
		seen[l.Mailbox] = true
		m := &oldMailbox{name: l.Mailbox, local: local, subscribed: !ext}
		if strings.EqualFold(l.Mailbox, "INBOX") {
			m.name = "INBOX"
		}
		var uses []string
		for _, a := range l.Attrs {
			switch {
			case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)), strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
				m.noselect = true
			case strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed)):
				m.subscribed = true
			}
			for _, s := range specialAttrs {
				if strings.EqualFold(string(a), string(s)) {
					uses = append(uses, string(s))
				}
			}
		}
		m.specialUse = strings.Join(uses, " ")
		if m.specialUse == "" && !caps.Has(imap.CapSpecialUse) && !strings.ContainsRune(local, ns.delim) {
			m.specialUse = guessSpecialUse(local)
		}
		if l.Status != nil {
			m.status = toStatus(l.Status)
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name == "INBOX" && out[j].name != "INBOX" })
	if len(out) == 0 || out[0].name != "INBOX" {
		out = append([]*oldMailbox{{name: "INBOX", local: "INBOX", subscribed: true}}, out...)
	}
	for _, m := range out {
		if m.status == nil && !m.noselect {
			st, err := statusOf(c, m.name, false)
			if err != nil {
				return nil, fmt.Errorf("STATUS %q: %w", m.name, err)
			}
			m.status = st
		}
	}
	return out, nil
}

// plan is one mailbox to copy.
type plan struct {
	old   *oldMailbox
	local *store.Mailbox
}

// weight is how much a plan has to copy, for ordering the work.
func (p *plan) weight() int64 {
	if st := p.old.status; st != nil {
		if st.size >= 0 {
			return st.size
		}
		return int64(st.messages)
	}
	return 0
}

// copyAccount copies every mailbox of an account (or, for catch-up, what is
// new in them), INBOX first. A first copy (or its resume) starts on INBOX at
// once, on the connection the login left (Engine.keepConn) when there is
// one, while a second connection lists the other mailboxes.
func (e *Engine) copyAccount(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials, catchUp bool) error {
	byOld, err := e.localsByOldName(ctx, acct.ID)
	if err != nil {
		return err
	}
	inbox := byOld["INBOX"]
	early := !catchUp && e.opts.ConnsPerAccount > 1 && inbox != nil && inbox.Migration != store.MigDone
	// The kept connection serves the early INBOX copy only, which
	// reconnects should the old server have dropped it meanwhile.
	c := e.takeConn(acct.ID, cred)
	if c != nil && !early {
		closeClient(c)
		c = nil
	}
	if c == nil {
		if c, err = e.connectRetry(ctx, s, cred); err != nil {
			return err
		}
	}
	defer func() { closeClient(c) }()

	var errs []error
	var mu sync.Mutex
	report := func(p *plan, err error) bool {
		if err == nil {
			e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) { a.FoldersDone++ })
			return true
		}
		var me *mailboxError
		if errors.As(err, &me) {
			e.log.Warn("migrate: mailbox not copied", "account", acct.Address, "mailbox", p.old.name, "err", err)
			e.prog.update(acct.ID, acct.Address, EventError, err.Error(), func(a *AccountProgress) { a.FoldersDone++ })
			return true
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return false
	}

	// Connections for the workers after INBOX, dialed ahead; each
	// announced one arrives on extra (nil when it could not be made: the
	// worker then dials itself).
	extra := make(chan *imapclient.Client, max(e.opts.ConnsPerAccount, 1))
	announced := 0
	dial := func(n int) {
		for range n {
			announced++
			e.goSafe("connect "+acct.Address, func() {
				var c *imapclient.Client
				defer func() { extra <- c }() // sent even after a panic
				c, _ = e.connect(ctx, s, cred)
			})
		}
	}
	defer func() {
		n := announced
		e.goSafe("disconnect "+acct.Address, func() {
			for range n {
				closeClient(<-extra)
			}
		})
	}()

	var rest []*plan
	if early {
		// INBOX now, on c; the listing meanwhile, on a second connection.
		st, err := e.st.Status(ctx, inbox.ID)
		if err != nil {
			return err
		}
		e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) {
			a.MessagesDone += int64(st.Messages)
			a.BytesDone += st.Size
		})
		p := &plan{old: &oldMailbox{name: "INBOX", local: "INBOX"}, local: inbox}
		var inboxOK bool
		done := make(chan struct{})
		e.goSafe("copy "+acct.Address, func() {
			defer close(done)
			inboxOK = report(p, recovered(e.log, "copy "+acct.Address+" INBOX", func() error {
				return e.copyMailboxRetry(ctx, acct, s, cred, &c, p, catchUp)
			}))
		})
		lc, err := e.connectRetry(ctx, s, cred)
		if err == nil {
			err = recovered(e.log, "list "+acct.Address, func() (err error) {
				rest, err = e.planAccount(ctx, lc, acct, byOld, "INBOX")
				return err
			})
			announced++
			extra <- lc
			if err == nil {
				dial(min(e.opts.ConnsPerAccount, len(rest)) - 2)
			}
		}
		<-done
		if err != nil || !inboxOK {
			mu.Lock()
			defer mu.Unlock()
			return errors.Join(append(errs, err)...)
		}
	} else {
		plans, err := e.planAccount(ctx, c, acct, byOld, "")
		if err != nil {
			return err
		}
		rest = plans
		first := len(plans) > 0 && plans[0].local.Name == "INBOX"
		if first {
			rest = plans[1:]
		}
		dial(min(e.opts.ConnsPerAccount, len(rest)) - 1) // they log in while INBOX is copied
		// INBOX first, alone, so that it is complete before anything else.
		if first && !report(plans[0], e.copyMailboxRetry(ctx, acct, s, cred, &c, plans[0], catchUp)) {
			return errors.Join(errs...)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	// The biggest mailboxes first, so that the connections finish together.
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].weight() > rest[j].weight() })
	queue := make(chan *plan, len(rest))
	for _, p := range rest {
		queue <- p
	}
	close(queue)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for w := range min(e.opts.ConnsPerAccount, len(rest)) {
		wg.Add(1)
		var own *imapclient.Client
		conn := &own
		if w == 0 {
			conn = &c
		} else if announced > 0 {
			own = <-extra
			announced--
		}
		e.goSafe("copy "+acct.Address, func() {
			defer wg.Done()
			if w != 0 {
				defer func() { closeClient(*conn) }()
			}
			for p := range queue {
				if wctx.Err() != nil {
					return
				}
				err := recovered(e.log, "copy "+acct.Address+" "+p.old.name, func() error {
					return e.copyMailboxRetry(wctx, acct, s, cred, conn, p, catchUp)
				})
				if !report(p, err) {
					stop()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// planAccount lists the old mailboxes on c, makes the local mailboxes that
// are missing, counts the account's totals into its progress and returns
// what is to be copied (INBOX first), leaving out the mailbox named skip,
// which the caller copies already and has counted as done.
func (e *Engine) planAccount(ctx context.Context, c *imapclient.Client, acct *store.Account, byOld map[string]*store.Mailbox, skip string) ([]*plan, error) {
	ns, err := readNamespace(c)
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
	}
	olds, err := listOld(c, ns)
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
	}
	var plans []*plan
	var msgTotal, msgDone, byteTotal, byteDone int64
	foldersDone := 0
	for _, o := range olds {
		lm := byOld[o.name]
		if lm == nil {
			if lm, err = e.createLocal(ctx, acct, o); err != nil {
				return nil, err
			}
		} else if o.name == "INBOX" && acct.Migration != store.MigDone && lm.Subscribed != o.subscribed {
			// INBOX is made at the first login, before its subscription
			// on the old server is known (and its copy may start, even
			// finish, and be stopped, before this listing): until the
			// account's first copy is done, INBOX takes it.
			if err := e.st.SetSubscribed(ctx, acct.ID, lm.Name, o.subscribed); err != nil {
				return nil, err
			}
		}
		if o.noselect {
			if lm.Migration != store.MigDone {
				if err := e.st.SetMailboxMigration(ctx, lm.ID, store.MigDone, 0); err != nil {
					return nil, err
				}
			}
			foldersDone++
			continue
		}
		if o.name == skip {
			if o.status != nil {
				msgTotal += int64(o.status.messages)
				byteTotal += max(o.status.size, 0)
			}
			continue
		}
		st, err := e.st.Status(ctx, lm.ID)
		if err != nil {
			return nil, err
		}
		msgDone += int64(st.Messages)
		byteDone += st.Size
		if o.status != nil {
			msgTotal += int64(max(o.status.messages, st.Messages))
			if o.status.size >= 0 {
				byteTotal += max(o.status.size, st.Size)
			}
			if lm.Migration == store.MigDone && o.status.uidValidity == lm.UIDValidity && o.status.uidNext != 0 &&
				o.status.uidNext-1 <= lm.MigratedUID {
				foldersDone++ // nothing new
				continue
			}
		}
		plans = append(plans, &plan{old: o, local: lm})
	}
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) {
		a.FoldersTotal = len(olds)
		a.FoldersDone += foldersDone
		a.MessagesDone += msgDone
		a.BytesDone += byteDone
		a.MessagesTotal = max(msgTotal, a.MessagesDone)
		a.BytesTotal = max(byteTotal, a.BytesDone)
	})
	return plans, nil
}

// localsByOldName returns an account's local mailboxes by the old name
// they were copied from (mailboxes made locally are left out).
func (e *Engine) localsByOldName(ctx context.Context, accountID int64) (map[string]*store.Mailbox, error) {
	locals, err := e.st.Mailboxes(ctx, accountID)
	if err != nil {
		return nil, err
	}
	byOld := map[string]*store.Mailbox{}
	for _, m := range locals {
		if m.OldName != "" {
			byOld[m.OldName] = m
		}
	}
	return byOld, nil
}

// createLocal makes the local mailbox for an old one.
func (e *Engine) createLocal(ctx context.Context, acct *store.Account, o *oldMailbox) (*store.Mailbox, error) {
	opts := &store.MailboxOptions{SpecialUse: o.specialUse, Subscribed: o.subscribed, Migration: store.MigPending, OldName: o.name}
	if o.noselect {
		opts.Migration = store.MigDone
	} else if o.status != nil {
		opts.UIDValidity, opts.UIDNext = o.status.uidValidity, o.status.uidNext
	}
	name := o.local
	for i := 1; ; i++ {
		m, err := e.st.CreateMailbox(ctx, acct.ID, name, opts)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, store.ErrExists) || i > 20 {
			return nil, fmt.Errorf("migrate: %s: create mailbox %q: %w", acct.Address, name, err)
		}
		// A local mailbox already has that name: keep both.
		name = fmt.Sprintf("%s (old %d)", o.local, i)
		if i == 1 {
			name = o.local + " (old)"
		}
	}
}

// copyMailboxRetry copies one mailbox on *conn, re-connecting (with
// backoff, at most Options.Retries times) when the connection fails; each
// attempt resumes after the last committed UID.
func (e *Engine) copyMailboxRetry(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials, conn **imapclient.Client, p *plan, catchUp bool) error {
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) { a.Folder = p.old.name })
	for attempt := 0; ; attempt++ {
		var err error
		if *conn == nil {
			*conn, err = e.connect(ctx, s, cred)
		}
		if err == nil {
			err = e.copyMailbox(ctx, acct, *conn, p, catchUp)
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var me *mailboxError
		if errors.As(err, &me) || errors.Is(err, ErrBadPassword) {
			return err
		}
		closeClient(*conn)
		*conn = nil
		if attempt >= e.opts.Retries {
			return fmt.Errorf("migrate: %s: mailbox %q: giving up after %d attempts: %w", acct.Address, p.old.name, attempt+1, err)
		}
		e.log.Info("migrate: connection problem, retrying", "account", acct.Address, "mailbox", p.old.name, "attempt", attempt+1, "err", err)
		e.prog.update(acct.ID, acct.Address, EventError, fmt.Sprintf("mailbox %q: %v (retrying)", p.old.name, err), nil)
		if err := e.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// pending is one message read from the old server, not yet committed.
type pending struct {
	uid   uint32
	flags []string
	date  time.Time
	// The body (bodySize bytes) is staged in the store by the reader's
	// stager; blob and stageErr are set once staged is closed.
	bodySize int64
	staged   chan struct{}
	blob     *store.StagedBlob
	stageErr error
	// nilBody: the server sent BODY[] NIL; tooBig: over MaxMessageSize.
	nilBody, tooBig, gotBody bool
}

// batch is what one store transaction commits.
type batch struct {
	msgs  []*pending
	bytes int64
	last  uint32 // highest old UID below which everything was handled
	first time.Time
}

// fetchItems are what the copy and Verify fetch of each message: the
// body's literal gives its size.
var fetchItems = &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
	BodySection: []*imap.FetchItemBodySection{{Peek: true}}}

// readError is a failure while reading a message's literal. The command it
// belongs to must then not be drained: imapclient's reader has moved on
// (the literal's end was signalled by the error) and reading the literal
// again would race with it. Closing the client is the way out.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// reader reads FETCH responses; stager goroutines write each body to
// the store (store.Stage: pack file, hash, summary) while the next one is
// read. Bodies up to keepBuf bytes go through a few reused buffers, so
// memory holds a handful of messages at most.
type reader struct {
	st      *store.Store
	log     *slog.Logger
	maxSize int64
	bufs    chan []byte
	jobs    chan stageJob
	done    chan struct{}
}

type stageJob struct {
	p      *pending
	body   []byte
	pooled bool
}

// keepBuf is the largest body a reader's reused buffers take; stagers
// stage bodies in parallel (hashing, writing and summarizing one message is
// about as much work as reading it).
const (
	keepBuf    = 4 << 20
	readerBufs = 4
	stagers    = 2
)

func newReader(st *store.Store, log *slog.Logger, maxSize int64) *reader {
	r := &reader{st: st, log: log, maxSize: maxSize, bufs: make(chan []byte, readerBufs),
		jobs: make(chan stageJob, readerBufs), done: make(chan struct{})}
	for range readerBufs {
		r.bufs <- nil
	}
	var wg sync.WaitGroup
	for range stagers {
		wg.Go(func() {
			for j := range r.jobs {
				j.p.stageErr = recovered(r.log, "stage", func() (err error) {
					j.p.blob, err = r.st.Stage(j.body)
					return err
				})
				close(j.p.staged)
				if j.pooled {
					r.bufs <- j.body
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r
}

// close stops the stager once it has staged everything handed to it.
func (r *reader) close() {
	close(r.jobs)
	<-r.done
}

// wait waits until p's body is staged and says whether that worked.
func (p *pending) wait() error {
	if p.staged == nil {
		return fmt.Errorf("migrate: message %d has no body to store", p.uid)
	}
	<-p.staged
	return p.stageErr
}

// read reads one FETCH response and stages its body (if it has one that
// is not over maxSize).
func (r *reader) read(msg *imapclient.FetchMessageData) (*pending, error) {
	p := &pending{}
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			p.uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			p.flags = oldserver.MessageFlags(it.Flags)
		case imapclient.FetchItemDataInternalDate:
			p.date = it.Time
		case imapclient.FetchItemDataBodySection:
			p.gotBody = true
			if it.Literal == nil {
				p.nilBody = true
				continue
			}
			n := it.Literal.Size()
			if n > r.maxSize {
				p.tooBig = true
				continue // the rest is discarded by Next
			}
			var body []byte
			pooled := n <= keepBuf
			if pooled {
				body = <-r.bufs
				if int64(cap(body)) < n {
					body = make([]byte, n)
				}
				body = body[:n]
			} else {
				body = make([]byte, n)
			}
			if _, err := io.ReadFull(it.Literal, body); err != nil {
				if pooled {
					r.bufs <- body
				}
				return nil, &readError{fmt.Errorf("read message %d: %w", p.uid, err)}
			}
			p.bodySize, p.staged = n, make(chan struct{})
			r.jobs <- stageJob{p: p, body: body, pooled: pooled}
		}
	}
	return p, nil
}

// copyMailbox copies the messages of one old mailbox above the last
// committed UID, streaming: pipelined UID FETCH chunks on this connection
// while the previous batch commits.
func (e *Engine) copyMailbox(ctx context.Context, acct *store.Account, c *imapclient.Client, p *plan, catchUp bool) error {
	sel, err := c.Select(p.old.name, &imap.SelectOptions{ReadOnly: true}).Wait() // EXAMINE: no \Seen, no \Recent change
	if err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) {
			return &mailboxError{p.old.name, err}
		}
		return fmt.Errorf("EXAMINE %q: %w", p.old.name, err)
	}
	local, err := e.st.MailboxByID(ctx, p.local.ID)
	if err != nil {
		return &mailboxError{p.old.name, err}
	}
	if sel.UIDValidity != local.UIDValidity {
		// Dovecot settles the UIDVALIDITY of a never-opened Maildir folder
		// only when it is first selected, so LIST-STATUS may have said
		// something else. An empty local copy can take the settled value.
		if local.MigratedUID != 0 {
			return &mailboxError{p.old.name, errUIDValidity}
		}
		if err := adoptErr(p.old.name, e.st.AdoptUIDValidity(ctx, local.ID, sel.UIDValidity, uint32(sel.UIDNext))); err != nil {
			return err
		}
		e.log.Info("migrate: mailbox took the old server's settled UIDVALIDITY", "account", acct.Address, "mailbox", p.old.name)
	}
	state := store.MigRunning
	if catchUp || local.Migration == store.MigDone {
		// A mailbox already copied takes new old mail like local mail:
		// a UID below its UIDNEXT gets a fresh one.
		state = store.MigDone
	}
	last := local.MigratedUID
	var uids []uint32
	var sizes []int64
	if sel.NumMessages > 0 && last < 1<<32-1 {
		list, err := c.Fetch(imap.UIDSet{{Start: imap.UID(last + 1), Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			return fmt.Errorf("list UIDs of %q: %w", p.old.name, err)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].UID < list[j].UID })
		for _, m := range list {
			if uint32(m.UID) > last { // "n:*" also returns the last message when n is above it
				uids = append(uids, uint32(m.UID))
				sizes = append(sizes, m.RFC822Size)
			}
		}
	}
	final := last
	if sel.UIDNext > 0 {
		final = max(final, uint32(sel.UIDNext)-1)
	}
	if len(uids) > 0 {
		if err := e.fetchAndCommit(ctx, acct, c, p, state, uids, sizes); err != nil {
			return err
		}
		final = max(final, uids[len(uids)-1])
	}
	if err := e.st.SetMailboxMigration(ctx, p.local.ID, store.MigDone, final); err != nil {
		return err
	}
	return nil
}

type chunk struct {
	uids []uint32
	cmd  *imapclient.FetchCommand
}

// fetchAndCommit streams the given UIDs (ascending) into the store.
func (e *Engine) fetchAndCommit(ctx context.Context, acct *store.Account, c *imapclient.Client, p *plan, state string, uids []uint32, sizes []int64) (retErr error) {
	// The committer runs beside the reader so the network does not wait for
	// the disk; the reader fills the next batch while one commits.
	// Batches hold only metadata (bodies are staged), so the reader may run
	// a few ahead of the committer.
	commits := make(chan *batch, 4)
	var cerr error
	var cmu sync.Mutex
	cdone := make(chan struct{})
	e.goSafe("commit "+acct.Address, func() {
		defer close(cdone)
		for b := range commits {
			cmu.Lock()
			failed := cerr != nil
			cmu.Unlock()
			if failed {
				continue
			}
			err := recovered(e.log, "commit "+acct.Address, func() error { return e.commit(ctx, acct, p, state, b) })
			if err != nil {
				cmu.Lock()
				cerr = err
				cmu.Unlock()
			}
		}
	})
	commitErr := func() error {
		cmu.Lock()
		defer cmu.Unlock()
		return cerr
	}
	defer func() {
		close(commits)
		<-cdone
		if err := commitErr(); err != nil && retErr == nil {
			retErr = err
		}
	}()

	// A FETCH left unread would block imapclient's reader for good (it
	// waits for each literal to be consumed): on the way out after a
	// failure, cut the connection, then drain what is open.
	var open *chunk
	defer func() {
		if retErr == nil {
			return
		}
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		var re *readError
		if open != nil && !errors.As(retErr, &re) {
			open.cmd.Close()
		}
		<-closed
	}()
	// Cancelling ctx cuts the connection, so that a read in progress ends.
	stopCut := context.AfterFunc(ctx, func() { go c.Close() })
	defer stopCut()

	cur := &batch{}
	flush := func(force bool) error {
		if len(cur.msgs) == 0 && (!force || cur.last == 0) {
			return nil
		}
		if !force && len(cur.msgs) < e.opts.BatchMessages && cur.bytes < e.opts.BatchBytes &&
			time.Since(cur.first) < e.opts.BatchDelay {
			return nil
		}
		if err := commitErr(); err != nil {
			return err
		}
		select {
		case commits <- cur:
		case <-ctx.Done():
			return ctx.Err()
		}
		cur = &batch{last: cur.last}
		return nil
	}
	rd := newReader(e.st, e.log, e.opts.MaxMessageSize)
	defer rd.close()
	add := func(m *pending) error {
		if len(cur.msgs) == 0 {
			cur.first = time.Now()
		}
		cur.msgs = append(cur.msgs, m)
		cur.bytes += m.bodySize
		return flush(false)
	}
	skip := func(uid uint32, why string) {
		msg := fmt.Sprintf("mailbox %q: message UID %d not copied: %s", p.old.name, uid, why)
		e.log.Warn("migrate: "+msg, "account", acct.Address)
		e.prog.update(acct.ID, acct.Address, EventError, msg, func(a *AccountProgress) { a.Skipped++ })
	}

	next := 0
	issue := func() *chunk {
		ch := &chunk{}
		var set imap.UIDSet
		var bytes int64
		for next < len(uids) && len(ch.uids) < e.opts.ChunkMessages && (len(ch.uids) == 0 || bytes+sizes[next] <= e.opts.ChunkBytes) {
			ch.uids = append(ch.uids, uids[next])
			set.AddNum(imap.UID(uids[next]))
			bytes += sizes[next]
			next++
		}
		ch.cmd = c.Fetch(set, fetchItems)
		return ch
	}
	// One FETCH at a time (see Options.ChunkMessages).
	for next < len(uids) {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch := issue()
		open = ch
		// Messages are handled in the chunk's UID order (a message that
		// comes early waits in held), so that the committed last UID never
		// passes one not yet handled.
		seen := make(map[uint32]bool, len(ch.uids))
		held := map[uint32]*pending{}
		pos := 0
		for msg := ch.cmd.Next(); msg != nil; msg = ch.cmd.Next() {
			m, err := rd.read(msg)
			if err != nil {
				return err
			}
			if m.uid == 0 || !m.gotBody || seen[m.uid] {
				continue // not ours (e.g. a flag update): fetched again below
			}
			seen[m.uid] = true
			held[m.uid] = m
			for pos < len(ch.uids) && held[ch.uids[pos]] != nil {
				u := ch.uids[pos]
				m := held[u]
				delete(held, u)
				if err := e.handle(m, add, skip); err != nil {
					return err
				}
				cur.last = max(cur.last, u)
				pos++
			}
		}
		ferr := ch.cmd.Close()
		open = nil
		var ierr *imap.Error
		if ferr != nil && !errors.As(ferr, &ierr) {
			return ferr // connection trouble: retried from the last commit
		}
		// What is left the server refused (NO) or did not send: take the
		// rest of this chunk in order, fetching the missing ones one by one.
		for ; pos < len(ch.uids); pos++ {
			u := ch.uids[pos]
			var err error
			if m := held[u]; m != nil {
				delete(held, u)
				err = e.handle(m, add, skip)
			} else {
				err = e.fetchOne(c, u, rd, add, skip, ferr != nil)
			}
			if err != nil {
				return err
			}
			cur.last = max(cur.last, u)
		}
		cur.last = max(cur.last, ch.uids[len(ch.uids)-1])
		// After the last chunk the flush is forced: it commits the rest.
		if err := flush(next >= len(uids)); err != nil {
			return err
		}
	}
	return nil
}

// handle adds a read message to the batch, or reports why it cannot be.
func (e *Engine) handle(m *pending, add func(*pending) error, skip func(uint32, string)) error {
	switch {
	case m.tooBig:
		skip(m.uid, fmt.Sprintf("larger than %d bytes", e.opts.MaxMessageSize))
		return nil
	case m.nilBody:
		skip(m.uid, "the old server sent no body (NIL)")
		return nil
	}
	return add(m)
}

// fetchOne fetches one message singly after its chunk came back without
// it. A message the server still refuses (NO) is reported and skipped; one
// it does not send at all was expunged meanwhile (reported only if the
// chunk was refused).
func (e *Engine) fetchOne(c *imapclient.Client, u uint32, rd *reader, add func(*pending) error, skip func(uint32, string), refused bool) error {
	cmd := c.Fetch(imap.UIDSetNum(imap.UID(u)), fetchItems)
	var got *pending
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		m, err := rd.read(msg)
		if err != nil {
			return err // the caller closes the client
		}
		if m.uid == u && m.gotBody {
			got = m
		}
	}
	err := cmd.Close()
	var ierr *imap.Error
	if err != nil && !errors.As(err, &ierr) {
		return err
	}
	switch {
	case got != nil:
		return e.handle(got, add, skip)
	case err != nil:
		skip(u, "the old server refused it: "+err.Error())
	case refused:
		skip(u, "the old server did not send it")
	}
	return nil
}

// commit writes one batch in one transaction, with the mailbox's
// last copied UID, and counts it in the progress.
func (e *Engine) commit(ctx context.Context, acct *store.Account, p *plan, state string, b *batch) error {
	// Sync the batch's bytes before taking the store's writer, so that
	// other writers do not wait for the disk.
	staged := make([]*store.StagedBlob, 0, len(b.msgs))
	for _, m := range b.msgs {
		if err := m.wait(); err != nil {
			return err
		}
		staged = append(staged, m.blob)
	}
	if err := e.st.SyncStaged(staged...); err != nil {
		return err
	}
	tx, err := e.st.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n, bytes int64
	all := make([]*store.NewMessage, len(b.msgs))
	for i, m := range b.msgs {
		all[i] = &store.NewMessage{UID: m.uid, Flags: m.flags, InternalDate: m.date, Staged: m.blob}
		bytes += m.blob.Size
	}
	// All at once; if a UID is taken, which only resumed or catch-up runs
	// meet, one by one instead (AppendMany then changed nothing).
	_, err = tx.AppendMany(p.local.ID, all)
	n = int64(len(all))
	if errors.Is(err, store.ErrExists) {
		n, bytes, err = 0, 0, nil
		for _, nm := range all {
			_, err := tx.Append(p.local.ID, nm)
			if errors.Is(err, store.ErrExists) {
				// The UID is taken or below UIDNEXT. The same message (a
				// copy committed before a crash) is not copied twice; new
				// old mail colliding with local mail gets a fresh UID.
				if old, merr := e.st.Message(ctx, p.local.ID, nm.UID); merr == nil && old.Size == nm.Staged.Size && old.BlobKey == nm.Staged.Key {
					continue
				}
				nm.Renumber = true
				_, err = tx.Append(p.local.ID, nm)
			}
			if err != nil {
				return fmt.Errorf("migrate: %s: store message %d of %q: %w", acct.Address, nm.UID, p.old.name, err)
			}
			n++
			bytes += nm.Staged.Size
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: %s: store messages of %q: %w", acct.Address, p.old.name, err)
	}
	if b.last > 0 {
		if err := tx.SetMailboxMigration(p.local.ID, state, b.last); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) {
		a.MessagesDone += n
		a.BytesDone += bytes
		a.MessagesTotal = max(a.MessagesTotal, a.MessagesDone)
		a.BytesTotal = max(a.BytesTotal, a.BytesDone)
	})
	return nil
}
