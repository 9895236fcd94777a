package imapfront

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
)

// innerEnvelopes reads the envelope of each message/rfc822 part of a
// message's body structure as the message's own is read (extractEnvelope,
// envelopeGroups: groups, a local part alone, a source route as addr-adl,
// the Date field's text), in place of go-imap's, which drops groups and
// the addresses it cannot parse (a source route made the From NIL), as
// Dovecot 2.3 gives them. A message without such a part is not read again;
// a multipart's body is split once, and only the parts holding one are
// read.
func innerEnvelopes(raw []byte, bs imap.BodyStructure) {
	if !hasRFC822(bs, 0) {
		return
	}
	root := parseMessage(raw)
	if _, multi := bs.(*imap.BodyStructureMultiPart); multi {
		innerWalk(root, bs, 0)
	} else if e, ok := root.child(1); ok {
		innerWalk(e, bs, 0)
	}
}

// hasRFC822 reports whether bs holds a message/rfc822 part.
func hasRFC822(bs imap.BodyStructure, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children {
			if hasRFC822(c, depth+1) {
				return true
			}
		}
	case *imap.BodyStructureSinglePart:
		return bs.MessageRFC822 != nil
	}
	return false
}

// innerWalk is innerEnvelopes for the part e whose structure is bs.
func innerWalk(e entity, bs imap.BodyStructure, depth int) {
	if depth > maxDepth {
		return
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		t, params := e.mediaType()
		if !strings.HasPrefix(t, "multipart/") {
			return
		}
		parts := splitMultipart(e.body, params["boundary"])
		for i, c := range bs.Children {
			if i >= len(parts) {
				break
			}
			if hasRFC822(c, depth+1) {
				ce := parseEntity(parts[i])
				ce.digest = t == "multipart/digest"
				innerWalk(ce, c, depth+1)
			}
		}
	case *imap.BodyStructureSinglePart:
		m := bs.MessageRFC822
		if m == nil {
			return
		}
		if t, _ := e.mediaType(); t != "message/rfc822" && t != "message/global" {
			return // not the part go-imap read (a broken multipart)
		}
		inner := parseMessage(e.body)
		h, _, err := readHeader(inner.header)
		if err != nil {
			return // go-imap's envelope is kept
		}
		env := extractEnvelope(h)
		envelopeGroups(env, gomessage.Header{Header: h})
		m.Envelope = env
		if !hasRFC822(m.BodyStructure, depth+1) {
			return
		}
		if _, multi := m.BodyStructure.(*imap.BodyStructureMultiPart); multi {
			innerWalk(inner, m.BodyStructure, depth+1)
		} else if ce, ok := inner.child(1); ok {
			innerWalk(ce, m.BodyStructure, depth+1)
		}
	}
}
