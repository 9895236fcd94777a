package relay_test

import (
	"fmt"
	"testing"
	"time"

	"mailferry/core/relay"
)

// A sender holding DATA open keeps its slot; the source's next message is
// told to try later (452 4.3.1) instead of piling up in memory, and the
// held one is still accepted when it ends.
func TestDataInFlightBounded(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{MaxDataPerSource: 1})
	open := func() *rawConn {
		r := dialRaw(t, rr.smtpAddr)
		expectCode(t, r.reply(), "220")
		expectCode(t, r.cmd("EHLO sender.example"), "250")
		expectCode(t, r.cmd("MAIL FROM:<someone@elsewhere.test>"), "250")
		expectCode(t, r.cmd("RCPT TO:<"+alice+">"), "250")
		expectCode(t, r.cmd("DATA"), "354")
		return r
	}
	held := open()
	fmt.Fprintf(held.c, "Subject: slow\r\n\r\nfirst half")
	time.Sleep(100 * time.Millisecond) // the server took the slot before its 354
	second := open()
	expectCode(t, second.cmd("Subject: second\r\n\r\nbody\r\n."), "452")
	expectCode(t, held.cmd("\r\nsecond half\r\n."), "250")
	if n := len(e.messages(t, e.inbox)); n != 1 {
		t.Fatalf("%d messages delivered, want the held one only", n)
	}
	third := open()
	expectCode(t, third.cmd("Subject: third\r\n\r\nbody\r\n."), "250")
}
