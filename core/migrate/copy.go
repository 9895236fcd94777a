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
// new in them), INBOX first, on c (the connection the login left,
// Engine.keepConn, or nil) holding a place of lim, the old server's cap,
// which the caller took (Engine.firstPlace) and frees. A first copy (or
// its resume) starts on INBOX at once, on c when there is one, while a
// second connection lists the other mailboxes if the cap has a place
// free; else the listing follows INBOX on the first.
func (e *Engine) copyAccount(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials, catchUp bool, c *imapclient.Client, lim *connLimit, later *laterMarks) error {
	byOld, err := e.localsByOldName(ctx, acct.ID)
	if err != nil {
		closeClient(c)
		return err
	}
	// The old POP3 UIDLs are read before INBOX is copied, so that no POP3
	// session sees an old message without its old UIDL (uidl.go).
	e.keepOldUIDLs(ctx, acct, s, cred)
	inbox := byOld["INBOX"]
	early := !catchUp && e.opts.ConnsPerAccount > 1 && inbox != nil && inbox.Migration != store.MigDone
	// The kept connection serves the early INBOX copy only, which
	// reconnects should the old server have dropped it meanwhile.
	if c != nil && !early {
		closeClient(c)
		c = nil
	}
	if c == nil {
		if c, err = e.connectRetry(ctx, s, cred); err != nil {
			return err
		}
	}
	lim.opened()
	defer func() { closeClient(c) }()
	// Cancelling ctx (the engine closing, the lease lost, a full disk
	// found by the lease's renewal) cuts the connection c is then, so
	// that a command waiting on a stalled server ends now rather than
	// after the read-stall timeout. (fetch.go does the same for its
	// connections, extraConn for the extra ones.)
	defer context.AfterFunc(ctx, func() { go c.Close() })()

	var errs []error
	var mu sync.Mutex
	report := func(p *plan, err error) bool {
		if err == nil {
			e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) { a.FoldersDone++ })
			e.clearFolderProblem(ctx, acct, p)
			return true
		}
		var me *mailboxError
		if errors.As(err, &me) {
			// One folder the old server will not serve never stops the
			// account: recorded (old UID 0, the whole folder) for the
			// admin and for a later run to try again.
			e.log.Warn("migrate: mailbox not copied", "account", acct.Address, "mailbox", p.old.name, "err", err)
			e.prog.updateErr(acct.ID, acct.Address, EventError, err, func(a *AccountProgress) { a.FoldersDone++ })
			if rerr := e.st.RecordCopyProblem(ctx, p.local.ID, p.old.name, 0, me.err.Error()); rerr != nil {
				mu.Lock()
				errs = append(errs, rerr)
				mu.Unlock()
				return false
			}
			return true
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return false
	}

	// Connections for the workers after INBOX, dialed ahead where the old
	// server's cap has places (each holds one); each announced one
	// arrives on extra (nil when there was no place or it could not be
	// made: the copy goes on with fewer).
	extra := make(chan *imapclient.Client, max(e.opts.ConnsPerAccount, 1))
	announced := 0
	dial := func(n int) {
		for range n {
			announced++
			e.goSafe("connect "+acct.Address, func() {
				var c *imapclient.Client
				defer func() { extra <- c }() // sent even after a panic
				c = e.extraConn(ctx, lim, s, cred)
			})
		}
	}
	defer func() {
		n := announced
		e.goSafe("disconnect "+acct.Address, func() {
			for range n {
				closeExtra(lim, <-extra)
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
		p := &plan{old: &oldMailbox{name: "INBOX", local: "INBOX"}, local: inbox, later: later}
		var inboxOK bool
		done := make(chan struct{})
		e.goSafe("copy "+acct.Address, func() {
			defer close(done)
			inboxOK = report(p, recovered(e.log, "copy "+acct.Address+" INBOX", func() error {
				return e.copyMailboxRetry(ctx, acct, s, cred, &c, p, catchUp, nil)
			}))
		})
		lc := e.extraConn(ctx, lim, s, cred)
		if lc != nil {
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
		if lc == nil && inboxOK {
			// No second connection: list on the first, INBOX being done.
			if c == nil {
				c, err = e.connectRetry(ctx, s, cred)
			}
			if err == nil {
				err = recovered(e.log, "list "+acct.Address, func() (err error) {
					rest, err = e.planAccount(ctx, c, acct, byOld, "INBOX")
					return err
				})
			}
			if err == nil {
				dial(min(e.opts.ConnsPerAccount, len(rest)) - 1)
			}
		}
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
		for _, p := range plans {
			p.later = later
		}
		rest = plans
		first := len(plans) > 0 && plans[0].local.Name == "INBOX"
		if first {
			rest = plans[1:]
		}
		dial(min(e.opts.ConnsPerAccount, len(rest)) - 1) // they log in while INBOX is copied
		// INBOX first, alone, so that it is complete before anything else.
		if first && !report(plans[0], e.copyMailboxRetry(ctx, acct, s, cred, &c, plans[0], catchUp, nil)) {
			return errors.Join(errs...)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	for _, p := range rest {
		p.later = later
	}
	// The biggest mailboxes first, so that the connections finish together.
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].weight() > rest[j].weight() })
	queue := newWorkQueue(rest)
	// One worker per connection takes mailboxes from the queue; the first
	// error that is not a mailbox's own stops them all (report keeps every
	// error for the result; the group's error only cancels wctx). A worker
	// whose connection the old server turns away gives its mailbox back
	// and ends while others go on (workQueue).
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
		if w != 0 && own == nil {
			continue // no place or no connection: go on with fewer
		}
		queue.join()
		g.Go(func() (werr error) {
			// A panic outside a mailbox's copy is logged and ends this
			// worker alone.
			recovered(e.log, "copy "+acct.Address, func() error {
				yielded := false
				defer func() {
					if yielded {
						return // counted out, its place freed (dropped)
					}
					queue.leave()
					if w != 0 {
						closeClient(*conn)
						lim.release()
					}
				}()
				for {
					p := queue.take(wctx)
					if p == nil {
						return nil
					}
					var yield func() bool
					if w != 0 {
						yield = func() bool { return queue.giveBack(p) }
					}
					err := recovered(e.log, "copy "+acct.Address+" "+p.old.name, func() error {
						return e.copyMailboxRetry(wctx, acct, s, cred, conn, p, catchUp, yield)
					})
					if errors.Is(err, errYielded) {
						yielded = true
						e.dropped(ctx, lim, s, cred, err)
						return nil
					}
					queue.done()
					if !report(p, err) {
						werr = err
						return nil
					}
				}
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
// backoff) when the connection fails; each attempt resumes after the last
// committed UID. Only attempts that made no progress (committed no message)
// count against Options.Retries: a connection cut every few hundred MB
// slows a big mailbox down but never stops it. A full disk is not a
// connection problem: it ends the copy at once (ErrDiskFull). When the old
// server turns a new connection away and yield (if not nil) gives the
// mailbox back to another worker, it returns an error wrapping errYielded.
func (e *Engine) copyMailboxRetry(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials, conn **imapclient.Client, p *plan, catchUp bool, yield func() bool) error {
	e.prog.update(acct.ID, acct.Address, EventProgress, "", func(a *AccountProgress) { a.Folder = p.old.name })
	mark := e.copiedUpTo(ctx, p)
	isolations := 0
	for failed := 0; ; {
		var err error
		if *conn == nil {
			*conn, err = e.connect(ctx, s, cred)
			if err != nil && yield != nil && errorsIsTurnedAway(err) && yield() {
				return fmt.Errorf("migrate: %s: mailbox %q: %w: %w", acct.Address, p.old.name, errYielded, err)
			}
		}
		if err == nil {
			err = e.copyMailbox(ctx, acct, *conn, p, catchUp, e.limits(s))
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if store.IsDiskFull(err) {
			return fmt.Errorf("migrate: %s: mailbox %q: %w (%w)", acct.Address, p.old.name, ErrDiskFull, err)
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
			e.log.Info("migrate: a response of the old server could not be read, fetching its messages alone", "account", acct.Address, "mailbox", p.old.name, "err", err)
			continue
		}
		if now := e.copiedUpTo(ctx, p); now != mark {
			mark, failed = now, 0 // progress: the budget starts again
		} else {
			failed++
		}
		if failed > e.opts.Retries {
			return fmt.Errorf("migrate: %s: mailbox %q: giving up after %d attempts without progress: %w", acct.Address, p.old.name, failed, err)
		}
		e.log.Info("migrate: connection problem, retrying", "account", acct.Address, "mailbox", p.old.name, "attempts_without_progress", failed, "err", err)
		e.prog.updateErr(acct.ID, acct.Address, EventError, retryingError(p.old.name, err), nil)
		if err := e.backoff(ctx, max(failed-1, 0)); err != nil {
			return err
		}
	}
}

// copiedUpTo is the highest old UID of p committed so far (0 when unknown):
// an attempt that moved it made progress.
func (e *Engine) copiedUpTo(ctx context.Context, p *plan) uint32 {
	mb, err := e.st.MailboxByID(ctx, p.local.ID)
	if err != nil {
		return 0
	}
	return mb.MigratedUID
}

// copyMailbox copies the messages of one old mailbox above the last
// committed UID, streaming: pipelined UID FETCH chunks on this connection
// while the previous batch commits. The messages are fetched in the
// job's turn to stream at lim's old server (streams.go).
func (e *Engine) copyMailbox(ctx context.Context, acct *store.Account, c *imapclient.Client, p *plan, catchUp bool, lim *connLimit) error {
	logins := lim.logins
	if err := logins.wait(ctx); err != nil { // first logins being answered first
		return err
	}
	sel, err := c.Select(p.old.cmdName(), &imap.SelectOptions{ReadOnly: true}).Wait() // EXAMINE: no \Seen, no \Recent change
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
	adopt := false // the settled UIDVALIDITY, taken with the "done" below
	if sel.UIDValidity != local.UIDValidity {
		// Dovecot settles the UIDVALIDITY of a never-opened Maildir folder
		// only when it is first selected, so LIST-STATUS may have said
		// something else. An empty local copy can take the settled value.
		if local.MigratedUID != 0 {
			return &mailboxError{p.old.name, errUIDValidity}
		}
		// An empty old folder with no problems to try again (Dovecot's
		// never-opened special-use folders: five per account on a fresh
		// server) takes it in the one commit that marks it done.
		if adopt, err = e.emptyToAdopt(ctx, sel, p); err != nil {
			return err
		}
		if !adopt {
			if err := adoptErr(p.old.name, e.st.AdoptUIDValidity(ctx, local.ID, sel.UIDValidity, uint32(sel.UIDNext))); err != nil {
				return err
			}
		}
		e.log.Info("migrate: mailbox took the old server's settled UIDVALIDITY", "account", acct.Address, "mailbox", p.old.name)
	}
	state := store.MigRunning
	if catchUp || local.Migration == store.MigDone {
		// A mailbox already copied takes new old mail like local mail:
		// a UID below its UIDNEXT gets a fresh one.
		state = store.MigDone
	}
	if err := e.retryProblems(ctx, acct, c, p, state, logins); err != nil {
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
			u := uint32(m.UID)
			if u <= last { // "n:*" also returns the last message when n is above it
				continue
			}
			if n := len(uids); n > 0 && uids[n-1] == u {
				// A second response for one UID (a flag update in the
				// middle, or items split): still one message.
				sizes[n-1] = max(sizes[n-1], m.RFC822Size)
				continue
			}
			uids = append(uids, u)
			sizes = append(sizes, m.RFC822Size)
		}
	}
	final := last
	if sel.UIDNext > 0 {
		final = max(final, uint32(sel.UIDNext)-1)
	}
	if len(uids) > 0 {
		end, err := lim.streams.take(ctx, p.local.Name == "INBOX", logins.passes(jobTurn(ctx)))
		if err != nil {
			return err
		}
		err = e.fetchAndCommit(ctx, acct, c, p, state, uids, sizes, logins)
		end()
		if err != nil {
			return err
		}
		final = max(final, uids[len(uids)-1])
	}
	if adopt {
		return adoptErr(p.old.name, e.st.AdoptUIDValidityDone(ctx, p.local.ID, sel.UIDValidity, uint32(sel.UIDNext), store.MigDone, final))
	}
	if p.later != nil && sel.NumMessages == 0 && len(uids) == 0 {
		// Nothing to copy (an empty old folder): its mark goes with the
		// run's last commit (laterMarks), not a commit of its own.
		p.later.add(p.local.ID, final)
		return nil
	}
	if err := e.st.SetMailboxMigration(ctx, p.local.ID, store.MigDone, final); err != nil {
		return err
	}
	return nil
}

// emptyToAdopt reports whether a mailbox whose UIDVALIDITY the old server
// settled as it was opened may take it together with its "done": the old
// folder is empty and no message of it waits to be tried again
// (retryProblems then copies nothing into it).
func (e *Engine) emptyToAdopt(ctx context.Context, sel *imap.SelectData, p *plan) (bool, error) {
	if sel.NumMessages != 0 {
		return false, nil
	}
	if p.retried {
		return true, nil
	}
	probs, err := e.st.MailboxCopyProblems(ctx, p.local.ID)
	return err == nil && len(probs) == 0, err
}
