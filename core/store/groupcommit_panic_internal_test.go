package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitPanicIsItsCallers: a write whose fn panics inside a batch
// (run on the goroutine leading it, not its caller's) panics in its own
// caller, as it did when each write ran alone, so that only its session
// ends (the IMAP and POP3 front ends recover a session's panic); the
// writes beside it commit, and the writes after it still run. Before, the
// panic went up the leader's goroutine, which then never gave the batch's
// token back nor answered the batch: every grouped write of the server
// (STORE, APPEND, EXPUNGE, COPY) waited for ever, whatever its context.
//
// The panic may leave a statement's rows open (no defer closed them): the
// batch still commits the others.
func TestGroupCommitPanicIsItsCallers(t *testing.T) {
	sqliteOnly(t)
	for _, rowsOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("rows left open %v", rowsOpen), func(t *testing.T) {
			groupCommitPanic(t, rowsOpen)
		})
	}
}

func groupCommitPanic(t *testing.T, rowsOpen bool) {
	s, mb, uids := inboxStore(t, nil, 3)
	ctx := context.Background()
	sizes := batchSizes(s)
	release := holdWriter(t, s)
	defer release()
	errs := make([]error, 3)
	panics := make([]any, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			if i != 1 {
				_, errs[i] = s.StoreFlags(ctx, mb.ID, uids[i:i+1], FlagsAdd, []string{`\Flagged`})
				return
			}
			errs[i] = s.writeFlags(ctx, func(tx wtx, ch *changes) error {
				if _, err := tx.ExecContext(context.Background(), `UPDATE messages SET flags = 'Bad' WHERE mailbox_id = ? AND uid = ?`, mb.ID, uids[1]); err != nil {
					return err
				}
				if rowsOpen {
					rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ?`, mb.ID)
					if err != nil {
						return err
					}
					rows.Next()
				}
				panic("boom in a grouped write")
			})
		})
	}
	waitQueued(t, s, 3, true)
	release()
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(60 * time.Second):
		t.Fatalf("writes beside a panicking one never answered (panics %v)", panics)
	}
	if got := sizes(); len(got) == 0 || got[0] != 3 {
		t.Errorf("batches %v, want the three writes in the first", got)
	}
	for i := range 3 {
		switch {
		case i == 1 && !strings.Contains(fmt.Sprint(panics[i]), "boom in a grouped write"):
			t.Errorf("the panicking write's caller: panic %v, want its fn's", panics[i])
		case i != 1 && panics[i] != nil:
			t.Errorf("write %d beside a panicking one panicked: %v", i, panics[i])
		case i != 1 && errs[i] != nil:
			t.Errorf("write %d beside a panicking one: %v", i, errs[i])
		}
	}
	for i, want := range []string{`\Flagged`, "", `\Flagged`} {
		if got := flagsOf(t, s, mb.ID, uids[i]); got != want {
			t.Errorf("message %d: flags %q, want %q", i, got, want)
		}
	}
	// The writes after it run.
	done := make(chan error, 1)
	go func() {
		_, err := s.StoreFlags(ctx, mb.ID, uids[1:2], FlagsAdd, []string{`\Seen`})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a write after a panicking one never ran: the batches are wedged")
	}
}
