package relay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"mailferry/core/relay"
	"mailferry/core/store"
)

// The recipients the old server accepted through the relay become known
// users of the domain (for the readiness check): at a callout's yes, and
// when it takes a queued message; a refused recipient, and one of another
// domain, do not.
func TestKnownUsersSeen(t *testing.T) {
	old := startOldSMTP(t, "")
	old.users = map[string]bool{"bob@example.test": true, "carol@example.test": true}
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

// An old server that takes any recipient at RCPT (a catch-all, or one
// that accepts and bounces later) says nothing about who its users are:
// what a sender from outside names there is not recorded, or anyone
// could fill the domain's known users with made-up addresses (one store
// write each, no DATA needed) that the readiness check would then wait
// for as users never moved. Mail for them is still forwarded.
func TestKnownUsersNotMadeUpThroughACatchAll(t *testing.T) {
	old := startOldSMTP(t, "") // takes every recipient
	e := newEnv(t, old.addr)
	rr := startRelay(t, e.st, relay.Options{})
	c, _ := open(t, rr.smtpAddr)
	for i := range 3 {
		expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
		for j := range 20 {
			expectCode(t, c.cmd(fmt.Sprintf("RCPT TO:<made-up-%d-%d@example.test>", i, j)), "250")
		}
		expectCode(t, c.cmd("RSET"), "250")
	}
	expectCode(t, c.cmd("MAIL FROM:<a@elsewhere.test>"), "250")
	expectCode(t, c.cmd("RCPT TO:<bob@example.test>"), "250")
	expectCode(t, c.data(message("hi", "hello")), "250")
	c.cmd("QUIT")
	if got := old.messages(); len(got) != 1 || !slices.Equal(got[0].To, []string{"bob@example.test"}) {
		t.Fatalf("the old server got %+v, want one message for bob", got)
	}
	ks, err := e.st.KnownUsers(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 0 {
		t.Fatalf("%d known users recorded from a catch-all's yes (first %+v), want none", len(ks), ks[0])
	}
}
