package relay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mailferry/core/auth/addr"
	"mailferry/core/store"
)

// Internal fuzz targets for the little parsers of the package: they must
// never panic and must keep their invariants on any input.

func FuzzHeaderParsing(f *testing.F) {
	f.Add([]byte("Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: not a header\r\n"))
	f.Add([]byte("no header end"))
	f.Add([]byte("\n\n"))
	f.Add([]byte("RECEIVED:\n x\nX: y\n\nbody"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		n := countReceived(msg)
		h := headerSection(msg)
		if n < 0 || n > bytes.Count(msg, []byte("\n"))+1 {
			t.Fatalf("countReceived = %d", n)
		}
		if !bytes.HasPrefix(msg, h) || len(h) > maxDSNHeaders {
			t.Fatalf("headerSection is not a bounded prefix")
		}
		c := crlf(msg)
		if bytes.Count(c, []byte("\n")) != bytes.Count(msg, []byte("\n")) || bytes.Contains(bytes.ReplaceAll(c, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("crlf(%q) = %q", msg, c)
		}
	})
}

func FuzzDSN(f *testing.F) {
	f.Add("alice@example.test", "bob@example.test", "550 5.1.1 no such user", []byte("Subject: x\r\n\r\nbody"))
	f.Add("jörg@example.test", "ü@example.test", "\r\n\x00bad", []byte("Subject: ä\n\nbody"))
	r := &Relay{opts: Options{Hostname: "mx.test"}}
	f.Fuzz(func(t *testing.T, from, rcpt, detail string, body []byte) {
		it := &store.QueueItem{ID: 1, Created: time.Unix(0, 0), From: from, Rcpts: []string{rcpt}}
		dsn, err := r.buildDSN(it, body, []outcome{{rcpt: rcpt, perm: true, status: "5.1.1", detail: oneLine(detail)}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(dsn, []byte("Content-Type: message/delivery-status")) {
			t.Fatal("no delivery-status part")
		}
	})
}

func FuzzNote(f *testing.F) {
	f.Add("relay")
	f.Add("bounce via example.test")
	f.Add(" via  via ")
	f.Fuzz(func(t *testing.T, note string) {
		kind, via := parseNote(note)
		if !strings.Contains(note, " via ") {
			if kind != note || via != "" {
				t.Fatalf("parseNote(%q) = %q, %q", note, kind, via)
			}
			return
		}
		if noteVia(kind, via) != note && via != "" {
			t.Fatalf("parseNote(%q) = %q, %q does not round-trip", note, kind, via)
		}
	})
}

func FuzzLogin(f *testing.F) {
	f.Add([]byte{}, []byte("alice"), []byte("pw"), []byte("extra"))
	f.Add([]byte("alice"), []byte("pw"), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, a, b, c, d []byte) {
		var gotUser, gotPass string
		calls := 0
		s := &loginServer{validate: func(u, p string) error { calls++; gotUser, gotPass = u, p; return nil }}
		var done bool
		for _, resp := range [][]byte{a, b, c, d} {
			_, fin, err := s.Next(resp)
			if done && err == nil {
				t.Fatal("Next after done succeeded")
			}
			if fin {
				done = true
			}
		}
		if calls > 1 {
			t.Fatalf("validate called %d times", calls)
		}
		if done && (calls != 1 || gotUser == "" && len(a) > 0) {
			t.Fatalf("done with user %q pass %q after %d calls", gotUser, gotPass, calls)
		}
	})
}

// wireDecode reads a canonical recipient back as go-smtp's parser hands it
// to Session.Rcpt: a quoted local part unquoted.
func wireDecode(rcpt string) string {
	if !strings.HasPrefix(rcpt, `"`) {
		return rcpt
	}
	var b strings.Builder
	for i := 1; i < len(rcpt); i++ {
		switch rcpt[i] {
		case '\\':
			i++
			if i < len(rcpt) {
				b.WriteByte(rcpt[i])
			}
		case '"':
			return b.String() + rcpt[i+1:]
		default:
			b.WriteByte(rcpt[i])
		}
	}
	return b.String()
}

// FuzzRcptAddress: the recipient rules never panic; for a strict sender
// (not authenticated, not trusted) nothing with "%", "!", a second "@", a
// source route or a quoted local part gets through; the canonical form is
// stable when it comes back over the wire.
func FuzzRcptAddress(f *testing.F) {
	for _, s := range []string{
		"bob@example.test", "Bob@EXAMPLE.Test.", "victim%foreign.example@example.test",
		"victim@foreign.example@example.test", "foreign.example!victim@example.test",
		"@relay.example:victim@example.test", "a b@example.test", `a"b\c@example.test`,
		"jörg@bücher.example", "x@[192.0.2.1]", "@", "", "a@b@", ".a@b.test", "a\r\n@b.test",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, to string, strict bool) {
		canon, domain, err := rcptAddress(to, strict)
		if err != nil {
			if !errors.Is(err, errRcptForm) {
				t.Fatalf("rcptAddress(%q): %v does not wrap errRcptForm", to, err)
			}
			return
		}
		if domain == "" || rcptDomain(canon) != domain || len(canon) > maxPath || !utf8.ValidString(canon) {
			t.Fatalf("rcptAddress(%q) = %q, %q", to, canon, domain)
		}
		if strings.ContainsFunc(canon, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("rcptAddress(%q) = %q holds a control character", to, canon)
		}
		if strict {
			for _, in := range []string{to, canon} {
				if strings.ContainsAny(in, `%!:,"`) || strings.Count(in, "@") != 1 || strings.HasPrefix(in, "@") {
					t.Fatalf("strict rcptAddress(%q) = %q let a routing form through", to, canon)
				}
			}
			if c, err := addr.Canonical(canon); err != nil || c != canon {
				t.Fatalf("strict rcptAddress(%q) = %q, not addr.Canonical's form (%q, %v)", to, canon, c, err)
			}
		}
		again, domain2, err := rcptAddress(wireDecode(canon), strict)
		if err != nil || again != canon || domain2 != domain {
			t.Fatalf("rcptAddress(%q) = %q, which comes back as %q, %q, %v", to, canon, again, domain2, err)
		}
	})
}
