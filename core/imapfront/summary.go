package imapfront

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Summarize parses a message and returns its RFC 3501 ENVELOPE and
// BODYSTRUCTURE in Mailferry's compact cache encoding, for
// store.Options.Summarize. It never fails: for a message that cannot be
// parsed it returns what could be made of it (at worst an empty envelope and
// a text/plain structure), so that the message is stored and served all the
// same and never parsed again.
func Summarize(raw []byte) (envelope, structure []byte) {
	env, bs := summarize(raw)
	return encodeEnvelope(env), encodeStructure(bs)
}

// summarize extracts the envelope and body structure, best effort, never
// panicking.
func summarize(raw []byte) (env *imap.Envelope, bs imap.BodyStructure) {
	defer func() {
		if recover() != nil {
			env, bs = &imap.Envelope{}, plainStructure(raw)
		}
	}()
	h, body, ok := summaryHeader(raw)
	var err error
	if !ok {
		h, body, err = readHeader(raw)
	}
	return summarizeHeader(raw, h, body, err)
}

// summarizeHeader is summarize once raw's header is read: h, body and err
// are what readHeader made of it (or summaryHeader, for the fields the
// summary reads).
func summarizeHeader(raw []byte, h textproto.Header, body []byte, err error) (env *imap.Envelope, bs imap.BodyStructure) {
	if err != nil {
		h = salvageHeader(raw)
	}
	env = extractEnvelope(h)
	envelopeGroups(env, gomessage.Header{Header: h})
	if tooDeep(parseMessage(raw), maxDepth) {
		return env, plainStructure(raw)
	}
	bs = sanitizeStructure(bodyStructure(raw, h, body, err), 0)
	if bs == nil {
		bs = plainStructure(raw)
	}
	return env, bs
}

// extractEnvelope is imapserver.ExtractEnvelope, with the Date field read
// by parseDate (the same time, without ParseDate's failed layouts).
func extractEnvelope(h textproto.Header) *imap.Envelope {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	subject, _ := mh.Subject()
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	return &imap.Envelope{
		Date:      parseDate(mh.Get("Date")),
		Subject:   subject,
		From:      envelopeAddresses(mh, "From"),
		Sender:    envelopeAddresses(mh, "Sender"),
		ReplyTo:   envelopeAddresses(mh, "Reply-To"),
		To:        envelopeAddresses(mh, "To"),
		Cc:        envelopeAddresses(mh, "Cc"),
		Bcc:       envelopeAddresses(mh, "Bcc"),
		InReplyTo: inReplyTo,
		MessageID: messageID,
	}
}

// envelopeAddresses is imapserver's parseAddressList: the addresses of field
// k that have an '@' (envelopeGroups then reads the fields with groups).
func envelopeAddresses(mh mail.Header, k string) []imap.Address {
	addrs, _ := mh.AddressList(k)
	var l []imap.Address
	for _, addr := range addrs {
		mailbox, host, ok := strings.Cut(addr.Address, "@")
		if !ok {
			continue
		}
		l = append(l, imap.Address{Name: addr.Name, Mailbox: mailbox, Host: host})
	}
	return l
}

// bodyStructure is imapserver.ExtractBodyStructure, made cheap for a
// message that is a single part: that part's body is the tail of raw, so
// its size and lines are counted in place rather than read into a copy.
// Anything else goes to go-imap.
// h, body and herr are what readHeader made of raw.
func bodyStructure(raw []byte, h textproto.Header, body []byte, herr error) imap.BodyStructure {
	if herr != nil {
		return imapserver.ExtractBodyStructure(bytes.NewReader(raw))
	}
	header := gomessage.Header{Header: h}
	mediaType, params, _ := header.ContentType()
	primary, sub, _ := strings.Cut(mediaType, "/")
	if primary == "multipart" || mediaType == "message/rfc822" || mediaType == "message/global" {
		return imapserver.ExtractBodyStructure(bytes.NewReader(raw))
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        primary,
		Subtype:     sub,
		Params:      params,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    header.Get("Content-Transfer-Encoding"),
		Size:        uint32(len(body)),
	}
	if primary == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: int64(bytes.Count(body, []byte("\n")))}
	}
	ext := &imap.BodyStructureSinglePartExt{Location: header.Get("Content-Location")}
	if disp, dispParams, _ := header.ContentDisposition(); disp != "" {
		ext.Disposition = &imap.BodyStructureDisposition{Value: disp, Params: dispParams}
	}
	if v := header.Get("Content-Language"); v != "" {
		for _, l := range strings.Split(v, ",") {
			ext.Language = append(ext.Language, strings.TrimSpace(l))
		}
	}
	bs.Extended = ext
	return bs
}

// headerReaders are reused by readHeader (a parsed header keeps no
// reference to the reader's buffer: go-message copies each line).
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readHeader parses raw's header (go-message); body is the rest of raw.
func readHeader(raw []byte) (h textproto.Header, body []byte, err error) {
	rd := bytes.NewReader(raw)
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(rd)
	h, err = textproto.ReadHeader(br)
	body = raw[len(raw)-rd.Len()-br.Buffered():]
	br.Reset(nil)
	headerReaders.Put(br)
	return h, body, err
}

// summaryFields are the header fields summarize reads (the envelope's,
// and the single part's of bodyStructure), canonical.
var summaryFields = []string{"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"In-Reply-To", "Message-Id", "Content-Type", "Content-Id", "Content-Description",
	"Content-Transfer-Encoding", "Content-Location", "Content-Disposition", "Content-Language"}

// summaryHeader is readHeader for summarize, made cheap for the common
// header: it keeps only summaryFields (go-message allocates several times
// for every field, and a header of 30 fields has a dozen the summary
// reads), with the values go-message gives them. ok is false for a header
// that is not plain, which readHeader then parses: the first line
// continues nothing or has no colon, a field name is empty or holds a byte
// outside 33-126, a CR stands elsewhere than before a LF, no empty line
// ends the header, or more than maxSummaryFields fields are kept.
func summaryHeader(raw []byte) (h textproto.Header, body []byte, ok bool) {
	type field struct {
		name       string // one of summaryFields
		start, end int    // its value in raw: after the colon, to its last line's LF
	}
	var buf [maxSummaryFields]field
	kept := buf[:0]
	cur := -1 // the field in kept being read, or -1 for one not kept
	for pos := 0; ; {
		nl := bytes.IndexByte(raw[pos:], '\n')
		if nl < 0 {
			return h, nil, false // no empty line
		}
		next := pos + nl + 1
		line := raw[pos : pos+nl]
		if cr := bytes.IndexByte(line, '\r'); cr >= 0 {
			if cr != len(line)-1 {
				return h, nil, false
			}
			line = line[:cr]
		}
		switch {
		case len(line) == 0:
			body = raw[next:]
		case line[0] == ' ' || line[0] == '\t':
			if pos == 0 {
				return h, nil, false
			}
			if cur >= 0 {
				kept[cur].end = next
			}
			pos = next
			continue
		default:
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				return h, nil, false
			}
			key := bytes.Trim(line[:colon], " \t")
			if len(key) == 0 {
				return h, nil, false
			}
			for _, c := range key {
				if c < 33 || c > 126 {
					return h, nil, false
				}
			}
			cur = -1
			for _, name := range summaryFields {
				if equalFoldASCII(key, name) {
					if len(kept) == cap(kept) {
						return h, nil, false
					}
					cur = len(kept)
					kept = append(kept, field{name: name, start: pos + colon + 1, end: next})
					break
				}
			}
			pos = next
			continue
		}
		break
	}
	// go-message's Get gives a name's first field, Add's header the last
	// one added: the fields go in from the last.
	for i := len(kept) - 1; i >= 0; i-- {
		h.Add(kept[i].name, unfoldValue(raw[kept[i].start:kept[i].end]))
	}
	return h, body, true
}

// maxSummaryFields is how many fields summaryHeader keeps at most.
const maxSummaryFields = 32

// equalFoldASCII says whether b is s but for the case of ASCII letters.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// unfoldValue is go-message's value of a field whose raw value (after the
// colon, with its continuation lines and line ends) is v: each line without
// its line end and the spaces and tabs around it, the empty ones left out,
// joined by single spaces.
func unfoldValue(v []byte) string {
	var b strings.Builder
	b.Grow(len(v))
	for line := range bytes.Lines(v) {
		line = bytes.Trim(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'}), " \t")
		if len(line) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.Write(line)
	}
	return b.String()
}

// lenientHeader reads a message header, keeping the fields it can make sense
// of when the header as a whole is malformed.
func lenientHeader(raw []byte) textproto.Header {
	if h, _, err := readHeader(raw); err == nil {
		return h
	}
	return salvageHeader(raw)
}

// salvageHeader keeps the fields of a malformed header that it can make
// sense of (one line "Key: value" each, with continuations).
func salvageHeader(raw []byte) textproto.Header {
	var h textproto.Header
	hdr, _ := splitHeader(raw)
	var key, val string
	flush := func() {
		if key != "" {
			h.Add(key, strings.TrimSpace(val))
		}
		key, val = "", ""
	}
	for _, line := range strings.Split(string(hdr), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key != "" {
				val += " " + strings.TrimSpace(line)
			}
			continue
		}
		flush()
		if i := strings.IndexByte(line, ':'); i > 0 && !strings.ContainsAny(line[:i], " \t") {
			key, val = line[:i], line[i+1:]
		}
	}
	flush()
	return h
}

// plainStructure describes raw as a single text/plain part.
func plainStructure(raw []byte) imap.BodyStructure {
	_, body := splitHeader(raw)
	return &imap.BodyStructureSinglePart{
		Type: "text", Subtype: "plain",
		Params:   map[string]string{"charset": "us-ascii"},
		Encoding: "7bit",
		Size:     uint32(len(body)),
		Text:     &imap.BodyStructureText{NumLines: int64(bytes.Count(body, []byte("\n")))},
		Extended: &imap.BodyStructureSinglePartExt{},
	}
}

// sanitizeStructure makes a structure that go-imap's writer accepts: every
// part extended, every multipart with at least one child, types named.
func sanitizeStructure(bs imap.BodyStructure, depth int) imap.BodyStructure {
	if depth > maxDepth {
		return nil
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if bs == nil {
			return nil
		}
		if bs.Type == "" || bs.Subtype == "" {
			bs.Type, bs.Subtype = "application", "octet-stream"
		}
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if m := bs.MessageRFC822; m != nil {
			if m.Envelope == nil {
				m.Envelope = &imap.Envelope{}
			}
			m.BodyStructure = sanitizeStructure(m.BodyStructure, depth+1)
			if m.BodyStructure == nil {
				m.BodyStructure = plainStructure(nil)
			}
		}
		return bs
	case *imap.BodyStructureMultiPart:
		if bs == nil {
			return nil
		}
		var kids []imap.BodyStructure
		for _, c := range bs.Children {
			if c = sanitizeStructure(c, depth+1); c != nil {
				kids = append(kids, c)
			}
		}
		if len(kids) == 0 {
			return nil
		}
		bs.Children = kids
		if bs.Subtype == "" {
			bs.Subtype = "mixed"
		}
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureMultiPartExt{}
		}
		return bs
	}
	return nil
}

// The cache encoding: a version byte, then fields as uvarint lengths and
// numbers. It is Mailferry's own and read only by decodeEnvelope and
// decodeStructure, which reject anything malformed (the caller then parses
// the message again).
const (
	cacheVersion = 1
	maxDepth     = 32
)

var errCache = errors.New("imapfront: malformed cache entry")

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)  { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) strs(l []string) {
	e.uint(uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}

func (e *encoder) params(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) envelope(env *imap.Envelope) {
	if env == nil {
		env = &imap.Envelope{}
	}
	e.bool(!env.Date.IsZero())
	if !env.Date.IsZero() {
		_, off := env.Date.Zone()
		e.int(env.Date.Unix())
		e.int(int64(off))
	}
	e.str(env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.uint(uint64(len(l)))
		for _, a := range l {
			e.str(a.Name)
			e.str(a.Mailbox)
			e.str(a.Host)
		}
	}
	e.strs(env.InReplyTo)
	e.str(env.MessageID)
}

func (e *encoder) disposition(d *imap.BodyStructureDisposition) {
	e.bool(d != nil)
	if d != nil {
		e.str(d.Value)
		e.params(d.Params)
	}
}

func (e *encoder) structure(bs imap.BodyStructure) {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		e.b = append(e.b, 'S')
		e.str(bs.Type)
		e.str(bs.Subtype)
		e.params(bs.Params)
		e.str(bs.ID)
		e.str(bs.Description)
		e.str(bs.Encoding)
		e.uint(uint64(bs.Size))
		switch {
		case bs.MessageRFC822 != nil:
			e.b = append(e.b, 'M')
			e.envelope(bs.MessageRFC822.Envelope)
			e.structure(bs.MessageRFC822.BodyStructure)
			e.int(bs.MessageRFC822.NumLines)
		case bs.Text != nil:
			e.b = append(e.b, 'T')
			e.int(bs.Text.NumLines)
		default:
			e.b = append(e.b, '-')
		}
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureSinglePartExt{}
		}
		e.disposition(ext.Disposition)
		e.strs(ext.Language)
		e.str(ext.Location)
	case *imap.BodyStructureMultiPart:
		e.b = append(e.b, 'P')
		e.uint(uint64(len(bs.Children)))
		for _, c := range bs.Children {
			e.structure(c)
		}
		e.str(bs.Subtype)
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureMultiPartExt{}
		}
		e.params(ext.Params)
		e.disposition(ext.Disposition)
		e.strs(ext.Language)
		e.str(ext.Location)
	default:
		e.structure(plainStructure(nil))
	}
}

// encoderSize is room for a usual envelope or structure: their encoder
// then grows its buffer once or never.
const encoderSize = 256

func encodeEnvelope(env *imap.Envelope) []byte {
	e := &encoder{b: append(make([]byte, 0, encoderSize), cacheVersion)}
	e.envelope(env)
	return e.b
}

func encodeStructure(bs imap.BodyStructure) []byte {
	e := &encoder{b: append(make([]byte, 0, encoderSize), cacheVersion)}
	e.structure(bs)
	return e.b
}

// decoder reads a cache entry. Its strings are cut from s, one copy of
// the entry's bytes made once (newDecoder), rather than each copied out of
// b: a FETCH of ENVELOPE made one allocation per address field.
type decoder struct {
	b   []byte // what is left to read
	s   string // the bytes read from, b is its tail
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{b: b, s: string(b)} }

func (d *decoder) fail() { d.err = errCache; d.b = nil }

func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool { return d.byte() == 1 }

func (d *decoder) str() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	at := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[at : at+int(n)]
}

// count reads a list length, refusing one longer than the bytes left could
// hold (each element takes at least one byte).
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) strs() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	l := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, d.str())
	}
	return l
}

func (d *decoder) params() map[string]string {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *decoder) envelope() *imap.Envelope {
	env := &imap.Envelope{}
	if d.bool() {
		sec, off := d.int(), d.int()
		if off < -24*3600 || off > 24*3600 {
			d.fail()
			return env
		}
		env.Date = time.Unix(sec, 0).In(time.FixedZone("", int(off)))
	}
	env.Subject = d.str()
	lists := []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc}
	for _, l := range lists {
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			*l = append(*l, imap.Address{Name: d.str(), Mailbox: d.str(), Host: d.str()})
		}
	}
	env.InReplyTo = d.strs()
	env.MessageID = d.str()
	return env
}

func (d *decoder) disposition() *imap.BodyStructureDisposition {
	if !d.bool() {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.str(), Params: d.params()}
}

func (d *decoder) structure(depth int) imap.BodyStructure {
	if depth > maxDepth {
		d.fail()
		return nil
	}
	switch d.byte() {
	case 'S':
		bs := &imap.BodyStructureSinglePart{
			Type: d.str(), Subtype: d.str(), Params: d.params(),
			ID: d.str(), Description: d.str(), Encoding: d.str(),
		}
		size := d.uint()
		if size > 1<<32-1 {
			d.fail()
		}
		bs.Size = uint32(size)
		switch d.byte() {
		case 'M':
			m := &imap.BodyStructureMessageRFC822{Envelope: d.envelope()}
			m.BodyStructure = d.structure(depth + 1)
			m.NumLines = d.int()
			bs.MessageRFC822 = m
		case 'T':
			bs.Text = &imap.BodyStructureText{NumLines: d.int()}
		case '-':
		default:
			d.fail()
		}
		bs.Extended = &imap.BodyStructureSinglePartExt{Disposition: d.disposition(), Language: d.strs(), Location: d.str()}
		return bs
	case 'P':
		n := d.count()
		if n == 0 {
			d.fail()
			return nil
		}
		bs := &imap.BodyStructureMultiPart{}
		for i := 0; i < n && d.err == nil; i++ {
			bs.Children = append(bs.Children, d.structure(depth+1))
		}
		bs.Subtype = d.str()
		bs.Extended = &imap.BodyStructureMultiPartExt{Params: d.params(), Disposition: d.disposition(), Language: d.strs(), Location: d.str()}
		return bs
	default:
		d.fail()
		return nil
	}
}

// decodeEnvelope reads an envelope made by encodeEnvelope.
func decodeEnvelope(b []byte) (*imap.Envelope, error) {
	if len(b) == 0 || b[0] != cacheVersion {
		return nil, errCache
	}
	d := newDecoder(b[1:])
	env := d.envelope()
	if d.err != nil || len(d.b) != 0 {
		return nil, errCache
	}
	return env, nil
}

// decodeStructure reads a body structure made by encodeStructure.
func decodeStructure(b []byte) (imap.BodyStructure, error) {
	if len(b) == 0 || b[0] != cacheVersion {
		return nil, errCache
	}
	d := newDecoder(b[1:])
	bs := d.structure(0)
	if d.err != nil || len(d.b) != 0 || bs == nil {
		return nil, errCache
	}
	return bs, nil
}
