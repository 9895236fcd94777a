package imapfront

import (
	"encoding/binary"
	"errors"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
)

// The cache encoding: a version byte, then fields as uvarint lengths and
// numbers. It is Mailferry's own and read only by decodeEnvelope and
// decodeStructure, which reject anything malformed (the caller then parses
// the message again).
//
// Version 2 adds the envelope's RawDate (a bool, then the string) after its
// Date. Entries of version 1 are still read, their envelopes without
// RawDate (the date formatted from Date, as before): a message summarized
// before keeps that date rather than being read and parsed again at its
// next FETCH or SORT.
//
// Version 3 adds each address's Route (the obsolete source route,
// ENVELOPE's addr-adl) after its Host. Entries of versions 1 and 2 are
// still read, their addresses without Route: a message summarized before
// is served as it was (its route, if it had one, was not kept), rather
// than every message cached before being read and parsed again.
//
// Version 4 structures have RFC 2045's default charset, us-ascii, in each
// text part that names none (charsetDefault), and a multipart/digest's
// children without Content-Type as message/rfc822 (RFC 2046 5.1.5; fork
// change 54). An older structure is given the charset when read (a text
// part without one had none in its header); one holding a digest is
// rejected, so that the message is parsed again and its entry replaced
// (its children may have been read as text/plain).
const (
	cacheVersion = 4
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
	e.bool(env.RawDate != nil)
	if env.RawDate != nil {
		e.str(*env.RawDate)
	}
	e.str(env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.uint(uint64(len(l)))
		for _, a := range l {
			e.str(a.Name)
			e.str(a.Mailbox)
			e.str(a.Host)
			e.str(a.Route)
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
	b       []byte // what is left to read
	s       string // the bytes read from, b is its tail
	err     error
	version byte
}

func newDecoder(b []byte, version byte) *decoder {
	return &decoder{b: b, s: string(b), version: version}
}

// knownVersion says whether an entry starting with v can be read.
func knownVersion(v byte) bool { return v >= 1 && v <= cacheVersion }

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
	if d.version >= 2 && d.bool() {
		raw := d.str()
		env.RawDate = &raw
	}
	env.Subject = d.str()
	lists := []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc}
	for _, l := range lists {
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			a := imap.Address{Name: d.str(), Mailbox: d.str(), Host: d.str()}
			if d.version >= 3 {
				// Vetted as when parsed: an entry written before
				// validRoute (review1) holds the sender's bytes.
				if r := d.str(); r != "" {
					a.Route = validRoute(r)
				}
			}
			*l = append(*l, a)
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
	if len(b) == 0 || !knownVersion(b[0]) {
		return nil, errCache
	}
	d := newDecoder(b[1:], b[0])
	env := d.envelope()
	if d.err != nil || len(d.b) != 0 {
		return nil, errCache
	}
	return env, nil
}

// decodeStructure reads a body structure made by encodeStructure.
func decodeStructure(b []byte) (imap.BodyStructure, error) {
	if len(b) == 0 || !knownVersion(b[0]) {
		return nil, errCache
	}
	d := newDecoder(b[1:], b[0])
	bs := d.structure(0)
	if d.err != nil || len(d.b) != 0 || bs == nil {
		return nil, errCache
	}
	if b[0] < 4 {
		if hasDigest(bs, 0) {
			return nil, errCache
		}
		charsetDefault(bs, 0)
	}
	return bs, nil
}
