package imapclient_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// An ENVELOPE address's addr-adl, the obsolete source route, is read into
// Address.Route (Mailferry fork, FORK.md change 52); upstream dropped it.
func TestEnvelopeAddressRoute(t *testing.T) {
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 3 ENVELOPE (NIL NIL ((NIL \"@route\" \"user\" \"domain\")) NIL NIL "+
			"((\"Two\" \"@a.example,@b.example\" \"u2\" \"d2\")(NIL NIL \"u3\" \"d3\")) NIL NIL NIL NIL))\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 || msgs[0].Envelope == nil {
		t.Fatalf("messages %+v", msgs)
	}
	env := msgs[0].Envelope
	want := []imap.Address{{Route: "@route", Mailbox: "user", Host: "domain"}}
	if len(env.From) != 1 || env.From[0] != want[0] {
		t.Errorf("From %+v, want %+v", env.From, want)
	}
	wantTo := []imap.Address{{Name: "Two", Route: "@a.example,@b.example", Mailbox: "u2", Host: "d2"}, {Mailbox: "u3", Host: "d3"}}
	if len(env.To) != 2 || env.To[0] != wantTo[0] || env.To[1] != wantTo[1] {
		t.Errorf("To %+v, want %+v", env.To, wantTo)
	}
}
