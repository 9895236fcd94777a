package imapfront_test

import (
	"slices"
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
	if strings.Contains(got, "unequal") {
		t.Errorf("no loads, yet unequal: %q", got)
	}
	mf.roundsPerSec, dv.roundsPerSec = []float64{674}, []float64{68}
	if got = latencyGoal([]*latencySide{mf, dv}, false); !strings.HasSuffix(got, "not met: FETCH 2.4 > 2.0 (at unequal loads: Mailferry 674, Dovecot 68 rounds/s; the paced tables compare at the same load)") {
		t.Errorf("unequal loads: %q", got)
	}
	dv.roundsPerSec = []float64{640}
	if got = latencyGoal([]*latencySide{mf, dv}, false); strings.Contains(got, "unequal") {
		t.Errorf("loads within 10%%: %q", got)
	}
	mf.p50["FETCH"] = []time.Duration{ms(1.96)}
	if got = latencyGoal([]*latencySide{mf, dv}, false); !strings.HasSuffix(got, ": holds") {
		t.Errorf("equal after rounding: %q", got)
	}
}

// TestLatencyVerdict checks the verdict line under each table and the
// verdict table at the end: per command the server with the lower p50 at
// the table's precision, the load each took, and a paced table where a
// server served under latencyKeptUp of the offered rate marked as not at
// the same load.
func TestLatencyVerdict(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	side := func(name string, rate float64, p50 map[string]time.Duration) *latencySide {
		s := &latencySide{name: name, p50: map[string][]time.Duration{}, roundsPerSec: []float64{rate + 100, rate, 0}}
		for _, c := range latencyCmds {
			s.p50[c] = []time.Duration{p50[c]}
		}
		return s
	}
	mf := side("Mailferry", 300, map[string]time.Duration{"SELECT": ms(1.3), "FETCH": ms(1.2), "STORE": ms(0.34), "APPEND": ms(5), "EXPUNGE": ms(3)})
	dv := side("Dovecot", 30, map[string]time.Duration{"SELECT": ms(22), "FETCH": ms(0.9), "STORE": ms(0.3), "APPEND": ms(35), "EXPUNGE": ms(3.04)})

	v := verdict([]*latencySide{mf, dv}, false, 0)
	want := "faster (p50 Mailferry / Dovecot, ms) closed loop, one LOGIN per client, at 300 / 30 rounds/s: SELECT Mailferry (1.3 / 22.0), FETCH Dovecot (1.2 / 0.9), STORE equal (0.3 / 0.3), APPEND Mailferry (5.0 / 35.0), EXPUNGE equal (3.0 / 3.0)"
	if got := v.line(); got != want {
		t.Errorf("closed loop:\n got %s\nwant %s", got, want)
	}
	// 40 rounds/s offered: Dovecot's 30 is under 90% of it.
	paced := verdict([]*latencySide{mf, dv}, false, 250*time.Millisecond)
	if got := paced.line(); !strings.Contains(got, "paced 250ms (40 rounds/s offered)") || !strings.HasSuffix(got, "; Dovecot served under 90% of the offered rate: not at the same load") {
		t.Errorf("paced: %s", got)
	}
	dv.roundsPerSec = []float64{38}
	if got := verdict([]*latencySide{mf, dv}, false, 250*time.Millisecond).line(); strings.Contains(got, "not at the same load") {
		t.Errorf("paced, both kept up: %s", got)
	}
	if got := verdict([]*latencySide{mf}, false, 0).line(); got != "faster (p50): no Dovecot side" {
		t.Errorf("no Dovecot: %s", got)
	}
	var sb strings.Builder
	verdictTable(&sb, []latencyVerdict{verdict([]*latencySide{mf, dv}, true, 0), v, paced})
	lines := strings.Split(sb.String(), "\n")
	if len(lines) < 5 || !strings.HasSuffix(strings.Join(strings.Fields(lines[1]), " "), "LOGIN SELECT FETCH STORE APPEND EXPUNGE") {
		t.Fatalf("verdict table:\n%s", sb.String())
	}
	if got := strings.Join(strings.Fields(lines[3]), " "); got != "closed loop, one LOGIN per client, 300 / 30 - MF DV = MF =" {
		t.Errorf("verdict row: %q", got)
	}
	if !strings.Contains(lines[4], "(behind)") {
		t.Errorf("paced row: %q", lines[4])
	}
}

// TestLatencyPaces checks MAILFERRY_LATENCY_PACE's reading and the auto
// pace.
func TestLatencyPaces(t *testing.T) {
	for v, want := range map[string][]time.Duration{
		"":               {latencyPace, 0},
		"0":              nil,
		"100ms":          {100 * time.Millisecond},
		"250ms, auto,1s": {250 * time.Millisecond, 0, time.Second},
	} {
		got, err := latencyPaces(v)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"fast", "-1s", "250"} {
		if _, err := latencyPaces(v); err == nil {
			t.Errorf("%q: no error", v)
		}
	}
	// 10 clients offering 80% of 125 rounds/s: 100 rounds/s, a round
	// every 100 ms per client.
	if got := autoPace(125); got != 100*time.Millisecond {
		t.Errorf("autoPace(125) = %v", got)
	}
}
