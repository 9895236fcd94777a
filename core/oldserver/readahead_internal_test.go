package oldserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// streamConn is a connection whose peer has sent all of data already: each
// Read takes what it asks for, up to the end, then err. It counts the reads.
type streamConn struct {
	net.Conn // nil: only Read is used
	data     []byte
	err      error
	reads    int
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.reads++
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

// fetchStream is n FETCH responses with literals of the sizes a mailbox
// mostly has (3 to 18 kB), as an old server sends them back to back.
func fetchStream(n int) (stream []byte, bodies [][]byte) {
	var b bytes.Buffer
	for i := range n {
		body := bytes.Repeat([]byte(fmt.Sprintf("line %d of message %d\r\n", i%7, i)), (3000+i%13*1200)/24)
		bodies = append(bodies, body)
		fmt.Fprintf(&b, "* %d FETCH (UID %d BODY[] {%d}\r\n", i+1, i+1, len(body))
		b.Write(body)
		b.WriteString(")\r\n")
	}
	b.WriteString("A1 OK done\r\n")
	return b.Bytes(), bodies
}

// readFetches reads the stream as imapclient does: lines through a 4 KiB
// bufio.Reader, each literal with io.ReadFull into a buffer of its own.
func readFetches(t *testing.T, r io.Reader, n int) [][]byte {
	t.Helper()
	br := bufio.NewReader(r)
	var bodies [][]byte
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var seq, uid, size int
		if _, err := fmt.Sscanf(line, "* %d FETCH (UID %d BODY[] {%d}\r\n", &seq, &uid, &size); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
		if rest, err := br.ReadString('\n'); err != nil || rest != ")\r\n" {
			t.Fatalf("after literal: %q %v", rest, err)
		}
	}
	if last, err := br.ReadString('\n'); err != nil || last != "A1 OK done\r\n" {
		t.Fatalf("tagged: %q %v", last, err)
	}
	return bodies
}

// A copy of small messages reads the socket in few large calls: with
// imapclient's 4 KiB buffer alone, 200 messages of 3-18 kB took more than
// two reads each.
func TestReadAheadFewerReads(t *testing.T) {
	stream, want := fetchStream(200)
	raw := &streamConn{data: stream, err: io.EOF}
	got := readFetches(t, newReadAheadConn(raw), len(want))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d: %d bytes, want %d, not the same", i, len(got[i]), len(want[i]))
		}
	}
	// The stream in readAheadSize pieces, and a few reads more.
	limit := len(stream)/readAheadSize + 4
	t.Logf("%d bytes, %d reads of the connection (at most %d)", len(stream), raw.reads, limit)
	if raw.reads > limit {
		t.Fatalf("%d reads of the connection for %d bytes, want at most %d", raw.reads, len(stream), limit)
	}
}

// A large literal asked for while nothing is buffered is read into its
// own buffer straight from the connection, not copied twice.
func TestReadAheadLargeReadDirect(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), readAheadSize/4) // 4 x readAheadSize
	raw := &streamConn{data: data, err: io.EOF}
	c := newReadAheadConn(raw)
	p := make([]byte, len(data))
	if n, err := c.Read(p); err != nil || n != len(data) || !bytes.Equal(p, data) {
		t.Fatalf("read %d bytes, %v; want %d straight from the connection", n, err, len(data))
	}
	if raw.reads != 1 {
		t.Fatalf("%d reads of the connection, want 1", raw.reads)
	}
}

// A connection that fails (cut, stalled) after some bytes: those bytes
// come first, then its error, as they would without the read-ahead.
func TestReadAheadErrorAfterBytes(t *testing.T) {
	cut := errors.New("connection reset by the old server")
	raw := &streamConn{data: []byte("* 1 FETCH (UID 1 BODY[] {100}\r\npartial"), err: cut}
	got, err := io.ReadAll(newReadAheadConn(raw))
	if !errors.Is(err, cut) || !strings.HasSuffix(string(got), "partial") {
		t.Fatalf("read %q, %v; want every byte, then %v", got, err, cut)
	}
}
