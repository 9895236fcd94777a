package imapfront_test

import (
	"strings"
	"testing"
	"time"
)

// TestLatencyGoal checks the goal line BenchmarkLatency10Clients prints
// under each table: a command slower on Mailferry than on Dovecot at the
// table's precision is named with both figures, one equal after rounding
// is not, and LOGIN counts only where the rounds log in.
func TestLatencyGoal(t *testing.T) {
	side := func(name string, p50 map[string]time.Duration) *latencySide {
		s := &latencySide{name: name, p50: map[string][]time.Duration{}}
		for _, c := range latencyCmds {
			d := p50[c]
			if d == 0 {
				d = 5 * time.Millisecond
			}
			// Three runs: the median is d whatever the others.
			s.p50[c] = []time.Duration{d + time.Second, d, 0}
		}
		return s
	}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	mf := side("Mailferry", map[string]time.Duration{"FETCH": ms(2.4), "STORE": ms(2.04), "LOGIN": ms(9)})
	dv := side("Dovecot", map[string]time.Duration{"FETCH": ms(2.0), "STORE": ms(2.0), "LOGIN": ms(1)})
	before := side("before", map[string]time.Duration{"FETCH": ms(1)})

	got := latencyGoal([]*latencySide{mf, dv, before}, true)
	if !strings.Contains(got, "not met: LOGIN 9.0 > 1.0, FETCH 2.4 > 2.0") || strings.Contains(got, "STORE") {
		t.Errorf("relogin: %q", got)
	}
	got = latencyGoal([]*latencySide{mf, dv, before}, false)
	if !strings.HasSuffix(got, "not met: FETCH 2.4 > 2.0") {
		t.Errorf("one login: %q", got)
	}
	mf.p50["FETCH"] = []time.Duration{ms(1.96)}
	if got = latencyGoal([]*latencySide{mf, dv}, false); !strings.HasSuffix(got, ": holds") {
		t.Errorf("equal after rounding: %q", got)
	}
}
