package imapfront

import (
	"strings"
	"testing"
	"time"
)

// TestPreviewHostileHTMLLinear: the preview of an HTML part made of what
// starts a character reference, a comment, CDATA or a tag but never ends
// it costs about what plain text of the same size does (CPU time, in one
// process: the machine's load aside). 256 KiB of '&' took 0.37 s against
// 8.5 ms for 256 KiB of 'a' (each '&' looked for its ';' to the end of the
// text), so a FETCH 1:* (PREVIEW) of 1,000 such messages, anyone's to send,
// held a core for six minutes.
func TestPreviewHostileHTMLLinear(t *testing.T) {
	html := func(fill string) []byte {
		return []byte("Content-Type: text/html\r\n\r\n" + strings.Repeat(fill, previewInput/len(fill)))
	}
	cost := func(raw []byte) time.Duration {
		best := time.Duration(-1)
		for range 3 {
			start := cpuTime()
			preview(raw)
			if d := cpuTime() - start; best < 0 || d < best {
				best = d
			}
		}
		return best
	}
	plain := cost(html("a"))
	for _, fill := range []string{"&", "&#", "&#x", "&amp", "<!--", "<![CDATA[", "<", "<a '", "</"} {
		if d := cost(html(fill)); d > 10*plain+20*time.Millisecond {
			t.Errorf("preview of %d KiB of %q: CPU %v, of as many 'a' %v; want about as much", previewInput>>10, fill, d, plain)
		}
	}
}
