package dkim

import (
	"bytes"
	"strings"
)

// maxFields bounds the header fields scanHeader collects: a header of more
// fields than this is only partly looked at (the signing and DMARC code only
// need names and the From field, which come early in real mail).
const maxFields = 1000

// field is one header field as found in a message.
type field struct {
	// name is the field name as written (case kept); empty for a line that
	// is not a valid "name: value" field.
	name string
	// raw is the value after the colon with its continuation lines, as
	// written (line ends included but the last).
	raw []byte
	// rawStart is raw's offset in the message.
	rawStart int
}

// value is the field's unfolded value: raw without CR and LF (RFC 5322
// section 2.2.3).
func (f field) value() string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(string(f.raw))
}

// scanHeader reads the header section of msg (RFC 5322 section 2.2): fields
// up to the first empty line, a line starting with a space or tab
// continuing the previous one. Lines may end in CRLF or a bare LF. It
// returns at most maxFields fields, and whether the header section ended
// with an empty line (false: the message is all header, or has more fields
// than maxFields). It never fails: malformed lines are fields without a
// name. Its cost is linear in the header's size.
func scanHeader(msg []byte) (fields []field, complete bool) {
	off := 0
	for off < len(msg) {
		end := len(msg)
		next := len(msg)
		if i := bytes.IndexByte(msg[off:], '\n'); i >= 0 {
			end, next = off+i, off+i+1
		}
		line := bytes.TrimSuffix(msg[off:end], []byte("\r"))
		lineStart := off
		off = next
		if len(line) == 0 {
			return fields, true
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(fields); n > 0 {
				// Extend the previous field's raw value over this line.
				f := &fields[n-1]
				f.raw = msg[f.rawStart : lineStart+len(line)]
			}
			continue
		}
		if len(fields) == maxFields {
			return fields, false
		}
		f := parseField(line)
		f.rawStart = lineStart + (len(line) - len(f.raw))
		fields = append(fields, f)
	}
	return fields, false
}

// parseField splits one (first) line of a header field.
func parseField(line []byte) field {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return field{raw: line}
	}
	name := bytes.TrimRight(line[:i], " \t") // RFC 5322 obsolete syntax allows WSP before the colon
	if len(name) == 0 {
		return field{raw: line}
	}
	for _, c := range name {
		// RFC 5322 section 2.2: printable US-ASCII except colon.
		if c < 33 || c > 126 {
			return field{raw: line}
		}
	}
	return field{name: string(name), raw: line[i+1:]}
}

// fieldsNamed returns the unfolded values of the fields called name (case
// insensitive), in order.
func fieldsNamed(fields []field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value())
		}
	}
	return out
}
