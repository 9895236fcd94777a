package imapfront

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestMergeMembers (review1): mergeMembers gives the set (members - drop)
// + (add - drop), ascending, and says what entered and what left, a few
// changes (one at a time) or many (one pass).
func TestMergeMembers(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	set := func(n int) []imap.UID {
		var out []imap.UID
		for u := imap.UID(1); u <= 60; u++ {
			if rnd.Intn(60) < n {
				out = append(out, u)
			}
		}
		return out
	}
	for range 2000 {
		members, add, drop := set(rnd.Intn(60)), set(rnd.Intn(20)), set(rnd.Intn(20))
		// As sets: (members - drop) + (add - drop), and what differs.
		in := map[imap.UID]bool{}
		for _, u := range members {
			in[u] = true
		}
		out := map[imap.UID]bool{}
		for u := range in {
			out[u] = true
		}
		for _, u := range add {
			out[u] = true
		}
		for _, u := range drop {
			delete(out, u)
		}
		var want, wantAdded, wantRemoved []imap.UID
		for u := imap.UID(1); u <= 60; u++ {
			switch {
			case out[u]:
				want = append(want, u)
				if !in[u] {
					wantAdded = append(wantAdded, u)
				}
			case in[u]:
				wantRemoved = append(wantRemoved, u)
			}
		}
		orig := slices.Clone(members)
		got, added, removed := mergeMembers(members, add, drop)
		if !slices.Equal(got, want) || !slices.Equal(added, wantAdded) || !slices.Equal(removed, wantRemoved) {
			t.Fatalf("mergeMembers(%v, %v, %v) = %v +%v -%v, want %v +%v -%v", orig, add, drop, got, added, removed, want, wantAdded, wantRemoved)
		}
	}
}
