package demo_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/demo"
)

// A client that goes away in the middle of a FETCH response leaves no
// session behind: Close ends at once and without error (go-imap's
// imapmemserver would otherwise keep the connection's lock after the failed
// write and its goroutine would block forever).
func TestFetchCutMidLiteral(t *testing.T) {
	s, err := demo.Start(t.Context(), &demo.Options{DisableTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	if err := c.Login("bob@example.test", password(t, s, "bob@example.test")).Wait(); err != nil {
		t.Fatal(err)
	}
	raw := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 1<<17)) // ~2.3 MB
	app := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{})
	app.Write(raw)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", s.IMAPAddr())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		r.ReadString('\n') // greeting
		fmt.Fprintf(conn, "a LOGIN bob@example.test %s\r\nb SELECT INBOX\r\nc FETCH 1:* BODY.PEEK[]\r\n", password(t, s, "bob@example.test"))
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(line, []byte("FETCH (")) {
				break
			}
		}
		conn.(*net.TCPConn).SetLinger(0) // reset: the server's next writes fail
		conn.Close()
	}
	time.Sleep(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waits for a session cut in the middle of a FETCH")
	}
}
