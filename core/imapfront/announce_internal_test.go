package imapfront

import (
	"slices"
	"testing"
)

// TestAnnounceAllocations: the keywords a SELECT announces are read once
// per distinct flag list of the mailbox's state, not once per run of
// messages sharing one: 2,000 messages whose keywords are spread over
// them (as 10 clients each STOREing a keyword of its own leave them) cost
// a handful of allocations, not thousands, and the keywords come in UID
// order of first use.
func TestAnnounceAllocations(t *testing.T) {
	lists := [][]string{{`\Seen`}, {`$Bench1`, `\Seen`}, {`$Bench2`}, {`\Seen`}, {`\Seen`, `$Bench3`}, {`\Deleted`, `$Bench1`}}
	var fs flagSets
	st := &mailboxState{}
	for i := 0; i < 2000; i++ {
		st.msgs = append(st.msgs, msgState{uid: uint32(i + 1), modseq: 1, flags: fs.of(lists[(i*7)%len(lists)])})
	}
	k := newKeywordSet()
	st.announce(k)
	want := append(slices.Clone(systemFlags), "$Bench1", "$Bench2", "$Bench3")
	if !slices.Equal(k.list, want) {
		t.Fatalf("announced %v, want %v", k.list, want)
	}
	allocs := testing.AllocsPerRun(20, func() {
		st.announce(newKeywordSet())
	})
	if allocs > 40 {
		t.Fatalf("announcing the keywords of 2,000 messages took %.0f allocations, want at most 40", allocs)
	}
	t.Logf("%.0f allocations", allocs)
}
