package imapfront

import (
	"bufio"
	"bytes"
	"strings"
	"sync"

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
		return env, plainStructure(raw)
	}
	innerEnvelopes(raw, bs) // innerenvelope.go
	charsetDefault(bs, 0)
	return env, bs
}

// charsetDefault gives each text part of bs without a charset parameter
// RFC 2045's default, us-ascii (5.2; RFC 3501 7.4.2 and Dovecot 2.3 send
// it: `("charset" "us-ascii")`), so that a client does not guess another.
// A charset given, even empty or unknown, is kept as written.
func charsetDefault(bs imap.BodyStructure, depth int) {
	if depth > maxDepth {
		return
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children {
			charsetDefault(c, depth+1)
		}
	case *imap.BodyStructureSinglePart:
		if bs.MessageRFC822 != nil {
			charsetDefault(bs.MessageRFC822.BodyStructure, depth+1)
		}
		if !strings.EqualFold(bs.Type, "text") {
			return
		}
		for k := range bs.Params {
			if strings.EqualFold(k, "charset") {
				return
			}
		}
		p := make(map[string]string, len(bs.Params)+1)
		for k, v := range bs.Params {
			p[k] = v
		}
		p["charset"] = "us-ascii"
		bs.Params = p
	}
}

// hasDigest reports whether bs holds a multipart/digest.
func hasDigest(bs imap.BodyStructure, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if strings.EqualFold(bs.Subtype, "digest") {
			return true
		}
		for _, c := range bs.Children {
			if hasDigest(c, depth+1) {
				return true
			}
		}
	case *imap.BodyStructureSinglePart:
		if bs.MessageRFC822 != nil {
			return hasDigest(bs.MessageRFC822.BodyStructure, depth+1)
		}
	}
	return false
}

// extractEnvelope is imapserver.ExtractEnvelope, with the Date field read
// by parseDate (the same time, without ParseDate's failed layouts), and its
// text kept as RawDate, which the envelope carries (RFC 3501 7.4.2: the
// envelope's date is the header's string, as Dovecot sends it, also when
// it is no date): a header without Date has none (NIL).
func extractEnvelope(h textproto.Header) *imap.Envelope {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	subject, _ := mh.Subject()
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	return &imap.Envelope{
		RawDate:   imapserver.RawEnvelopeDate(h),
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
