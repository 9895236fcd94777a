package imapfront

// Internal tests: the cache encoding is unexported, and its decoder is a
// parser of stored bytes, so it gets a round-trip test and a fuzz target.

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

var summaryCorpus = []string{
	"From: Bob <bob@example.test>\r\nTo: a@example.test, \"C, D\" <c@example.test>\r\nCc: e@example.test\r\nSubject: =?utf-8?q?=C3=89t=C3=A9?=\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m1@example.test>\r\nIn-Reply-To: <p@example.test>\r\n\r\nHi.\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Language: fr, en\r\n\r\nx\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=m.eml\r\n\r\nSubject: in\r\n\r\ninner\r\n--b--\r\n",
	"garbage\x00\xff",
	"",
	"Content-Type: multipart/alternative; boundary=\"q\"\r\n\r\nno parts\r\n",
}

func TestCacheRoundTrip(t *testing.T) {
	for _, raw := range summaryCorpus {
		env, bs := summarize([]byte(raw))
		encEnv, encBS := Summarize([]byte(raw))
		if encEnv == nil || encBS == nil {
			t.Fatalf("Summarize(%q) returned nil", raw)
		}
		gotEnv, err := decodeEnvelope(encEnv)
		if err != nil {
			t.Fatalf("decodeEnvelope(%q): %v", raw, err)
		}
		gotBS, err := decodeStructure(encBS)
		if err != nil {
			t.Fatalf("decodeStructure(%q): %v", raw, err)
		}
		if !env.Date.Equal(gotEnv.Date) {
			t.Fatalf("date %v != %v", env.Date, gotEnv.Date)
		}
		env.Date, gotEnv.Date = env.Date.UTC(), gotEnv.Date.UTC()
		if !reflect.DeepEqual(norm(env), norm(gotEnv)) {
			t.Fatalf("envelope of %q:\n got %#v\nwant %#v", raw, gotEnv, env)
		}
		if !reflect.DeepEqual(encodeStructure(gotBS), encBS) {
			t.Fatalf("structure of %q does not round-trip", raw)
		}
		if _, ok := bs.(*imap.BodyStructureMultiPart); ok && len(bs.(*imap.BodyStructureMultiPart).Children) == 0 {
			t.Fatalf("multipart without children for %q", raw)
		}
	}
}

// norm makes empty slices nil, as the decoder does.
func norm(e *imap.Envelope) *imap.Envelope {
	c := *e
	for _, l := range []*[]imap.Address{&c.From, &c.Sender, &c.ReplyTo, &c.To, &c.Cc, &c.Bcc} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(c.InReplyTo) == 0 {
		c.InReplyTo = nil
	}
	return &c
}

// FuzzCacheDecode feeds arbitrary bytes to the cache decoders: they must
// not panic, and what they accept must encode back to the same bytes.
func FuzzCacheDecode(f *testing.F) {
	for _, raw := range summaryCorpus {
		e, s := Summarize([]byte(raw))
		f.Add(e)
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if env, err := decodeEnvelope(b); err == nil && env == nil {
			t.Fatal("nil envelope without error")
		}
		if bs, err := decodeStructure(b); err == nil {
			if bs == nil {
				t.Fatal("nil structure without error")
			}
			encodeStructure(bs)
		}
	})
}

// structureCorpus adds single-part shapes to summaryCorpus, where
// bodyStructure takes its own path.
var structureCorpus = append([]string{
	"Content-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-ID: <i@x>\r\nContent-Description: d\r\nContent-Location: http://x/\r\nContent-Disposition: inline; filename=\"a.html\"\r\nContent-Language: en , de\r\n\r\n<p>x</p>\r\n<p>y</p>",
	"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
	"Subject: no blank line after the header\r\n",
	"Subject: lf only\n\nbody\nmore\n",
	"Content-Type: text\r\n\r\nno subtype\r\n",
	"Content-Type: ;;;\r\n\r\nbad type\r\n",
	"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
	"Bad header line\r\nSubject: x\r\n\r\nbody\r\n",
}, summaryCorpus...)

// bodyStructure must say exactly what go-imap's ExtractBodyStructure says.
func TestBodyStructureMatchesGoIMAP(t *testing.T) {
	for _, raw := range structureCorpus {
		checkBodyStructure(t, []byte(raw))
	}
}

func checkBodyStructure(t *testing.T, raw []byte) {
	h, body, err := readHeader(raw)
	got := bodyStructure(raw, h, body, err)
	want := imapserver.ExtractBodyStructure(bytes.NewReader(raw))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", raw, got, want)
	}
}

func FuzzBodyStructure(f *testing.F) {
	for _, raw := range structureCorpus {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkBodyStructure(t, raw) })
}

// FuzzSummarize feeds arbitrary messages to Summarize and the section
// finder: they must not panic, and the structure must be writable.
func FuzzSummarize(f *testing.F) {
	for _, raw := range summaryCorpus {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, s := Summarize(raw)
		if _, err := decodeEnvelope(e); err != nil {
			t.Fatalf("envelope does not decode: %v", err)
		}
		if _, err := decodeStructure(s); err != nil {
			t.Fatalf("structure does not decode: %v", err)
		}
		for _, sec := range []*imap.FetchItemBodySection{
			{}, {Part: []int{1}}, {Part: []int{1, 2}, Specifier: imap.PartSpecifierHeader},
			{Part: []int{2}, Specifier: imap.PartSpecifierMIME}, {Specifier: imap.PartSpecifierText},
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}},
		} {
			out, _ := extractSection(raw, sec)
			if len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierNone && string(out) != string(raw) {
				t.Fatal("BODY[] differs from the message")
			}
		}
		binarySection(raw, &imap.FetchItemBinarySection{Part: []int{1}})
	})
}

// TestDeepNesting: a message nesting encapsulated messages and multiparts
// far deeper than any real one must not exhaust the stack of the parsers.
func TestDeepNesting(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 200000; i++ {
		if i%2 == 0 {
			sb.WriteString("Content-Type: message/rfc822\r\n\r\n")
		} else {
			fmt.Fprintf(&sb, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
	}
	raw := []byte(sb.String())
	start := time.Now()
	e, s := Summarize(raw)
	if _, err := decodeEnvelope(e); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeStructure(s); err != nil {
		t.Fatal(err)
	}
	path := make([]int, 5000)
	for i := range path {
		path[i] = 1
	}
	if b, _ := extractSection(raw, &imap.FetchItemBodySection{Part: path}); len(b) > len(raw) {
		t.Fatal("section larger than the message")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
}

// BenchmarkSummarize summarizes a typical single-part message of 20 kB, as
// every copied or delivered message is.
func BenchmarkSummarize(b *testing.B) {
	var m strings.Builder
	m.WriteString("Return-Path: <a@example.org>\r\nReceived: from mx.example.org by mail.example.test; Tue, 1 Jun 2021 10:00:00 +0000\r\n" +
		"From: \"Ann Example\" <a@example.org>\r\nTo: Bob <b@example.test>, c@example.test\r\nCc: d@example.test\r\n" +
		"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the report\r\nDate: Tue, 1 Jun 2021 10:00:00 +0000\r\n" +
		"Message-ID: <1234@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for m.Len() < 20000 {
		m.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n")
	}
	raw := []byte(m.String())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		Summarize(raw)
	}
}
