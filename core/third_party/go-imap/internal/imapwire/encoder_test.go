package imapwire

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// TestQuotedAndSpecial (fork change 31): Quoted and Special write the same
// bytes as before, escapes included, and allocate nothing: a FETCH
// response of ENVELOPE made an allocation for every parenthesis, space
// and quoted string.
func TestQuotedAndSpecial(t *testing.T) {
	for in, want := range map[string]string{
		``:               `""`,
		`plain`:          `"plain"`,
		`a "b" c`:        `"a \"b\" c"`,
		`back\slash`:     `"back\\slash"`,
		`"\`:             `"\"\\"`,
		`end\`:           `"end\\"`,
		`Émilie Ünïcöde`: `"Émilie Ünïcöde"`,
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		enc := NewEncoder(w, ConnSideServer)
		enc.Special('(').Quoted(in).Special(')')
		if enc.err != nil {
			t.Fatal(enc.err)
		}
		w.Flush()
		if got := b.String(); got != "("+want+")" {
			t.Errorf("Quoted(%q) = %s, want (%s)", in, got, want)
		}
	}
	w := bufio.NewWriterSize(io.Discard, 4096)
	enc := NewEncoder(w, ConnSideServer)
	allocs := testing.AllocsPerRun(1000, func() {
		enc.Special('(').Quoted(`Alice "the" Example`).Special(' ').Quoted("alice").Special(')')
	})
	if allocs != 0 {
		t.Fatalf("Special and Quoted: %.0f allocations, want 0", allocs)
	}
	// A literal open: nothing is written and the error says why.
	enc = NewEncoder(bufio.NewWriter(io.Discard), ConnSideServer)
	enc.literal = true
	if enc.Special('(').Quoted("x"); enc.err == nil {
		t.Fatal("Special and Quoted with a literal open: no error")
	}
}
