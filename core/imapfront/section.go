package imapfront

import (
	"bytes"
	"mime"
	"strings"
	"unsafe"

	"github.com/emersion/go-imap/v2"
)

// This file finds RFC 3501 body sections (BODY[1.2.HEADER] and so on) in a
// message's raw bytes by offsets alone, so that every section is served
// exactly as stored: nothing is parsed into a structure and written back.

// entity is a MIME entity: its header (with the blank line that ends it, if
// any) and its body.
type entity struct {
	header, body []byte
	// digest is true when the entity is a part of a multipart/digest, where
	// the default type is message/rfc822 (RFC 2046 5.1.5).
	digest bool
	// root is true for a whole message (the top one or an encapsulated
	// one), whose part 1, when it is not a multipart, is its own body.
	root bool
	// pc, when set, remembers what was found in the message's bytes
	// (partCache).
	pc *partCache
}

// partCache remembers, for one message's bytes, how its entities split:
// the header and body of a message, the parts of a multipart, a media
// type. Many sections of one message (a FETCH of BODY[1] BODY[2] ..., the
// URLs of a CATENATE to its parts) then read its bytes once, not once per
// section: a command of 50 KiB names a part of a 40 MB message 3,000
// times, and each reading took 6 to 17 ms (review1). It is kept no longer
// than the bytes; they are never changed.
type partCache struct {
	ents  map[entityKey]entity  // parseMessage, parseEntity
	parts map[sliceKey][][]byte // splitMultipart
	types map[typeKey]mediaTypeOf
}

// sliceKey names a slice of the message's bytes: where it starts, its length.
type sliceKey struct {
	p *byte
	n int
}

func keyOf(b []byte) sliceKey { return sliceKey{unsafe.SliceData(b), len(b)} }

type entityKey struct {
	sliceKey
	root bool
}

type typeKey struct {
	sliceKey
	digest bool
}

type mediaTypeOf struct {
	t      string
	params map[string]string
}

// message is parseMessage(raw), remembered.
func (pc *partCache) message(raw []byte) entity { return pc.parse(raw, true) }

// entity is parseEntity(raw), remembered.
func (pc *partCache) entity(raw []byte) entity { return pc.parse(raw, false) }

func (pc *partCache) parse(raw []byte, root bool) entity {
	var k entityKey
	if pc != nil {
		k = entityKey{keyOf(raw), root}
		if e, ok := pc.ents[k]; ok {
			return e
		}
	}
	e := parseEntity(raw)
	e.root = root
	if pc == nil {
		return e
	}
	e.pc = pc
	if pc.ents == nil {
		pc.ents = map[entityKey]entity{}
	}
	pc.ents[k] = e
	return e
}

// multipart returns the parts of a multipart body (splitMultipart),
// remembered: their bytes only (24 bytes a part, as splitMultipart
// allocated each time before), each parsed when it is named (entity).
func (pc *partCache) multipart(body []byte, boundary string) [][]byte {
	if pc == nil {
		return splitMultipart(body, boundary)
	}
	k := keyOf(body)
	parts, ok := pc.parts[k]
	if !ok {
		parts = splitMultipart(body, boundary)
		if pc.parts == nil {
			pc.parts = map[sliceKey][][]byte{}
		}
		pc.parts[k] = parts
	}
	return parts
}

// splitHeader splits raw bytes at the first empty line; the header keeps
// the empty line. Without an empty line, all is header.
func splitHeader(raw []byte) (header, body []byte) {
	pos := 0
	for pos < len(raw) {
		nl := bytes.IndexByte(raw[pos:], '\n')
		if nl < 0 {
			break
		}
		line := raw[pos : pos+nl]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return raw[:pos+nl+1], raw[pos+nl+1:]
		}
		pos += nl + 1
	}
	return raw, nil
}

func parseEntity(raw []byte) entity {
	h, b := splitHeader(raw)
	return entity{header: h, body: b}
}

func parseMessage(raw []byte) entity {
	e := parseEntity(raw)
	e.root = true
	return e
}

// headerFields splits a raw header into its fields, each with its
// continuation lines and line ends, as stored. The ending empty line is not
// a field.
func headerFields(header []byte) [][]byte {
	var fields [][]byte
	for f, pos := nextField(header, 0); f != nil; f, pos = nextField(header, pos) {
		fields = append(fields, f)
	}
	return fields
}

// nextField returns the header field starting at pos, with its continuation
// lines (a line starting with a space or a tab continues the field before
// it, and is a field of its own only first in the header), and where the
// next field starts; nil at the ending empty line or the header's end.
func nextField(header []byte, pos int) (field []byte, next int) {
	start := pos
	for pos < len(header) {
		nl := bytes.IndexByte(header[pos:], '\n')
		end := len(header)
		if nl >= 0 {
			end = pos + nl + 1
		}
		line := header[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if pos > start && line[0] != ' ' && line[0] != '\t' {
			break
		}
		pos = end
	}
	if pos == start {
		return nil, pos
	}
	return header[start:pos], pos
}

func fieldName(field []byte) string {
	i := bytes.IndexByte(field, ':')
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(string(field[:i]))
}

// headerValue returns the unfolded value of the first field with that name.
// It copies that value only: it is called for every part of every message
// summarized or fetched.
func headerValue(header []byte, name string) string {
	bname := []byte(name)
	for f, pos := nextField(header, 0); f != nil; f, pos = nextField(header, pos) {
		i := bytes.IndexByte(f, ':')
		var fname []byte // fieldName(f), without copying it
		if i >= 0 {
			fname = bytes.TrimSpace(f[:i])
		}
		if bytes.EqualFold(fname, bname) {
			v := f[i+1:]
			if bytes.IndexByte(v, '\n') >= 0 {
				v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
				v = bytes.ReplaceAll(v, []byte("\n"), nil)
			}
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// mediaType returns an entity's lower-case media type and parameters,
// leniently.
func (e entity) mediaType() (string, map[string]string) {
	if e.pc == nil || len(e.header) == 0 {
		return e.readMediaType()
	}
	k := typeKey{keyOf(e.header), e.digest}
	mt, ok := e.pc.types[k]
	if !ok {
		mt.t, mt.params = e.readMediaType()
		if e.pc.types == nil {
			e.pc.types = map[typeKey]mediaTypeOf{}
		}
		e.pc.types[k] = mt
	}
	return mt.t, mt.params
}

func (e entity) readMediaType() (string, map[string]string) {
	v := headerValue(e.header, "Content-Type")
	if v == "" {
		if e.digest {
			return "message/rfc822", nil
		}
		return "text/plain", nil
	}
	if t, params, err := mime.ParseMediaType(v); err == nil {
		return t, params
	}
	t, rest, _ := strings.Cut(v, ";")
	params := map[string]string{}
	for _, p := range strings.Split(rest, ";") {
		k, val, ok := strings.Cut(p, "=")
		if ok {
			params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	return strings.ToLower(strings.TrimSpace(t)), params
}

// splitMultipart returns the parts of a multipart body (RFC 2046 5.1.1):
// the bytes between delimiter lines, without the line end that belongs to
// the next delimiter. An unterminated last part runs to the end.
func splitMultipart(body []byte, boundary string) [][]byte {
	if boundary == "" {
		return nil
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	pos := 0
	for pos < len(body) {
		nl := bytes.IndexByte(body[pos:], '\n')
		lineEnd := len(body)
		next := len(body)
		if nl >= 0 {
			lineEnd = pos + nl
			next = lineEnd + 1
		}
		line := bytes.TrimRight(body[pos:lineEnd], "\r")
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing || len(bytes.Trim(rest, " \t")) == 0 {
				if start >= 0 {
					end := pos
					if end > start && body[end-1] == '\n' {
						end--
						if end > start && body[end-1] == '\r' {
							end--
						}
					}
					parts = append(parts, body[start:end])
				}
				if closing {
					return parts
				}
				start = next
			}
		}
		pos = next
	}
	if start >= 0 && start <= len(body) {
		parts = append(parts, body[start:])
	}
	return parts
}

// child returns part n (1-based) of an entity, following RFC 3501 6.4.5
// part numbering: the parts of a multipart, the parts of an encapsulated
// message, and part 1 of a single-part entity being the entity itself.
func (e entity) child(n int) (entity, bool) {
	return e.childDepth(n, 0)
}

func (e entity) childDepth(n, depth int) (entity, bool) {
	if depth > maxDepth {
		return entity{}, false
	}
	t, params := e.mediaType()
	switch {
	case strings.HasPrefix(t, "multipart/"):
		parts := e.pc.multipart(e.body, params["boundary"])
		if n < 1 || n > len(parts) {
			return entity{}, false
		}
		c := e.pc.entity(parts[n-1])
		c.digest = t == "multipart/digest"
		return c, true
	case (t == "message/rfc822" || t == "message/global") && !e.root:
		// The parts of an encapsulated message number below its part.
		return e.pc.message(e.body).childDepth(n, depth+1)
	default:
		if n != 1 {
			return entity{}, false
		}
		e.root = false
		return e, true
	}
}

// findPart returns the entity a part path (such as 1.2) names in a raw
// message; an empty path names the message itself.
func findPart(raw []byte, path []int) (entity, bool) {
	return findPartIn(raw, path, nil)
}

// findPartIn is findPart remembering in pc (nil: nothing) what it found.
func findPartIn(raw []byte, path []int, pc *partCache) (entity, bool) {
	if len(path) > maxDepth {
		return entity{}, false
	}
	e := pc.message(raw)
	for _, n := range path {
		var ok bool
		if e, ok = e.child(n); !ok {
			return entity{}, false
		}
	}
	return e, true
}

// extractSection returns a body section of a raw message, byte for byte,
// with its partial range applied; ok is false when the section does not
// exist.
func extractSection(raw []byte, sec *imap.FetchItemBodySection) (out []byte, ok bool) {
	return extractSectionIn(raw, sec, nil)
}

// extractSectionIn is extractSection remembering in pc (nil: nothing)
// what it found in raw, for the next section of the same bytes.
func extractSectionIn(raw []byte, sec *imap.FetchItemBodySection, pc *partCache) (out []byte, ok bool) {
	e, ok := findPartIn(raw, sec.Part, pc)
	if !ok {
		return nil, false
	}
	if len(sec.Part) > 0 {
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			return partial(e.body, sec.Partial), true
		case imap.PartSpecifierMIME:
			return partial(e.header, sec.Partial), true
		}
		// HEADER and TEXT of a part name its encapsulated message.
		if t, _ := e.mediaType(); t == "message/rfc822" || t == "message/global" {
			e = e.pc.message(e.body)
		}
	}
	switch sec.Specifier {
	case imap.PartSpecifierNone:
		out = raw
	case imap.PartSpecifierText:
		out = e.body
	case imap.PartSpecifierHeader:
		out = e.header
		if len(sec.HeaderFields) > 0 || len(sec.HeaderFieldsNot) > 0 {
			out = filterHeader(e.header, sec.HeaderFields, sec.HeaderFieldsNot)
		}
	default:
		return nil, false
	}
	return partial(out, sec.Partial), true
}

// filterHeader keeps the fields named in keep (or, when keep is empty, those
// not named in drop), followed by the empty line (RFC 3501 6.4.5).
func filterHeader(header []byte, keep, drop []string) []byte {
	in := func(name string, l []string) bool {
		for _, k := range l {
			if strings.EqualFold(k, name) {
				return true
			}
		}
		return false
	}
	var out []byte
	for _, f := range headerFields(header) {
		name := fieldName(f)
		if (len(keep) > 0 && in(name, keep)) || (len(keep) == 0 && !in(name, drop)) {
			out = append(out, f...)
			if f[len(f)-1] != '\n' {
				out = append(out, '\r', '\n')
			}
		}
	}
	return append(out, '\r', '\n')
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset < 0 || p.Offset >= int64(len(b)) {
		return []byte{}
	}
	end := int64(len(b))
	if p.Size >= 0 && p.Offset+p.Size < end {
		end = p.Offset + p.Size
	}
	return b[p.Offset:end]
}

// tooDeep reports whether a message nests multiparts and encapsulated
// messages deeper than limit levels. go-message and go-imap walk such
// trees by recursion, so a hostile message could exhaust the stack.
func tooDeep(e entity, limit int) bool {
	if limit < 0 {
		return true
	}
	t, params := e.mediaType()
	switch {
	case strings.HasPrefix(t, "multipart/"):
		for _, p := range splitMultipart(e.body, params["boundary"]) {
			c := parseEntity(p)
			c.digest = t == "multipart/digest"
			if tooDeep(c, limit-1) {
				return true
			}
		}
	case t == "message/rfc822" || t == "message/global":
		return tooDeep(parseEntity(e.body), limit-1)
	}
	return false
}
