package imapfront

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// CATENATE (RFC 4469): an APPEND's message made of TEXT literals and IMAP
// URLs (RFC 5092) of messages and parts in the user's own mailboxes, also
// within MULTIAPPEND (go-imap fork change 53 reads the parts and gives them
// to catenateMsg one by one). Horde's Imap_Client (IMP webmail) builds
// forwards and drafts with it, and Apple patched Dovecot to offer it to
// its mail clients.
//
// A URL is relative to the server ("/INBOX/;UID=5", RFC 5092), resolved in
// the session's own account: an absolute one (imap://bob@host/..., also
// with the session's own user, as Dovecot 2.3 refuses them), a mailbox that does not exist or is a level
// that only exists as a parent, a UIDVALIDITY that is not the mailbox's, a
// message that is not there (expunged), a part it has not, URLAUTH or
// EXPIRE (URLAUTH is not offered) are all answered NO [BADURL url], the
// same answer whatever the reason, and nothing is appended.
//
// The bytes a URL names are BODY[section]<partial> of the message, raw as
// FETCH BODY.PEEK[section] reads them (extractSection). The assembled
// message is bounded as an APPEND's literal (APPENDLIMIT: NO [TOOBIG]); the
// bytes it holds in memory are taken from the server's appendMem as they
// grow (NO [LIMIT] or [INUSE] past them); a message has at most
// maxCatenateParts parts, and the messages a command's URLs read from the
// store at most maxCatenateRead bytes in all (NO [LIMIT]), so that a URL
// to a large message repeated cannot make the server read it without end.

// maxCatenateParts bounds the parts of one CATENATE message.
const maxCatenateParts = 1000

// maxCatenateRead is how many times APPENDLIMIT the URLs of one APPEND
// command may read from the store (each URL reads its whole message,
// the last one kept for the next URL to the same message).
const maxCatenateRead = 4

var _ imapserver.AppendBatchCatenate = (*appendBatch)(nil)

// Catenate implements imapserver.AppendBatchCatenate.
func (b *appendBatch) Catenate(options *imap.AppendOptions) (imapserver.CatenateMessage, error) {
	flags, err := storeFlags(options.Flags)
	if err != nil {
		return nil, err
	}
	return &catenateMsg{b: b, flags: flags, date: options}, nil
}

// catenateMsg is one CATENATE message being assembled.
type catenateMsg struct {
	b     *appendBatch
	flags []string
	date  *imap.AppendOptions
	buf   []byte // the message so far; cap(buf) is held in b.held
	parts int
}

// grow makes room for n more bytes in buf, taking what it allocates from
// the server's appendMem; past APPENDLIMIT, TOOBIG.
func (c *catenateMsg) grow(n int64) error {
	s := c.b.s
	c.parts++
	if c.parts > maxCatenateParts {
		return imapErr(imap.ResponseCodeLimit, "CATENATE: at most %d parts in a message", maxCatenateParts)
	}
	want := int64(len(c.buf)) + n
	if want > int64(s.srv.limit) {
		return imapErr(imap.ResponseCodeTooBig, "CATENATE: the message would be larger than %d bytes (APPENDLIMIT)", s.srv.limit)
	}
	if want <= int64(cap(c.buf)) {
		return nil
	}
	next := max(want, min(2*int64(cap(c.buf)), int64(s.srv.limit)), 4096)
	if err := s.srv.appending.take(s.acct.ID, next-int64(cap(c.buf))); err != nil {
		return err
	}
	c.b.held += next - int64(cap(c.buf))
	grown := make([]byte, len(c.buf), next)
	copy(grown, c.buf)
	c.buf = grown
	return nil
}

// Text implements imapserver.CatenateMessage: a TEXT part.
func (c *catenateMsg) Text(r imap.LiteralReader) error {
	if err := c.grow(r.Size()); err != nil {
		return err // the fork reads and drops the literal
	}
	n := len(c.buf)
	c.buf = c.buf[:n+int(r.Size())]
	if _, err := io.ReadFull(r, c.buf[n:]); err != nil {
		return fmt.Errorf("imapfront: read CATENATE literal: %w", err)
	}
	return nil
}

// URL implements imapserver.CatenateMessage: a URL part.
func (c *catenateMsg) URL(raw string) error {
	b, err := c.b.resolve(raw)
	if err != nil {
		return err
	}
	if err := c.grow(int64(len(b))); err != nil {
		return err
	}
	c.buf = append(c.buf, b...)
	return nil
}

// End implements imapserver.CatenateMessage: the message is added to the
// batch as one read from a literal.
func (c *catenateMsg) End() error {
	b := c.b
	if len(b.msgs) >= maxBatch || b.bytes+int64(len(c.buf)) > maxBatchBytes {
		return imapErr(imap.ResponseCodeLimit, "Too many messages in one APPEND")
	}
	b.bytes += int64(len(c.buf))
	body := c.buf
	if body == nil {
		body = []byte{}
	}
	c.buf = nil
	return b.add(&store.NewMessage{Flags: c.flags, InternalDate: c.date.Time, Body: body})
}

// catURL is an IMAP URL to a message or a part of one (RFC 5092
// imessagepart), its mailbox name decoded.
type catURL struct {
	mailbox     string
	uidValidity uint32 // 0: not given
	uid         uint32
	section     *imap.FetchItemBodySection
}

// badURL is the answer to a URL that cannot be resolved (RFC 4469 4.1):
// the same whatever the reason, the URL as the client sent it, its
// characters outside url-resp-text (and "]", CR, LF) percent-encoded.
func badURL(raw string) error {
	var b strings.Builder
	for i := 0; i < len(raw) && b.Len() < 200; i++ {
		c := raw[i]
		if c <= 0x20 || c >= 0x7f || c == ']' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + b.String()),
		Text: "CATENATE: this URL names no message or part of yours"}
}

// errURL is a URL that does not parse or is not offered.
var errURL = errors.New("imapfront: bad IMAP URL")

// parseCatURL reads an IMAP URL relative to the server ("/mailbox...").
// An absolute one (imap://user@host/...) is refused, as Dovecot 2.3 does
// ("Relative URL required"): it could name another user or another
// server, and no client needs it to name its own mail.
func parseCatURL(raw string) (*catURL, error) {
	rest := raw
	if !strings.HasPrefix(rest, "/") {
		return nil, errURL
	}
	rest = rest[1:]
	// enc-mailbox: up to the first ";" (bchar has none) ...
	i := strings.IndexByte(rest, ';')
	if i < 0 {
		return nil, errURL
	}
	encMailbox, rest := rest[:i], rest[i:]
	u := &catURL{}
	if v, r, ok := cutParam(rest, ";UIDVALIDITY="); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, errURL
		}
		u.uidValidity, rest = uint32(n), r
	}
	// ... ending with "/" before ";UID=".
	encMailbox, ok := strings.CutSuffix(encMailbox, "/")
	if !ok && u.uidValidity == 0 {
		return nil, errURL
	}
	if u.uidValidity != 0 {
		if !strings.HasPrefix(rest, "/") {
			return nil, errURL
		}
		rest = rest[1:]
	}
	name, err := url.PathUnescape(encMailbox)
	if err != nil || name == "" || !utf8.ValidString(name) {
		return nil, errURL
	}
	u.mailbox = name
	v, rest, ok := cutParam(rest, ";UID=")
	if !ok {
		return nil, errURL
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return nil, errURL
	}
	u.uid = uint32(n)
	u.section = &imap.FetchItemBodySection{Peek: true}
	if v, r, ok := cutParam(rest, "/;SECTION="); ok {
		sec, err := url.PathUnescape(v)
		if err != nil {
			return nil, errURL
		}
		if err := parseSectionSpec(sec, u.section); err != nil {
			return nil, errURL
		}
		rest = r
	}
	if v, r, ok := cutParam(rest, "/;PARTIAL="); ok {
		off, size, hasSize := strings.Cut(v, ".")
		o, err := strconv.ParseUint(off, 10, 32)
		if err != nil {
			return nil, errURL
		}
		p := &imap.SectionPartial{Offset: int64(o), Size: -1}
		if hasSize {
			l, err := strconv.ParseUint(size, 10, 32)
			if err != nil || l == 0 {
				return nil, errURL
			}
			p.Size = int64(l)
		}
		u.section.Partial, rest = p, r
	}
	if rest != "" {
		// ;EXPIRE=, ;URLAUTH= (not offered), or anything else.
		return nil, errURL
	}
	return u, nil
}

// cutParam cuts a parameter ("/;SECTION=" and its value, up to the next
// "/" or ";") off the start of s, its name in any case.
func cutParam(s, name string) (value, rest string, ok bool) {
	if len(s) < len(name) || !strings.EqualFold(s[:len(name)], name) {
		return "", s, false
	}
	s = s[len(name):]
	end := strings.IndexAny(s, "/;")
	if end < 0 {
		end = len(s)
	}
	return s[:end], s[end:], true
}

// parseSectionSpec reads a section-text of RFC 3501 (what FETCH
// BODY[...] takes): "1.2", "HEADER", "TEXT", "2.MIME", "1.HEADER.FIELDS
// (From To)", "HEADER.FIELDS.NOT (X)".
func parseSectionSpec(s string, sec *imap.FetchItemBodySection) error {
	for s != "" && s[0] >= '0' && s[0] <= '9' {
		num, r, _ := strings.Cut(s, ".")
		n, err := strconv.ParseUint(num, 10, 31)
		if err != nil || n == 0 || len(sec.Part) >= 100 {
			return errURL
		}
		sec.Part = append(sec.Part, int(n))
		s = r
	}
	spec, fields, hasFields := strings.Cut(s, " ")
	switch strings.ToUpper(spec) {
	case "":
		if len(sec.Part) == 0 && hasFields {
			return errURL
		}
	case "HEADER":
		sec.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		sec.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(sec.Part) == 0 {
			return errURL
		}
		sec.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		sec.Specifier = imap.PartSpecifierHeader
		list, ok := strings.CutPrefix(fields, "(")
		if !hasFields || !ok {
			return errURL
		}
		list, ok = strings.CutSuffix(list, ")")
		names := strings.Fields(list)
		if !ok || len(names) == 0 {
			return errURL
		}
		if strings.EqualFold(spec, "HEADER.FIELDS") {
			sec.HeaderFields = names
		} else {
			sec.HeaderFieldsNot = names
		}
		return nil
	default:
		return errURL
	}
	if hasFields {
		return errURL
	}
	return nil
}

// resolve returns the bytes a CATENATE URL names, or NO [BADURL].
func (b *appendBatch) resolve(raw string) ([]byte, error) {
	s := b.s
	u, err := parseCatURL(raw)
	if err != nil {
		return nil, badURL(raw)
	}
	name, err := s.mailboxName(u.mailbox)
	if err != nil {
		return nil, badURL(raw)
	}
	mb, err := s.srv.st.Mailbox(s.ctx(), s.acct.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badURL(raw)
	} else if err != nil {
		return nil, s.storeErr(err, "CATENATE")
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return nil, badURL(raw)
	}
	m, err := s.srv.st.Message(s.ctx(), mb.ID, u.uid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badURL(raw)
	} else if err != nil {
		return nil, s.storeErr(err, "CATENATE")
	}
	msg := b.lastBlob
	if b.lastKey != m.BlobKey {
		b.dropLast()
		if b.catRead+m.Size > maxCatenateRead*int64(s.srv.limit) {
			return nil, imapErr(imap.ResponseCodeLimit, "CATENATE: the URLs of one APPEND read at most %d MiB of messages", maxCatenateRead*int64(s.srv.limit)>>20)
		}
		// The message read is held until the next one or the command's
		// end, which a client can make last (a synchronizing literal
		// after it): its bytes count in the account's APPEND memory
		// as the message assembled does (review1).
		if err := s.srv.appending.take(s.acct.ID, m.Size); err != nil {
			return nil, err
		}
		b.held += m.Size
		b.lastHeld = m.Size
		b.catRead += m.Size
		if msg, err = s.srv.st.Blob(s.ctx(), m.BlobKey); errors.Is(err, store.ErrNotFound) {
			return nil, badURL(raw) // expunged and its bytes gone meanwhile
		} else if err != nil {
			return nil, s.storeErr(err, "CATENATE")
		}
		b.lastBlob, b.lastKey, b.lastParts = msg, m.BlobKey, &partCache{}
	}
	// Its parts found once for all the URLs to it (section.go).
	out, ok := extractSectionIn(msg, u.section, b.lastParts)
	if !ok {
		return nil, badURL(raw)
	}
	return out, nil
}
