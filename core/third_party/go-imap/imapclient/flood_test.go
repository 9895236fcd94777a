package imapclient_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// floodServer answers a SELECT, then answers the next command with
// prefix and then flood(w) until the connection closes.
func floodServer(t *testing.T, prefix string, flood func(w io.Writer, tag string) error) *imapclient.Client {
	t.Helper()
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		if _, err := srv.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n")); err != nil {
			return
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, _, _ := strings.Cut(line, " ")
		if _, err := fmt.Fprintf(srv, "* 1 EXISTS\r\n%s OK [READ-ONLY] done\r\n", tag); err != nil {
			return
		}
		if line, err = br.ReadString('\n'); err != nil {
			return
		}
		tag, _, _ = strings.Cut(line, " ")
		if _, err := io.WriteString(srv, prefix); err != nil {
			return
		}
		for flood(srv, tag) == nil {
		}
	}()
	c := imapclient.New(cli, nil)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// A server that streams what nobody asked for, for ever, fails the
// command with ErrTooMuchUnasked (Mailferry fork, FORK.md change 29):
// unknown untagged responses, one unknown response whose line or literal
// never ends, FETCH responses for UIDs nobody asked for, the asked
// message again and again. Upstream (and change 21 alone) read for ever.
func TestUnaskedFlood(t *testing.T) {
	junk := strings.Repeat("x", 1000)
	body := strings.Repeat("unasked\r\n", 64<<10/9)
	uid := 900000
	for _, tc := range []struct {
		name   string
		prefix string
		flood  func(w io.Writer, tag string) error
	}{
		{"unknown responses", "", func(w io.Writer, _ string) error {
			_, err := io.WriteString(w, "* XFLOOD "+junk+"\r\n")
			return err
		}},
		{"unknown literals", "", func(w io.Writer, _ string) error {
			_, err := fmt.Fprintf(w, "* XFLOOD {%d}\r\n%s\r\n", len(body), body)
			return err
		}},
		{"a line without end", "* XFLOOD ", func(w io.Writer, _ string) error {
			_, err := io.WriteString(w, junk)
			return err
		}},
		{"a literal of a terabyte", "* XFLOOD {1000000000000}\r\n", func(w io.Writer, _ string) error {
			_, err := io.WriteString(w, junk)
			return err
		}},
		{"bodies nobody asked for", "", func(w io.Writer, _ string) error {
			uid++
			_, err := fmt.Fprintf(w, "* 1 FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", uid, len(body), body)
			return err
		}},
		{"the asked body again and again", "", func(w io.Writer, _ string) error {
			_, err := fmt.Fprintf(w, "* 1 FETCH (UID 3 BODY[] {%d}\r\n%s)\r\n", len(body), body)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := floodServer(t, tc.prefix, tc.flood)
			done := make(chan error, 1)
			go func() {
				cmd := c.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
				for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
					for item := msg.Next(); item != nil; item = msg.Next() {
						if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
							io.Copy(io.Discard, b.Literal)
						}
					}
				}
				done <- cmd.Close()
			}()
			select {
			case err := <-done:
				if !errors.Is(err, imapclient.ErrTooMuchUnasked) {
					t.Fatalf("fetch: %v, want ErrTooMuchUnasked", err)
				}
				if errors.Is(err, imapclient.ErrMalformedResponse) {
					t.Fatalf("fetch: %v: a flood is not a malformed response", err)
				}
			case <-time.After(60 * time.Second):
				c.Close()
				t.Fatal("the command still reads what nobody asked for after 60 s")
			}
		})
	}
}

// The bound is per stretch between tagged responses: commands that each
// get some unknown responses (together far more than the bound) all
// succeed.
func TestUnaskedBoundResets(t *testing.T) {
	chunk := strings.Repeat("* XNOTICE "+strings.Repeat("y", 1000)+"\r\n", 1000) // about 1 MB
	replies := []string{"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n"}
	const n = 80
	for i := 0; i < n; i++ {
		replies = append(replies, chunk+"TAG OK done\r\n")
	}
	c := rawServer(t, replies...)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP %d after %d MB of unknown responses in all: %v", i, i, err)
		}
	}
}
