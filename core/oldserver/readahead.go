package oldserver

import (
	"bufio"
	"net"
)

// readAheadSize is how much of an IMAP connection's stream one read from
// the socket may take. imapclient reads through a 4 KiB buffer, so a copy
// of small messages made two or three read calls per message (the
// response line, the literal, the next line); each is a system call and,
// when the socket ran dry, a park and a wake-up of the reading goroutine.
// With 128 KiB taken at once whatever the socket holds is read in one call.
const readAheadSize = 128 << 10

// readAheadConn reads an IMAP connection's stream ahead, in calls of up
// to readAheadSize bytes, and hands it out from there. It is a plain
// buffer under everything else (TLS, imapclient): the bytes and their
// order are the stream's, and a read error comes after the bytes read
// before it. A read asking for readAheadSize bytes or more while nothing
// is buffered goes straight to the connection (a large literal is read
// into its own buffer, not copied twice). Reads served from the buffer
// leave the connection alone, deadlines included.
type readAheadConn struct {
	net.Conn
	br *bufio.Reader
}

func newReadAheadConn(c net.Conn) *readAheadConn {
	return &readAheadConn{Conn: c, br: bufio.NewReaderSize(c, readAheadSize)}
}

func (c *readAheadConn) Read(p []byte) (int, error) { return c.br.Read(p) }
