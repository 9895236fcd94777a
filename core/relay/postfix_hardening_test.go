package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/relay"
)

// TestRecipientGuessesAgainstPostfix runs the session-14 recipient rules
// against the fixture's real Postfix rather than the in-process stand-in:
// its refusals (550 5.1.1, unknown in the virtual mailbox table) are
// passed on, guesses past 10 on one connection are slowed, the catch-all
// probe finds Postfix is none so bob's yes records him as a known user,
// and no guess is recorded. Postfix also counts the refusals of each of
// our callout sessions: past smtpd_soft_error_limit (10) it delays every
// reply on that session by smtpd_error_sleep_time (1 s), and at
// smtpd_hard_error_limit (20) it hangs up; our sessions never deliver
// mail, so nothing sets the count back. Strangers' guesses spread over
// many connections (each free for its first 10) must not make every
// other sender's callout slow: a callout session is retired before
// Postfix slows it.
func TestRecipientGuessesAgainstPostfix(t *testing.T) {
	fe := newFixtureEnv(t, func(s *oldtest.Server) string { return s.SMTPAddr })
	rr := startRelay(t, fe.st, relay.Options{})
	guess := 0
	guesses := func(c *rawConn, n int) time.Duration {
		start := time.Now()
		for range n {
			guess++
			expectCode(t, c.cmd(fmt.Sprintf("RCPT TO:<guess%d@example.test>", guess)), "550 5.1.1")
		}
		return time.Since(start)
	}
	// Three strangers, ten guesses each: free on our side.
	for range 3 {
		c, _ := open(t, rr.smtpAddr)
		c.c.SetDeadline(time.Now().Add(time.Minute))
		expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
		guesses(c, 10)
		c.cmd("QUIT")
	}
	// Then a sender with a real recipient: its callout is not held up by
	// the strangers' refusals.
	c, _ := open(t, rr.smtpAddr)
	c.c.SetDeadline(time.Now().Add(time.Minute))
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	// A callout on a session Postfix slows takes 3 s (MAIL, RCPT, RSET).
	if d := guesses(c, 5); d > 10*time.Second {
		t.Errorf("5 callouts after 30 strangers' guesses took %v: Postfix slowed our callout session", d)
	}
	expectCode(t, c.cmd("RCPT TO:<"+bob+">"), "250")
	expectCode(t, c.data(message("guesses", "hello")), "250")
	// Past ten refusals on one connection each further one waits a second.
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	guesses(c, 10)
	if d := guesses(c, 3); d < 3*time.Second {
		t.Errorf("guesses 11 to 13 were answered in %v, want a second each at least", d)
	}
	c.cmd("QUIT")
	fe.old.WaitMessages(t, "bob", "INBOX", 1, 30*time.Second)
	ks, err := fe.st.KnownUsers(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks {
		got = append(got, k.Address)
	}
	if want := []string{bob}; !slices.Equal(got, want) {
		t.Fatalf("known users %v, want %v", got, want)
	}
}

// Mail from outside for a user not yet moved goes to the old server, and
// from there, with the user, into Mailferry as it is (the copy changes no
// byte): an Authentication-Results field claiming our authserv-id in it
// would then pass for ours, as it would had we delivered it. It is
// renamed on the way to the old server as on local delivery (RFC 8601
// section 5: the border MTA of the domain), without a field of ours.
func TestForgedAuthResultsRenamedForwarded(t *testing.T) {
	fe := newFixtureEnv(t, func(s *oldtest.Server) string { return s.SMTPAddr })
	rr := startRelay(t, fe.st, relay.Options{
		AuthResults: func(context.Context, netip.Addr, string, string, []byte) string {
			return "Authentication-Results: mx.mailferry.test;\r\n\tspf=none\r\n"
		}})
	raw := []byte("From: bank <a@bank.example>\r\nAuthentication-Results: mx.mailferry.test; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: mx.other.example; dkim=pass header.d=bank.example\r\nSubject: pay\r\n\r\nbody\r\n")
	if err := send(rr.smtpAddr, "a@bank.example", []string{bob}, raw); err != nil {
		t.Fatal(err)
	}
	fe.old.WaitMessages(t, "bob", "INBOX", 1, 30*time.Second)
	got := fe.old.Messages(t, "bob", "INBOX")[0].Raw
	want := "From: bank <a@bank.example>\r\nX-Untrusted-Authentication-Results: mx.mailferry.test; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: mx.other.example; dkim=pass header.d=bank.example\r\nSubject: pay\r\n\r\nbody\r\n"
	if !bytes.HasSuffix(got, []byte(want)) {
		t.Fatalf("the old server got:\n%s\nwant it to end with:\n%s", got, want)
	}
	if bytes.Contains(got, []byte("\nAuthentication-Results: mx.mailferry.test")) {
		t.Fatalf("a field of ours reached the old server:\n%s", got)
	}
}

// A callout whose pooled session stalls until the callout's own time is
// spent has no time left to dial afresh: that says nothing of the old
// server, which must not be taken for down (30 s of 451 for every sender's
// recipients not yet moved) because one session was slow. Postfix slows
// a session it counts errors on this way; so may any server under load.
func TestSlowPooledCalloutNotServerDown(t *testing.T) {
	old := startOldSMTP(t, "")
	old.users = map[string]bool{bob: true, "carol@example.test": true, "dave@example.test": true}
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	c, _ := open(t, rr.smtpAddr)
	c.c.SetDeadline(time.Now().Add(time.Minute))
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<"+bob+">"), "250")
	// bob is recorded after the catch-all probe, which runs on its own:
	// then the probe's session is pooled too, and idle.
	waitFor(t, "bob recorded", 10*time.Second, func() bool {
		ks, _ := e.st.KnownUsers(context.Background(), domain)
		return len(ks) == 1
	})
	var stalled atomic.Bool
	old.mu.Lock()
	old.mailErr = func(string) *smtp.SMTPError {
		if stalled.CompareAndSwap(false, true) {
			time.Sleep(10500 * time.Millisecond) // past the callout's 10 s
		}
		return nil
	}
	old.mu.Unlock()
	expectCode(t, c.cmd("RCPT TO:<carol@example.test>"), "451")
	expectCode(t, c.cmd("RCPT TO:<dave@example.test>"), "250")
	c.cmd("QUIT")
}
