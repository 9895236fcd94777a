package imapserver

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// readListCmd tells an RFC 5258 extended LIST from a basic one by its
// syntax, also when the selection list or the RETURN clause is empty
// (Mailferry fork, FORK.md change 55).
func TestReadListCmdExtended(t *testing.T) {
	for args, want := range map[string]bool{
		` "" x`:                        false,
		` "" %`:                        false,
		` () "" x`:                     true,
		` (REMOTE) "" x`:               true,
		` "" (x)`:                      true,
		` "" x RETURN ()`:              true,
		` "" x RETURN (CHILDREN)`:      true,
		` (SUBSCRIBED) "" x RETURN ()`: true,
	} {
		dec := imapwire.NewDecoder(bufio.NewReader(strings.NewReader(args+"\r\n")), imapwire.ConnSideServer)
		_, _, options, err := readListCmd(dec)
		if err != nil {
			t.Fatalf("LIST%s: %v", args, err)
		}
		if options.Extended != want {
			t.Errorf("LIST%s: Extended %v, want %v", args, options.Extended, want)
		}
	}
}
