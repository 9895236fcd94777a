package imapwire

import "math"

// LineEnd follows the bytes of a line as they are read and tells whether
// the line so far ends announcing a literal: "{" DIGIT+ ["+"] "}", then
// what the decoder's CRLF takes before its LF (an optional SP, then an
// optional CR). It is the one place that says so (Mailferry fork, FORK.md
// change 60): the decoder (Decoder.LineEnd, DiscardCommand,
// DiscardResponse) and imapserver's over-long line (toolong.go) asked two
// different tests before, which disagreed (a "{+5+}", a "{5+} " before
// the CRLF, a size past int64, a "{" more than 32 bytes before the end).
//
// It agrees with what LiteralReader takes for a literal: any number of
// digits (leading zeros too, so it keeps a state, never a window of the
// last bytes), no sign; a "~" before the "{" (literal8) changes nothing.
// A size past math.MaxInt64 is math.MaxInt64: whatever its client meant,
// it is a literal larger than any bound. The zero value is a line's start.
type LineEnd struct {
	state   uint8
	nonSync bool
	n       int64
}

const (
	leNone   = iota
	leOpen   // "{"
	leDigits // "{" DIGIT+
	lePlus   // "{" DIGIT+ "+"
	leClosed // "{" DIGIT+ ["+"] "}"
	leSP     // ... "}" SP
	leCR     // ... "}" [SP] CR
)

// WriteByte adds the next byte of the line. An LF ends the line: the state
// is a new line's.
func (le *LineEnd) WriteByte(b byte) error {
	switch {
	case b == '{':
		*le = LineEnd{state: leOpen}
	case b >= '0' && b <= '9' && (le.state == leOpen || le.state == leDigits):
		le.state = leDigits
		d := int64(b - '0')
		if le.n > (math.MaxInt64-d)/10 {
			le.n = math.MaxInt64
		} else {
			le.n = le.n*10 + d
		}
	case b == '+' && le.state == leDigits:
		le.state = lePlus
	case b == '}' && (le.state == leDigits || le.state == lePlus):
		le.nonSync = le.state == lePlus
		le.state = leClosed
	case b == ' ' && le.state == leClosed:
		le.state = leSP
	case b == '\r' && (le.state == leClosed || le.state == leSP):
		le.state = leCR
	default:
		le.state = leNone
	}
	return nil
}

// Write adds the next bytes of the line.
func (le *LineEnd) Write(p []byte) (int, error) {
	for _, b := range p {
		le.WriteByte(b)
	}
	return len(p), nil
}

// Literal reports the literal the line so far ends announcing, should an
// LF come next: its size, and whether it is non-synchronizing ("{n+}",
// RFC 7888).
func (le LineEnd) Literal() (size int64, nonSync, ok bool) {
	switch le.state {
	case leClosed, leSP, leCR:
		return le.n, le.nonSync, true
	}
	return 0, false, false
}

// LiteralAtEnd reports the literal that line (without its LF) ends
// announcing: LineEnd over the whole line.
func LiteralAtEnd(line []byte) (size int64, nonSync, ok bool) {
	var le LineEnd
	le.Write(line)
	return le.Literal()
}
