package relay_test

// Issue 12, "Hardening": what a sender from outside (not authenticated, not
// in a trusted network) hands us must never make the old server, which
// trusts us, relay, bounce or take what it cannot. These tests speak raw
// SMTP to the relay; the old server is the stand-in of helpers_test.go,
// which accepts every recipient unless told otherwise.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailferry/core/oldserver"
	"mailferry/core/relay"
)

// open dials the relay's port 25, reads the greeting and says EHLO.
func open(t *testing.T, addr string) (*rawConn, string) {
	t.Helper()
	c := dialRaw(t, addr)
	expectCode(t, c.reply(), "220")
	ehlo := c.cmd("EHLO client.test")
	expectCode(t, ehlo, "250")
	return c, ehlo
}

// data sends DATA and the message (without lines starting with a dot) and
// returns the reply to the final dot.
func (r *rawConn) data(raw []byte) string {
	r.t.Helper()
	expectCode(r.t, r.cmd("DATA"), "354")
	if _, err := r.c.Write(append(raw, ".\r\n"...)); err != nil {
		r.t.Fatal(err)
	}
	return r.reply()
}

func (o *oldSMTP) sessionCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sessions
}

// nothingKept checks that the relay kept nothing: no queue item, no bounce,
// no accepted message, nothing at the old server.
func nothingKept(t *testing.T, e *env, rr *running, old *oldSMTP) {
	t.Helper()
	if q, err := e.st.Queue(context.Background()); err != nil || len(q) != 0 {
		t.Errorf("queue has %d items (%v)", len(q), err)
	}
	if s := rr.r.Stats(); s.Accepted != 0 || s.Queued != 0 || s.Bounced != 0 || s.Relayed != 0 {
		t.Errorf("stats %+v", s)
	}
	if got := old.messages(); len(got) != 0 {
		t.Errorf("the old server got %d messages: %+v", len(got), got)
	}
}

// Item 1: recipient forms an old server may route elsewhere (Postfix's
// allow_percent_hack, swap_bangpath, resolve_dequoted_address; Sendmail)
// are refused with 501 5.1.3 before anything is looked up or asked.
func TestRecipientFormsRefused(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	for _, form := range []string{
		"<victim%foreign.example@example.test>",
		`<"victim@foreign.example"@example.test>`,
		"<foreign.example!victim@example.test>",
		"<victim@foreign.example@example.test>",
		`<"victim%foreign.example"@example.test>`,
		`<"foreign.example!victim"@example.test>`,
		`<"victim foreign"@example.test>`,
		"<@relay.example:victim%foreign.example@example.test>",
		"<@relay.example,@other.example:foreign.example!victim@example.test>",
		"<victim%foreign.example@EXAMPLE.test.>",
	} {
		t.Run(form, func(t *testing.T) {
			c, _ := open(t, rr.smtpAddr)
			expectCode(t, c.cmd("MAIL FROM:<attacker@elsewhere.test>"), "250")
			expectCode(t, c.cmd("RCPT TO:"+form), "501 5.1.3")
			// Not even a callout was made.
			if n := old.sessionCount(); n != 0 {
				t.Fatalf("the old server was asked (%d sessions)", n)
			}
			expectCode(t, c.cmd("DATA"), "5") // no valid recipient
			c.cmd("QUIT")
		})
	}
	nothingKept(t, e, rr, old)
}

// A source route is dropped by go-smtp's parser before the session sees
// the path (RFC 5321 section 3.6.1: a server SHOULD ignore it and deliver
// to the final mailbox): only the mailbox, in canonical form, reaches the
// old server. Recipients go on in canonical form.
func TestRecipientCanonicalForm(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	for i, tc := range []struct{ path, want string }{
		{"<@relay.example:victim@example.test>", "victim@example.test"},
		{"<Bob@EXAMPLE.Test.>", "bob@example.test"},
		{`<"carol"@example.test>`, "carol@example.test"},
	} {
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:"+tc.path), "250")
		expectCode(t, c.data(message("canon", "x")), "250")
		c.cmd("QUIT")
		waitFor(t, "delivery", 5*time.Second, func() bool { return len(old.messages()) == i+1 })
		last := old.messages()[i]
		if len(last.To) != 1 || last.To[0] != tc.want {
			t.Errorf("RCPT TO:%s reached the old server as %q, want %q", tc.path, last.To, tc.want)
		}
	}
}

// Item 2: a recipient check that cannot run answers 451 4.4.x (553 5.6.7
// for a non-ASCII recipient the old server could never take), and nothing
// is accepted to be bounced later.
func TestCalloutCannotRun(t *testing.T) {
	plainSettings := func(addr string) oldserver.Settings {
		ap := netip.MustParseAddrPort(addr)
		return oldserver.Settings{Host: oldserver.HostFromIP(ap.Addr()), IMAPPort: 143, IMAPTLS: oldserver.TLSNone,
			SMTPPort: int(ap.Port()), SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (*oldSMTP, oldserver.Settings)
		mail  string
		rcpt  string
		want  string
	}{
		{"old server down", func(t *testing.T) (*oldSMTP, oldserver.Settings) {
			old := startOldSMTP(t, "")
			old.stop()
			return old, plainSettings(old.addr)
		}, "MAIL FROM:<sender@elsewhere.test>", "RCPT TO:<bob@example.test>", "451 4.4."},
		{"TLS failure", func(t *testing.T) (*oldSMTP, oldserver.Settings) {
			old := startOldSMTP(t, "") // offers no STARTTLS
			set := plainSettings(old.addr)
			set.SMTPTLS = oldserver.TLSStartTLS
			return old, set
		}, "MAIL FROM:<sender@elsewhere.test>", "RCPT TO:<bob@example.test>", "451 4.4."},
		{"null sender refused", func(t *testing.T) (*oldSMTP, oldserver.Settings) {
			old := startOldSMTP(t, "")
			old.mailErr = func(from string) *smtp.SMTPError {
				if from == "" {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no bounces here"}
				}
				return nil
			}
			return old, plainSettings(old.addr)
		}, "MAIL FROM:<sender@elsewhere.test>", "RCPT TO:<bob@example.test>", "451 4.4."},
		{"unclear answer", func(t *testing.T) (*oldSMTP, oldserver.Settings) {
			old := startOldSMTP(t, "")
			old.reject["bob@example.test"] = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "greylisted"}
			return old, plainSettings(old.addr)
		}, "MAIL FROM:<sender@elsewhere.test>", "RCPT TO:<bob@example.test>", "451 4.4."},
		{"non-ASCII recipient, old server without SMTPUTF8", func(t *testing.T) (*oldSMTP, oldserver.Settings) {
			old := startOldSMTPTuned(t, "", func(s *smtp.Server) { s.EnableSMTPUTF8 = false })
			return old, plainSettings(old.addr)
		}, "MAIL FROM:<sender@elsewhere.test> SMTPUTF8", "RCPT TO:<jörg@example.test>", "553 5.6.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, set := tc.setup(t)
			e := newEnvWith(t, set, alice, alicePW)
			rr := startRelay(t, e.st, relay.Options{})
			c, _ := open(t, rr.smtpAddr)
			expectCode(t, c.cmd(tc.mail), "250")
			expectCode(t, c.cmd(tc.rcpt), tc.want)
			// Asked again (the down cache, the callout cache): the same.
			expectCode(t, c.cmd(tc.rcpt), tc.want)
			expectCode(t, c.cmd("DATA"), "5")
			c.cmd("QUIT")
			nothingKept(t, e, rr, old)
		})
	}
}

// Item 3: the old server's SIZE, learned from its EHLO reply, is enforced
// for recipients relayed to it (552 5.3.4 at RCPT for a declared SIZE,
// at DATA for the message) and then advertised.
func TestOldServerSize(t *testing.T) {
	const oldMax = 10000
	old := startOldSMTPTuned(t, "", func(s *smtp.Server) { s.MaxMessageBytes = oldMax })
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	big := message("big", strings.Repeat(strings.Repeat("x", 70)+"\r\n", 200)) // about 14 KB

	// First contact: our own limit is advertised; the callout learns the
	// old server's.
	c, ehlo := open(t, rr.smtpAddr)
	if !strings.Contains(ehlo, fmt.Sprintf("SIZE %d", relay.DefaultMaxMessageBytes)) {
		t.Fatalf("EHLO before anything was learned: %q", ehlo)
	}
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test> SIZE=20000"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "552 5.3.4")
	expectCode(t, c.cmd("RSET"), "250")
	// Without a declared SIZE, the message itself is measured.
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(big), "552 5.3.4")
	// A message that fits goes through.
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(message("small", "fits")), "250")
	c.cmd("QUIT")
	if got := old.messages(); len(got) != 1 {
		t.Fatalf("the old server got %d messages, want the small one", len(got))
	}

	// A new connection is offered the old server's limit, less room for
	// our Received header.
	c, ehlo = open(t, rr.smtpAddr)
	if !strings.Contains(ehlo, fmt.Sprintf("SIZE %d", oldMax-1024)) {
		t.Fatalf("EHLO after the old server's SIZE was learned: %q", ehlo)
	}
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test> SIZE=20000"), "552 5.3.4")
	c.cmd("QUIT")

	// From a trusted network (the queue path): refused at DATA, not queued
	// to be refused upstream and bounced. rr is stopped first: its queue
	// worker would otherwise take rr2's items from the shared store.
	rr.close()
	rr2 := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback})
	c, _ = open(t, rr2.smtpAddr)
	// rr2 has learned nothing yet: it learns from its first session.
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(message("first", "x")), "250")
	waitFor(t, "queued message delivered", 5*time.Second, func() bool {
		q, _ := e.st.Queue(context.Background())
		return len(old.messages()) == 2 && len(q) == 0
	})
	expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(big), "552 5.3.4")
	c.cmd("QUIT")
	if q, _ := e.st.Queue(context.Background()); len(q) != 0 {
		t.Fatalf("queue has %d items", len(q))
	}
	if s := rr.r.Stats(); s.Queued != 0 || s.Bounced != 0 {
		t.Errorf("stats %+v", s)
	}
	if s := rr2.r.Stats(); s.Queued != 1 || s.Bounced != 0 {
		t.Errorf("trusted relay's stats %+v", s)
	}
}

// Item 4: mail from outside for the old server is forwarded while the
// sender waits; the old server's answer is ours, nothing is queued, and
// nothing is bounced by us.
func TestForwardWhileWaiting(t *testing.T) {
	t.Run("accepted upstream", func(t *testing.T) {
		old := startOldSMTP(t, "")
		e := newEnv(t, old.addr)
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<carol@example.test>"), "250")
		raw := message("fwd", "forwarded while you wait")
		expectCode(t, c.data(raw), "250")
		// The old server has it by the time we said 250.
		got := old.messages()
		if len(got) != 1 || got[0].From != "sender@elsewhere.test" || strings.Join(got[0].To, ",") != "bob@example.test,carol@example.test" {
			t.Fatalf("old server got %+v", got)
		}
		splitReceived(t, got[0].Data, raw)
		if q, _ := e.st.Queue(context.Background()); len(q) != 0 {
			t.Fatalf("queue has %d items", len(q))
		}
		if s := rr.r.Stats(); s.Accepted != 1 || s.Relayed != 2 || s.Queued != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("refused upstream at DATA", func(t *testing.T) {
		old := startOldSMTP(t, "")
		old.dataErr = func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}
		}
		e := newEnv(t, old.addr)
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<forged@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.data(message("spam", "x")), "550 5.7.1")
		c.cmd("QUIT")
		time.Sleep(200 * time.Millisecond) // a queued bounce would show now
		nothingKept(t, e, rr, old)
	})
	t.Run("temporary failure upstream at DATA", func(t *testing.T) {
		old := startOldSMTP(t, "")
		old.dataErr = func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient storage"}
		}
		e := newEnv(t, old.addr)
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.data(message("later", "x")), "451 4.4.")
		c.cmd("QUIT")
		nothingKept(t, e, rr, old)
	})
	t.Run("old server down at DATA", func(t *testing.T) {
		old := startOldSMTP(t, "")
		e := newEnv(t, old.addr)
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250") // the callout worked
		old.stop()
		expectCode(t, c.data(message("down", "x")), "451 4.4.")
		c.cmd("QUIT")
		nothingKept(t, e, rr, old)
	})
	t.Run("local and relayed recipients are not mixed", func(t *testing.T) {
		old := startOldSMTP(t, "")
		e := newEnv(t, old.addr)
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<alice@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "452 4.5.3")
		expectCode(t, c.data(message("to-alice", "x")), "250")
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<alice@example.test>"), "452 4.5.3")
		expectCode(t, c.data(message("to-bob", "x")), "250")
		c.cmd("QUIT")
		if n := len(e.messages(t, e.inbox)); n != 1 {
			t.Errorf("alice has %d messages", n)
		}
		if got := old.messages(); len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != bob {
			t.Errorf("old server got %+v", got)
		}
		if q, _ := e.st.Queue(context.Background()); len(q) != 0 {
			t.Errorf("queue has %d items", len(q))
		}
	})
	t.Run("two old servers are not mixed", func(t *testing.T) {
		old, old2 := startOldSMTP(t, ""), startOldSMTP(t, "")
		e := newEnv(t, old.addr)
		ctx := context.Background()
		if _, err := e.st.CreateDomain(ctx, "other.test"); err != nil {
			t.Fatal(err)
		}
		ap := netip.MustParseAddrPort(old2.addr)
		js, _ := json.Marshal(oldserver.Settings{Host: oldserver.HostFromIP(ap.Addr()), IMAPPort: 143, IMAPTLS: oldserver.TLSNone,
			SMTPPort: int(ap.Port()), SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull})
		if err := e.st.SetDomainMigration(ctx, "other.test", true, string(js)); err != nil {
			t.Fatal(err)
		}
		rr := startRelay(t, e.st, relay.Options{})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<sender@elsewhere.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<dora@other.test>"), "452 4.5.3")
		expectCode(t, c.data(message("one-server", "x")), "250")
		c.cmd("QUIT")
		if len(old.messages()) != 1 || len(old2.messages()) != 0 {
			t.Errorf("old servers got %d and %d messages", len(old.messages()), len(old2.messages()))
		}
	})
	t.Run("authenticated and trusted senders keep the queue", func(t *testing.T) {
		old := startOldSMTP(t, "")
		addr := old.addr
		old.stop()
		e := newEnv(t, addr)
		rr := startRelay(t, e.st, relay.Options{TrustedNetworks: trustLoopback, RetryBase: time.Hour, RetryMax: time.Hour})
		c, _ := open(t, rr.smtpAddr)
		expectCode(t, c.cmd("MAIL FROM:<app@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<alice@example.test>"), "250")
		expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
		expectCode(t, c.data(message("trusted", "x")), "250")
		c.cmd("QUIT")
		if q, _ := e.st.Queue(context.Background()); len(q) != 1 {
			t.Fatalf("queue has %d items, want 1", len(q))
		}
	})
}

// A sender address with a control character (NUL, DEL, another C0 byte)
// is no address (RFC 5321 section 4.1.2: neither atext nor qtext): it is
// refused with 501 5.1.7 at MAIL, so that it never reaches the old server,
// which trusts us, as our MAIL FROM, nor the logs, the queue or a DSN.
func TestSenderControlCharactersRefused(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	for _, from := range []string{"a\x00b@elsewhere.test", "a\x01b@elsewhere.test", "a\x7fb@elsewhere.test", "a\x1bb@elsewhere.test", "ab@else\x00where.test", "a\u0085b@elsewhere.test"} {
		t.Run(fmt.Sprintf("%q", from), func(t *testing.T) {
			c, _ := open(t, rr.smtpAddr)
			expectCode(t, c.cmd("MAIL FROM:<"+from+"> SMTPUTF8"), "501 5.1.7")
			expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "5")
			c.cmd("QUIT")
		})
	}
	nothingKept(t, e, rr, old)
}

// Guessing recipients is slowed: past 10 recipients refused for good on
// one connection since its last accepted message, each further refusal
// waits a second (Postfix's smtpd_soft_error_limit and
// smtpd_error_sleep_time), so that a stranger cannot list the old
// server's users through our callouts at thousands a second; a message
// accepted starts the count again.
func TestRecipientGuessesSlowed(t *testing.T) {
	old := startOldSMTP(t, "")
	old.users = map[string]bool{"bob@example.test": true}
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	c, _ := open(t, rr.smtpAddr)
	guess := 0
	guesses := func(n int) time.Duration {
		start := time.Now()
		for range n {
			guess++
			expectCode(t, c.cmd(fmt.Sprintf("RCPT TO:<guess%d@example.test>", guess)), "550")
		}
		return time.Since(start)
	}
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	guesses(10)
	if d := guesses(3); d < 3*time.Second {
		t.Fatalf("guesses 11 to 13 were answered in %v, want a second each at least", d)
	}
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(message("hi", "hello")), "250")
	// Counted afresh: 8 guesses would take 8 s at least if they were not.
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	if d := guesses(8); d >= 8*time.Second {
		t.Fatalf("8 guesses after an accepted message took %v: the count did not start again", d)
	}
	c.cmd("QUIT")
}

// No submission as another user: AUTH PLAIN with an authzid naming bob
// and alice's own name and password is refused (535), the session stays
// unauthenticated (MAIL answered 530), and nothing is sent; the authzid
// alice gives for herself, in another case, is taken.
func TestAuthAsAnotherRefused(t *testing.T) {
	old := startOldSMTP(t, "")
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})
	c, err := smtp.DialStartTLS(rr.subAddr, tlsClient(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("bob@example.test", alice, alicePW)); smtpCode(err) != 535 {
		t.Fatalf("AUTH PLAIN as bob with alice's password: %v", err)
	}
	if err := c.Mail("bob@example.test", nil); smtpCode(err) != 530 {
		t.Fatalf("MAIL after the refused AUTH: %v", err)
	}
	c2, err := smtp.DialStartTLS(rr.subAddr, tlsClient(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Auth(sasl.NewPlainClient(strings.ToUpper(alice), alice, alicePW)); err != nil {
		t.Fatalf("AUTH PLAIN with alice's own authzid: %v", err)
	}
	if len(old.messages()) != 0 {
		t.Fatal("something was relayed")
	}
}
