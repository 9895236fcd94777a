package imapfront

import (
	"bytes"
	"errors"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// Fetch implements imapserver.Session (RFC 3501 6.4.5, RFC 3516 BINARY).
// ENVELOPE and BODYSTRUCTURE come from the store's cache; message bytes are
// read only for body sections (and for a message with no usable cache).
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	v := s.sel
	if err := v.checkSeqSet(numSet); err != nil {
		return err
	}
	if options.ModSeq || options.ChangedSince != 0 {
		s.enableCondStore()
	}
	if options.Vanished {
		// RFC 7162 3.2.6: first the UIDs expunged since, then the changes.
		uids, _ := numSet.(imap.UIDSet)
		if imap.IsSearchRes(numSet) {
			uids = v.searchRes
		}
		if err := s.vanished(w, uids, options.ChangedSince); err != nil {
			return err
		}
	}
	ts := v.resolve(numSet)
	if len(ts) == 0 {
		return nil
	}
	markSeen := false
	if !v.readOnly {
		for _, bs := range options.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range options.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}
	if markSeen {
		// RFC 3501: fetching a body section without PEEK sets \Seen. Set it
		// first so that the FLAGS sent below are true.
		msgs, err := s.srv.st.StoreFlags(s.ctx(), v.mb.ID, uidsOf(ts), store.FlagsAdd, []string{`\Seen`})
		if err != nil {
			return s.storeErr(err, "FETCH")
		}
		for _, m := range msgs {
			uid := imap.UID(m.UID)
			v.reported[uid] = max(v.reported[uid], m.ModSeq)
		}
	}
	cache := options.Envelope || options.BodyStructure != nil
	needBody := len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 || options.Preview
	for _, run := range v.chunks(ts) {
		msgs, err := v.messages(run, cache, needBody)
		if err != nil {
			return s.storeErr(err, "FETCH")
		}
		var fixes []store.MessageCache
		wanted := func(m *store.Message) bool {
			// nil: expunged elsewhere, the client learns it later;
			// RFC 7162 3.1.4: only what changed since.
			return m != nil && (options.ChangedSince == 0 || m.ModSeq > options.ChangedSince)
		}
		ahead := 0 // msgs[:ahead] had their bytes read ahead
		for i, m := range msgs {
			if !wanted(m) {
				continue
			}
			if needBody && i >= ahead {
				ahead = s.readAhead(msgs, i, wanted)
			}
			fix, err := s.fetchOne(w, run[i].seq, m, options, markSeen, needBody)
			msgs[i] = nil // its bytes can go
			if errors.Is(err, errExpunged) {
				// Expunged by another session since it was read: answer
				// OK with what can be sent (RFC 3501 5.5, as Dovecot);
				// the client learns of the EXPUNGE later.
				continue
			} else if err != nil {
				return err
			}
			if fix != nil {
				fixes = append(fixes, *fix)
			}
		}
		if len(fixes) > 0 {
			if err := s.srv.st.SetMessageCaches(s.ctx(), fixes); err != nil {
				s.srv.log.Warn("imapfront: keep message cache", "err", err)
			}
		}
	}
	return nil
}

// fetchAheadBytes bounds the message bytes a FETCH reads ahead at once.
const fetchAheadBytes = 1 << 20

// readAhead has the store read the bytes of the wanted messages from
// msgs[i] on, up to fetchAheadBytes of them (at least msgs[i]), with as
// few reads as their places allow (store.ReadAhead: messages side by side
// in a pack in one read); it returns the index past them.
func (s *session) readAhead(msgs []*store.Message, i int, wanted func(*store.Message) bool) int {
	var batch []*store.Message
	var size int64
	j := i
	for ; j < len(msgs); j++ {
		m := msgs[j]
		if !wanted(m) {
			continue
		}
		if len(batch) > 0 && size+m.Size > fetchAheadBytes {
			break
		}
		batch = append(batch, m)
		size += m.Size
	}
	s.srv.st.ReadAhead(batch)
	return j
}

// fetchOne writes one FETCH response; it returns a cache entry to keep when
// it had to parse the message.
func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, m *store.Message, options *imap.FetchOptions, markSeen, needBody bool) (*store.MessageCache, error) {
	var raw []byte
	readRaw := func() ([]byte, error) {
		if raw == nil {
			b, err := s.srv.st.MessageBytes(s.readCtx(), m)
			if errors.Is(err, store.ErrNotFound) {
				return nil, errExpunged
			} else if err != nil {
				return nil, s.storeErr(err, "FETCH")
			}
			raw = b
		}
		return raw, nil
	}
	env, bs, fix, err := summaries(m, options, readRaw)
	if err != nil {
		return nil, err
	}
	if needBody || options.Preview {
		if _, err := readRaw(); err != nil {
			return nil, err
		}
	}
	var prev string
	if options.Preview {
		prev = preview(raw) // preview.go (RFC 8970)
	}

	v := s.sel
	if options.Flags || markSeen {
		if err := v.announceFlags(w, m.Flags); err != nil {
			return nil, err
		}
	}
	rw := w.CreateMessage(seq)
	rw.WriteUID(imap.UID(m.UID))
	if options.Flags || markSeen {
		rw.WriteFlags(v.flags(imap.UID(m.UID), m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.SaveDate {
		rw.WriteSaveDate(m.SaveDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.ModSeq || (markSeen && s.condStore()) {
		rw.WriteModSeq(m.ModSeq)
	}
	if options.Preview {
		rw.WritePreview(prev)
	}
	if options.Envelope {
		rw.WriteEnvelope(env)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(bs)
	}
	var pc *partCache
	if len(options.BodySection)+len(options.BinarySection)+len(options.BinarySectionSize) > 1 {
		pc = &partCache{} // the message's bytes read once for all (section.go)
	}
	for _, sec := range options.BodySection {
		b, _ := extractSectionIn(raw, sec, pc)
		b = withoutNUL(b)
		if err := writeLiteral(rw.WriteBodySection(sec, int64(len(b))), b); err != nil {
			return nil, err
		}
	}
	for _, sec := range options.BinarySection {
		b := binarySection(raw, sec, pc)
		if err := writeLiteral(rw.WriteBinarySection(sec, int64(len(b))), b); err != nil {
			return nil, err
		}
	}
	for _, sec := range options.BinarySectionSize {
		b := binarySection(raw, &imap.FetchItemBinarySection{Part: sec.Part}, pc)
		rw.WriteBinarySectionSize(sec, uint32(len(b)))
	}
	return fix, rw.Close()
}

// summaries returns the ENVELOPE and BODYSTRUCTURE a FETCH asks for, from
// the store's cache: only those asked are decoded (a FETCH of ENVELOPE
// decoded the body structure too, a tenth of its allocations). When one
// asked for cannot be decoded, the message is parsed again (readRaw) and
// both are returned with the cache entry to keep.
func summaries(m *store.Message, options *imap.FetchOptions, readRaw func() ([]byte, error)) (env *imap.Envelope, bs imap.BodyStructure, fix *store.MessageCache, err error) {
	var envErr, bsErr error
	if options.Envelope {
		env, envErr = decodeEnvelope(m.Envelope)
	}
	if options.BodyStructure != nil {
		bs, bsErr = decodeStructure(m.Structure)
	}
	if envErr == nil && bsErr == nil {
		return env, bs, nil, nil
	}
	b, err := readRaw()
	if err != nil {
		return nil, nil, nil, err
	}
	env, bs = summarize(b)
	return env, bs, &store.MessageCache{MessageID: m.ID, Envelope: encodeEnvelope(env), Structure: encodeStructure(bs)}, nil
}

// errExpunged is a message gone between the read of its row and of its
// bytes.
var errExpunged = errors.New("imapfront: message expunged meanwhile")

// withoutNUL returns b with each NUL byte replaced by 0x80, as Dovecot
// does: a BODY[] literal cannot carry NUL (RFC 3501 4.3, RFC 3516 4.3);
// BINARY[] serves the exact bytes, in a literal8.
func withoutNUL(b []byte) []byte {
	if bytes.IndexByte(b, 0) < 0 {
		return b
	}
	out := bytes.Clone(b)
	for i, c := range out {
		if c == 0 {
			out[i] = 0x80
		}
	}
	return out
}

func writeLiteral(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// binarySection returns a BINARY section (RFC 3516): the part with its
// content transfer encoding undone. The whole message and an unencoded part
// are served as stored.
func binarySection(raw []byte, sec *imap.FetchItemBinarySection, pc *partCache) (out []byte) {
	if len(sec.Part) == 0 {
		return partial(raw, sec.Partial)
	}
	e, ok := findPartIn(raw, sec.Part, pc)
	if !ok {
		return []byte{}
	}
	switch enc := headerValue(e.header, "Content-Transfer-Encoding"); enc {
	case "", "7bit", "8bit", "binary", "7BIT", "8BIT", "BINARY":
		return partial(e.body, sec.Partial)
	}
	defer func() {
		if recover() != nil {
			out = []byte{}
		}
	}()
	b := imapserver.ExtractBinarySection(bytes.NewReader(raw), &imap.FetchItemBinarySection{Part: sec.Part})
	if b == nil {
		return []byte{}
	}
	return partial(b, sec.Partial)
}
