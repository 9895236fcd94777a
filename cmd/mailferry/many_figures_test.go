package main_test

import (
	"math"
	"testing"
	"time"
)

// The many-users benchmark's serve figures from the last login answered
// (BenchmarkManyUsers): ten accounts, the logins answered by 2 s, one of
// them done by then, the last at 10 s.
func TestManyRunFigures(t *testing.T) {
	s := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	r := manyRun{lead: s(2), finishes: []time.Duration{s(1), s(3), s(4), s(5), s(6), s(7), s(8), s(9), s(9.5), s(10)}}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: %.4f, want %.4f", what, got, want)
		}
	}
	near("fairness", r.fairness(), 0.7)                       // the 6th done (7 s) of 10 s
	near("from the last login", r.copyPhaseFairness(), 0.625) // (7-2)/(10-2)
	if k := r.doneInLead(); k != 1 {
		t.Errorf("done during the logins: %d, want 1", k)
	}
	// The 6th done is the 5th of the nine after the logins: 5 of 9 equal
	// shares of the 8 s after them, one given (the pass's copy, all but
	// done as the logins end), at the least.
	near("least", r.leastFairness(), (2+4.0/9*8)/10)
	// Half done during the logins: the figure as it is.
	r.lead = s(6.5)
	near("least, half done during the logins", r.leastFairness(), r.fairness())
}
