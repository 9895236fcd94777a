package imapfront

import "testing"

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
