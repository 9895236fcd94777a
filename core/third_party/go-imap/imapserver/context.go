package imapserver

import (
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// fork (FORK.md change 56): CONTEXT=SEARCH (RFC 5267 4): the PARTIAL and
// UPDATE return options of SEARCH, ADDTO and REMOVEFROM, CANCELUPDATE.

// SessionSearchContext is a Session that keeps SEARCH results up to date
// (RFC 5267 4.3). A Search with SearchOptions.ReturnUpdate registers the
// result under SearchOptions.Tag; the session then writes the changes
// with Conn.WriteSearchUpdate as it tells the client of the mailbox's
// changes. CancelUpdate drops the updates named by tags, all or none: an
// unknown tag is an error (answered NO), and then none is dropped.
type SessionSearchContext interface {
	Session
	CancelUpdate(tags []string) error
}

// parsePartialRange reads a PARTIAL range, "first:last" of two nz-numbers
// of 32 bits (RFC 5267 4.4); "last:first" is taken as "first:last", as
// Dovecot 2.3 does. Anything else ("1", "1:*", "0:5", "-1:-5", a number
// past 2^32-1) is a syntax error.
func parsePartialRange(s string) (*imap.SearchPartialRange, error) {
	bad := newClientBugError("PARTIAL range broken (first:last, two numbers from 1 to 4294967295)")
	var a, b string
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			a, b = s[:i], s[i+1:]
			break
		}
	}
	first, ok1 := parseNZNumber(a)
	last, ok2 := parseNZNumber(b)
	if !ok1 || !ok2 {
		return nil, bad
	}
	if first > last {
		first, last = last, first
	}
	return &imap.SearchPartialRange{First: first, Last: last}, nil
}

// parseNZNumber parses digits only (no sign) into a non-zero uint32.
func parseNZNumber(s string) (uint32, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// handleCancelUpdate reads CANCELUPDATE 1*(SP quoted) (RFC 5267 4.3.5).
func (c *Conn) handleCancelUpdate(dec *imapwire.Decoder) error {
	var tags []string
	for dec.SP() {
		var tag string
		if !dec.Quoted(&tag) {
			return newClientBugError("CANCELUPDATE takes quoted tags")
		}
		tags = append(tags, tag)
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if len(tags) == 0 {
		return newClientBugError("CANCELUPDATE takes quoted tags")
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	s, ok := c.session.(SessionSearchContext)
	if !ok {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	return s.CancelUpdate(tags)
}

// WriteSearchUpdate writes the changes of an updated SEARCH result (RFC
// 5267 4.3.3, 4.3.4): * ESEARCH (TAG "tag") [UID] REMOVEFROM (0 set)
// ADDTO (0 set), each part only when its set is not empty; position 0, as
// the result of a SEARCH has no order (Dovecot 2.3 writes the same).
// Sequence numbers in removeFrom are those before any EXPUNGE the session
// writes after it.
func (c *Conn) WriteSearchUpdate(tag string, uid bool, removeFrom, addTo imap.NumSet) error {
	empty := func(s imap.NumSet) bool { return s == nil || isNumSetEmpty(s) }
	if empty(removeFrom) && empty(addTo) {
		return nil
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if uid {
		enc.SP().Atom("UID")
	}
	if !empty(removeFrom) {
		enc.SP().Atom("REMOVEFROM").SP().Special('(').Number(0).SP().NumSet(removeFrom).Special(')')
	}
	if !empty(addTo) {
		enc.SP().Atom("ADDTO").SP().Special('(').Number(0).SP().NumSet(addTo).Special(')')
	}
	return enc.CRLF()
}

// writeNoUpdate writes * NO [NOUPDATE "tag"] text: the server will not keep
// this result up to date (RFC 5267 4.3.1).
func (c *Conn) writeNoUpdate(tag, text string) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("NO").SP().Special('[').Atom("NOUPDATE").SP().String(tag).Special(']').SP().Text(text)
	return enc.CRLF()
}

// writePartial writes PARTIAL (first:last set) of an ESEARCH, NIL for no
// number in the range.
func writePartial(enc *responseEncoder, r *imap.SearchPartialRange, nums imap.NumSet) {
	enc.SP().Atom("PARTIAL").SP().Special('(').Atom(fmt.Sprintf("%d:%d", r.First, r.Last)).SP()
	if nums == nil || isNumSetEmpty(nums) {
		enc.NIL()
	} else {
		enc.NumSet(nums)
	}
	enc.Special(')')
}
