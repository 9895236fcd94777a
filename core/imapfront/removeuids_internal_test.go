package imapfront

import (
	"errors"
	"math/rand"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// removeUIDsNaive is what view.removeUIDs must do, written plainly: the
// sequence numbers of the dropped UIDs, highest first, and the UIDs left.
func removeUIDsNaive(view []imap.UID, uids []uint32) (seqs []uint32, left []imap.UID) {
	drop := map[imap.UID]bool{}
	for _, u := range uids {
		drop[imap.UID(u)] = true
	}
	for i := len(view) - 1; i >= 0; i-- {
		if drop[view[i]] {
			seqs = append(seqs, uint32(i+1))
		}
	}
	for _, u := range view {
		if !drop[u] {
			left = append(left, u)
		}
	}
	return seqs, left
}

// TestRemoveUIDs: the EXPUNGE responses (highest sequence number first)
// and the view left, against the plain reference, for random views and
// random UIDs to drop (some not in the view, some twice, unordered), and
// the recent UIDs dropped with them.
func TestRemoveUIDs(t *testing.T) {
	rnd := rand.New(rand.NewSource(15))
	for round := 0; round < 2000; round++ {
		uidsView, drop, _ := randomView(rnd)
		wantSeqs, wantLeft := removeUIDsNaive(uidsView, drop)
		v := &view{uids: slices.Clone(uidsView), recent: map[imap.UID]bool{}}
		for _, x := range uidsView {
			if rnd.Intn(2) == 0 {
				v.recent[x] = true
			}
		}
		var seqs []uint32
		if err := v.removeUIDs(drop, func(seq uint32) error { seqs = append(seqs, seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs, wantSeqs) || !slices.Equal(v.uids, wantLeft) {
			t.Fatalf("view %v drop %v: EXPUNGE %v left %v, want %v and %v", uidsView, drop, seqs, v.uids, wantSeqs, wantLeft)
		}
		for x := range v.recent {
			if !slices.Contains(wantLeft, x) {
				t.Fatalf("view %v drop %v: %d still recent", uidsView, drop, x)
			}
		}
	}
	// A failed write leaves the view as it was: the client was not told.
	v := &view{uids: []imap.UID{1, 2, 3}}
	boom := errors.New("boom")
	if err := v.removeUIDs([]uint32{2}, func(uint32) error { return boom }); err != boom || !slices.Equal(v.uids, []imap.UID{1, 2, 3}) {
		t.Fatalf("failed write: %v, view %v", err, v.uids)
	}
}

// BenchmarkRemoveUIDs is a poll's drop of one expunged message from a
// 2,000-message view.
func BenchmarkRemoveUIDs(b *testing.B) {
	base := make([]imap.UID, 2000)
	for i := range base {
		base[i] = imap.UID(i + 1)
	}
	v := &view{uids: make([]imap.UID, 0, len(base)), recent: map[imap.UID]bool{}}
	write := func(uint32) error { return nil }
	for i := 0; b.Loop(); i++ {
		v.uids = append(v.uids[:0], base...)
		v.removeUIDs([]uint32{uint32(1 + i*7%2000)}, write)
	}
}

// TestGoneUIDs: the view's UIDs expunged and not present again,
// ascending, each once, as the pass over the view with a map gave them.
func TestGoneUIDs(t *testing.T) {
	rnd := rand.New(rand.NewSource(16))
	for round := 0; round < 2000; round++ {
		uidsView, expunged, u := randomView(rnd)
		present := map[imap.UID]bool{}
		for n := rnd.Intn(4); n > 0; n-- {
			present[imap.UID(1+rnd.Intn(int(u)+3))] = true
		}
		ex := map[imap.UID]bool{}
		for _, x := range expunged {
			ex[imap.UID(x)] = true
		}
		var want []uint32
		for _, x := range uidsView {
			if ex[x] && !present[x] {
				want = append(want, uint32(x))
			}
		}
		if got := goneUIDs(uidsView, expunged, present); !slices.Equal(got, want) {
			t.Fatalf("view %v expunged %v present %v: %v, want %v", uidsView, expunged, present, got, want)
		}
	}
}

// randomView returns an ascending view of up to 40 UIDs with gaps, up to
// 12 UIDs to drop from it (unordered, some twice, some not in the view),
// and the view's highest UID.
func randomView(rnd *rand.Rand) (view []imap.UID, drop []uint32, top imap.UID) {
	for n := rnd.Intn(40); n > 0; n-- {
		top += imap.UID(1 + rnd.Intn(3))
		view = append(view, top)
	}
	for n := rnd.Intn(12); n > 0; n-- {
		drop = append(drop, uint32(1+rnd.Intn(int(top)+3)))
	}
	return view, drop, top
}
