package imapfront

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"mailferry/core/store"
)

// Search implements imapserver.Session (RFC 3501 6.4.4, RFC 4731 ESEARCH,
// RFC 5182 SEARCHRES). Flags, dates and sizes come from the store; header,
// body and text keys read the message bytes.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	v := s.sel
	if options.ReturnUpdate && v.hasUpdate(options.Tag) {
		// RFC 5267 4.3: an update is named by its tag (Dovecot: BAD too).
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Duplicate search update tag"}
	}
	v.staticCriteria(criteria)
	needRaw := criteriaNeedRaw(criteria)
	withModSeq := criteriaHasModSeq(criteria)
	if withModSeq {
		s.enableCondStore()
	}
	now := time.Now()
	var all []target
	for i, u := range v.uids {
		all = append(all, target{seq: uint32(i + 1), uid: u})
	}
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
		// the MODSEQs of the first and the last message found
		firstModSeq, lastModSeq uint64
		// PARTIAL (RFC 5267 4.4): the numbers at the range's positions,
		// the UIDs found there and the highest MODSEQ among them
		partial        = options.ReturnPartial
		partialFound   []uint32
		partialUIDs    imap.UIDSet
		partialModSeq  uint64
		partialVisited uint32
	)
	for _, run := range v.chunks(all) {
		msgs, err := v.messages(run, false, false)
		if err != nil {
			return nil, s.storeErr(err, "SEARCH")
		}
		for i, m := range msgs {
			if m == nil {
				continue
			}
			sm := &searchMsg{m: m, seq: run[i].seq, recent: v.isRecent(run[i].uid), now: now}
			if needRaw {
				if sm.raw, err = s.srv.st.Blob(s.readCtx(), m.BlobKey); err != nil {
					return nil, s.storeErr(err, "SEARCH")
				}
			}
			if !sm.matchSafe(criteria) {
				continue
			}
			uidSet.AddNum(run[i].uid)
			if partial != nil {
				partialVisited++
				if partialVisited >= partial.First && partialVisited <= partial.Last {
					n := run[i].seq
					if kind == imapserver.NumKindUID {
						n = uint32(run[i].uid)
					}
					partialFound = append(partialFound, n)
					partialUIDs.AddNum(run[i].uid)
					partialModSeq = max(partialModSeq, m.ModSeq)
				}
			}
			if withModSeq {
				// RFC 7162 3.1.5: the highest MODSEQ of the messages found.
				data.ModSeq = max(data.ModSeq, m.ModSeq)
				if firstModSeq == 0 {
					firstModSeq = m.ModSeq
				}
				lastModSeq = m.ModSeq
			}
			num := run[i].seq
			if kind == imapserver.NumKindUID {
				num = uint32(run[i].uid)
			} else {
				seqSet.AddNum(run[i].seq)
			}
			if data.Min == 0 || num < data.Min {
				data.Min = num
			}
			if num > data.Max {
				data.Max = num
			}
			data.Count++
		}
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if withModSeq {
		data.ModSeq = minMaxModSeq(data.ModSeq, firstModSeq, lastModSeq, options)
	}
	saved := uidSet
	if partial != nil {
		data.Partial = partialOf(partialFound, &imap.SearchPartialRange{First: 1, Last: uint32(len(partialFound))}, kind == imapserver.NumKindUID)
		if withModSeq && !options.ReturnCount {
			// The MODSEQ of the messages returned (and MIN's and MAX's),
			// as Dovecot 2.3 answers.
			data.ModSeq = partialModSeq
			if options.ReturnMin || options.ReturnMax {
				data.ModSeq = max(data.ModSeq, minMaxModSeq(0, firstModSeq, lastModSeq, &imap.SearchOptions{ReturnMin: options.ReturnMin, ReturnMax: options.ReturnMax}))
			}
		}
		if !options.ReturnCount {
			// SAVE with PARTIAL keeps the messages returned; with COUNT
			// too, all found (Dovecot 2.3).
			saved = partialUIDs
		}
	}
	if options.ReturnSave {
		v.searchRes = savedResult(saved, options)
	}
	if options.ReturnUpdate {
		data.NoUpdate = v.startUpdate(options.Tag, kind == imapserver.NumKindUID, criteria, uidSet)
	}
	return &data, nil
}

var _ imapserver.SessionSearchRes = (*session)(nil)

// ResetSearchRes implements imapserver.SessionSearchRes: a SEARCH with the
// SAVE result option that failed with NO leaves "$" empty (RFC 5182 2.1).
func (s *session) ResetSearchRes() {
	if s.sel != nil {
		s.sel.searchRes = nil
	}
}

// savedResult is what SEARCH RETURN (SAVE ...) keeps as "$" (RFC 5182
// 2.1): every message found, or with MIN and/or MAX but neither ALL nor
// COUNT only the lowest and/or highest.
func savedResult(found imap.UIDSet, options *imap.SearchOptions) imap.UIDSet {
	if options.ReturnAll || options.ReturnCount || !(options.ReturnMin || options.ReturnMax) || len(found) == 0 {
		return found
	}
	var out imap.UIDSet
	if options.ReturnMin {
		out.AddNum(found[0].Start)
	}
	if options.ReturnMax {
		out.AddNum(found[len(found)-1].Stop)
	}
	return out
}

// minMaxModSeq is the MODSEQ an ESEARCH answer carries: with MIN and/or
// MAX but neither ALL nor COUNT, the highest of the messages returned (the
// first found, the last found; RFC 4731 3.2, as Dovecot answers: imaptest
// "esearch-condstore"), else highest, that of all found (RFC 7162 3.1.5).
func minMaxModSeq(highest, first, last uint64, options *imap.SearchOptions) uint64 {
	if options == nil || options.ReturnAll || options.ReturnCount || !(options.ReturnMin || options.ReturnMax) {
		return highest
	}
	var m uint64
	if options.ReturnMin {
		m = first
	}
	if options.ReturnMax {
		m = max(m, last)
	}
	return m
}

// criteriaHasModSeq reports whether a search uses the MODSEQ key.
func criteriaHasModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if criteriaHasModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if criteriaHasModSeq(&c.Or[i][0]) || criteriaHasModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// staticCriteria resolves "*" and "$" in a search's number sets.
func (v *view) staticCriteria(c *imap.SearchCriteria) {
	var seqs []imap.SeqSet
	for _, set := range c.SeqNum {
		if imap.IsSearchRes(set) {
			c.UID = append(c.UID, v.searchRes)
			continue
		}
		n := uint32(len(v.uids))
		st := make(imap.SeqSet, 0, len(set))
		for _, r := range set {
			a, b := staticRange(r.Start, r.Stop, n)
			st = append(st, imap.SeqRange{Start: a, Stop: b})
		}
		seqs = append(seqs, st)
	}
	c.SeqNum = seqs
	for i, set := range c.UID {
		if imap.IsSearchRes(set) {
			c.UID[i] = append(imap.UIDSet{}, v.searchRes...)
			continue
		}
		c.UID[i] = v.staticUIDSet(set)
	}
	for i := range c.Not {
		v.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		v.staticCriteria(&c.Or[i][0])
		v.staticCriteria(&c.Or[i][1])
	}
}

func criteriaNeedRaw(c *imap.SearchCriteria) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		return true
	}
	for i := range c.Not {
		if criteriaNeedRaw(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if criteriaNeedRaw(&c.Or[i][0]) || criteriaNeedRaw(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// searchMsg is a message being matched against search keys.
type searchMsg struct {
	m      *store.Message
	seq    uint32
	raw    []byte
	header *mail.Header
	hay    *textHay  // what TEXT and BODY look in, once read
	recent bool      // \Recent to this session
	now    time.Time // when the command began (WITHIN's intervals count back from it)
	// load, when set, reads raw the first time a key needs it (an UPDATE
	// search matching a changed message again: context.go).
	load func() []byte
}

// bytes returns the message's bytes, read now if load says how.
func (sm *searchMsg) bytes() []byte {
	if sm.raw == nil && sm.load != nil {
		sm.raw = sm.load()
		sm.load = nil
	}
	return sm.raw
}

// hasFlag reports whether the message has a flag; \Recent is the
// session's (recent.go).
func (sm *searchMsg) hasFlag(f imap.Flag) bool {
	if isRecentFlag(f) {
		return sm.recent
	}
	return sm.m.HasFlag(string(f))
}

// matchSafe matches, counting a message whose parsing panics as no match.
func (sm *searchMsg) matchSafe(c *imap.SearchCriteria) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return sm.match(c)
}

func (sm *searchMsg) hdr() *mail.Header {
	if sm.header == nil {
		h := mail.Header{Header: gomessage.Header{Header: lenientHeader(sm.bytes())}}
		sm.header = &h
	}
	return sm.header
}

func (sm *searchMsg) match(c *imap.SearchCriteria) bool {
	m := sm.m
	for _, set := range c.SeqNum {
		if !set.Contains(sm.seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(m.UID)) {
			return false
		}
	}
	if !matchDate(m.InternalDate, c.Since, c.Before) {
		return false
	}
	// SAVEDATE (RFC 8514): every mailbox keeps save dates, so
	// SAVEDATESUPPORTED holds for every message.
	if !matchDate(m.SaveDate, c.SavedSince, c.SavedBefore) {
		return false
	}
	if !sm.matchWithin(c) {
		return false
	}
	for _, f := range c.Flag {
		if !sm.hasFlag(f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if sm.hasFlag(f) {
			return false
		}
	}
	if c.ModSeq != nil && m.ModSeq < c.ModSeq.ModSeq {
		return false
	}
	if c.Larger != 0 && m.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && m.Size >= c.Smaller {
		return false
	}
	for _, hf := range c.Header {
		if !matchFields(sm.hdr().FieldsByKey(hf.Key), hf.Value) && !sm.matchAddressField(hf.Key, hf.Value) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		t, err := sm.hdr().Date()
		if err != nil || t.IsZero() || !matchDate(t, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, text := range c.Text {
		if !sm.matchText(text, true) {
			return false
		}
	}
	for _, body := range c.Body {
		if !sm.matchText(body, false) {
			return false
		}
	}
	for i := range c.Not {
		if sm.match(&c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !sm.match(&c.Or[i][0]) && !sm.match(&c.Or[i][1]) {
			return false
		}
	}
	return true
}

// matchAddressField matches an address field (FROM, TO...) by its
// addresses as read with comments and groups (address.go), as Dovecot
// does: "user@host" finds "<user (c)@ (c) host>".
func (sm *searchMsg) matchAddressField(key, pattern string) bool {
	if pattern == "" || !addressHeaders[strings.ToLower(key)] {
		return false
	}
	pattern = strings.ToLower(pattern)
	fields := sm.hdr().FieldsByKey(key)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if matchAddresses(v, pattern) {
			return true
		}
	}
	return false
}

// matchWithin matches WITHIN's keys (RFC 5032): OLDER n holds for a
// message whose INTERNALDATE is at least n seconds before the command
// began, YOUNGER n for one at most n seconds before; whole seconds, time
// and zone counted (Dovecot 2.3 compares the same way). The intervals are
// at most 2^32-1 seconds (the parser reads a 32-bit number), so the
// subtraction cannot overflow.
func (sm *searchMsg) matchWithin(c *imap.SearchCriteria) bool {
	if c.Older == 0 && c.Younger == 0 {
		return true
	}
	now, d := sm.now.Unix(), sm.m.InternalDate.Unix()
	if c.Older != 0 && d > now-int64(c.Older) {
		return false
	}
	if c.Younger != 0 && d < now-int64(c.Younger) {
		return false
	}
	return true
}

// matchDate compares dates only, without zone (RFC 3501 6.4.4).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	if !before.IsZero() && !d.Before(time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	return true
}

func matchFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// matchText looks for a string, without case, in the decoded text parts of
// a message (and in its header fields for TEXT). A message go-message
// cannot read is searched as raw bytes. What it looks in is read once per
// message (textHay), however many TEXT and BODY keys the search holds:
// each key read and decoded the whole message again, so 400 keys cost 400
// parses of every message (6 s over 200 messages of 5 KB).
func (sm *searchMsg) matchText(pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	if sm.hay == nil {
		sm.hay = readHay(sm.bytes())
	}
	h := sm.hay
	p := []byte(strings.ToLower(pattern))
	if !h.parsed {
		if withHeader {
			if h.all == nil {
				h.all = bytes.ToLower(sm.bytes())
			}
			return bytes.Contains(h.all, p)
		}
		if h.body == nil {
			_, body := splitHeader(sm.bytes())
			h.body = bytes.ToLower(body)
		}
		return bytes.Contains(h.body, p)
	}
	if withHeader {
		for _, f := range h.fields {
			if strings.Contains(f, string(p)) {
				return true
			}
		}
	}
	for _, t := range h.texts {
		if bytes.Contains(t, p) {
			return true
		}
	}
	return false
}

// textHay is what TEXT and BODY keys look in, lower-cased: for a message
// go-message reads, the text of every header field of every part (TEXT
// only) and the decoded text parts, in the order they were searched one
// key at a time before; for one it cannot, the raw message and its body,
// each lowered when first asked for.
type textHay struct {
	parsed    bool
	fields    []string
	texts     [][]byte
	all, body []byte
}

func readHay(raw []byte) *textHay {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil || (err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err)) {
		return &textHay{}
	}
	h := &textHay{parsed: true}
	h.gather(e, 0)
	return h
}

// gather takes an entity's header fields and text, as matchEntity visited
// them: a multipart's parts up to the first it cannot read, an attached
// message's own, text parts' bodies (64 MiB at most each).
func (h *textHay) gather(e *gomessage.Entity, depth int) {
	if depth > maxDepth {
		return
	}
	fields := e.Header.Fields()
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		h.fields = append(h.fields, strings.ToLower(v))
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF || p == nil {
				return
			} else if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
				return
			}
			h.gather(p, depth+1)
		}
	}
	t, _, _ := e.Header.ContentType()
	if t == "message/rfc822" || t == "message/global" {
		br := bufio.NewReader(e.Body)
		if hdr, err := textproto.ReadHeader(br); err == nil {
			inner, _ := gomessage.New(gomessage.Header{Header: hdr}, br)
			if inner != nil {
				h.gather(inner, depth+1)
			}
		}
		return
	}
	if !strings.HasPrefix(t, "text/") {
		return
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	h.texts = append(h.texts, bytes.ToLower(b))
}
