package imapfront

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestMergeMembers (review1): mergeMembers gives what inserting add and
// deleting drop one UID at a time gives (the way updatesChanged and
// updatesExpunged did it), and says what entered and what left.
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
		want := slices.Clone(members)
		var wantAdded, wantRemoved []imap.UID
		for _, u := range add {
			if i, ok := slices.BinarySearch(want, u); !ok && !slices.Contains(drop, u) {
				want = slices.Insert(want, i, u)
				wantAdded = append(wantAdded, u)
			}
		}
		for _, u := range drop {
			if i, ok := slices.BinarySearch(want, u); ok {
				want = slices.Delete(want, i, i+1)
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
