package relay

import (
	"bytes"
	"strings"
	"testing"
)

// Whatever the message, renaming never panics, never changes msg, and the
// result is msg with only field names replaced: taking every
// X-Untrusted-Authentication-Results back to its original name gives msg.
func FuzzRenameForgedAuthResults(f *testing.F) {
	for _, s := range []string{
		"Authentication-Results: mx.test; dkim=pass\r\n\r\nbody",
		"authentication-results:(x\\)(y)) mx.test.\r\n\tspf=pass\r\nSubject: a\r\n\r\n",
		"Authentication-Results: mx.test\nAuthentication-Results:\n mx.test;\n\nAuthentication-Results: mx.test;",
		"Authentication-Results", "Authentication-Results:", "Authentication-Results: (", "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		out := renameForgedAuthResults(msg, "mx.test")
		if !bytes.Equal(msg, orig) {
			t.Fatalf("msg changed")
		}
		if bytes.Equal(out, msg) {
			return
		}
		// Walk both: out is msg but where a name Authentication-Results (any
		// case) became X-Untrusted-Authentication-Results.
		const name = "Authentication-Results"
		i, o, renamed := 0, 0, 0
		for i < len(msg) && o < len(out) {
			if bytes.HasPrefix(out[o:], []byte(untrustedAuthResults)) && len(msg)-i >= len(name) && strings.EqualFold(string(msg[i:i+len(name)]), name) {
				i, o, renamed = i+len(name), o+len(untrustedAuthResults), renamed+1
				continue
			}
			if out[o] != msg[i] {
				t.Fatalf("not msg with names replaced:\n%q\n%q", msg, out)
			}
			i, o = i+1, o+1
		}
		if i != len(msg) || o != len(out) || renamed == 0 {
			t.Fatalf("not msg with names replaced:\n%q\n%q", msg, out)
		}
	})
}
