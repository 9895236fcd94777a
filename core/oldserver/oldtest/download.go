package oldtest

import (
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Download is the benchmarks' floor: on the logged-in c, UID FETCH 1:*
// BODY.PEEK[] of each folder in turn (selected read-only), the bytes read
// and dropped. It returns how many body bytes came.
func Download(c *imapclient.Client, folders ...string) (int64, error) {
	var n int64
	for _, f := range folders {
		if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return n, fmt.Errorf("select %s: %w", f, err)
		}
		cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
					k, err := io.Copy(io.Discard, b.Literal)
					n += k
					if err != nil {
						cmd.Close()
						return n, fmt.Errorf("fetch %s: %w", f, err)
					}
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return n, fmt.Errorf("fetch %s: %w", f, err)
		}
	}
	return n, nil
}
