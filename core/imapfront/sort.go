package imapfront

import (
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	unorm "golang.org/x/text/unicode/norm"

	"mailferry/core/store"
)

// SORT (RFC 5256 3): the messages a search finds, ordered by ARRIVAL, CC,
// DATE, FROM, SIZE, SUBJECT or TO (or DISPLAYFROM and DISPLAYTO, RFC 5957
// SORT=DISPLAY), each maybe REVERSE; ties go by sequence
// number. Addresses and subjects compare with i;ascii-casemap, subjects by
// their base subject (RFC 5256 2.1). Sort keys come from the ENVELOPE cache;
// THREAD=REFERENCES also reads each found message's header.

var (
	_ imapserver.SessionSort   = (*session)(nil)
	_ imapserver.SessionThread = (*session)(nil)
)

// sortMsg is a message found by SORT or THREAD, with what orders it.
type sortMsg struct {
	seq  uint32
	uid  imap.UID
	m    *store.Message
	env  *imap.Envelope
	refs []string // References, or the first In-Reply-To (THREAD)
	// keys holds the string sort keys (sortString) of a SORT's criteria,
	// by their place in it; computed once per message before sorting.
	keys []string
}

// num is the message's number as the client asked: UID or sequence.
func (sm *sortMsg) num(kind imapserver.NumKind) uint32 {
	if kind == imapserver.NumKindUID {
		return uint32(sm.uid)
	}
	return sm.seq
}

// sentDate is the DATE sort key: the Date header in UTC, or INTERNALDATE
// when there is none (RFC 5256 3, DATE).
func (sm *sortMsg) sentDate() time.Time {
	if sm.env != nil && !sm.env.Date.IsZero() {
		return sm.env.Date.UTC()
	}
	return sm.m.InternalDate.UTC()
}

// found runs a search and returns the messages it finds, in sequence
// order, with their envelopes (and references, with refs).
func (s *session) found(criteria *imap.SearchCriteria, refs bool, what string) ([]*sortMsg, error) {
	v := s.sel
	v.staticCriteria(criteria)
	needRaw := criteriaNeedRaw(criteria) || refs
	all := make([]target, len(v.uids))
	for i, u := range v.uids {
		all[i] = target{seq: uint32(i + 1), uid: u}
	}
	now := time.Now()
	var out []*sortMsg
	budget := newRefsBudget() // thread_bound.go
	for _, run := range v.chunks(all) {
		msgs, err := v.messages(run, true, false)
		if err != nil {
			return nil, s.storeErr(err, what)
		}
		for i, m := range msgs {
			if m == nil {
				continue
			}
			sm := &searchMsg{m: m, seq: run[i].seq, recent: v.isRecent(run[i].uid), now: now}
			if needRaw {
				if sm.raw, err = s.srv.st.Blob(s.readCtx(), m.BlobKey); err != nil {
					return nil, s.storeErr(err, what)
				}
			}
			if !sm.matchSafe(criteria) {
				continue
			}
			env, err := decodeEnvelope(m.Envelope)
			if err != nil {
				if sm.raw == nil {
					if sm.raw, err = s.srv.st.Blob(s.readCtx(), m.BlobKey); err != nil {
						return nil, s.storeErr(err, what)
					}
				}
				env, _ = summarize(sm.raw)
			}
			f := &sortMsg{seq: run[i].seq, uid: run[i].uid, m: m, env: env}
			if refs {
				budget.keep(f, references(sm))
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// maxReferences is how many of a message's References THREAD takes.
const maxReferences = 1000

// references returns a message's References, or when it has none its
// first In-Reply-To (RFC 5256 REFERENCES step 1), without angle brackets.
func references(sm *searchMsg) (ids []string) {
	defer func() {
		if recover() != nil {
			ids = nil
		}
	}()
	h := mail.Header{Header: gomessage.Header{Header: lenientHeader(sm.raw)}}
	if ids, _ = h.MsgIDList("References"); len(ids) > 0 {
		// The last ones, the closest ancestors: a message from outside
		// may name millions, a container each (copied: a slice of them
		// kept every one alive).
		return lastRefs(ids, maxReferences)
	}
	if irt, _ := h.MsgIDList("In-Reply-To"); len(irt) > 0 {
		return irt[:1]
	}
	return nil
}

// Sort implements imapserver.SessionSort (RFC 5256 SORT; with options,
// RFC 5267 ESORT, whose MIN, MAX, COUNT and ALL the fork writes from the
// order returned, and RFC 5182 SAVE, kept here: see sortSaved).
func (s *session) Sort(kind imapserver.NumKind, criteria *imap.SearchCriteria, keys []imapserver.SortCriterion, options *imap.SearchOptions) ([]uint32, error) {
	msgs, err := s.found(criteria, false, "SORT")
	if err != nil {
		return nil, err
	}
	if options != nil && options.ReturnSave {
		defer func() { s.sel.searchRes = sortSaved(msgs, options) }()
	}
	// Each message's string keys once, not at each of the sort's n log n
	// comparisons: a base subject is a pass over the subject, a display
	// name a Unicode decomposition, and a message from outside may hold a
	// subject of megabytes.
	for _, sm := range msgs {
		sm.keys = make([]string, len(keys))
		for i, k := range keys {
			sm.keys[i] = sortString(sm, k.Key)
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		for n, k := range keys {
			c := compareKey(msgs[i], msgs[j], n, k.Key)
			if k.Reverse {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false // stable: sequence order
	})
	out := make([]uint32, len(msgs))
	for i, sm := range msgs {
		out[i] = sm.num(kind)
	}
	return out, nil
}

// sortSaved is what SORT RETURN (SAVE ...) keeps as "$": every message
// found, or with MIN and/or MAX but neither ALL nor COUNT only the first
// and/or last in the sort order (what MIN and MAX name in ESORT, RFC 5267
// 3; RFC 5182 2.1 for SEARCH). msgs are sorted when it runs.
func sortSaved(msgs []*sortMsg, options *imap.SearchOptions) imap.UIDSet {
	var out imap.UIDSet
	if len(msgs) == 0 {
		return out
	}
	if options.ReturnAll || options.ReturnCount || !(options.ReturnMin || options.ReturnMax) {
		for _, sm := range msgs {
			out.AddNum(sm.uid)
		}
		return out
	}
	if options.ReturnMin {
		out.AddNum(msgs[0].uid)
	}
	if options.ReturnMax {
		out.AddNum(msgs[len(msgs)-1].uid)
	}
	return out
}

// compareKey compares two messages by the sort key at place n of a SORT's
// criteria.
func compareKey(a, b *sortMsg, n int, key imapserver.SortKey) int {
	switch key {
	case imapserver.SortKeyArrival:
		return a.m.InternalDate.Compare(b.m.InternalDate)
	case imapserver.SortKeyDate:
		return a.sentDate().Compare(b.sentDate())
	case imapserver.SortKeySize:
		return cmpInt(a.m.Size, b.m.Size)
	}
	return strings.Compare(a.keys[n], b.keys[n])
}

// sortString is a message's value for a sort key compared as a string:
// SUBJECT, FROM, TO, CC, DISPLAYFROM and DISPLAYTO ("" for the others).
func sortString(sm *sortMsg, key imapserver.SortKey) string {
	switch key {
	case imapserver.SortKeySubject:
		s, _ := baseSubject(sm.env.Subject)
		return asciiCasemap(s)
	case imapserver.SortKeyFrom:
		return firstMailbox(sm.env.From)
	case imapserver.SortKeyTo:
		return firstMailbox(sm.env.To)
	case imapserver.SortKeyCc:
		return firstMailbox(sm.env.Cc)
	case imapserver.SortKeyDisplayFrom:
		return firstDisplay(sm.env.From)
	case imapserver.SortKeyDisplayTo:
		return firstDisplay(sm.env.To)
	}
	return ""
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// firstMailbox is the addr-mailbox of the first address (RFC 5256 3, FROM,
// TO, CC), for i;ascii-casemap comparison; "" when there is none. The first
// address of a list opening with a group is the group's start, whose
// addr-mailbox is the group's name, as Dovecot 2.3 takes it (imaptest
// "sort-addresses").
func firstMailbox(l []imap.Address) string {
	if len(l) == 0 {
		return ""
	}
	return asciiCasemap(l[0].Mailbox)
}

// firstDisplay is the DISPLAYFROM and DISPLAYTO sort value (RFC 5957 3):
// the first address's display name (addr-name, its RFC 2047 encoded words
// decoded), or when it has none its addr-spec ("mailbox@host"), or for a
// group the group's name (as Dovecot 2.3 takes it); "" when there is no
// address. Display names are what people read, in every script: they
// compare with i;unicode-casemap (RFC 5051: titlecase, then NFKD), as in
// Dovecot, so that "Émile" sorts with the E's, not after "Zed".
func firstDisplay(l []imap.Address) string {
	if len(l) == 0 {
		return ""
	}
	a := l[0]
	v := a.Name
	switch {
	case v != "":
	case a.Host == "":
		v = a.Mailbox
	default:
		v = a.Mailbox + "@" + a.Host
	}
	return unicodeCasemap(v)
}

// unicodeCasemap is the i;unicode-casemap comparator's key (RFC 5051 2):
// each character titlecased, then the string fully decomposed (NFKD); keys
// compare as octets.
func unicodeCasemap(s string) string {
	return unorm.NFKD.String(strings.Map(unicode.ToTitle, s))
}

// asciiCasemap is the i;ascii-casemap comparator's key (RFC 4790 9.2: each
// ASCII lower-case letter made upper case; keys compare as octets), the
// comparator of SORT's SUBJECT, FROM, TO and CC (RFC 5256 3). Upper case,
// not lower: "[" and "_" sort after the letters, as in Dovecot (imaptest
// "sort-subject").
func asciiCasemap(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// asciiLower folds ASCII letters only, to match keywords ("re", "fwd").
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// baseSubject extracts the base subject of RFC 5256 2.1 from a subject
// already decoded to UTF-8 (step 1's first half), and reports whether the
// subject marked a reply or forward (a subj-refwd, "(fwd)" trailer or
// "[fwd: ...]" wrapper).
func baseSubject(subject string) (base string, reply bool) {
	s := strings.Join(strings.Fields(subject), " ") // step 1: one space
	for {
		// Step 2: trailing "(fwd)" and whitespace.
		for {
			s = strings.TrimRight(s, " ")
			if len(s) >= 5 && asciiLower(s[len(s)-5:]) == "(fwd)" {
				s, reply = s[:len(s)-5], true
				continue
			}
			break
		}
		// Steps 3 to 5: leaders, then a blob, until nothing changes.
		for {
			changed := false
			for {
				if strings.HasPrefix(s, " ") {
					s, changed = s[1:], true
					continue
				}
				if rest, ok := cutRefwd(s); ok {
					s, reply, changed = rest, true, true
					continue
				}
				break
			}
			// Every leading blob that leaves something: the leader
			// loop above, run again after one, would only fail again at
			// the same place, a pass over the blobs each time (a subject
			// of thousands of blobs took seconds).
			for {
				rest, ok := cutBlob(s)
				if !ok || rest == "" {
					break
				}
				s, changed = rest, true
			}
			if !changed {
				break
			}
		}
		// Step 6: "[fwd: ...]".
		if len(s) >= 6 && asciiLower(s[:5]) == "[fwd:" && strings.HasSuffix(s, "]") {
			s, reply = strings.TrimSpace(s[5:len(s)-1]), true
			continue
		}
		return s, reply
	}
}

// cutBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " "), true
}

// cutRefwd removes a leading subj-leader's *subj-blob subj-refwd:
// blobs, then "re", "fw" or "fwd", *WSP, an optional blob and ":".
func cutRefwd(s string) (string, bool) {
	t := s
	for {
		rest, ok := cutBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	// Only the leader's letters are folded: folding the whole rest made
	// each "Re:" a pass over the subject, one of "Re: " a megabyte long
	// minutes of a core.
	switch {
	case hasPrefixFold(t, "re"):
		t = t[2:]
	case hasPrefixFold(t, "fwd"):
		t = t[3:]
	case hasPrefixFold(t, "fw"):
		t = t[2:]
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if rest, ok := cutBlob(t); ok {
		t = rest
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}

// hasPrefixFold reports whether s begins with prefix, a lower-case ASCII
// word, in any case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && asciiLower(s[:len(prefix)]) == prefix
}
