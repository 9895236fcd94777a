package store_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"mailferry/core/store"
)

// TestTwoStoresConcurrentAppends: two Stores on one database (two nodes,
// or serve and migrate) append to one mailbox at once, from several
// goroutines each. Every append gets its own UID and MODSEQ, each
// writer's UIDs increase, a higher UID has a higher MODSEQ, and UIDNEXT
// and HIGHESTMODSEQ end above them all: the writers were serialized
// across Stores, not only within one.
func TestTwoStoresConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	_, inbox := inboxOf(t, a, "alice@example.test")
	const writers, each = 4, 15
	type got struct {
		uid    uint32
		modseq uint64
	}
	results := make([][]got, 2*writers)
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := 0; w < 2*writers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m, err := s.AppendMessage(ctx, inbox, &store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d/%d\r\n\r\nbody\r\n", w, i))})
				if err != nil {
					errs <- fmt.Errorf("writer %d, append %d: %w", w, i, err)
					return
				}
				results[w] = append(results[w], got{m.UID, m.ModSeq})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	uids := map[uint32]int{}
	modseqs := map[uint64]bool{}
	var all []got
	for w, rs := range results {
		for i, r := range rs {
			if prev, dup := uids[r.uid]; dup {
				t.Fatalf("UID %d given to writers %d and %d", r.uid, prev, w)
			}
			uids[r.uid] = w
			if modseqs[r.modseq] {
				t.Fatalf("MODSEQ %d given twice", r.modseq)
			}
			modseqs[r.modseq] = true
			if i > 0 && r.uid <= rs[i-1].uid {
				t.Fatalf("writer %d: UID %d after %d", w, r.uid, rs[i-1].uid)
			}
			all = append(all, r)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].uid < all[j].uid })
	for i := 1; i < len(all); i++ {
		if all[i].modseq <= all[i-1].modseq {
			t.Fatalf("UID %d has MODSEQ %d, not above UID %d's %d", all[i].uid, all[i].modseq, all[i-1].uid, all[i-1].modseq)
		}
	}
	for _, s := range []*store.Store{a, b} {
		msgs, err := s.Messages(ctx, inbox)
		if err != nil || len(msgs) != 2*writers*each {
			t.Fatalf("%d messages (%v), want %d", len(msgs), err, 2*writers*each)
		}
		mb, err := s.MailboxByID(ctx, inbox)
		if err != nil {
			t.Fatal(err)
		}
		last := all[len(all)-1]
		if mb.UIDNext != last.uid+1 || mb.HighestModSeq < last.modseq {
			t.Fatalf("UIDNEXT %d, HIGHESTMODSEQ %d after UID %d MODSEQ %d", mb.UIDNext, mb.HighestModSeq, last.uid, last.modseq)
		}
	}
}

// TestEngineSaysWhich: a Store names its engine and where its metadata
// is, never with the database password.
func TestEngineSaysWhich(t *testing.T) {
	s, path := open(t)
	if s.Engine() != store.EngineUnderTest() {
		t.Fatalf("Engine() = %q on the %s run", s.Engine(), store.EngineUnderTest())
	}
	switch s.Engine() {
	case store.EngineSQLite:
		if s.Database() != path {
			t.Fatalf("Database() = %q, want %q", s.Database(), path)
		}
	case store.EnginePostgres:
		if !strings.HasPrefix(s.Database(), "postgres://mailferry:xxxxx@127.0.0.1:") {
			t.Fatalf("Database() = %q, want the URL with its password hidden", s.Database())
		}
	}
}
