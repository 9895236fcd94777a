package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOneRowReadsWaitForReaderUntilCtxEnds: SELECT's reads of one row
// (Mailbox, MailboxByID, RecentFrom) and FETCH's and SEARCH's reads of a
// range of messages (EachMessageLocated, EachMessage) that wait for a
// reader connection, all of them busy, end when their context does (the
// client went away), as Delta's does (TestReadWaitsForReaderUntilCtxEnds).
// Before, they ran with readCtx's context, which never ends, and waited
// for a reader until one freed.
func TestOneRowReadsWaitForReaderUntilCtxEnds(t *testing.T) {
	sqliteOnly(t)
	s, mb, uids := inboxStore(t, &Options{ChangePoll: -1, Readers: 2}, 3)
	bg := context.Background()
	each := func(*Message) error { return nil }
	reads := map[string]func(context.Context) error{
		"Mailbox": func(ctx context.Context) error {
			_, err := s.Mailbox(ctx, mb.AccountID, "INBOX")
			return err
		},
		"MailboxByID": func(ctx context.Context) error {
			_, err := s.MailboxByID(ctx, mb.ID)
			return err
		},
		"RecentFrom": func(ctx context.Context) error {
			_, err := s.RecentFrom(ctx, mb.ID)
			return err
		},
		"EachMessage": func(ctx context.Context) error {
			return s.EachMessage(ctx, mb.ID, uids[0], uids[2], true, each)
		},
		"EachMessageLocated": func(ctx context.Context) error {
			return s.EachMessageLocated(ctx, mb.ID, uids[0], uids[2], true, each)
		},
	}
	for name, read := range reads {
		if err := read(bg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var held []*readTx
	for range 2 {
		rt, err := s.beginRead(bg)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, rt)
	}
	release := time.AfterFunc(5*time.Second, func() {
		for _, rt := range held {
			rt.end()
		}
	})
	defer func() {
		if release.Stop() {
			for _, rt := range held {
				rt.end()
			}
		}
	}()
	for name, read := range reads {
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		start := time.Now()
		err := read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with every reader busy and a context that ends after 100 ms: %v after %v; want context.DeadlineExceeded before the readers free (5 s)", name, err, time.Since(start).Round(time.Millisecond))
		}
	}
}
