package imapclient_test

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Untagged responses the client does not know, one with a literal and a
// literal8 in it, between the FETCH responses of a command, are read past
// (Mailferry fork, FORK.md change 21). Upstream ended the connection with
// `unsupported response type "XSTRAY"`.
func TestUnknownUntaggedResponse(t *testing.T) {
	body := "Subject: a\r\n\r\nhi\r\n"
	c := rawServer(t,
		"* 2 EXISTS\r\n* XUNKNOWN\r\nTAG OK [READ-ONLY] done\r\n",
		"* XSTRAY 1 (2 \"three\") {7}\r\nfour)\r\n ~{3}\r\n(\r\n end\r\n"+
			"* 1 FETCH (UID 3 BODY[] {18}\r\n"+body+")\r\n"+
			"* 7 XNOTICE \"quoted ) text\" [odd\r\n"+
			"* 2 FETCH (UID 4 BODY[] {18}\r\n"+body+")\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(3, 4), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 2 || msgs[0].UID != 3 || msgs[1].UID != 4 {
		t.Fatalf("messages %+v", msgs)
	}
	for _, m := range msgs {
		if got := m.FindBodySection(section); !bytes.Equal(got, []byte(body)) {
			t.Errorf("UID %d: BODY[] = %q", m.UID, got)
		}
	}
}

// RFC822.SIZE NIL is taken as -1, unknown (Mailferry fork, FORK.md change
// 22); upstream failed the response with `expected number64, got "N"`.
func TestRFC822SizeNil(t *testing.T) {
	c := rawServer(t,
		"* 2 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 3 RFC822.SIZE NIL)\r\n* 2 FETCH (UID 4 RFC822.SIZE 120)\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(3, 4), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 2 || msgs[0].RFC822Size != -1 || msgs[1].RFC822Size != 120 {
		t.Fatalf("messages %+v", msgs)
	}
}

// A server that sends a message's FLAGS and INTERNALDATE in a FETCH
// response of their own, after the body's: both responses reach the
// command (Mailferry fork, FORK.md change 23); upstream dropped the second.
func TestSplitFetchResponses(t *testing.T) {
	body := "Subject: a\r\n\r\nhi\r\n"
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 3 BODY[] {18}\r\n"+body+")\r\n* 1 FETCH (UID 3 FLAGS (\\Seen) INTERNALDATE \"01-Mar-2019 10:00:00 +0200\")\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 2 || msgs[1].UID != 3 || len(msgs[1].Flags) != 1 || msgs[1].InternalDate.IsZero() {
		t.Fatalf("messages %+v", msgs)
	}
}

// A mailbox a server listed in broken modified UTF-7 is opened under the
// bytes it was listed with (Mailferry fork, FORK.md change 24): upstream
// (and change 20 alone) sent the name encoded again, "Caf&-AOk", which a
// server that stores names as bytes does not know.
func TestSelectBrokenUTF7(t *testing.T) {
	cli, srv := net.Pipe()
	lines := make(chan string, 4)
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		srv.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		for _, r := range []string{
			"* LIST () \".\" \"INBOX.Caf&AOk\"\r\n* LIST () \".\" \"R&-D\"\r\nTAG OK done\r\n",
			"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
			"* 0 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		} {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line
			tag, _, _ := strings.Cut(line, " ")
			srv.Write([]byte(strings.ReplaceAll(r, "TAG", tag)))
		}
	}()
	c := imapclient.New(cli, nil)
	defer c.Close()
	l, err := c.List("", "*", nil).Collect()
	if err != nil || len(l) != 2 {
		t.Fatalf("LIST: %v %+v", err, l)
	}
	<-lines
	if l[0].Mailbox != imap.RawMailboxMark+"INBOX.Caf&AOk" || l[1].Mailbox != "R&D" {
		t.Fatalf("names %q %q", l[0].Mailbox, l[1].Mailbox)
	}
	for i, want := range []string{`EXAMINE "INBOX.Caf&AOk"`, `EXAMINE "R&-D"`} {
		if _, err := c.Select(l[i].Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		if got := <-lines; !strings.Contains(got, want) {
			t.Errorf("sent %q, want %s", got, want)
		}
	}
}

// A name whose modified UTF-7 decodes to a NUL first ("&AAA-Work" is
// "\x00Work") is kept as sent, marked, like a broken one (Mailferry fork,
// FORK.md change 28): decoded, it read as the mark, and the name went
// back as "Work", another mailbox.
func TestSelectNULName(t *testing.T) {
	cli, srv := net.Pipe()
	lines := make(chan string, 4)
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		srv.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		for _, r := range []string{
			"* LIST () \".\" \"&AAA-Work\"\r\n* LIST () \".\" \"Work\"\r\nTAG OK done\r\n",
			"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		} {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line
			tag, _, _ := strings.Cut(line, " ")
			srv.Write([]byte(strings.ReplaceAll(r, "TAG", tag)))
		}
	}()
	c := imapclient.New(cli, nil)
	defer c.Close()
	l, err := c.List("", "*", nil).Collect()
	if err != nil || len(l) != 2 {
		t.Fatalf("LIST: %v %+v", err, l)
	}
	<-lines
	if l[0].Mailbox != imap.RawMailboxMark+"&AAA-Work" || l[1].Mailbox != "Work" {
		t.Fatalf("names %q %q", l[0].Mailbox, l[1].Mailbox)
	}
	if _, err := c.Select(l[0].Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := <-lines; !strings.Contains(got, `EXAMINE "&AAA-Work"`) {
		t.Errorf("sent %q, want EXAMINE \"&AAA-Work\"", got)
	}
}
