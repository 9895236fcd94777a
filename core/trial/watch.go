package trial

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// ErrNotMigrated is returned by Watch when the test account exists on
// Mailferry as a native account (one not made by migration): its mail
// will never come from the old server, so the test cannot pass.
var ErrNotMigrated = errors.New("the account exists on Mailferry but was not made by migration")

// MigrationError is returned by Watch when the engine reports the test
// account's migration failed.
type MigrationError struct {
	Address string
	// Reason is what the engine recorded.
	Reason string
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("the migration of %s failed: %s", e.Address, e.Reason)
}

// Trial runs the test migration against one Mailferry.
type Trial struct {
	st    *store.Store
	front func() Front
}

// New returns a Trial that reads the engine's state of an account from st
// and reaches Mailferry's IMAP front end as front says (asked on each use:
// the front end may start after New).
func New(st *store.Store, front func() Front) *Trial {
	return &Trial{st: st, front: front}
}

// Progress is the progress of a test account's migration as a mail client
// sees it on Mailferry's IMAP, against the old server's counts.
type Progress struct {
	// State is the account's migration state (store.MigPending, ...), or ""
	// before the account exists.
	State         string
	FoldersTotal  int // folders on the old server the engine copies
	FoldersSeen   int // of those, how many Mailferry's IMAP lists
	FoldersDone   int // of those, how many have all their messages
	MessagesTotal int64
	Messages      int64
	// Folder is a folder still being copied, if any.
	Folder string
	// Folders are the old account's folders with how many of their
	// messages Mailferry's IMAP shows.
	Folders []FolderProgress
	// Error is the migration's error, if it failed.
	Error   string
	Elapsed time.Duration
}

// Done reports whether every folder has all its messages and the engine
// reports the account done.
func (p Progress) Done() bool {
	return p.State == store.MigDone && p.FoldersDone == p.FoldersTotal
}

// String is the progress in plain words.
func (p Progress) String() string {
	if p.State == "" {
		return "Logging in to Mailferry…"
	}
	s := fmt.Sprintf("Folders %d of %d, messages %d of %d", p.FoldersDone, p.FoldersTotal, p.Messages, p.MessagesTotal)
	if p.Folder != "" && !p.Done() {
		s += " — copying " + p.Folder
	}
	if p.Elapsed > time.Second && p.Messages > 0 {
		s += fmt.Sprintf(" (%.0f messages/s)", float64(p.Messages)/p.Elapsed.Seconds())
	}
	return s
}

// FolderProgress is one folder of a Progress.
type FolderProgress struct {
	Name string
	// Seen reports whether Mailferry's IMAP lists the folder yet.
	Seen            bool
	Messages, Total int64
}

// Watch logs in to Mailferry's IMAP front end as address, as a mail client
// would: for a migrating domain this first login checks the password at
// the old server, creates the account and starts copying. It then watches,
// through the same IMAP session, until every folder the engine copies from
// the old account has all its messages on Mailferry and the engine reports
// the account done, calling progress (if not nil) about three times a
// second. The domain's migration must be on.
func (t *Trial) Watch(ctx context.Context, s oldserver.Settings, address, password string, progress func(Progress)) (Progress, error) {
	var p Progress
	report := func() {
		if progress != nil {
			progress(p)
		}
	}
	report()
	start := time.Now()
	old, err := oldFolders(ctx, s, address, password)
	if err != nil {
		return p, fmt.Errorf("reading the folders on the old server: %w", err)
	}
	p.FoldersTotal = len(old)
	for _, f := range old {
		p.MessagesTotal += f.Messages
	}
	cl, done, err := t.front().dial(ctx, address, password)
	if err != nil {
		return p, err
	}
	defer done()
	for {
		p.Elapsed = time.Since(start)
		acct, err := t.st.Account(ctx, address)
		if err != nil {
			return p, fmt.Errorf("account %s: %w", address, err)
		}
		if acct.Migration == "" {
			return p, fmt.Errorf("%s: %w", address, ErrNotMigrated)
		}
		p.State, p.Error = acct.Migration, acct.MigrationError
		have, err := frontFolders(cl)
		if err != nil {
			return p, ctxErr(ctx, err)
		}
		p.count(old, have)
		report()
		if p.State == store.MigFailed {
			return p, &MigrationError{Address: address, Reason: p.Error}
		}
		if p.Done() {
			_ = cl.Logout().Wait()
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// count sets p's folder and message counts from the old folders and what
// Mailferry's IMAP lists (have).
func (p *Progress) count(old []migrate.Folder, have map[string]int64) {
	p.FoldersSeen, p.FoldersDone, p.Messages, p.Folder = 0, 0, 0, ""
	p.Folders = make([]FolderProgress, 0, len(old))
	for _, f := range old {
		n, ok := have[f.Name]
		n = min(n, f.Messages)
		p.Folders = append(p.Folders, FolderProgress{Name: f.Name, Seen: ok, Messages: n, Total: f.Messages})
		if ok {
			p.FoldersSeen++
		}
		p.Messages += n
		if ok && n >= f.Messages {
			p.FoldersDone++
		} else if p.Folder == "" {
			p.Folder = f.Name
		}
	}
}
