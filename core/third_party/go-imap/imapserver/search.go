package imapserver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleSearch(tag string, dec *imapwire.Decoder, numKind NumKind) (err error) {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var (
		atom     string
		options  imap.SearchOptions
		extended bool
	)
	defer func() {
		// fork: a SEARCH with the SAVE result option answered NO empties
		// "$"; one answered BAD leaves it (RFC 5182 2.1).
		if err != nil && options.ReturnSave && !isBadResponse(err) {
			if s, ok := c.session.(SessionSearchRes); ok {
				s.ResetSearchRes()
			}
		}
	}()
	if maybeReadSearchKeyAtom(dec, &atom) && strings.EqualFold(atom, "RETURN") {
		// fork: PARTIAL, UPDATE and CONTEXT with CONTEXT=SEARCH (RFC 5267).
		if err := readSearchReturnOptsContext(dec, &options, c.server.options.caps().Has(imap.CapContextSearch)); err != nil {
			return fmt.Errorf("in search-return-opts: %w", err)
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		extended = true
		atom = ""
		maybeReadSearchKeyAtom(dec, &atom)
	}
	if strings.EqualFold(atom, "CHARSET") {
		var charset string
		if !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch strings.ToUpper(charset) {
		case "US-ASCII", "UTF-8":
			// nothing to do
		default:
			return &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodeBadCharset, // TODO: return list of supported charsets
				Text: "Only US-ASCII and UTF-8 are supported SEARCH charsets",
			}
		}
		atom = ""
		maybeReadSearchKeyAtom(dec, &atom)
	}

	var criteria imap.SearchCriteria
	for {
		var err error
		if atom != "" {
			err = readSearchKeyWithAtom(&criteria, dec, atom)
			atom = ""
		} else {
			err = readSearchKey(&criteria, dec)
		}
		if err != nil {
			return fmt.Errorf("in search-key: %w", err)
		}

		if !dec.SP() {
			break
		}
	}

	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}

	// If no return option is specified, ALL is assumed (fork: PARTIAL and
	// UPDATE are return options too, RFC 5267 4: RETURN (UPDATE) answers an
	// ESEARCH with the tag alone, as Dovecot 2.3 does).
	noResults := !options.ReturnMin && !options.ReturnMax && !options.ReturnAll && !options.ReturnCount && options.ReturnPartial == nil
	if noResults && !options.ReturnSave && !options.ReturnUpdate {
		options.ReturnAll = true
	}
	if options.ReturnUpdate {
		options.Tag = tag
	}

	data, err := c.session.Search(numKind, &criteria, &options)
	if err != nil {
		return err
	}
	if options.ReturnUpdate && data.NoUpdate != "" {
		// fork: RFC 5267 4.3.1, the search is answered without updates.
		if err := c.writeNoUpdate(tag, data.NoUpdate); err != nil {
			return err
		}
	}
	if noResults && options.ReturnSave && !options.ReturnUpdate {
		// fork: RETURN (SAVE) alone answers no ESEARCH (RFC 5182 2.1).
		return nil
	}

	if c.enabled.Has(imap.CapIMAP4rev2) || extended {
		return c.writeESearch(tag, data, &options, numKind)
	} else {
		return c.writeSearch(data.All, data.ModSeq)
	}
}

func (c *Conn) writeESearch(tag string, data *imap.SearchData, options *imap.SearchOptions, numKind NumKind) error {
	enc := newResponseEncoder(c)
	defer enc.end()

	enc.Atom("*").SP().Atom("ESEARCH")
	if tag != "" {
		enc.SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	}
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	// When there is no result, we need to send an ESEARCH response with no ALL
	// keyword
	if options.ReturnAll && !isNumSetEmpty(data.All) {
		enc.SP().Atom("ALL").SP().NumSet(data.All)
	}
	if options.ReturnMin && data.Min > 0 {
		enc.SP().Atom("MIN").SP().Number(data.Min)
	}
	if options.ReturnMax && data.Max > 0 {
		enc.SP().Atom("MAX").SP().Number(data.Max)
	}
	if options.ReturnPartial != nil { // fork: RFC 5267 4.4
		writePartial(enc, options.ReturnPartial, data.Partial)
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(data.Count)
	}
	if data.ModSeq != 0 { // fork: RFC 7162 3.1.5
		enc.SP().Atom("MODSEQ").SP().ModSeq(data.ModSeq)
	}
	return enc.CRLF()
}

// SessionSearchRes is a Session that keeps the saved search result "$" of
// SEARCHRES (RFC 5182). fork: ResetSearchRes is called when a SEARCH with
// the SAVE result option fails with NO (or a server error), wherever the
// failure came from (an unknown charset, the session's own Search).
type SessionSearchRes interface {
	Session
	ResetSearchRes()
}

// isBadResponse reports whether err is answered BAD: a syntax error or an
// *imap.Error of type BAD.
func isBadResponse(err error) bool {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imapErr.Type == imap.StatusResponseTypeBad
	}
	var decErr *imapwire.DecoderExpectError
	return errors.As(err, &decErr)
}

func isNumSetEmpty(numSet imap.NumSet) bool {
	switch numSet := numSet.(type) {
	case imap.SeqSet:
		return len(numSet) == 0
	case imap.UIDSet:
		return len(numSet) == 0
	default:
		panic("unknown imap.NumSet type")
	}
}

func (c *Conn) writeSearch(numSet imap.NumSet, modSeq uint64) error {
	enc := newResponseEncoder(c)
	defer enc.end()

	enc.Atom("*").SP().Atom("SEARCH")
	var ok bool
	switch numSet := numSet.(type) {
	case imap.SeqSet:
		var nums []uint32
		nums, ok = numSet.Nums()
		for _, num := range nums {
			enc.SP().Number(num)
		}
	case imap.UIDSet:
		var uids []imap.UID
		uids, ok = numSet.Nums()
		for _, uid := range uids {
			enc.SP().UID(uid)
		}
	}
	if !ok {
		return fmt.Errorf("imapserver: failed to enumerate message numbers in SEARCH response")
	}
	if modSeq != 0 { // fork: RFC 7162 3.1.5
		enc.SP().Special('(').Atom("MODSEQ").SP().ModSeq(modSeq).Special(')')
	}
	return enc.CRLF()
}

func readSearchReturnOpts(dec *imapwire.Decoder, options *imap.SearchOptions) error {
	return readSearchReturnOptsContext(dec, options, false)
}

// readSearchReturnOptsContext reads SEARCH's return options; with context
// (CONTEXT=SEARCH offered) also CONTEXT (a hint, ignored), UPDATE and
// PARTIAL first:last (fork, RFC 5267 4; FORK.md change 56). UPDATE or
// PARTIAL given twice, or PARTIAL with ALL, is BAD, as Dovecot 2.3 answers.
func readSearchReturnOptsContext(dec *imapwire.Decoder, options *imap.SearchOptions, context bool) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	err := dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		if context {
			switch strings.ToUpper(name) {
			case "CONTEXT":
				return nil
			case "UPDATE":
				if options.ReturnUpdate {
					return newClientBugError("SEARCH return options have duplicate UPDATE")
				}
				options.ReturnUpdate = true
				return nil
			case "PARTIAL":
				if options.ReturnPartial != nil {
					return newClientBugError("PARTIAL can be used only once")
				}
				var r string
				if !dec.ExpectSP() || !dec.ExpectAtom(&r) {
					return dec.Err()
				}
				p, err := parsePartialRange(r)
				if err != nil {
					return err
				}
				options.ReturnPartial = p
				return nil
			}
		}
		switch strings.ToUpper(name) {
		case "MIN":
			options.ReturnMin = true
		case "MAX":
			options.ReturnMax = true
		case "ALL":
			options.ReturnAll = true
		case "COUNT":
			options.ReturnCount = true
		case "SAVE":
			options.ReturnSave = true
		default:
			return newClientBugError("unknown SEARCH RETURN option")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if options.ReturnPartial != nil && options.ReturnAll {
		return newClientBugError("PARTIAL conflicts with ALL")
	}
	return nil
}

func maybeReadSearchKeyAtom(dec *imapwire.Decoder, ptr *string) bool {
	return dec.Func(ptr, func(ch byte) bool {
		return ch == '*' || imapwire.IsAtomChar(ch)
	})
}

// maxSearchDepth is how deeply search keys may nest (NOT, OR and
// parentheses), fork change 49: each level is a call of the session's
// matching for every message, 12,000 nested NOT in one command took seconds
// per 200 messages; far above what a search built by hand or by a filter
// takes.
const maxSearchDepth = 100

func readSearchKey(criteria *imap.SearchCriteria, dec *imapwire.Decoder) error {
	return readSearchKeyAt(criteria, dec, 0)
}

// readSearchKeyAt reads a search key depth levels of NOT, OR and
// parentheses down.
func readSearchKeyAt(criteria *imap.SearchCriteria, dec *imapwire.Decoder, depth int) error {
	if depth > maxSearchDepth {
		return &imap.Error{
			Type: imap.StatusResponseTypeBad,
			Code: imap.ResponseCodeClientBug,
			Text: fmt.Sprintf("Search keys nested too deep (NOT, OR and parentheses: at most %d levels)", maxSearchDepth),
		}
	}
	var key string
	if maybeReadSearchKeyAtom(dec, &key) {
		return readSearchKeyWithAtomAt(criteria, dec, key, depth)
	}
	return dec.ExpectList(func() error {
		return readSearchKeyAt(criteria, dec, depth+1)
	})
}

func readSearchKeyWithAtom(criteria *imap.SearchCriteria, dec *imapwire.Decoder, key string) error {
	return readSearchKeyWithAtomAt(criteria, dec, key, 0)
}

func readSearchKeyWithAtomAt(criteria *imap.SearchCriteria, dec *imapwire.Decoder, key string, depth int) error {
	key = strings.ToUpper(key)
	switch key {
	case "ALL":
		// nothing to do
	case "UID":
		var uidSet imap.UIDSet
		if !dec.ExpectSP() || !dec.ExpectUIDSet(&uidSet) {
			return dec.Err()
		}
		criteria.UID = append(criteria.UID, uidSet)
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "RECENT", "SEEN":
		criteria.Flag = append(criteria.Flag, searchKeyFlag(key))
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		notKey := strings.TrimPrefix(key, "UN")
		criteria.NotFlag = append(criteria.NotFlag, searchKeyFlag(notKey))
	case "NEW":
		criteria.Flag = append(criteria.Flag, internal.FlagRecent)
		criteria.NotFlag = append(criteria.NotFlag, imap.FlagSeen)
	case "OLD":
		criteria.NotFlag = append(criteria.NotFlag, internal.FlagRecent)
	case "KEYWORD", "UNKEYWORD":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		flag, err := internal.ExpectFlag(dec)
		if err != nil {
			return err
		}
		switch key {
		case "KEYWORD":
			criteria.Flag = append(criteria.Flag, flag)
		case "UNKEYWORD":
			criteria.NotFlag = append(criteria.NotFlag, flag)
		}
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		var value string
		if !dec.ExpectSP() || !dec.ExpectAString(&value) {
			return dec.Err()
		}
		criteria.Header = append(criteria.Header, imap.SearchCriteriaHeaderField{
			Key:   strings.Title(strings.ToLower(key)),
			Value: value,
		})
	case "HEADER":
		var key, value string
		if !dec.ExpectSP() || !dec.ExpectAString(&key) || !dec.ExpectSP() || !dec.ExpectAString(&value) {
			return dec.Err()
		}
		criteria.Header = append(criteria.Header, imap.SearchCriteriaHeaderField{
			Key:   key,
			Value: value,
		})
	case "SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON", "SAVEDSINCE", "SAVEDBEFORE", "SAVEDON":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		t, err := internal.ExpectDate(dec)
		if err != nil {
			return err
		}
		var dateCriteria imap.SearchCriteria
		switch key {
		case "SINCE":
			dateCriteria.Since = t
		case "BEFORE":
			dateCriteria.Before = t
		case "ON":
			dateCriteria.Since = t
			dateCriteria.Before = t.Add(24 * time.Hour)
		case "SENTSINCE":
			dateCriteria.SentSince = t
		case "SENTBEFORE":
			dateCriteria.SentBefore = t
		case "SENTON":
			dateCriteria.SentSince = t
			dateCriteria.SentBefore = t.Add(24 * time.Hour)
		case "SAVEDSINCE": // fork: RFC 8514
			dateCriteria.SavedSince = t
		case "SAVEDBEFORE":
			dateCriteria.SavedBefore = t
		case "SAVEDON":
			dateCriteria.SavedSince = t
			dateCriteria.SavedBefore = t.Add(24 * time.Hour)
		}
		criteria.And(&dateCriteria)
	case "BODY":
		var body string
		if !dec.ExpectSP() || !dec.ExpectAString(&body) {
			return dec.Err()
		}
		criteria.Body = append(criteria.Body, body)
	case "TEXT":
		var text string
		if !dec.ExpectSP() || !dec.ExpectAString(&text) {
			return dec.Err()
		}
		criteria.Text = append(criteria.Text, text)
	case "LARGER", "SMALLER":
		var n int64
		if !dec.ExpectSP() || !dec.ExpectNumber64(&n) {
			return dec.Err()
		}
		switch key {
		case "LARGER":
			criteria.And(&imap.SearchCriteria{Larger: n})
		case "SMALLER":
			criteria.And(&imap.SearchCriteria{Smaller: n})
		}
	case "NOT":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		var not imap.SearchCriteria
		if err := readSearchKeyAt(&not, dec, depth+1); err != nil {
			return err
		}
		criteria.Not = append(criteria.Not, not)
	case "OR":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		var or [2]imap.SearchCriteria
		if err := readSearchKeyAt(&or[0], dec, depth+1); err != nil {
			return err
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		if err := readSearchKeyAt(&or[1], dec, depth+1); err != nil {
			return err
		}
		criteria.Or = append(criteria.Or, or)
	case "$":
		criteria.UID = append(criteria.UID, imap.SearchRes())
	case "SAVEDATESUPPORTED": // fork: RFC 8514
		criteria.And(&imap.SearchCriteria{SaveDateSupported: true})
	case "OLDER", "YOUNGER": // fork: RFC 5032 WITHIN
		var n uint32
		if !dec.ExpectSP() || !dec.ExpectNumber(&n) {
			return dec.Err()
		}
		if n == 0 {
			// nz-number: an interval of 0 seconds is no interval.
			return newClientBugError(key + " needs an interval of at least 1 second")
		}
		if key == "OLDER" {
			criteria.And(&imap.SearchCriteria{Older: n})
		} else {
			criteria.And(&imap.SearchCriteria{Younger: n})
		}
	case "MODSEQ": // fork: RFC 7162 3.1.5
		var ms imap.SearchCriteriaModSeq
		if !dec.ExpectSP() {
			return dec.Err()
		}
		if dec.Quoted(&ms.MetadataName) {
			var typ string
			if !dec.ExpectSP() || !dec.ExpectAtom(&typ) || !dec.ExpectSP() {
				return dec.Err()
			}
			ms.MetadataType = imap.SearchCriteriaMetadataType(strings.ToLower(typ))
			switch ms.MetadataType {
			case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
			default:
				return newClientBugError("unknown MODSEQ entry type " + typ)
			}
		}
		if !dec.ExpectModSeq(&ms.ModSeq) {
			return dec.Err()
		}
		// Several MODSEQ keys all hold when the highest does.
		if criteria.ModSeq == nil || criteria.ModSeq.ModSeq < ms.ModSeq {
			criteria.ModSeq = &ms
		}
	default:
		seqSet, err := imapwire.ParseSeqSet(key)
		if err != nil {
			// fork: an unknown search key is the client's mistake, BAD
			// (RFC 3501 6.4.4, 7.1.3), not a server error.
			return &imap.Error{
				Type: imap.StatusResponseTypeBad,
				Code: imap.ResponseCodeClientBug,
				Text: fmt.Sprintf("unknown search key: %v", err),
			}
		}
		criteria.SeqNum = append(criteria.SeqNum, seqSet)
	}
	return nil
}

func searchKeyFlag(key string) imap.Flag {
	return imap.Flag("\\" + strings.Title(strings.ToLower(key)))
}
