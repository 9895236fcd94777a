package relay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
		expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
		guesses(c, 10)
		c.cmd("QUIT")
	}
	// Then a sender with a real recipient: its callout is not held up by
	// the strangers' refusals.
	c, _ := open(t, rr.smtpAddr)
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	if d := guesses(c, 5); d > 4*time.Second {
		t.Errorf("5 callouts after 30 strangers' guesses took %v: Postfix slowed our callout session", d)
	}
	start := time.Now()
	expectCode(t, c.cmd("RCPT TO:<"+bob+">"), "250")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("bob's callout took %v after the strangers' guesses", d)
	}
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
