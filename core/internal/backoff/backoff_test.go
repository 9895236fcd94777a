package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"mailferry/core/internal/backoff"
)

func TestDelay(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		base, ceiling time.Duration
		n             int
		want          time.Duration
	}{
		{s, time.Minute, 0, s},
		{s, time.Minute, 1, 2 * s},
		{s, time.Minute, 5, 32 * s},
		{s, time.Minute, 6, time.Minute},
		{s, time.Minute, 1000, time.Minute}, // no overflow
		{time.Hour, time.Minute, 0, time.Minute},
		{s, time.Minute, -1, s},
		{s, 0, 3, 0},
	} {
		if got := backoff.Delay(tc.base, tc.ceiling, tc.n); got != tc.want {
			t.Errorf("Delay(%v, %v, %d) = %v, want %v", tc.base, tc.ceiling, tc.n, got, tc.want)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := backoff.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := backoff.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep after cancel = %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not end with its context")
	}
}
