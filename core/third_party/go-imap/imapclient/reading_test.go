package imapclient_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// choppedServer is rawServer, but each reply is written in pieces of the
// sizes in cuts, in turn, so that lines and literals are cut at many
// places (the client reads through a 4 KiB buffer). Mailferry fork, see
// FORK.md change 36.
func choppedServer(t *testing.T, cuts []int, replies ...string) *imapclient.Client {
	t.Helper()
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		if _, err := srv.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n")); err != nil {
			return
		}
		k := 0
		for _, r := range replies {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(line, " ")
			out := []byte(strings.ReplaceAll(r, "TAG", tag))
			for len(out) > 0 {
				n := cuts[k%len(cuts)]
				if n > len(out) {
					n = len(out)
				}
				k++
				if _, err := srv.Write(out[:n]); err != nil {
					return
				}
				out = out[n:]
			}
		}
	}()
	c := imapclient.New(cli, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

func readingBody(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte('a' + (i+j)%26)
	}
	if n > 2 {
		copy(b[n/2:], ")\r\n") // what a parser reading too far would take for the end
	}
	return b
}

// FetchReading hands each literal to its read on the reading goroutine:
// every body of the command is read before the caller takes the first
// message (with Fetch the reading goroutine waits for the caller at the
// first literal), byte for byte whatever the sizes and wherever the
// stream is cut, and the messages come whole, with Read set and Literal
// nil. What read leaves unread is skipped.
func TestFetchReading(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 4093, 4094, 4095, 4096, 4097, 4098, 8191, 8192, 8193, 12287, 70001, 1, 300000, 5}
	for _, cuts := range [][]int{{1 << 20}, {1, 2, 3, 5, 7, 11, 4096, 4095, 4097, 13}, {4096}, {4095, 1}} {
		t.Run(fmt.Sprint(cuts), func(t *testing.T) {
			var resp strings.Builder
			for i, n := range sizes {
				fmt.Fprintf(&resp, "* %d FETCH (UID %d FLAGS (\\Seen) BODY[] {%d}\r\n%s)\r\n", i+1, 100+i, n, readingBody(i, n))
			}
			resp.WriteString("TAG OK done\r\n")
			c := choppedServer(t, cuts, "* 18 EXISTS\r\nTAG OK [READ-ONLY] done\r\n", resp.String())
			if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			calls := 0
			all := make(chan struct{})
			read := func(uid imap.UID, lit imap.LiteralReader) (any, error) {
				limit := lit.Size()
				if uid == 107 { // leaves all but 10 bytes
					limit = 10
				}
				b, err := io.ReadAll(io.LimitReader(lit, limit))
				mu.Lock()
				if calls++; calls == len(sizes) {
					close(all)
				}
				mu.Unlock()
				return fmt.Sprintf("%d:%s", uid, b), err
			}
			opts := &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
			cmd := c.FetchReading(imap.UIDSet{{Start: 100, Stop: 117}}, opts, read)
			select {
			case <-all:
			case <-time.After(20 * time.Second):
				go cmd.Close() // so that the client can be closed
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("read called %d times before the first Next, want %d", calls, len(sizes))
			}
			i := 0
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				want := readingBody(i, sizes[i])
				if i == 7 {
					want = want[:10]
				}
				var uid imap.UID
				var flags []imap.Flag
				var bodies []imapclient.FetchItemDataBodySection
				for item := msg.Next(); item != nil; item = msg.Next() {
					switch it := item.(type) {
					case imapclient.FetchItemDataUID:
						uid = it.UID
					case imapclient.FetchItemDataFlags:
						flags = it.Flags
					case imapclient.FetchItemDataBodySection:
						bodies = append(bodies, it)
					}
				}
				wantRead := fmt.Sprintf("%d:%s", 100+i, want)
				if len(bodies) != 1 || bodies[0].Literal != nil || bodies[0].Read != wantRead {
					t.Fatalf("message %d: body items %+.60v, want one with Literal nil, Read %.40q", i, bodies, wantRead)
				}
				if uid != imap.UID(100+i) || len(flags) != 1 {
					t.Fatalf("message %d: UID %d flags %v", i, uid, flags)
				}
				i++
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			if i != len(sizes) {
				t.Fatalf("%d messages, want %d", i, len(sizes))
			}
		})
	}
}

// A FetchReading read that fails ends the connection as a broken one:
// the command fails with the read's error, which is not
// ErrMalformedResponse (the server's bytes were not refused).
func TestFetchReadingError(t *testing.T) {
	c := rawServer(t,
		"* 1 EXISTS\r\nTAG OK [READ-ONLY] done\r\n",
		"* 1 FETCH (UID 5 BODY[] {10}\r\n0123456789)\r\nTAG OK done\r\n",
	)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("the caller gave up")
	cmd := c.FetchReading(imap.UIDSetNum(5), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}},
		func(uid imap.UID, lit imap.LiteralReader) (any, error) { return nil, stop })
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
	}
	err := cmd.Close()
	if err == nil || !strings.Contains(err.Error(), stop.Error()) || errors.Is(err, imapclient.ErrMalformedResponse) {
		t.Fatalf("Close = %v, want the read's error, not ErrMalformedResponse", err)
	}
	select {
	case <-c.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("the client is not closed")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("gave up")) {
		t.Fatal(err)
	}
}
