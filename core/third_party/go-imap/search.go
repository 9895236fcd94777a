package imap

import (
	"reflect"
	"time"
)

// SearchOptions contains options for the SEARCH command.
type SearchOptions struct {
	// Requires IMAP4rev2 or ESEARCH
	ReturnMin   bool
	ReturnMax   bool
	ReturnAll   bool
	ReturnCount bool
	// Requires IMAP4rev2 or SEARCHRES
	ReturnSave bool

	// fork: CONTEXT=SEARCH (RFC 5267). ReturnPartial, when not nil, asks
	// for the matches at positions Start to Stop (1-based, Start <= Stop)
	// of the result. ReturnUpdate asks the server to keep the result up to
	// date with ADDTO and REMOVEFROM; Tag is then the command's tag, which
	// names the update (imapserver sets it).
	ReturnPartial *SearchPartialRange
	ReturnUpdate  bool
	Tag           string
}

// SearchPartialRange is the range of a PARTIAL result option (fork: RFC
// 5267 4.4): positions First to Last of the result, 1-based, First <= Last.
type SearchPartialRange struct {
	First, Last uint32
}

// SearchCriteria is a criteria for the SEARCH command.
//
// When multiple fields are populated, the result is the intersection ("and"
// function) of all messages that match the fields.
//
// And, Not and Or can be used to combine multiple criteria together. For
// instance, the following criteria matches messages not containing "hello":
//
//	SearchCriteria{Not: []SearchCriteria{{
//		Body: []string{"hello"},
//	}}}
//
// The following criteria matches messages containing either "hello" or
// "world":
//
//	SearchCriteria{Or: [][2]SearchCriteria{{
//		{Body: []string{"hello"}},
//		{Body: []string{"world"}},
//	}}}
type SearchCriteria struct {
	SeqNum []SeqSet
	UID    []UIDSet

	// Only the date is used, the time and timezone are ignored
	Since      time.Time
	Before     time.Time
	SentSince  time.Time
	SentBefore time.Time

	Header []SearchCriteriaHeaderField
	Body   []string
	Text   []string

	Flag    []Flag
	NotFlag []Flag

	Larger  int64
	Smaller int64

	Not []SearchCriteria
	Or  [][2]SearchCriteria

	ModSeq *SearchCriteriaModSeq // requires CONDSTORE

	// fork: requires WITHIN (RFC 5032). An interval in seconds before the
	// time the command runs, 0 when not given: OLDER holds for a message
	// whose INTERNALDATE is at least Older seconds old, YOUNGER for one at
	// most Younger seconds old (time and zone count, unlike SINCE/BEFORE).
	Older   uint32
	Younger uint32

	// fork: requires SAVEDATE (RFC 8514): SAVEDSINCE, SAVEDBEFORE and
	// SAVEDON compare the save date's date as SINCE/BEFORE/ON the
	// INTERNALDATE's. SAVEDATESUPPORTED sets SaveDateSupported.
	SavedSince        time.Time
	SavedBefore       time.Time
	SaveDateSupported bool
}

// And intersects two search criteria.
func (criteria *SearchCriteria) And(other *SearchCriteria) {
	criteria.SeqNum = append(criteria.SeqNum, other.SeqNum...)
	criteria.UID = append(criteria.UID, other.UID...)

	criteria.Since = intersectSince(criteria.Since, other.Since)
	criteria.Before = intersectBefore(criteria.Before, other.Before)
	criteria.SentSince = intersectSince(criteria.SentSince, other.SentSince)
	criteria.SentBefore = intersectBefore(criteria.SentBefore, other.SentBefore)
	criteria.SavedSince = intersectSince(criteria.SavedSince, other.SavedSince)
	criteria.SavedBefore = intersectBefore(criteria.SavedBefore, other.SavedBefore)
	criteria.SaveDateSupported = criteria.SaveDateSupported || other.SaveDateSupported

	criteria.Header = append(criteria.Header, other.Header...)
	criteria.Body = append(criteria.Body, other.Body...)
	criteria.Text = append(criteria.Text, other.Text...)

	criteria.Flag = append(criteria.Flag, other.Flag...)
	criteria.NotFlag = append(criteria.NotFlag, other.NotFlag...)

	if criteria.Larger == 0 || other.Larger > criteria.Larger {
		criteria.Larger = other.Larger
	}
	// fork: an unset (0) SMALLER on the other side keeps this one
	// ("SMALLER 100 LARGER 5" lost its SMALLER).
	if criteria.Smaller == 0 || other.Smaller != 0 && other.Smaller < criteria.Smaller {
		criteria.Smaller = other.Smaller
	}
	// fork: WITHIN (RFC 5032): both must hold, so the longer OLDER and the
	// shorter YOUNGER.
	if other.Older > criteria.Older {
		criteria.Older = other.Older
	}
	if criteria.Younger == 0 || other.Younger != 0 && other.Younger < criteria.Younger {
		criteria.Younger = other.Younger
	}

	criteria.Not = append(criteria.Not, other.Not...)
	criteria.Or = append(criteria.Or, other.Or...)
}

func intersectSince(t1, t2 time.Time) time.Time {
	switch {
	case t1.IsZero():
		return t2
	case t2.IsZero():
		return t1
	case t1.After(t2):
		return t1
	default:
		return t2
	}
}

func intersectBefore(t1, t2 time.Time) time.Time {
	switch {
	case t1.IsZero():
		return t2
	case t2.IsZero():
		return t1
	case t1.Before(t2):
		return t1
	default:
		return t2
	}
}

type SearchCriteriaHeaderField struct {
	Key, Value string
}

type SearchCriteriaModSeq struct {
	ModSeq       uint64
	MetadataName string
	MetadataType SearchCriteriaMetadataType
}

type SearchCriteriaMetadataType string

const (
	SearchCriteriaMetadataAll     SearchCriteriaMetadataType = "all"
	SearchCriteriaMetadataPrivate SearchCriteriaMetadataType = "priv"
	SearchCriteriaMetadataShared  SearchCriteriaMetadataType = "shared"
)

// SearchData is the data returned by a SEARCH command.
type SearchData struct {
	All NumSet

	// requires IMAP4rev2 or ESEARCH
	Min   uint32
	Max   uint32
	Count uint32

	// requires CONDSTORE
	ModSeq uint64

	// fork: CONTEXT=SEARCH (RFC 5267). Partial holds the numbers at the
	// positions SearchOptions.ReturnPartial asked for (nil or empty when
	// none); NoUpdate, when set, is why the server refused to keep this
	// result up to date (ReturnUpdate): it answers an untagged NO
	// [NOUPDATE "tag"] and the search goes on without updates.
	Partial  NumSet
	NoUpdate string
}

// AllSeqNums returns All as a slice of sequence numbers.
func (data *SearchData) AllSeqNums() []uint32 {
	seqSet, ok := data.All.(SeqSet)
	if !ok {
		return nil
	}

	// Note: a dynamic sequence set would be a server bug
	nums, ok := seqSet.Nums()
	if !ok {
		panic("imap: SearchData.All is a dynamic number set")
	}
	return nums
}

// AllUIDs returns All as a slice of UIDs.
func (data *SearchData) AllUIDs() []UID {
	uidSet, ok := data.All.(UIDSet)
	if !ok {
		return nil
	}

	// Note: a dynamic sequence set would be a server bug
	uids, ok := uidSet.Nums()
	if !ok {
		panic("imap: SearchData.All is a dynamic number set")
	}
	return uids
}

// searchRes is a special empty UIDSet which can be used as a marker. It has
// a non-zero cap so that its data pointer is non-nil and can be compared.
//
// It's a UIDSet rather than a SeqSet so that it can be passed to the
// UID EXPUNGE command.
var (
	searchRes     = make(UIDSet, 0, 1)
	searchResAddr = reflect.ValueOf(searchRes).Pointer()
)

// SearchRes returns a special marker which can be used instead of a UIDSet to
// reference the last SEARCH result. On the wire, it's encoded as '$'.
//
// It requires IMAP4rev2 or the SEARCHRES extension.
func SearchRes() UIDSet {
	return searchRes
}

// IsSearchRes checks whether a sequence set is a reference to the last SEARCH
// result. See SearchRes.
func IsSearchRes(numSet NumSet) bool {
	return reflect.ValueOf(numSet).Pointer() == searchResAddr
}
