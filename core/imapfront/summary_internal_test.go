package imapfront

// Internal tests: the cache encoding is unexported, and its decoder is a
// parser of stored bytes, so it gets a round-trip test and a fuzz target.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"

	"github.com/emersion/go-imap/v2/imapserver"
)

var summaryCorpus = []string{
	"From: Bob <bob@example.test>\r\nTo: a@example.test, \"C, D\" <c@example.test>\r\nCc: e@example.test\r\nSubject: =?utf-8?q?=C3=89t=C3=A9?=\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m1@example.test>\r\nIn-Reply-To: <p@example.test>\r\n\r\nHi.\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Language: fr, en\r\n\r\nx\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=m.eml\r\n\r\nSubject: in\r\n\r\ninner\r\n--b--\r\n",
	"garbage\x00\xff",
	"",
	"Content-Type: multipart/alternative; boundary=\"q\"\r\n\r\nno parts\r\n",
	"From: <@route:user@domain>\r\nTo: \"N\" <@a.example, @b.example:u2@d2>, c@d3\r\nContent-Type: message/rfc822\r\n\r\nFrom: <@in:x@y>\r\n\r\ninner\r\n",
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
		binarySection(raw, &imap.FetchItemBinarySection{Part: []int{1}}, nil)
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

// summaryHeaderCorpus are headers summaryHeader must read as go-message does, or
// leave to it: folded fields, duplicates, names in any case and with
// spaces before the colon, bare LFs, stray CRs, fields it does not keep.
var summaryHeaderCorpus = []string{
	realisticHeader + "\r\nbody\r\n",
	"Subject: a\r\n\tfolded\r\n  twice \r\nTO: x@example.test\r\nto: second@example.test\r\n\r\nbody",
	"Subject: bare\nFrom: a@example.test\n\nbody\n",
	"Subject  : spaced name\r\nX-Other: Subject: no\r\n\r\n",
	"Subject: cr\rinside\r\n\r\n",
	" Subject: starts folded\r\n\r\n",
	"Subject: no end of header\r\n",
	"Subject:\r\n\r\n",
	"Subject:   \r\n   \r\n\tv\r\n\r\n",
	"\r\nno header\r\n",
	"\n",
	"Sub ject: x\r\n\r\n",
	": empty name\r\n\r\n",
	"Subject: x\r\nno colon\r\n\r\n",
	"Subject: x\r\n\r\r\n\r\n",
	"Subject: x\r\r\n\r\n",
	"Content-Type: text/plain;\r\n charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: inline\r\nContent-Language: de, en\r\nContent-ID: <i@x>\r\nContent-Description: d\r\nContent-Location: l\r\n\r\nx=20\r\n",
	"Subject: \xff\xfe latin\r\nFrom: \"=?iso-8859-1?q?J=F6rg?=\" <j@example.test>\r\n\r\n",
	strings.Repeat("To: many@example.test\r\n", 40) + "\r\n",
	"Subject: " + strings.Repeat("long ", 2000) + "\r\n\r\n",
}

// realisticHeader is a header as mail arrives today: trace fields,
// authentication results, DKIM, and a dozen the summary reads.
const realisticHeader = "Return-Path: <list-bounces@example.org>\r\n" +
	"Delivered-To: bob@example.test\r\n" +
	"Received: from mx1.example.org (mx1.example.org [192.0.2.10])\r\n\tby mail.example.test (Postfix) with ESMTPS id 4F2B31C0\r\n\tfor <bob@example.test>; Tue, 1 Jun 2021 10:00:02 +0000 (UTC)\r\n" +
	"Received: from relay.example.org (relay.example.org [192.0.2.11])\r\n\tby mx1.example.org with ESMTP id 12345; Tue, 1 Jun 2021 10:00:01 +0000\r\n" +
	"Received: from [10.0.0.5] (unknown [198.51.100.7])\r\n\tby relay.example.org with ESMTPSA; Tue, 1 Jun 2021 10:00:00 +0000\r\n" +
	"Authentication-Results: mail.example.test; dkim=pass header.d=example.org; spf=pass smtp.mailfrom=example.org; dmarc=pass\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n\th=from:to:cc:subject:date:message-id:mime-version:content-type;\r\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBzb21lIGJ5dGVzIG9mIHRoZSByaWdodCBzaXpl\r\n\t cGFkZGluZyBwYWRkaW5nIHBhZGRpbmcgcGFkZGluZyBwYWRkaW5n\r\n" +
	"From: \"Ann Example\" <ann@example.org>\r\n" +
	"To: Bob <bob@example.test>, carol@example.test\r\n" +
	"Cc: \"Dave, the second\" <dave@example.test>\r\n" +
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the\r\n report\r\n" +
	"Date: Tue, 1 Jun 2021 10:00:00 +0000\r\n" +
	"Message-ID: <20210601100000.1234@example.org>\r\n" +
	"In-Reply-To: <20210531090000.99@example.test>\r\n" +
	"References: <20210530080000.1@example.test> <20210531090000.99@example.test>\r\n" +
	"List-Id: The list <list.example.org>\r\n" +
	"List-Unsubscribe: <mailto:list-request@example.org?subject=unsubscribe>\r\n" +
	"Precedence: list\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8; format=flowed\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"X-Spam-Score: -0.1\r\n"

// summaryHeader keeps the summary's fields with go-message's values, and
// declines a header go-message reads otherwise (an error) or one it does
// not take plain; summarize is then what go-message's header gives.
func checkSummaryHeader(t *testing.T, raw []byte) {
	h, body, ok := summaryHeader(raw)
	wantH, wantBody, err := readHeader(raw)
	if ok {
		if err != nil {
			t.Fatalf("%q: summaryHeader read a header go-message refuses: %v", raw, err)
		}
		if !bytes.Equal(body, wantBody) {
			t.Fatalf("%q: body %q, go-message %q", raw, body, wantBody)
		}
		for _, k := range summaryFields {
			if got, want := h.Get(k), wantH.Get(k); got != want {
				t.Fatalf("%q: %s %q, go-message %q", raw, k, got, want)
			}
		}
	}
	env, bs := summarize(raw)
	wantEnv, wantBS := summarizeSlow(raw)
	if !reflect.DeepEqual(env, wantEnv) || !reflect.DeepEqual(bs, wantBS) {
		t.Fatalf("%q: summary\n got %#v %#v\nwant %#v %#v", raw, env, bs, wantEnv, wantBS)
	}
}

// summarizeSlow is summarize with every header read by go-message.
func summarizeSlow(raw []byte) (env *imap.Envelope, bs imap.BodyStructure) {
	defer func() {
		if recover() != nil {
			env, bs = &imap.Envelope{}, plainStructure(raw)
		}
	}()
	h, body, err := readHeader(raw)
	return summarizeHeader(raw, h, body, err)
}

func TestSummaryHeader(t *testing.T) {
	for _, raw := range slices.Concat(summaryHeaderCorpus, headerCorpus, structureCorpus) {
		checkSummaryHeader(t, []byte(raw))
	}
	// The common header takes the cheap way.
	for _, raw := range []string{summaryHeaderCorpus[0], summaryHeaderCorpus[1], summaryHeaderCorpus[2], summaryCorpus[0]} {
		if _, _, ok := summaryHeader([]byte(raw)); !ok {
			t.Fatalf("%q: not read by summaryHeader", raw)
		}
	}
}

func FuzzSummaryHeader(f *testing.F) {
	for _, raw := range slices.Concat(summaryHeaderCorpus, headerCorpus, structureCorpus) {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkSummaryHeader(t, raw) })
}

// Summarizing a message with a header as mail has it today allocates far
// less than go-message's reading of every field did (on this header: 207
// allocations, 126 with summaryHeader).
func TestSummarizeAllocsRealistic(t *testing.T) {
	raw := []byte(realisticHeader + "\r\n" + strings.Repeat("Lorem ipsum dolor sit amet.\r\n", 500))
	n := testing.AllocsPerRun(50, func() { Summarize(raw) })
	slow := testing.AllocsPerRun(50, func() {
		env, bs := summarizeSlow(raw)
		encodeEnvelope(env)
		encodeStructure(bs)
	})
	t.Logf("%.0f allocations per summary (go-message's header: %.0f)", n, slow)
	if n > slow*3/4 {
		t.Fatalf("%.0f allocations per summary, want at most 3/4 of go-message's header's %.0f", n, slow)
	}
}

// TestCacheRawDate: version 2 keeps the envelope's RawDate (none, empty,
// a text), and an entry of version 1 (stored before it) is still read,
// its envelope without RawDate.
func TestCacheRawDate(t *testing.T) {
	empty, text := "", "next tuesday, maybe"
	for _, raw := range []*string{nil, &empty, &text} {
		env := &imap.Envelope{RawDate: raw, Subject: "s"}
		got, err := decodeEnvelope(encodeEnvelope(env))
		if err != nil {
			t.Fatal(err)
		}
		if (got.RawDate == nil) != (raw == nil) || (raw != nil && *got.RawDate != *raw) || got.Subject != "s" {
			t.Fatalf("RawDate %v: got %#v", raw, got)
		}
	}
	// Version 1: version byte, date (bool, seconds, offset), subject,
	// six empty address lists, no In-Reply-To, Message-ID.
	v1 := []byte{1, 1}
	v1 = binary.AppendVarint(v1, 1136239445)
	v1 = binary.AppendVarint(v1, -7*3600)
	v1 = append(v1, 1, 's', 0, 0, 0, 0, 0, 0, 0, 2, 'i', 'd')
	got, err := decodeEnvelope(v1)
	if err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if got.RawDate != nil || got.Subject != "s" || got.MessageID != "id" || got.Date.Unix() != 1136239445 {
		t.Fatalf("version 1: %#v", got)
	}
}

// TestCacheRoute: version 3 keeps each address's Route (the obsolete
// source route, ENVELOPE's addr-adl), also in a message/rfc822 part's
// envelope; an entry of version 2 (written before it) is still read, its
// addresses as they were stored, without Route.
func TestCacheRoute(t *testing.T) {
	raw := []byte("From: <@route:user@domain>\r\nTo: \"N\" <@a.example, @b.example:u2@d2>, c@d3\r\n\r\nbody\r\n")
	encEnv, encBS := Summarize(raw)
	env, err := decodeEnvelope(encEnv)
	if err != nil {
		t.Fatal(err)
	}
	wantFrom := []imap.Address{{Route: "@route", Mailbox: "user", Host: "domain"}}
	wantTo := []imap.Address{{Name: "N", Route: "@a.example,@b.example", Mailbox: "u2", Host: "d2"}, {Mailbox: "c", Host: "d3"}}
	if !reflect.DeepEqual(env.From, wantFrom) || !reflect.DeepEqual(env.To, wantTo) {
		t.Fatalf("From %+v To %+v, want %+v %+v", env.From, env.To, wantFrom, wantTo)
	}
	if _, err := decodeStructure(encBS); err != nil {
		t.Fatal(err)
	}
	// A message/rfc822 part's envelope keeps its routes too.
	inner := &imap.Envelope{From: []imap.Address{{Route: "@in", Mailbox: "x", Host: "y"}}}
	bs, err := decodeStructure(encodeStructure(&imap.BodyStructureSinglePart{Type: "message", Subtype: "rfc822",
		MessageRFC822: &imap.BodyStructureMessageRFC822{Envelope: inner, BodyStructure: plainStructure(nil)}}))
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := bs.(*imap.BodyStructureSinglePart)
	if !ok || sp.MessageRFC822 == nil || !reflect.DeepEqual(sp.MessageRFC822.Envelope.From, inner.From) {
		t.Fatalf("structure %#v", bs)
	}

	// Version 2: version byte, no date, no RawDate, subject, From with one
	// address (name, mailbox, host; no route), five empty lists, no
	// In-Reply-To, Message-ID.
	v2 := []byte{2, 0, 0, 1, 's', 1, 1, 'N', 4, 'u', 's', 'e', 'r', 6, 'd', 'o', 'm', 'a', 'i', 'n', 0, 0, 0, 0, 0, 0, 2, 'i', 'd'}
	got, err := decodeEnvelope(v2)
	if err != nil {
		t.Fatalf("version 2: %v", err)
	}
	if !reflect.DeepEqual(got.From, []imap.Address{{Name: "N", Mailbox: "user", Host: "domain"}}) || got.Subject != "s" || got.MessageID != "id" || got.To != nil {
		t.Fatalf("version 2: %#v", got)
	}
	// The same bytes marked version 3 lack the route: malformed, refused
	// (the message is then parsed again), never misread.
	v3 := slices.Clone(v2)
	v3[0] = 3
	if _, err := decodeEnvelope(v3); err == nil {
		t.Fatal("version 3 entry without routes was read")
	}
}

// TestCacheCharsetDefault: a structure cached before version 4 is served
// with RFC 2045's default charset in each text part that names none (such
// a part had none in its header), a charset it names kept; one holding a
// multipart/digest is refused, so that the message is parsed again (its
// children were read as text/plain, they are message/rfc822).
func TestCacheCharsetDefault(t *testing.T) {
	old := &imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
		&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Encoding: "7bit", Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{}},
		&imap.BodyStructureSinglePart{Type: "text", Subtype: "html", Params: map[string]string{"charset": "utf-8"}, Encoding: "7bit", Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{}},
		&imap.BodyStructureSinglePart{Type: "image", Subtype: "png", Encoding: "base64", Extended: &imap.BodyStructureSinglePartExt{}},
	}, Extended: &imap.BodyStructureMultiPartExt{}}
	v3 := encodeStructure(old)
	v3[0] = 3
	bs, err := decodeStructure(v3)
	if err != nil {
		t.Fatal(err)
	}
	kids := bs.(*imap.BodyStructureMultiPart).Children
	for i, want := range []map[string]string{{"charset": "us-ascii"}, {"charset": "utf-8"}, nil} {
		if got := kids[i].(*imap.BodyStructureSinglePart).Params; !reflect.DeepEqual(got, want) {
			t.Errorf("part %d: params %v, want %v", i+1, got, want)
		}
	}
	// Version 4 is read as written.
	bs, err = decodeStructure(encodeStructure(old))
	if err != nil {
		t.Fatal(err)
	}
	if p := bs.(*imap.BodyStructureMultiPart).Children[0].(*imap.BodyStructureSinglePart).Params; p != nil {
		t.Errorf("version 4 entry given %v", p)
	}
	old.Subtype = "digest"
	v3 = encodeStructure(old)
	v3[0] = 3
	if _, err := decodeStructure(v3); err == nil {
		t.Error("version 3 digest read from the cache")
	}
	// A FETCH of such a message: summaries parses it again and replaces
	// the entry.
	raw := []byte("Content-Type: multipart/digest; boundary=x\r\n\r\n--x\r\n\r\nSubject: in\r\n\r\nd\r\n--x--\r\n")
	m := &store.Message{ID: 7, Structure: v3}
	_, bs, fix, err := summaries(m, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}, func() ([]byte, error) { return raw, nil })
	if err != nil || fix == nil || fix.Structure[0] != cacheVersion {
		t.Fatalf("summaries: %v, fix %v", err, fix)
	}
	if c := bs.(*imap.BodyStructureMultiPart).Children[0].(*imap.BodyStructureSinglePart); c.MessageRFC822 == nil || c.MessageRFC822.Envelope.Subject != "in" {
		t.Errorf("digest child %#v", c)
	}
}

// FuzzCacheEntry (review1): summary cache entries of any bytes (hostile,
// truncated, of any version) never panic the decoders; what they accept
// is written again and read back the same, its routes vetted.
func FuzzCacheEntry(f *testing.F) {
	for _, raw := range []string{
		"From: <@route:user@domain>\r\nTo: \"N\" <@a.example, @b.example:u2@d2>, c@d3\r\nSubject: s\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: <@in:x@y>\r\n\r\ninner\r\n--b--\r\n",
	} {
		env, bs := Summarize([]byte(raw))
		f.Add(env)
		f.Add(bs)
		f.Add(env[:len(env)/2])
		f.Add(bs[:len(bs)-1])
	}
	f.Add([]byte{2, 0, 0, 1, 's', 1, 1, 'N', 4, 'u', 's', 'e', 'r', 6, 'd', 'o', 'm', 'a', 'i', 'n', 0, 0, 0, 0, 0, 0, 2, 'i', 'd'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if env, err := decodeEnvelope(b); err == nil {
			for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
				for _, a := range l {
					if a.Route != "" && validRoute(a.Route) != a.Route {
						t.Fatalf("route %q read from %x", a.Route, b)
					}
				}
			}
			again, err := decodeEnvelope(encodeEnvelope(env))
			if err != nil || !reflect.DeepEqual(again, env) {
				t.Fatalf("envelope %#v written again: %#v, %v", env, again, err)
			}
		}
		if bs, err := decodeStructure(b); err == nil {
			if _, err := decodeStructure(encodeStructure(bs)); err != nil {
				t.Fatalf("structure %#v written again: %v", bs, err)
			}
		}
	})
}
