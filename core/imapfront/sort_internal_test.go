package imapfront

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestBaseSubject checks RFC 5256 2.1's base subject extraction, step by
// step, and whether the subject marked a reply or forward.
func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		reply    bool
	}{
		{"Hello", "Hello", false},
		{"  Hello \t  world  ", "Hello world", false},         // step 1
		{"Hello (fwd)", "Hello", true},                        // step 2
		{"Hello (FWD) (fwd)  ", "Hello", true},                // step 2, repeated
		{"Re: Hello", "Hello", true},                          // step 3
		{"RE: re: Fwd: FW: hello", "hello", true},             // step 3, repeated
		{"Re [list]: Hello", "Hello", true},                   // subj-refwd with a blob
		{"[list] Re: Hello", "Hello", true},                   // blobs before subj-refwd
		{"[list] Hello", "Hello", false},                      // step 4
		{"[list]", "[list]", false},                           // step 4: would leave nothing
		{"[a][b] Re: [c] Hello", "Hello", true},               // steps 3-5 repeated
		{"[fwd: Re: Hello]", "Hello", true},                   // step 6
		{"[Fwd: [fwd: hi (fwd)]]", "hi", true},                // step 6 then 2 again
		{"Re:", "", true},                                     // nothing left
		{"Research", "Research", false},                       // "re" not followed by ":"
		{"Fwd Hello", "Fwd Hello", false},                     // no colon
		{"Re: [unclosed Hello", "[unclosed Hello", true},      // not a blob
		{"=?utf-8?q?x?= Re: y", "=?utf-8?q?x?= Re: y", false}, // a leader only at the start
		{"Ré: Bonjour", "Ré: Bonjour", false},                 // not ASCII "re"
	} {
		got, reply := baseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
		}
	}
}

// TestAbsentUIDs checks the UIDs sent as VANISHED (EARLIER) when the
// expunge history does not reach back far enough.
func TestAbsentUIDs(t *testing.T) {
	for _, tc := range []struct {
		set     imap.UIDSet
		present []uint32
		next    uint32
		want    string
	}{
		{imap.UIDSet{{Start: 1, Stop: 0}}, []uint32{1, 3, 4, 8}, 10, "2,5:7,9"},
		{imap.UIDSet{{Start: 1, Stop: 0}}, nil, 4, "1:3"},
		{imap.UIDSet{{Start: 1, Stop: 0}}, nil, 1, ""},
		{imap.UIDSet{{Start: 3, Stop: 100}}, []uint32{1, 2, 5}, 7, "3:4,6"},
		{imap.UIDSet{{Start: 2, Stop: 2}, {Start: 5, Stop: 6}}, []uint32{2, 6}, 9, "5"},
		{imap.UIDSet{{Start: 0, Stop: 0}}, []uint32{1, 2}, 4, "3"},
	} {
		if got := absentUIDs(tc.set, tc.present, tc.next).String(); got != tc.want {
			t.Errorf("absentUIDs(%v, %v, %d) = %q, want %q", tc.set, tc.present, tc.next, got, tc.want)
		}
	}
}
