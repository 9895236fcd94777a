package imapfront

import (
	"net/mail"
	"time"
)

// parseDate reads a Date header field as net/mail.ParseDate does, giving
// exactly its result (the zero time where ParseDate fails; an obsolete
// zone name given its offset, obsZone), but cheaply for
// the form nearly every message carries, "[Day, ]D Mon YYYY hh:mm:ss ±hhmm"
// with at most a simple comment after it.
//
// ParseDate tries 24 layouts in turn with time.Parse, and every layout that
// fails allocates an error: a third of the allocations of a summary. For the
// common form it is known which layout is the first to succeed, so
// fastDateLayout checks the form and names that layout; the date is then
// parsed by time.Parse with it, as ParseDate would. Anything else, and any
// date time.Parse refuses (say, 30 Feb), goes to ParseDate itself.
func parseDate(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	if layout, n := fastDateLayout(v); layout != "" {
		if t, err := time.Parse(layout, v[:n]); err == nil {
			return t
		}
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return obsZone(t)
}

// obsZones are RFC 5322 4.3's obsolete zone names with their offsets
// (hours east of UTC).
var obsZones = map[string]int{"EDT": -4, "EST": -5, "CDT": -5, "CST": -6, "MDT": -6, "MST": -7, "PDT": -7, "PST": -8}

// obsZone gives a time ParseDate read with an obsolete zone name its
// offset: time.Parse takes a zone name it does not know (one that is not
// the local zone's) at offset 0, so "01:00 EST" was 01:00 UTC, five hours
// early for SORT (DATE), where Dovecot has it at 06:00 UTC (RFC 5322 4.3).
func obsZone(t time.Time) time.Time {
	name, off := t.Zone()
	h, ok := obsZones[name]
	if !ok || off != 0 {
		return t
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.FixedZone(name, h*3600))
}

// The first of ParseDate's layouts that a date of fastDateLayout's form
// matches: day, year, seconds and zone come first in their lists ("2"
// also reads a two-digit day), and a date starting with a day name fails
// every layout without one, which come first.
const (
	layoutDow   = "Mon, 2 Jan 2006 15:04:05 -0700"
	layoutNoDow = "2 Jan 2006 15:04:05 -0700"
)

var (
	dayNames   = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	monthNames = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// fastDateLayout reports whether v has the form
//
//	[Day ", "] 1*2DIGIT " " Mon " " 4DIGIT " " 2DIGIT ":" 2DIGIT ":" 2DIGIT " " ("+"/"-") 4DIGIT [rest]
//
// (names in their usual case), where rest is empty or one comment without
// nested parentheses, quoted pairs or line breaks, between spaces or tabs.
// For such a v ParseDate cuts the date after the zone (the first '+' or '-'
// is the zone's sign; no CR, LF or leading space to remove), skips the
// comment, and tries its layouts on v[:n]; fastDateLayout returns the first
// that can match, and n. Otherwise it returns "".
func fastDateLayout(v string) (layout string, n int) {
	s := v
	layout = layoutNoDow
	if len(s) >= 5 && s[3] == ',' && s[4] == ' ' && isName(s[:3], dayNames[:]) {
		s = s[5:]
		layout = layoutDow
	}
	// Day: one or two digits.
	d := 0
	for d < len(s) && d < 2 && isDigit(s[d]) {
		d++
	}
	if d == 0 {
		return "", 0
	}
	s = s[d:]
	// " Mon YYYY hh:mm:ss ±hhmm" is 24 bytes.
	if len(s) < 24 || s[0] != ' ' || !isName(s[1:4], monthNames[:]) || s[4] != ' ' ||
		!digits(s[5:9]) || s[9] != ' ' ||
		!digits(s[10:12]) || s[12] != ':' || !digits(s[13:15]) || s[15] != ':' || !digits(s[16:18]) ||
		s[18] != ' ' || (s[19] != '+' && s[19] != '-') || !digits(s[20:24]) {
		return "", 0
	}
	n = len(v) - len(s) + 24
	if !simpleComment(v[n:]) {
		return "", 0
	}
	return layout, n
}

// simpleComment reports whether s is empty or [WSP] "(" text ")" [WSP], the
// text holding no '(', ')', '\\', CR or LF.
func simpleComment(s string) bool {
	s = trimWSP(s)
	if s == "" {
		return true
	}
	if s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		switch s[i] {
		case '(', ')', '\\', '\r', '\n':
			return false
		}
	}
	return true
}

func trimWSP(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isName(s string, names []string) bool {
	for _, n := range names {
		if s == n {
			return true
		}
	}
	return false
}
