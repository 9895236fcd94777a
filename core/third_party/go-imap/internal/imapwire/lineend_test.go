package imapwire

import (
	"bufio"
	"io"
	"math"
	"strings"
	"testing"
)

// TestLiteralAtEnd: the one test of "does this line end announcing a
// literal" (FORK.md change 60) over the edge cases. Before, imapserver's
// over-long line asked a regular expression (~?\{[0-9]+\+\}\r?\n$ over the
// last 32 bytes) and the decoder's DiscardCommand and DiscardResponse asked
// literalAtEnd (strconv.ParseInt over the last 32 bytes); where they
// disagreed, old says what each answered (regexp / literalAtEnd, nonSync
// wanted) and the answer now is the decoder's LiteralReader's own.
func TestLiteralAtEnd(t *testing.T) {
	zeros := strings.Repeat("0", 40)
	for _, c := range []struct {
		line    string // without its LF
		n       int64
		nonSync bool
		ok      bool
		old     string
	}{
		{line: "A SEARCH TEXT {5}", n: 5, ok: true},
		{line: "A SEARCH TEXT {5+}", n: 5, nonSync: true, ok: true},
		{line: "A SEARCH TEXT {5+}\r", n: 5, nonSync: true, ok: true},
		{line: "{05+}", n: 5, nonSync: true, ok: true},
		{line: "~{5+}", n: 5, nonSync: true, ok: true},
		{line: "A APPEND INBOX ~{5}", n: 5, ok: true},
		{line: "{0+}", n: 0, nonSync: true, ok: true},
		// LiteralReader takes SP before the CRLF (Decoder.CRLF).
		{line: "A SEARCH TEXT {5+} ", n: 5, nonSync: true, ok: true, old: "regexp no, literalAtEnd no"},
		{line: "A SEARCH TEXT {5+} \r", n: 5, nonSync: true, ok: true, old: "regexp no, literalAtEnd no"},
		// Any number of digits, leading zeros too.
		{line: "A SEARCH TEXT {" + zeros + "5+}", n: 5, nonSync: true, ok: true, old: "regexp no, literalAtEnd no ('{' out of the last 32 bytes)"},
		// Past int64: a literal larger than any bound.
		{line: "{99999999999999999999+}", n: math.MaxInt64, nonSync: true, ok: true, old: "regexp yes, literalAtEnd no"},
		{line: "{9223372036854775807}", n: math.MaxInt64, ok: true},
		{line: "{9223372036854775808}", n: math.MaxInt64, ok: true, old: "literalAtEnd no"},
		// No sign: LiteralReader reads DIGITs only.
		{line: "{+5+}", old: "regexp no, literalAtEnd yes (5)"},
		{line: "{+5}", old: "literalAtEnd yes (5)"},
		{line: "{-5+}"},
		{line: "{}"},
		{line: "{+}"},
		{line: "{5++}"},
		{line: "{5+}}"},
		{line: "{5}  "},
		{line: "{5}\r\r"},
		{line: "{5}\r "},
		{line: "{ 5}"},
		{line: "{5 }"},
		{line: "{5}x"},
		{line: "{5}\x00"},
		{line: "5+}"},
		{line: "}"},
		{line: ""},
		{line: "{5"},
		{line: "{5+"},
		{line: "{1{5}", n: 5, ok: true},
		{line: "{5}{6+}", n: 6, nonSync: true, ok: true},
	} {
		n, nonSync, ok := LiteralAtEnd([]byte(c.line))
		if n != c.n || nonSync != c.nonSync || ok != c.ok {
			t.Errorf("LiteralAtEnd(%q) = %d, %v, %v; want %d, %v, %v (before: %s)", c.line, n, nonSync, ok, c.n, c.nonSync, c.ok, c.old)
		}
		// Cut anywhere (a "{" split at the bound of a command's line: the
		// decoder read the first part, the over-long line's reader the
		// rest), the answer is the same.
		for i := 0; i <= len(c.line); i++ {
			var le LineEnd
			le.Write([]byte(c.line[:i]))
			le.Write([]byte(c.line[i:]))
			if n2, ns2, ok2 := le.Literal(); n2 != n || ns2 != nonSync || ok2 != ok {
				t.Errorf("%q cut after %d bytes: %d, %v, %v; whole: %d, %v, %v", c.line, i, n2, ns2, ok2, n, nonSync, ok)
			}
		}
		// An LF ends the line: what follows it is a new line's.
		var le LineEnd
		le.Write([]byte(c.line + "\n"))
		if _, _, ok := le.Literal(); ok {
			t.Errorf("%q then LF: still announcing a literal", c.line)
		}
		// The decoder's LiteralReader agrees, where the line is a literal.
		if c.ok && c.n < 1000 && c.line[0] == '{' && strings.Count(c.line, "{") == 1 {
			dec := NewDecoder(bufio.NewReader(strings.NewReader(c.line+"\n"+strings.Repeat("x", int(c.n)))), ConnSideServer)
			lit, ns, ok := dec.LiteralReader()
			if !ok || lit.Size() != c.n || ns != c.nonSync {
				t.Errorf("LiteralReader over %q: ok %v, nonSync %v, %v", c.line, ok, ns, dec.Err())
			} else {
				io.Copy(io.Discard, lit)
			}
		}
	}
}

// TestDecoderLineEnd: the decoder follows the line it read, an unread byte
// undone, as toolong.go goes on with it.
func TestDecoderLineEnd(t *testing.T) {
	dec := NewDecoder(bufio.NewReader(strings.NewReader("A X {12+}\r\n")), ConnSideServer)
	dec.MaxSize = 1 << 20 // a server's command: the line is followed
	var s string
	if !dec.Atom(&s) || !dec.SP() || !dec.Atom(&s) || !dec.SP() {
		t.Fatal(dec.Err())
	}
	if _, _, ok := dec.LineEnd().Literal(); ok {
		t.Fatal("a literal announced before its '{'")
	}
	dec.Special('{')
	var n uint32
	dec.Number(&n) // reads '+' and unreads it
	dec.acceptByte('+')
	dec.acceptByte('x') // reads '}' and unreads it
	le := dec.LineEnd()
	le.Write([]byte("}"))
	if n, ns, ok := le.Literal(); n != 12 || !ns || !ok {
		t.Fatalf("LineEnd after \"A X {12+\" then \"}\": %d, %v, %v", n, ns, ok)
	}
}
