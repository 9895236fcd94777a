package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"

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
	// One worker per connection takes mailboxes from the queue; the first
	// error that is not a mailbox's own stops them all (report keeps every
	// error for the result; the group's error only cancels wctx).
	g, wctx := errgroup.WithContext(ctx)
	for w := range min(e.opts.ConnsPerAccount, len(rest)) {
		var own *imapclient.Client
		conn := &own
		if w == 0 {
			conn = &c
		} else if announced > 0 {
			own = <-extra
			announced--
		}
		g.Go(func() (werr error) {
			// A panic outside a mailbox's copy is logged and ends this
			// worker alone.
			recovered(e.log, "copy "+acct.Address, func() error {
				if w != 0 {
					defer func() { closeClient(*conn) }()
				}
				for p := range queue {
					if wctx.Err() != nil {
						return nil
					}
					err := recovered(e.log, "copy "+acct.Address+" "+p.old.name, func() error {
						return e.copyMailboxRetry(wctx, acct, s, cred, conn, p, catchUp)
					})
					if !report(p, err) {
						werr = err
						return nil
					}
				}
				return nil
			})
			return werr
		})
	}
	g.Wait() // every error is in errs
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// copyMailboxRetry copies one mailbox on *conn, re-connecting (with
// backoff, at most Options.Retries times) when the connection fails; each
// attempt resumes after the last committed UID.
func (e *Engine) copyMailboxRetry(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials, conn **imapclient.Client, p *plan, catchUp bool) error {
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) { a.Folder = p.old.name })
	isolations := 0
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
		var ie *isolateError
		if errors.As(err, &ie) && isolations < maxIsolations(e.opts.ChunkMessages) {
			// The parser refused a response: a new connection at once,
			// the messages in question alone (problem.go). Not an attempt:
			// each isolation narrows the search or counts a failure.
			isolations++
			attempt--
			e.log.Info("migrate: a response of the old server could not be read, fetching its messages alone", "account", acct.Address, "mailbox", p.old.name, "err", err)
			continue
		}
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
	if err := e.retryProblems(ctx, acct, c, p, state); err != nil {
		return err
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
