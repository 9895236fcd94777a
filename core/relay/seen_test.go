package relay_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/relay"
	"mailferry/core/store"
)

// The recipients the old server accepted through the relay become known
// users of the domain (for the readiness check): at a callout's yes, and
// when it takes a queued message; a refused recipient, and one of another
// domain, do not.
func TestKnownUsersSeen(t *testing.T) {
	old := startOldSMTP(t, "")
	old.reject["nobody@example.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	e := newEnv(t, old.addr)
	cfg, pool := testTLS(t)
	rr := startRelay(t, e.st, relay.Options{TLSConfig: cfg})

	c := dialRaw(t, rr.smtpAddr)
	c.reply()
	c.cmd("EHLO x.test")
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<Bob@example.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<nobody@example.test>"), "550 5.1.1")
	c.cmd("QUIT")

	raw := []byte("From: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
	if err := submit(rr.subAddr, pool, alice, alicePW, alice, []string{"carol@example.test", outsider}, raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "relayed to the old server", 5*time.Second, func() bool {
		q, _ := e.st.Queue(context.Background())
		return len(q) == 0 && len(old.messages()) >= 1
	})
	ks, err := e.st.KnownUsers(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks {
		if k.Source != store.KnownRelay {
			t.Errorf("%s recorded as %s", k.Address, k.Source)
		}
		got = append(got, k.Address)
	}
	if want := []string{"bob@example.test", "carol@example.test"}; !slices.Equal(got, want) {
		t.Fatalf("known users %v, want %v", got, want)
	}
}
