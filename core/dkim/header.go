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

// header is what scanHeader found.
type header struct {
	// fields are the first maxFields fields.
	fields []field
	// complete: the header section ends with an empty line (otherwise the
	// message is all header).
	complete bool
	// size is the header section's length in bytes, the empty line
	// included.
	size int
	// maxLines is the most lines one field spans.
	maxLines int
	// fromPast: a From field comes after the first maxFields fields (it is
	// not in fields; DMARC must not take the From it saw for the only one).
	fromPast bool
}

// Bounds on the header sections handed to go-msgauth, whose header reader
// joins continuation lines by repeated string concatenation (quadratic in
// a field's lines): larger headers are neither signed nor verified.
// Postfix refuses headers over 100 KiB by default (header_size_limit).
const (
	maxHeaderSize  = 256 << 10
	maxFieldLines  = 1000
	errHeaderLarge = "header section over 256 KiB or a field of over 1000 lines"
)

// tooLarge tells whether go-msgauth must not be given the message.
func (h header) tooLarge() bool { return h.size > maxHeaderSize || h.maxLines > maxFieldLines }

// scanHeader reads the header section of msg (RFC 5322 section 2.2): fields
// up to the first empty line, a line starting with a space or tab
// continuing the previous one. Lines may end in CRLF or a bare LF. It keeps
// the first maxFields fields. It never fails: malformed lines are fields
// without a name. Its cost is linear in the header's size.
func scanHeader(msg []byte) header {
	var h header
	off, lines := 0, 0
	for off < len(msg) {
		end := len(msg)
		next := len(msg)
		if i := bytes.IndexByte(msg[off:], '\n'); i >= 0 {
			end, next = off+i, off+i+1
		}
		line := bytes.TrimSuffix(msg[off:end], []byte("\r"))
		lineStart := off
		off = next
		h.size = off
		if len(line) == 0 {
			h.complete = true
			return h
		}
		if line[0] == ' ' || line[0] == '\t' {
			lines++
			h.maxLines = max(h.maxLines, lines)
			if n := len(h.fields); n > 0 && lines <= maxFieldLines {
				// Extend the previous field's raw value over this line.
				f := &h.fields[n-1]
				f.raw = msg[f.rawStart : lineStart+len(line)]
			}
			continue
		}
		lines = 1
		h.maxLines = max(h.maxLines, lines)
		if len(h.fields) == maxFields {
			if f := parseField(line); strings.EqualFold(f.name, "From") {
				h.fromPast = true
			}
			continue
		}
		f := parseField(line)
		f.rawStart = lineStart + (len(line) - len(f.raw))
		h.fields = append(h.fields, f)
	}
	return h
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
