package relay_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/relay"
)

// dialFrom dials the relay from 127.0.0.last (a source of its own: the
// per-source bounds are per address), reads the greeting and starts a
// transaction for alice up to DATA's 354.
func dialFrom(t *testing.T, addr string, last byte) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, last)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawConn{t: t, c: conn, br: bufio.NewReader(conn)}
	expectCode(t, c.reply(), "220")
	expectCode(t, c.cmd("EHLO slow.test"), "250")
	expectCode(t, c.cmd("MAIL FROM:<slow@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<"+alice+">"), "250")
	return c
}

// A few slow senders must not hold what every other sender needs: four
// addresses opening four messages each (each source's bound) and sending a
// byte now and then took all 16 default slots, and every other sender's
// message was refused 452 4.3.1 for as long as they went on.
func TestSlowSendersCannotHoldEveryDataSlot(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	for src := byte(2); src <= 5; src++ {
		for range 4 {
			c := dialFrom(t, rr.smtpAddr, src)
			expectCode(t, c.cmd("DATA"), "354")
			fmt.Fprintf(c.c, "Subject: slow\r\n")
		}
	}
	time.Sleep(200 * time.Millisecond) // each took its share before its 354
	if err := send(rr.smtpAddr, "someone@elsewhere.test", []string{alice}, message("hi", "hello")); err != nil {
		t.Fatalf("a fifth address could not deliver beside four slow ones: %v", err)
	}
	if n := len(e.messages(t, e.inbox)); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
}

// The budget is of bytes: with room for one message of the SIZE limit, a
// large message being received leaves too little for a second large one
// from another source (452, nothing kept of it); both senders' next
// messages go through once the first is in.
func TestDataBudgetBoundsBytes(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{MaxDataInFlight: 1, MaxMessageBytes: 100 << 10})
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 900) // 90 KB
	first := dialFrom(t, rr.smtpAddr, 2)
	expectCode(t, first.cmd("DATA"), "354")
	fmt.Fprint(first.c, big)
	time.Sleep(200 * time.Millisecond) // read, and held, by the relay
	second := dialFrom(t, rr.smtpAddr, 3)
	expectCode(t, second.cmd("DATA"), "354")
	expectCode(t, second.cmd(big+"."), "452")
	expectCode(t, first.cmd("."), "250")
	expectCode(t, second.cmd("MAIL FROM:<slow@elsewhere.test>"), "250")
	expectCode(t, second.cmd("RCPT TO:<"+alice+">"), "250")
	expectCode(t, second.cmd("DATA"), "354")
	expectCode(t, second.cmd(big+"."), "250")
	msgs := e.messages(t, e.inbox)
	if len(msgs) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(msgs))
	}
	for _, m := range msgs {
		if !strings.HasSuffix(string(m), big) {
			t.Fatalf("a message was not delivered as sent (%d bytes)", len(m))
		}
	}
}

// BDAT: each chunk's command line renews go-smtp's read deadline, so a
// sender sending a byte a chunk held its message open for ever. The whole
// transfer must end within the read timeout of its start; the message is
// refused (451 4.4.2) and nothing is kept.
func TestBDATTransferBounded(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{ReadTimeout: time.Second})
	c := dialFrom(t, rr.smtpAddr, 2)
	start := time.Now()
	var last string
	for time.Since(start) < 8*time.Second {
		fmt.Fprint(c.c, "BDAT 1\r\nx")
		if last = c.reply(); !strings.HasPrefix(last, "250") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.HasPrefix(last, "451 4.4.2") {
		t.Fatalf("a message sent a byte a chunk for %v: last reply %q, want 451 4.4.2 after about a second", time.Since(start).Round(time.Millisecond), last)
	}
	if n := len(e.messages(t, e.inbox)); n != 0 {
		t.Fatalf("%d messages delivered, want none", n)
	}
	// The session goes on: a message sent at once is taken.
	expectCode(t, c.cmd("MAIL FROM:<slow@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<"+alice+">"), "250")
	fmt.Fprint(c.c, "BDAT 18 LAST\r\nSubject: quick\r\n\r\nx")
	expectCode(t, c.reply(), "250")
	if n := len(e.messages(t, e.inbox)); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
}
