package imapwire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestDiscardResponse (fork changes 21 and 29): an unknown response is
// read past up to its end, literals included, whatever the read buffer's
// size cuts a line or a literal's "{n}" into, and what follows it is
// left to read. DiscardResponse skips each run of a line's bytes at once
// (byte by byte, a 64 MiB flood took minutes under the race detector):
// the runs end at the buffer's edge, which the small buffers here put
// everywhere.
func TestDiscardResponse(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, resp := range []string{
		"\r\n",
		"* XFOO\r\n",
		"* XFOO " + long + "\r\n",
		"* XFOO {5}\r\nhello\r\n",
		"* XFOO {5+}\r\nhe\r\nl\r\n",
		"* XFOO ~{3}\r\n\x00\x01\x02 and more " + long + "\r\n",
		"* XFOO " + long + " {12}\r\n{3}\r\n{4}\r\nab {0}\r\n\r\n",
		"* XFOO (" + long + "{2}\r\n{}) {}\r\n",
		"* XFOO {99999999999999999999999999999}x\r\n",
		"* XFOO \n",
	} {
		for _, size := range []int{16, 17, 19, 23, 64, 4096} {
			const next = "A1 OK next\r\n"
			dec := NewDecoder(bufio.NewReaderSize(strings.NewReader(resp+next), size), ConnSideClient)
			if !dec.DiscardResponse(int64(len(resp))) {
				t.Fatalf("%q, buffer %d: %v", resp, size, dec.Err())
			}
			dec.CRLF()
			rest, _ := io.ReadAll(dec.r)
			if string(rest) != next {
				t.Fatalf("%q, buffer %d: left %q, want %q", resp, size, rest, next)
			}
		}
	}
}

// TestDiscardResponseLimits: one byte over the limit fails with
// ErrDiscardLimit, in a line's bytes and in a literal; the decoder's
// MaxSize holds for the runs too.
func TestDiscardResponseLimits(t *testing.T) {
	for _, resp := range []string{
		"* XFOO " + strings.Repeat("y", 300) + "\r\n",
		"* XFOO {200}\r\n" + strings.Repeat("z", 200) + "\r\n",
	} {
		for _, size := range []int{16, 4096} {
			body := int64(len(resp) - 2) // what the limit counts: the last CRLF is not the response's
			dec := NewDecoder(bufio.NewReaderSize(strings.NewReader(resp), size), ConnSideClient)
			if !dec.DiscardResponse(body) {
				t.Fatalf("%q at its own size, buffer %d: %v", resp[:12], size, dec.Err())
			}
			dec = NewDecoder(bufio.NewReaderSize(strings.NewReader(resp), size), ConnSideClient)
			if dec.DiscardResponse(body-1) || !errors.Is(dec.Err(), ErrDiscardLimit) {
				t.Fatalf("%q one byte over, buffer %d: %v, want ErrDiscardLimit", resp[:12], size, dec.Err())
			}
		}
	}
	dec := NewDecoder(bufio.NewReaderSize(strings.NewReader("* XFOO "+strings.Repeat("w", 5000)+"\r\n"), 4096), ConnSideClient)
	dec.MaxSize = 1000
	if dec.DiscardResponse(1 << 20) {
		t.Fatal("a 5,000-byte line read past with MaxSize 1,000")
	}
	if dec.readBytes > 1001 {
		t.Fatalf("read %d bytes with MaxSize 1,000", dec.readBytes)
	}
}
