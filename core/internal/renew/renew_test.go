package renew

import (
	"context"
	"testing"
	"time"
)

// TestEvery: fn runs a period apart until it says no more, and not at
// all once ctx ended.
func TestEvery(t *testing.T) {
	var calls []time.Time
	start := time.Now()
	Every(context.Background(), 20*time.Millisecond, func() bool {
		calls = append(calls, time.Now())
		return len(calls) < 3
	})
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3 (the third said no more)", len(calls))
	}
	if d := calls[0].Sub(start); d < 20*time.Millisecond {
		t.Errorf("first call after %v, want a period", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	Every(ctx, time.Millisecond, func() bool { n++; return true })
	if n != 0 {
		t.Errorf("%d calls after ctx ended, want 0", n)
	}
}
