package imapclient_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// rawServer answers each command line of the client with the next of
// replies (the tag of the command replaces "TAG"), like a real server that
// knows the script, and hangs up after the last. Mailferry fork, see FORK.md.
func rawServer(t *testing.T, replies ...string) *imapclient.Client {
	t.Helper()
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		if _, err := srv.Write([]byte("* OK [CAPABILITY IMAP4rev1 BINARY] ready\r\n")); err != nil {
			return
		}
		for _, r := range replies {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(line, " ")
			if _, err := srv.Write([]byte(strings.ReplaceAll(r, "TAG", tag))); err != nil {
				return
			}
		}
	}()
	c := imapclient.New(cli, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

// Cyrus answers BODY.PEEK[] of a message holding a NUL byte with a literal8
// (RFC 3516 §4.2): `BODY[] ~{n}`. Without the fork's change the client
// fails with `imapwire: expected nstring, got "{"`.
func TestFetchLiteral8(t *testing.T) {
	body := "Subject: nul\r\n\r\nhello\x00world\r\n"
	envSubject := "a\x00b"
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		fmt.Sprintf("* 1 FETCH (FLAGS (\\Seen) UID 15 ENVELOPE (NIL ~{%d}\r\n%s NIL NIL NIL NIL NIL NIL NIL NIL) BODY[] ~{%d}\r\n%s)\r\nTAG OK done\r\n",
			len(envSubject), envSubject, len(body), body),
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(15), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if got := msgs[0].FindBodySection(section); !bytes.Equal(got, []byte(body)) {
		t.Errorf("BODY[] = %q, want %q", got, body)
	}
	if msgs[0].Envelope == nil || msgs[0].Envelope.Subject != envSubject {
		t.Errorf("envelope = %+v, want subject %q", msgs[0].Envelope, envSubject)
	}
	if msgs[0].UID != 15 {
		t.Errorf("UID = %d, want 15", msgs[0].UID)
	}
}

// An atom starting with '~' is still an atom (a keyword), not a literal8.
func TestFetchTildeKeyword(t *testing.T) {
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (FLAGS (~odd $Label1) UID 3)\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 || len(msgs[0].Flags) != 2 || msgs[0].Flags[0] != "~odd" {
		t.Fatalf("flags = %+v", msgs)
	}
}

// A response the parser refuses fails the pending commands with an error
// wrapping ErrMalformedResponse; a cut connection does not.
func TestMalformedResponse(t *testing.T) {
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 3 BODY[] {5}\r\nabc)\r\n* 2 FETCH (UID 4)\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fetch(imap.UIDSetNum(3, 4), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if !errors.Is(err, imapclient.ErrMalformedResponse) {
		t.Fatalf("err = %v, want ErrMalformedResponse", err)
	}

	c2 := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 3 NOSUCHITEM 1)\r\nTAG OK done\r\n",
	)
	if _, err := c2.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{UID: true}).Collect()
	if !errors.Is(err, imapclient.ErrMalformedResponse) {
		t.Fatalf("unknown FETCH item: err = %v, want ErrMalformedResponse", err)
	}

	cut := rawServer(t, "* 1 EXISTS\r\n")
	_, err = cut.Select("INBOX", nil).Wait()
	if err == nil || errors.Is(err, imapclient.ErrMalformedResponse) {
		t.Fatalf("cut connection: err = %v, want an error that is not ErrMalformedResponse", err)
	}
}

// A mailbox name in broken modified UTF-7 (an unterminated "&" shift) in a
// LIST response is kept as sent; without the fork's change the whole LIST
// failed (and with it the listing of every other mailbox).
func TestListBrokenUTF7(t *testing.T) {
	c := rawServer(t,
		"* LIST () \".\" \"INBOX\"\r\n* LIST () \".\" \"Caf&AOk\"\r\n* LIST () \".\" \"Entw&APw-rfe\"\r\nTAG OK done\r\n",
	)
	l, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	for _, d := range l {
		names = append(names, d.Mailbox)
	}
	if strings.Join(names, "|") != "INBOX|"+imap.RawMailboxMark+"Caf&AOk|Entwürfe" {
		t.Fatalf("names %q", names)
	}
}
