package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/store"
)

// plan is one mailbox to copy.
type plan struct {
	old   *oldMailbox
	local *store.Mailbox
	// iso is what this run learnt of messages the old server cannot
	// serve (problem.go); nil until then.
	iso *isolation
	// retried: the mailbox's recorded problems were tried again this run.
	retried bool
	// later, if not nil, takes the "copied" mark of a mailbox that needed
	// nothing (an empty old folder) for the run's last commit, rather
	// than a commit of its own now.
	later *laterMarks
}

// laterMarks are the "copied" marks of a run's mailboxes that needed
// nothing copied: Dovecot makes five empty special-use folders per account,
// and a commit each was an fsync each on the store's one writer. They are
// written with the run's end (store.EndCopy); a run that stops before
// drops them, and its next run opens those folders again, which copies
// nothing twice (nothing was copied).
type laterMarks struct {
	mu    sync.Mutex
	marks []store.MailboxDone
}

func (l *laterMarks) add(id int64, uid uint32) {
	l.mu.Lock()
	l.marks = append(l.marks, store.MailboxDone{ID: id, UID: uid})
	l.mu.Unlock()
}

func (l *laterMarks) all() []store.MailboxDone {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.marks)
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
	problems, err := e.st.CopyProblems(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	withProblems := map[int64]bool{}
	for _, pr := range problems {
		withProblems[pr.MailboxID] = true
	}
	// INBOX is made at the first login, before its subscription on the
	// old server is known (and its copy may start, even finish, and be
	// stopped, before this listing): until the account's first copy is
	// done, INBOX takes it, in the commit that makes the other folders.
	var subs []store.Subscription
	if lm := byOld["INBOX"]; lm != nil && acct.Migration != store.MigDone {
		for _, o := range olds {
			if o.name == "INBOX" && lm.Subscribed != o.subscribed {
				subs = append(subs, store.Subscription{Name: lm.Name, Subscribed: o.subscribed})
			}
		}
	}
	made, err := e.createLocals(ctx, acct, olds, byOld, subs)
	if err != nil {
		return nil, err
	}
	var plans []*plan
	var msgTotal, msgDone, byteTotal, byteDone int64
	foldersDone := 0
	for _, o := range olds {
		lm := byOld[o.name]
		if lm == nil {
			lm = made[o.name]
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
				o.status.uidNext-1 <= lm.MigratedUID && !withProblems[lm.ID] {
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

// createLocals makes the local mailboxes of the old ones that have none
// in byOld, all in one commit with the subscriptions subs (one fsync, not
// one per folder: a first copy makes every folder of the account but
// INBOX so); should a name be taken locally, one at a time as createLocal
// does, and subs after. It returns them by old name.
func (e *Engine) createLocals(ctx context.Context, acct *store.Account, olds []*oldMailbox, byOld map[string]*store.Mailbox, subs []store.Subscription) (map[string]*store.Mailbox, error) {
	var missing []*oldMailbox
	var boxes []store.NewMailbox
	for _, o := range olds {
		if byOld[o.name] == nil {
			missing = append(missing, o)
			boxes = append(boxes, store.NewMailbox{Name: o.local, Opts: localOptions(o)})
		}
	}
	made := make(map[string]*store.Mailbox, len(missing))
	if len(missing) == 0 && len(subs) == 0 {
		return made, nil
	}
	ms, err := e.st.CreateMailboxes(ctx, acct.ID, boxes, subs...)
	if err == nil {
		for i, m := range ms {
			made[missing[i].name] = m
		}
		return made, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("migrate: %s: create mailboxes: %w", acct.Address, err)
	}
	// Nothing was made; a name is taken (a mailbox made locally): each on
	// its own, keeping both.
	for _, o := range missing {
		m, err := e.createLocal(ctx, acct, o)
		if err != nil {
			return nil, err
		}
		made[o.name] = m
	}
	for _, sub := range subs {
		if err := e.st.SetSubscribed(ctx, acct.ID, sub.Name, sub.Subscribed); err != nil {
			return nil, err
		}
	}
	return made, nil
}

// localOptions are the local mailbox's options for an old one.
func localOptions(o *oldMailbox) *store.MailboxOptions {
	opts := &store.MailboxOptions{SpecialUse: o.specialUse, Subscribed: o.subscribed, Migration: store.MigPending, OldName: o.name}
	if o.noselect {
		opts.Migration = store.MigDone
	} else if o.status != nil {
		opts.UIDValidity, opts.UIDNext = o.status.uidValidity, o.status.uidNext
	}
	return opts
}

// createLocal makes the local mailbox for an old one.
func (e *Engine) createLocal(ctx context.Context, acct *store.Account, o *oldMailbox) (*store.Mailbox, error) {
	opts := localOptions(o)
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
