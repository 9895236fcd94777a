package migrate

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/store"
)

// One message the old server cannot serve never stops an account:
//
//   - a FETCH answered NO (or BAD) for a chunk is answered message by
//     message; a message still refused alone is recorded (fetchOne);
//   - a response the IMAP parser refuses (imapclient.ErrMalformedResponse)
//     ends the connection: the connection is replaced at once (not counted
//     as an attempt), and the messages of that chunk not yet handled are
//     fetched alone; one whose response is refused alone twice (retried once
//     alone) is recorded and passed;
//   - a folder the old server will not open (EXAMINE answered NO, or its
//     UIDVALIDITY changed) is recorded as a problem of old UID 0 and the
//     other folders go on; a later run tries it again and, copied, clears it;
//   - a recorded message (store.CopyProblem: mailbox, old UID, the server's
//     words) is tried again by every later run of its mailbox (catch-up,
//     resume, a new bulk run); copied at last, or gone from the old server,
//     its record is cleared.
//
// The mailbox's last committed UID passes a recorded message, so the rest of
// the mailbox goes on and a resume does not stop at it again.

// isolation is what a run learnt of one mailbox's messages that the parser
// refused.
type isolation struct {
	alone    map[uint32]bool   // fetched alone from now on
	failures map[uint32]int    // responses refused while alone
	said     map[uint32]string // the last refusal, in the client's words
	rec      map[uint32]bool   // recorded as a problem this run
}

func (p *plan) isoState() *isolation {
	if p.iso == nil {
		p.iso = &isolation{alone: map[uint32]bool{}, failures: map[uint32]int{}, said: map[uint32]string{}, rec: map[uint32]bool{}}
	}
	return p.iso
}

// isolated: uid is fetched alone.
func (p *plan) isolated(uid uint32) bool { return p.iso != nil && p.iso.alone[uid] }

// given: uid's response was refused alone twice; it is recorded, not fetched.
func (p *plan) given(uid uint32) bool { return p.iso != nil && p.iso.failures[uid] >= 2 }

// words says why uid was given up.
func (p *plan) words(uid uint32) string {
	if p.iso == nil || p.iso.said[uid] == "" {
		return "the old server's response could not be read"
	}
	return "the old server's response could not be read: " + p.iso.said[uid]
}

func (p *plan) recorded(uid uint32)             { p.isoState().rec[uid] = true }
func (p *plan) recordedThisRun(uid uint32) bool { return p.iso != nil && p.iso.rec[uid] }

// maxIsolations bounds the new connections one mailbox's copy makes for
// refused responses: each chunk of n messages isolates once and each of its
// messages fails alone at most twice, and a few chunks may be bad.
func maxIsolations(n int) int { return 4 * (2*max(n, 1) + 1) }

// isolateError: the parser refused a response; the connection is gone and
// the messages in question are fetched alone on a new one.
type isolateError struct{ err error }

func (e *isolateError) Error() string { return e.err.Error() }
func (e *isolateError) Unwrap() error { return e.err }

// malformed turns the error of a chunk (its UIDs in rest) into an
// isolateError when the parser refused the server's response: they are
// fetched alone from now on (those committed already are not fetched
// again), and a UID that was alone already counts one failure. Any other
// error is returned as it is.
func (p *plan) malformed(rest []uint32, err error) error {
	if !errors.Is(err, imapclient.ErrMalformedResponse) || len(rest) == 0 {
		return err
	}
	iso := p.isoState()
	if len(rest) == 1 && iso.alone[rest[0]] {
		iso.failures[rest[0]]++
		iso.said[rest[0]] = err.Error()
	} else {
		for _, u := range rest {
			iso.alone[u] = true
		}
	}
	return &isolateError{err}
}

// retryProblems tries again, once per run, the messages of p's mailbox
// recorded as problems by earlier runs (on c, with the mailbox selected);
// those copied now, or no longer on the old server, are cleared.
func (e *Engine) retryProblems(ctx context.Context, acct *store.Account, c *imapclient.Client, p *plan, state string, logins *loginGate) error {
	if p.retried {
		return nil
	}
	probs, err := e.st.MailboxCopyProblems(ctx, p.local.ID)
	if err != nil {
		return err
	}
	var uids []uint32
	for _, pr := range probs {
		if pr.OldUID != 0 && !p.recordedThisRun(pr.OldUID) { // 0: the folder (copy.go)
			uids = append(uids, pr.OldUID)
		}
	}
	if len(uids) > 0 {
		e.log.Info("migrate: trying again messages the old server could not serve", "account", acct.Address, "mailbox", p.old.name, "messages", len(uids))
		if err := e.fetchAndCommit(ctx, acct, c, p, state, uids, make([]int64, len(uids)), logins); err != nil {
			return err
		}
		for _, u := range uids {
			if !p.recordedThisRun(u) {
				if err := e.st.ClearCopyProblem(ctx, p.local.ID, u); err != nil {
					return err
				}
			}
		}
	}
	p.retried = true
	return nil
}

// clearFolderProblem forgets that the old server would not open p's
// folder (a problem of old UID 0), now that it was copied.
func (e *Engine) clearFolderProblem(ctx context.Context, acct *store.Account, p *plan) {
	probs, err := e.st.MailboxCopyProblems(ctx, p.local.ID)
	if err != nil || len(probs) == 0 || probs[0].OldUID != 0 {
		return
	}
	if err := e.st.ClearCopyProblem(ctx, p.local.ID, 0); err != nil {
		e.log.Warn("migrate: cannot clear a folder's problem", "account", acct.Address, "mailbox", p.old.name, "err", err)
	}
}
