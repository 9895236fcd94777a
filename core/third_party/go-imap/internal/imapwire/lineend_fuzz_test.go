package imapwire

import (
	"bufio"
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzLiteralAtEndAgrees: LiteralAtEnd (what DiscardCommand and the
// over-long line's reader take for "this line announces a literal") says a
// line ends announcing a literal exactly when the command parser's
// LiteralReader, started at the line's last "{" (a literal's header holds
// no other), reads a literal header through the line's LF, with the same
// size and non-synchronizing mark; a size past int64, which the parser
// refuses, is math.MaxInt64 (fork change 61: larger than any bound, so the
// discarder ends the connection rather than read the bytes as commands).
// Mailferry review (session 17) of FORK.md change 60.
// literalHeader is a literal's header through its line's LF, as the
// decoder reads it ('{' number ['+'] '}' CRLF, CRLF being [SP] [CR] LF).
var literalHeader = regexp.MustCompile(`^\{([0-9]+)(\+?)\} ?\r?\n$`)

func FuzzLiteralAtEndAgrees(f *testing.F) {
	for _, s := range []string{
		"a APPEND INBOX {5}", "a APPEND INBOX {5+}", "a {5} ", "a {5}\r", "a {5} \r",
		"a {5}  ", "a {+5}", "a {5++}", "a {}", "a {0}", "a ~{5+}", "a {007}",
		"a {99999999999999999999}", "a {9223372036854775807+}", "a {5}x", "{{5}", "a {5}\r\r",
		"a {5} {6}", "a {5\r}", "a {-5}", "a { 5}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return
		}
		n, nonSync, ok := LiteralAtEnd(line)

		var pn int64
		var pNonSync, pok, overflow bool
		if i := bytes.LastIndexByte(line, '{'); i >= 0 {
			rest := string(line[i:]) + "\n"
			dec := NewDecoder(bufio.NewReader(strings.NewReader(rest)), ConnSideServer)
			lit, ns, lok := dec.LiteralReader()
			if lok {
				pn, pNonSync, pok = lit.Size(), ns, true
				// The header must have taken the whole line: the
				// literal's bytes come after the LF.
				if dec.readBytes != int64(len(rest)) {
					t.Fatalf("%q: the parser's literal header ends after %d bytes of %d", rest, dec.readBytes, len(rest))
				}
			} else if m := literalHeader.FindStringSubmatch(rest); m != nil {
				// A header the parser refuses only for its size's
				// overflow: digits past int64.
				if _, err := strconv.ParseInt(m[1], 10, 64); err == nil {
					t.Fatalf("%q: the parser refuses a literal header of size %s", rest, m[1])
				}
				overflow, pNonSync = true, m[2] == "+"
			}
		}
		switch {
		case overflow:
			if !ok || n != math.MaxInt64 || nonSync != pNonSync {
				t.Fatalf("%q: LiteralAtEnd = %d, %v, %v; the parser refuses the size's overflow (want %d, %v, true)", line, n, nonSync, ok, int64(math.MaxInt64), pNonSync)
			}
		case ok != pok || n != pn || nonSync != pNonSync:
			t.Fatalf("%q: LiteralAtEnd = %d, %v, %v; the parser's LiteralReader = %d, %v, %v", line, n, nonSync, ok, pn, pNonSync, pok)
		}
	})
}
