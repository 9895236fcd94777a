package imapfront

import (
	"bytes"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
)

// dateCorpus: Date fields as real mail and hostile senders write them. The
// first ones have the form parseDate reads itself (TestParseDateFastPath
// checks that it does); the rest go to ParseDate.
var dateCorpus = []string{
	"Tue, 1 Jun 2021 10:00:00 +0000",
	"Tue, 01 Jun 2021 10:00:00 +0000",
	"1 Jun 2021 10:00:00 +0000",
	"01 Jun 2021 10:00:00 -0000",
	"Mon, 02 Jan 2006 15:04:05 -0700",
	"Sun, 31 Dec 1899 23:59:59 +1400",
	"Sat, 29 Feb 2020 12:00:00 +0530",
	"Wed, 9 Oct 2019 07:08:09 -1200 (PDT)",
	"Wed, 9 Oct 2019 07:08:09 +0200 (CEST)  ",
	"Wed, 9 Oct 2019 07:08:09 +0200\t(Mitteleuropäische Sommerzeit)",
	"Fri, 13 Mar 2015 00:00:00 +0000 ()",
	"Thu, 20 Nov 1997 09:55:06 +2400",
	"Thu, 20 Nov 1997 09:55:06 +0060",
	"Thu, 20 Nov 1997 09:55:06 -2359",
	"Thu, 1 Jan 1970 00:00:00 +0000",
	"Mon, 1 Jan 9999 23:59:59 -0000",
	"Mon, 01 Jan 0000 00:00:00 +0000",
	// Only for ParseDate.
	"",
	" ",
	"Tue, 1 Jun 2021 10:00 +0000",
	"Tue, 1 Jun 21 10:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 GMT",
	"Tue, 1 Jun 2021 10:00:00 UT",
	"Tue, 1 Jun 2021 10:00:00 EST",
	"Thu, 20 Nov 1997 09:55:06 MDT (MDT)",
	"Thu, 20 Nov 1997 09:55:06 MDT (This comment)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (UTC) (again)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (nested (comment))",
	"Tue, 1 Jun 2021 10:00:00 +0000 (unclosed",
	"Tue, 1 Jun 2021 10:00:00 +0000 (a\\) b)",
	"Tue, 1 Jun 2021 10:00:00 +0000 trailing words",
	"Tue, 1 Jun 2021 10:00:00 +00000",
	"Tue, 1 Jun 2021 10:00:00 +000",
	"Tue, 1 Jun 2021 10:00:00 0000",
	"Tue, 1 Jun 2021 10:00:00 +9999",
	"  Tue, 1 Jun 2021 10:00:00 +0000",
	"Tue,  1 Jun 2021 10:00:00 +0000",
	"Tue,\r\n 1 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 2021\r10:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00\r\n +0000",
	"tue, 1 jun 2021 10:00:00 +0000",
	"TUE, 1 JUN 2021 10:00:00 +0000",
	"Tuesday, 1 June 2021 10:00:00 +0000",
	"Tue 1 Jun 2021 10:00:00 +0000",
	"Xyz, 1 Jun 2021 10:00:00 +0000",
	"Tue, 1 Foo 2021 10:00:00 +0000",
	"Tue, 001 Jun 2021 10:00:00 +0000",
	"Tue, 31 Jun 2021 10:00:00 +0000",
	"Tue, 30 Feb 2021 10:00:00 +0000",
	"Tue, 29 Feb 2021 10:00:00 +0000",
	"Tue, 0 Jun 2021 10:00:00 +0000",
	"Tue, 00 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 2021 24:00:00 +0000",
	"Tue, 1 Jun 2021 23:60:00 +0000",
	"Tue, 1 Jun 2021 23:59:60 +0000",
	"Tue, 1 Jun 2021 9:00:00 +0000",
	"Tue, 1 Jun 12021 10:00:00 +0000",
	"Tue, 1 Jun -021 10:00:00 +0000",
	"Tue, 1-Jun-2021 10:00:00 +0000",
	"2021-06-01T10:00:00Z",
	"2021-06-01 10:00:00 +0000",
	"Tue Jun  1 10:00:00 2021",
	"Tue, 1 Jun 2021 10:00:00 +0000\x00",
	"Tue, 1 Jun 2021 10:00:00 +0000 (\xff\xfe)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (\r\n)",
	"Tue, 1 Jun 2021 10:00:00 +0000\r\n",
	"Tue, 1 Jun 2021 10:00:00 +0000 \r\n (UTC)",
	"Tue, 1 Jun 2021 10:00:00 −0000",
	"Tue, 1 Jun 2021 10:00:00 +٠٠٠٠",
	"T",
	"TT",
	"+0000",
	"-",
	"1",
	"garbage",
	strings.Repeat("(", 1000),
	strings.Repeat("Tue, 1 Jun 2021 10:00:00 +0000 ", 100),
	// Hostile senders (session 10's review): NULs inside, overlong
	// numbers, obsolete and military zones, two-digit years, leap
	// seconds, a huge comment, a sign inside the comment, a second date.
	"Tue, 1 Jun 2021 10:00:00 +0000 (\x00)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (\x00UTC\x00)",
	"Tue, 1\x00Jun 2021 10:00:00 +0000",
	"\x00Tue, 1 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 +0000" + strings.Repeat("\x00", 100),
	"Tue, 99999999999999999999 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 99999999999999999999 10:00:00 +0000",
	"Tue, 1 Jun 2021 99999999999999999999:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 +99999999999999999999",
	"Tue, 1 Jun 2021 10:00:00 -00000000000000000000",
	"Tue, 1 Jun 2021 10:00:00 A",
	"Tue, 1 Jun 2021 10:00:00 Z",
	"Tue, 1 Jun 2021 10:00:00 PST",
	"Tue, 1 Jun 2021 10:00:00 CDT",
	"Tue, 1 Jun 2021 10:00:00 PDT (PDT)",
	"Tue, 1 Jun 2021 10:00:00 T",
	"Tue, 1 Jun 2021 10:00:00 TT",
	"Thu, 20 Nov 97 09:55:06 +0000",
	"20 Nov 49 09:55:06 +0000",
	"20 Nov 50 09:55:06 -0000",
	"Thu, 20 Nov 1997 09:55:06 +0000 (-0500)",
	"Thu, 20 Nov 1997 09:55:06 +0000 (+0500) (x)",
	"Thu, 20 Nov 1997 09:55:06 (+0500) +0000",
	"Wed, 31 Dec 2008 23:59:60 +0000",
	"Wed, 31 Dec 2008 23:59:60 -0800 (leap)",
	"Sat, 30 Jun 2012 23:59:60 +0000",
	"Tue, 1 Jun 2021 10:00:00 +0000 (" + strings.Repeat("x", 100000) + ")",
	"Tue, 1 Jun 2021 10:00:00 +0000 (" + strings.Repeat("(", 10000) + strings.Repeat(")", 10000) + ")",
	"Tue, 1 Jun 2021 10:00:00 +0000 Tue, 2 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 +0000(UTC)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (UTC)\t",
	"Tue, 1 Jun 2021 10:00:00 +0000 \t(UTC)",
	"Tue, 1 Jun 2021 10:00:00 +0000 (UTC",
	"Tue, 1 Jun 2021 10:00:00 +0000 UTC)",
	"Tue, 1 Jun 2021 10:00:00 +1",
	"Tue, 1 Jun 2021 10:00:00 +",
	"Tue, 1 Jun 2021 10:00:00 -",
	"Tue, 1 Jun 2021 10:00:00 +00:00",
	"Tue, 1 Jun 2021 10:00:00.123 +0000",
	"Tue, 1 Jun 2021 10:00:00,5 +0000",
	"Tue, 1 Jun 2021 1O:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 +0000\r\n\r\n",
	"Tue, 1 Jun 2021 10:00:00\n+0000",
	"Tue, 1 Jun \r\n 2021 10:00:00 +0000",
	"Mon, 1 Jun 2021 10:00:00 +0000",
	"Tue, 1 Jun 0 10:00:00 +0000",
	"Tue, 1 Jun 2021 10:00:00 +0000 \xef\xbb\xbf",
	"\xef\xbb\xbfTue, 1 Jun 2021 10:00:00 +0000",
	"Tue,\u00a01 Jun 2021 10:00:00 +0000",
	"Tue, １ Jun 2021 10:00:00 +0000",
}

// checkDate fails unless parseDate gives what ParseDate gives (the zero
// time where ParseDate fails).
func checkDate(t *testing.T, v string) {
	t.Helper()
	want, err := mail.ParseDate(v)
	if err != nil {
		want = time.Time{}
	}
	want = obsZone(want)
	got := parseDate(v)
	gotName, gotOff := got.Zone()
	wantName, wantOff := want.Zone()
	if !got.Equal(want) || gotName != wantName || gotOff != wantOff ||
		got.Location().String() != want.Location().String() || got.IsZero() != want.IsZero() {
		t.Fatalf("parseDate(%q) = %v (%q %d), ParseDate gives %v (%q %d)", v, got, gotName, gotOff, want, wantName, wantOff)
	}
}

func TestParseDateMatchesParseDate(t *testing.T) {
	for _, v := range dateCorpus {
		checkDate(t, v)
	}
	// In a zone other than UTC too: time.Parse gives Local a date whose
	// offset is Local's at that time.
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Logf("no zone data for %s: %v", zone, err)
			continue
		}
		saved := time.Local
		time.Local = loc
		for _, v := range append(dateCorpus, "Tue, 1 Jun 2021 10:00:00 +0200", "Tue, 1 Dec 2021 10:00:00 +0100 (CET)",
			"Tue, 1 Jun 2021 10:00:00 -0400", "Tue, 1 Jun 2021 10:00:00 +0530") {
			checkDate(t, v)
		}
		time.Local = saved
	}
}

// TestParseDateFastPath: the usual forms must take the fast path, or it
// saves nothing.
func TestParseDateFastPath(t *testing.T) {
	for _, v := range dateCorpus[:17] {
		if layout, _ := fastDateLayout(v); layout == "" {
			t.Errorf("%q does not take the fast path", v)
		}
	}
	for _, v := range dateCorpus[17:] {
		if layout, n := fastDateLayout(v); layout != "" {
			// Allowed only where it still gives ParseDate's answer,
			// which TestParseDateMatchesParseDate checks.
			t.Logf("%q takes the fast path (%q, %d)", v, layout, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseDate("Tue, 1 Jun 2021 10:00:00 +0000 (UTC)") }); n > 1 {
		t.Errorf("parseDate of a usual date: %v allocations, want at most 1", n)
	}
}

func FuzzParseDate(f *testing.F) {
	for _, v := range dateCorpus {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) { checkDate(t, v) })
}

// extractEnvelope must give what go-imap's ExtractEnvelope gives (but for
// obsolete zones' offsets, obsZone).
func TestExtractEnvelopeMatchesGoIMAP(t *testing.T) {
	for _, raw := range structureCorpus {
		checkEnvelope(t, []byte(raw))
	}
	for _, v := range dateCorpus {
		checkEnvelope(t, []byte("Date: "+v+"\r\nFrom: a@example.test\r\n\r\nx\r\n"))
	}
}

func checkEnvelope(t *testing.T, raw []byte) {
	t.Helper()
	h := lenientHeader(raw)
	got, want := extractEnvelope(h), imapserver.ExtractEnvelope(h)
	want.Date = obsZone(want.Date) // parseDate gives EST its offset; go-imap does not
	if !reflect.DeepEqual(got, want) || !bytes.Equal(encodeEnvelope(got), encodeEnvelope(want)) {
		t.Fatalf("%q:\n got %#v\nwant %#v", raw, got, want)
	}
}

func FuzzExtractEnvelope(f *testing.F) {
	for _, raw := range structureCorpus {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkEnvelope(t, raw) })
}

// refHeaderFields and refHeaderValue say what headerFields and headerValue
// returned before nextField (session 9), which must not change: the lines
// up to the first empty one, a line starting with a space or a tab joined
// to the field before it if there is one.
func refHeaderFields(header []byte) [][]byte {
	var fields [][]byte
	start := 0
	for _, line := range bytes.SplitAfter(header, []byte("\n")) {
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		continued := len(fields) > 0 && (line[0] == ' ' || line[0] == '\t')
		if continued {
			last := len(fields) - 1
			fields[last] = header[start-len(fields[last]) : start+len(line)]
		} else {
			fields = append(fields, header[start:start+len(line)])
		}
		start += len(line)
	}
	return fields
}

func refHeaderValue(header []byte, name string) string {
	for _, f := range refHeaderFields(header) {
		if strings.EqualFold(fieldName(f), name) {
			v := f[bytes.IndexByte(f, ':')+1:]
			v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
			v = bytes.ReplaceAll(v, []byte("\n"), nil)
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

func checkHeaderFields(t *testing.T, header []byte) {
	t.Helper()
	if got, want := headerFields(header), refHeaderFields(header); !reflect.DeepEqual(got, want) {
		t.Fatalf("headerFields(%q) = %q, want %q", header, got, want)
	}
	for _, name := range []string{"Content-Type", "Content-Transfer-Encoding", "Subject", "", "K"} {
		if got, want := headerValue(header, name), refHeaderValue(header, name); got != want {
			t.Fatalf("headerValue(%q, %q) = %q, want %q", header, name, got, want)
		}
	}
}

var headerCorpus = []string{
	"",
	"\r\n",
	" leading continuation\r\nSubject: x\r\n\r\n",
	"\tContent-Type: text/html\r\n more\r\n\r\n",
	"Content-Type: text/plain;\r\n charset=utf-8\r\n\tformat=flowed\r\nSubject: s\r\n\r\nbody",
	"content-type :  multipart/mixed; boundary=x \n\n",
	"CONTENT-TYPE: a/b\r\nContent-Type: c/d\r\n\r\n",
	"no colon line\r\nContent-Type: x/y\r\n",
	"Content-Type: x/y",
	"Subject: a\r\n   \r\nContent-Type: after blank-ish\r\n\r\n",
	"Subject: a\r\n\r\n\r\nContent-Type: in body\r\n",
	"Subject: a\rContent-Type: cr only\r\n\r\n",
	"\u212a: kelvin\r\nk: ascii\r\n\r\n",
	"\u00a0Content-Type\u00a0: nbsp/name\r\n\r\n",
	"Content-Type: \u00a0x/y\u00a0\r\n\r\n",
	"Content-Type: a/b\n c\r\n\td\n\r\n",
	":\r\n: empty name\r\n\r\n",
}

func TestHeaderFieldsUnchanged(t *testing.T) {
	for _, h := range append(headerCorpus, structureCorpus...) {
		checkHeaderFields(t, []byte(h))
	}
}

func FuzzHeaderFields(f *testing.F) {
	for _, h := range append(headerCorpus, structureCorpus...) {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, header []byte) { checkHeaderFields(t, header) })
}

// TestSummarizeAllocs: a usual message costs few allocations (232 before
// issue 17: ParseDate's failed layouts, copied header names and values).
func TestSummarizeAllocs(t *testing.T) {
	raw := []byte("Return-Path: <a@example.org>\r\nFrom: \"Ann Example\" <a@example.org>\r\nTo: Bob <b@example.test>\r\n" +
		"Subject: report\r\nDate: Tue, 1 Jun 2021 10:00:00 +0000\r\nMessage-ID: <1234@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n")
	n := testing.AllocsPerRun(100, func() { Summarize(raw) })
	t.Logf("Summarize: %v allocations", n)
	if n > 120 {
		t.Errorf("Summarize: %v allocations, want at most 120", n)
	}
}

// TestObsoleteZones: RFC 5322 4.3's zone names have their offsets (ParseDate
// read them as +0000 unless the local zone has the name), as Dovecot reads
// them; others, and a numeric zone, are left alone.
func TestObsoleteZones(t *testing.T) {
	for v, want := range map[string]string{
		"7 Dec 26 01:00 EST":             "2026-12-07T06:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 PDT":   "2026-12-07T08:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 CST":   "2026-12-07T07:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 GMT":   "2026-12-07T01:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 +0000": "2026-12-07T01:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 -0500": "2026-12-07T06:00:00Z",
		"Mon, 7 Dec 2026 01:00:00 (EST)": "0001-01-01T00:00:00Z",
	} {
		if got := parseDate(v).UTC().Format(time.RFC3339); got != want {
			t.Errorf("parseDate(%q) = %s, want %s", v, got, want)
		}
	}
	if name, off := parseDate("7 Dec 26 01:00 EST").Zone(); name != "EST" || off != -5*3600 {
		t.Errorf("zone %s %d", name, off)
	}
}
