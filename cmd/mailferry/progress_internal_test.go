package main

import (
	"io"
	"testing"

	"mailferry/core"
)

// The progress line counts the rate of the copies still running only, and
// tells the time left once every user's copy has started.
func TestProgressLine(t *testing.T) {
	b := newProgressBar(io.Discard, 2, false)
	b.accounts["a@example.test"] = core.AccountProgress{State: core.MigDone, MessagesDone: 10, MessagesTotal: 10,
		BytesDone: 50e6, BytesTotal: 50e6, BytesRate: 100e6}
	// The second user's size is not known yet: no time left.
	want := "[==============================] 1/2 users, 10/10 messages, 50.0 MB, 0.0 MB/s"
	if got := b.line(); got != want {
		t.Errorf("one user seen:\n got %q\nwant %q", got, want)
	}
	b.accounts["b@example.test"] = core.AccountProgress{State: core.MigRunning, MessagesDone: 10, MessagesTotal: 30,
		BytesDone: 20e6, BytesTotal: 80e6, BytesRate: 10e6}
	want = "[===============               ] 1/2 users, 20/40 messages, 70.0 MB, 10.0 MB/s, about 6s left"
	if got := b.line(); got != want {
		t.Errorf("both seen:\n got %q\nwant %q", got, want)
	}
}
