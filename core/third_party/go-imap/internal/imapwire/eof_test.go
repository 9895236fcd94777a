package imapwire

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// TestEOFKeepsMaxSize (fork change 74): asking EOF before a command, as
// the server does for each one, reads nothing as far as MaxSize goes: the
// longest atom a decoder takes is the same with or without it, and one
// byte more is refused with ErrMaxSize.
func TestEOFKeepsMaxSize(t *testing.T) {
	const max = 20
	longest := func(eofFirst bool) int {
		n := 0
		for k := 1; k < 2*max; k++ {
			dec := NewDecoder(bufio.NewReader(strings.NewReader(strings.Repeat("a", k)+"\r\n")), ConnSideServer)
			dec.MaxSize = max
			if eofFirst && dec.EOF() {
				t.Fatalf("EOF before %d bytes", k)
			}
			var atom string
			if !dec.Atom(&atom) || !dec.CRLF() {
				if !errors.Is(dec.Err(), ErrMaxSize) {
					t.Fatalf("atom of %d, EOF first %v: %v, want ErrMaxSize", k, eofFirst, dec.Err())
				}
				break
			}
			if len(atom) != k {
				t.Fatalf("atom of %d read as %d bytes", k, len(atom))
			}
			n = k
		}
		return n
	}
	without, with := longest(false), longest(true)
	if with != without {
		t.Fatalf("longest line taken with MaxSize %d: %d bytes after EOF, %d without", max, with, without)
	}
	dec := NewDecoder(bufio.NewReader(strings.NewReader("")), ConnSideServer)
	if !dec.EOF() || dec.Err() != nil {
		t.Fatalf("empty input: EOF false or error %v", dec.Err())
	}
}
