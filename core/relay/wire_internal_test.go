package relay

import (
	"bytes"
	"testing"
)

func TestWireForm(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\n.\r\nb\r\n", "a\r\n.\r\nb\r\n"},
		{"a\r.\r\nb\r\n", "a .\r\nb\r\n"},
		{"a\r\n.\rb\r\n", "a\r\n. b\r\n"},
		{"a\r\r\n", "a \r\n"},
		{"a\n\n", "a\r\n\r\n"},
		{"\n", "\r\n"},
		{"\r", " "},
		{"a\r", "a "},
		{"\r\n\r", "\r\n "},
	} {
		in := []byte(c.in)
		got := wireForm(in)
		if string(got) != c.want {
			t.Errorf("wireForm(%q) = %q, want %q", c.in, got, c.want)
		}
		if string(in) != c.in {
			t.Errorf("wireForm(%q) changed its argument", c.in)
		}
		if hasStrayNewline(got) {
			t.Errorf("wireForm(%q) = %q still has a stray CR or LF", c.in, got)
		}
	}
	// Mail without anything stray is handed on as it is, not copied.
	msg := bytes.Repeat([]byte("Subject: x\r\n\r\nline\r\n"), 1000)
	if got := wireForm(msg); &got[0] != &msg[0] {
		t.Error("a message in wire form was copied")
	}
}
