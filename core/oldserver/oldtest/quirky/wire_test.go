package quirky

import (
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// responseEnd finds whole responses, literals (and literal8s) included,
// whatever the cut of the server's writes; a half response is never one.
func TestResponseEnd(t *testing.T) {
	whole := "* 1 FETCH (UID 1 BODY[] {12}\r\nab}\r\n{9}\r\ncd) ~{2}\r\n\r\n)\r\n"
	if n := responseEnd([]byte(whole + "* 2 EXISTS\r\n")); n != len(whole) {
		t.Fatalf("end %d, want %d", n, len(whole))
	}
	for i := range len(whole) - 1 {
		if n := responseEnd([]byte(whole[:i])); n >= 0 {
			t.Fatalf("a whole response in the first %d bytes: %d", i, n)
		}
	}
	if n := responseEnd([]byte("* OK no literal {x}\r\n")); n != 21 {
		t.Fatalf("not a literal: %d", n)
	}
}

// The server lists what Quirks say: the INBOX. namespace with '.', a '/'
// inside a name, a broken name as its raw bytes (opened only by them),
// no NAMESPACE when it is left out; its mail is the same.
func TestServerNames(t *testing.T) {
	srv := Start(t, "u@example.test", "pw", Quirks{InboxPrefix: true, Without: []imap.Cap{imap.CapListStatus}},
		[]Folder{{Name: "Projects/2020", Messages: [][]byte{[]byte("Subject: x\r\n\r\nx\r\n")}}, {Raw: "Caf&AOk"}})
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login("u@example.test", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	l, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range l {
		names = append(names, strings.ReplaceAll(d.Mailbox, imap.RawMailboxMark, "<raw>")+" "+string(d.Delim))
	}
	if got := strings.Join(names, "|"); got != "INBOX .|INBOX.Projects/2020 .|<raw>INBOX.Caf&AOk ." {
		t.Fatalf("LIST %s", got)
	}
	if _, err := c.Select(l[2].Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("the raw name: %v", err)
	}
	if _, err := c.Select("INBOX.Caf&AOk", &imap.SelectOptions{ReadOnly: true}).Wait(); err == nil {
		t.Fatal("the broken name encoded again was opened")
	}
	sel, err := c.Select("INBOX.Projects/2020", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("INBOX.Projects/2020: %+v %v", sel, err)
	}
}
