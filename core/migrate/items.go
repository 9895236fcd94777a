package migrate

import (
	"bytes"
	"net/mail"
)

// What a server may leave out of a message's FETCH response, and how the
// copy makes up for it (issue 14):
//
//   - FLAGS or INTERNALDATE in a FETCH response of their own, before or
//     after the body's (RFC 3501 7.4.2 lets a server split a message's
//     items): the responses of one UID within a command are merged, a later
//     one's items winning (a later FLAGS is an update);
//   - no INTERNALDATE at all: the message's Date: header, else the time of
//     the copy (store.NewMessage's zero date);
//   - no FLAGS at all: no flags (the server said none).
//
// The bytes are never changed: only their metadata is made up.

// maxHeaderScan bounds how much of a message is read for its Date: header.
const maxHeaderScan = 64 << 10

// mergeItems takes into p the items of later, a response for the same UID
// that came after p's.
func (p *pending) mergeItems(later *pending) {
	if later.gotFlags {
		p.flags, p.gotFlags = later.flags, true
	}
	if later.gotDate {
		p.date, p.gotDate = later.date, true
	}
}

// fillItems takes into p the items of earlier, a response for the same UID
// that came before p's, where p has none of its own.
func (p *pending) fillItems(earlier *pending) {
	if earlier == nil {
		return
	}
	if !p.gotFlags && earlier.gotFlags {
		p.flags, p.gotFlags = earlier.flags, true
	}
	if !p.gotDate && earlier.gotDate {
		p.date, p.gotDate = earlier.date, true
	}
}

// settleDate gives p, which came without INTERNALDATE, its Date: header's
// time (the zero time, "now" to the store, if it has none that parses).
func (p *pending) settleDate() {
	if p.gotDate || p.headerDate == "" {
		return
	}
	if t, err := mail.ParseDate(p.headerDate); err == nil {
		p.date = t
	}
}

// headerDate is the value of body's Date: header field ("" if none), read
// from the header section only (RFC 5322 2.2.3: folded lines unfolded).
func headerDate(body []byte) string {
	if len(body) > maxHeaderScan {
		body = body[:maxHeaderScan]
	}
	var val []byte
	in := false
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if in {
				val = append(append(val, ' '), bytes.TrimSpace(line)...)
			}
			continue
		}
		if in {
			break
		}
		if len(line) > 5 && bytes.EqualFold(line[:5], []byte("date:")) {
			in = true
			val = append(val, bytes.TrimSpace(line[5:])...)
		}
	}
	return string(val)
}
