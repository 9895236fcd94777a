package imapserver

// fork: SORT and THREAD (RFC 5256). Not in upstream go-imap v2.0.0-beta.8;
// this file is the fork's own (see FORK.md).

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SortKey is a SORT criterion's key (RFC 5256 3).
type SortKey string

// Sort keys of RFC 5256.
const (
	SortKeyArrival SortKey = "ARRIVAL"
	SortKeyCc      SortKey = "CC"
	SortKeyDate    SortKey = "DATE"
	SortKeyFrom    SortKey = "FROM"
	SortKeySize    SortKey = "SIZE"
	SortKeySubject SortKey = "SUBJECT"
	SortKeyTo      SortKey = "TO"

	// fork: RFC 5957 (SORT=DISPLAY), accepted when the server's caps
	// hold imap.CapSortDisplay.
	SortKeyDisplayFrom SortKey = "DISPLAYFROM"
	SortKeyDisplayTo   SortKey = "DISPLAYTO"
)

// SortCriterion is one SORT criterion: a key, maybe reversed.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// ThreadData is one thread of a THREAD response (RFC 5256 4): the
// messages of Chain, each the parent of the next, then the last one's
// SubThreads. A thread whose root is missing has an empty Chain.
type ThreadData struct {
	Chain      []uint32
	SubThreads []ThreadData
}

// SessionSort is an IMAP session which supports SORT (RFC 5256).
type SessionSort interface {
	Session

	// Sort returns the numbers (sequence numbers or UIDs, as kind says) of
	// the messages matching criteria, in the order sortCriteria give.
	// options are an ESORT command's RETURN options (RFC 5267), nil for a
	// plain SORT; the server answers them from the numbers, the session
	// keeps the result for SAVE (RFC 5182) and forgets "$" when Sort
	// fails (SessionSearchRes).
	Sort(kind NumKind, criteria *imap.SearchCriteria, sortCriteria []SortCriterion, options *imap.SearchOptions) ([]uint32, error)
}

// SessionThread is an IMAP session which supports THREAD (RFC 5256).
type SessionThread interface {
	Session

	// Thread returns the threads of the messages matching criteria, with
	// numbers as kind says.
	Thread(kind NumKind, criteria *imap.SearchCriteria, algorithm imap.ThreadAlgorithm) ([]ThreadData, error)
}

func (c *Conn) handleSort(tag string, dec *imapwire.Decoder, numKind NumKind) (err error) {
	var sortCriteria []SortCriterion
	if !dec.ExpectSP() {
		return dec.Err()
	}
	// ESORT (RFC 5267 3): "SORT RETURN (options) (criteria) ...".
	var options *imap.SearchOptions
	defer func() {
		// A SORT with the SAVE result option answered NO empties "$"; one
		// answered BAD leaves it (RFC 5182 2.1, as SEARCH).
		if err != nil && options != nil && options.ReturnSave && !isBadResponse(err) {
			if s, ok := c.session.(SessionSearchRes); ok {
				s.ResetSearchRes()
			}
		}
	}()
	var atom string
	if c.server.options.caps().Has(imap.CapESort) && maybeReadSearchKeyAtom(dec, &atom) {
		if !strings.EqualFold(atom, "RETURN") {
			return newClientBugError("expected RETURN or a list of SORT criteria")
		}
		options = new(imap.SearchOptions)
		if err := readSearchReturnOpts(dec, options); err != nil {
			return err
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
	}
	err = dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		var crit SortCriterion
		if strings.EqualFold(name, "REVERSE") {
			crit.Reverse = true
			if !dec.ExpectSP() || !dec.ExpectAtom(&name) {
				return dec.Err()
			}
		}
		crit.Key = SortKey(strings.ToUpper(name))
		switch crit.Key {
		case SortKeyArrival, SortKeyCc, SortKeyDate, SortKeyFrom, SortKeySize, SortKeySubject, SortKeyTo:
		case SortKeyDisplayFrom, SortKeyDisplayTo:
			if !c.server.options.caps().Has(imap.CapSortDisplay) {
				return newClientBugError("unknown SORT key " + name)
			}
		default:
			return newClientBugError("unknown SORT key " + name)
		}
		sortCriteria = append(sortCriteria, crit)
		return nil
	})
	if err != nil {
		return err
	}
	if len(sortCriteria) == 0 {
		return newClientBugError("SORT needs at least one criterion")
	}
	criteria, err := readCharsetCriteria(dec)
	if err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionSort)
	if !ok {
		return newClientBugError("SORT is not supported")
	}
	noResults := options != nil && !options.ReturnMin && !options.ReturnMax && !options.ReturnAll && !options.ReturnCount
	if noResults && !options.ReturnSave {
		options.ReturnAll = true // RETURN () is RETURN (ALL)
	}
	nums, err := session.Sort(numKind, criteria, sortCriteria, options)
	if err != nil {
		return err
	}
	if options != nil {
		if noResults && options.ReturnSave {
			return nil // RETURN (SAVE) alone answers no ESEARCH (RFC 5182 2.1)
		}
		return c.writeESort(tag, nums, options, numKind)
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("SORT")
	for _, n := range nums {
		enc.SP().Number(n)
	}
	return enc.CRLF()
}

// writeESort answers an ESORT (RFC 5267 3): MIN and MAX are the first and
// last message in the sort order, ALL the messages in that order (a run of
// consecutive ascending numbers as a range, the rest one by one), as
// Dovecot 2.3 writes them; with no message only COUNT 0, if asked.
func (c *Conn) writeESort(tag string, nums []uint32, options *imap.SearchOptions, numKind NumKind) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	if len(nums) > 0 {
		if options.ReturnMin {
			enc.SP().Atom("MIN").SP().Number(nums[0])
		}
		if options.ReturnMax {
			enc.SP().Atom("MAX").SP().Number(nums[len(nums)-1])
		}
		if options.ReturnAll {
			enc.SP().Atom("ALL").SP()
			for i := 0; i < len(nums); {
				j := i
				for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
					j++
				}
				if i > 0 {
					enc.Special(',')
				}
				enc.Number(nums[i])
				if j > i {
					enc.Special(':').Number(nums[j])
				}
				i = j + 1
			}
		}
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(uint32(len(nums)))
	}
	return enc.CRLF()
}

func (c *Conn) handleThread(dec *imapwire.Decoder, numKind NumKind) error {
	var alg string
	if !dec.ExpectSP() || !dec.ExpectAtom(&alg) {
		return dec.Err()
	}
	algorithm := imap.ThreadAlgorithm(strings.ToUpper(alg))
	supported := false
	for _, a := range c.server.options.caps().ThreadAlgorithms() {
		supported = supported || a == algorithm
	}
	if !supported {
		return newClientBugError("unknown THREAD algorithm " + alg)
	}
	criteria, err := readCharsetCriteria(dec)
	if err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionThread)
	if !ok {
		return newClientBugError("THREAD is not supported")
	}
	threads, err := session.Thread(numKind, criteria, algorithm)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("THREAD")
	if len(threads) > 0 {
		enc.SP()
	}
	for i := range threads {
		writeThread(enc.Encoder, &threads[i])
	}
	return enc.CRLF()
}

func writeThread(enc *imapwire.Encoder, t *ThreadData) {
	enc.Special('(')
	for i, n := range t.Chain {
		if i > 0 {
			enc.SP()
		}
		enc.Number(n)
	}
	if len(t.SubThreads) > 0 && len(t.Chain) > 0 {
		enc.SP()
	}
	for i := range t.SubThreads {
		writeThread(enc, &t.SubThreads[i])
	}
	enc.Special(')')
}

// readCharsetCriteria reads SORT's and THREAD's SP charset SP
// search-criteria CRLF.
func readCharsetCriteria(dec *imapwire.Decoder) (*imap.SearchCriteria, error) {
	var charset string
	if !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
		return nil, dec.Err()
	}
	switch strings.ToUpper(charset) {
	case "US-ASCII", "UTF-8":
	default:
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeBadCharset,
			Text: "Only US-ASCII and UTF-8 are supported charsets",
		}
	}
	var criteria imap.SearchCriteria
	for {
		if err := readSearchKey(&criteria, dec); err != nil {
			return nil, err
		}
		if !dec.SP() {
			break
		}
	}
	if !dec.ExpectCRLF() {
		return nil, dec.Err()
	}
	return &criteria, nil
}
