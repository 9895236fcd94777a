package migrate

import (
	"testing"
	"time"
)

// A consumer that never reads must not block the engine; cancelling after
// the engine closed subscriptions must not panic.
func TestProgressSlowConsumer(t *testing.T) {
	p := newProgress()
	ch, cancel := p.subscribe(2)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			p.update(1, "a@example.test", EventState, "", func(a *AccountProgress) { a.MessagesDone++ })
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("update blocked on a slow subscriber")
	}
	if len(ch) != 2 {
		t.Errorf("buffered %d events, want 2 (the rest dropped)", len(ch))
	}
	if got, _ := p.get(1); got.MessagesDone != 1000 {
		t.Errorf("snapshot has %d messages done, want 1000", got.MessagesDone)
	}
	// Progress events are coalesced.
	ch2, cancel2 := p.subscribe(100)
	for i := 0; i < 50; i++ {
		p.update(1, "a@example.test", EventProgress, "", nil)
	}
	if n := len(ch2); n > 1 {
		t.Errorf("%d progress events in a burst, want at most 1", n)
	}
	for i := 0; i < 30; i++ {
		p.update(1, "a@example.test", EventError, "oops", nil)
	}
	if got, _ := p.get(1); len(got.Errors) != maxErrors {
		t.Errorf("%d errors kept, want %d", len(got.Errors), maxErrors)
	}
	p.closeAll()
	cancel()
	cancel2()
	if _, ok := <-ch2; ok {
		for range ch2 {
		}
	}
}
