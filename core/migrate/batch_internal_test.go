package migrate

import (
	"slices"
	"testing"
	"time"
)

// Batches keep the configured bounds for a mailbox's first batchGrowEvery
// batches (a small copy is unchanged, the first messages show soon), then
// grow by one step per batchGrowEvery batches' worth, up to batchGrowMax.
func TestBatchScale(t *testing.T) {
	for _, c := range []struct{ sent, per, want int }{
		{0, 200, 1}, {1999, 200, 1}, {2000, 200, 2}, {3999, 200, 2}, {4000, 200, 3},
		{6000, 200, 4}, {1_000_000, 200, batchGrowMax},
		{19, 2, 1}, {20, 2, 2}, {60, 2, 4},
		{5, 0, 1}, // no bound given: never a division by zero
	} {
		if got := batchScale(c.sent, c.per); got != c.want {
			t.Errorf("batchScale(%d, %d) = %d, want %d", c.sent, c.per, got, c.want)
		}
	}
}

// A committer that fell behind takes the batches queued behind the one it
// got into the same transaction (one fsync of the log and of the packs for
// them all), in their order, without waiting for more; the bounded queue
// bounds what it merges.
func TestMergeQueued(t *testing.T) {
	msgs := func(uids ...uint32) []*pending {
		var out []*pending
		for _, u := range uids {
			out = append(out, &pending{uid: u})
		}
		return out
	}
	uidsOf := func(b *batch) []uint32 {
		var out []uint32
		for _, m := range b.msgs {
			out = append(out, m.uid)
		}
		return out
	}
	q := make(chan *batch, 4)
	first := &batch{msgs: msgs(1, 2), bytes: 20, last: 2}
	q <- &batch{msgs: msgs(3), bytes: 10, last: 3}
	q <- &batch{last: 5} // a mark alone (UIDs 4 and 5 skipped)
	q <- &batch{msgs: msgs(6, 7), bytes: 30, last: 7}
	b := mergeQueued(first, q)
	if got := uidsOf(b); !slices.Equal(got, []uint32{1, 2, 3, 6, 7}) {
		t.Errorf("merged UIDs %v, want 1 2 3 6 7 in order", got)
	}
	if b.bytes != 60 || b.last != 7 {
		t.Errorf("merged bytes %d, last %d; want 60, 7", b.bytes, b.last)
	}
	if len(q) != 0 {
		t.Errorf("%d batches left queued", len(q))
	}
	// Nothing queued: the batch as it was, at once (no wait for more).
	alone := &batch{msgs: msgs(8), bytes: 5, last: 8}
	done := make(chan *batch)
	go func() { done <- mergeQueued(alone, q) }()
	select {
	case b := <-done:
		if got := uidsOf(b); !slices.Equal(got, []uint32{8}) || b.last != 8 {
			t.Errorf("alone: UIDs %v, last %d", got, b.last)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("mergeQueued waited for a batch")
	}
	// A closed queue (the reader is done): what was queued, then stop.
	q <- &batch{msgs: msgs(9), bytes: 1, last: 9}
	close(q)
	if b := mergeQueued(&batch{last: 8}, q); !slices.Equal(uidsOf(b), []uint32{9}) || b.last != 9 {
		t.Errorf("closed: UIDs %v, last %d", uidsOf(b), b.last)
	}
}

// The committer, behind (its commit of the first batch waits, as for an
// fsync, while the reader queues four more), commits those four in one
// transaction, not one each; in order, every message once.
func TestCommitterMergesWhenBehind(t *testing.T) {
	commits := make(chan *batch, 4)
	var got [][]uint32
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		commitBatches(commits, func(b *batch) {
			var uids []uint32
			for _, m := range b.msgs {
				uids = append(uids, m.uid)
			}
			got = append(got, uids)
			if len(got) == 1 {
				close(started)
				<-release // the first commit waits for the disk
			}
		})
	}()
	commits <- &batch{msgs: []*pending{{uid: 1}}, last: 1}
	<-started
	for u := uint32(2); u <= 5; u++ {
		commits <- &batch{msgs: []*pending{{uid: u}}, last: u}
	}
	close(release)
	close(commits)
	<-done
	if len(got) != 2 || !slices.Equal(got[0], []uint32{1}) || !slices.Equal(got[1], []uint32{2, 3, 4, 5}) {
		t.Fatalf("commits %v, want [1] then [2 3 4 5] in one", got)
	}
}
