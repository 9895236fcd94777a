package pop3front

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzParseCommand: any line parses or fails with ErrSyntax, without
// panic; what parses has a 3- or 4-letter capital keyword and no empty
// argument, and never a control character.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER alice@example.test", "PASS pass with spaces", "RETR 1", "TOP 1 0", "LIST",
		"AUTH PLAIN AGEAYg==", "uidl 3", "", " ", "RETR  1", "RE\x00R", "\xff\xff\xff", strings.Repeat("A", 2000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParseCommand(line)
		if err != nil {
			return
		}
		if len(cmd.Name) < 3 || len(cmd.Name) > 4 || strings.ToUpper(cmd.Name) != cmd.Name {
			t.Fatalf("%q: name %q", line, cmd.Name)
		}
		for _, a := range cmd.Args {
			if a == "" {
				t.Fatalf("%q: empty argument", line)
			}
			if strings.ContainsAny(a, "\r\n\x00") {
				t.Fatalf("%q: control character in argument %q", line, a)
			}
		}
		if n, ok := number(line); ok && n < 0 {
			t.Fatalf("negative number from %q", line)
		}
	})
}

// unstuff undoes RFC 1939 dot-stuffing of a multi-line body up to ".".
func unstuff(wire []byte) ([]byte, bool) {
	var out []byte
	for len(wire) > 0 {
		i := bytes.IndexByte(wire, '\n')
		if i < 0 {
			return nil, false
		}
		line := wire[:i+1]
		wire = wire[i+1:]
		if string(line) == ".\r\n" {
			return out, len(wire) == 0
		}
		if line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
	}
	return nil, false
}

// FuzzWriteStuffed: what RETR writes, un-stuffed, is the message's bytes
// (with CRLF added only when they do not end in LF), and the terminator
// appears nowhere before the end; TOP's cut is a prefix of the message.
func FuzzWriteStuffed(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\nb\r\n", ".", "..\n.\n", "Subject: x\r\n\r\nbody", "\r\n\r\n", "no end", ""} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, n uint8) {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		writeStuffed(w, body)
		w.Flush()
		got, ok := unstuff(buf.Bytes())
		if !ok {
			t.Fatalf("%q: wire %q not one terminated body", body, buf.Bytes())
		}
		want := body
		if len(body) > 0 && body[len(body)-1] != '\n' {
			want = append(append([]byte{}, body...), '\r', '\n')
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got back %q", body, got)
		}
		if cut := top(body, int(n)); !bytes.HasPrefix(body, cut) {
			t.Fatalf("top(%q, %d) = %q, not a prefix", body, n, cut)
		}
	})
}
