package imapserver

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// An address's Route is written as its addr-adl (Mailferry fork, FORK.md
// change 52); upstream always wrote NIL there.
func TestWriteAddressRoute(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	enc := imapwire.NewEncoder(bw, imapwire.ConnSideServer)
	writeAddressList(enc, []imap.Address{
		{Route: "@route", Mailbox: "user", Host: "domain"},
		{Name: "N", Mailbox: "u2", Host: "d2"},
	})
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `((NIL "@route" "user" "domain")("N" NIL "u2" "d2"))`
	if got := buf.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
