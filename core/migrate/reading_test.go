package migrate_test

import (
	"bytes"
	"fmt"
	"testing"

	"mailferry/core/migrate"
	"mailferry/core/oldserver/oldtest/quirky"
)

// TestQuirkOddSizes: messages of odd sizes are copied byte for byte now
// that imapclient's reading goroutine reads the bodies (FetchReading):
// a header alone, and sizes around the client's 4 KiB buffer, the read-
// ahead's 128 KiB and the reader's 4 MiB reused buffers, in chunks of one,
// a few and all messages. (A literal of 0 bytes: TestReaderTakeEmptyBody;
// this fixture's server does not serve a message without a header as it
// was appended.)
func TestQuirkOddSizes(t *testing.T) {
	sizes := []int{0, 1, 2, 4093, 4095, 4096, 4097, 8191, 0, 131071, 131072, 131073, 3, 4<<20 - 1, 4 << 20, 4<<20 + 1, 0, 5}
	f := quirky.Folder{Name: "INBOX", Subscribed: true}
	for i, n := range sizes {
		head := fmt.Sprintf("Subject: %d\r\n\r\n", i)
		f.Messages = append(f.Messages, append([]byte(head), bytes.Repeat([]byte{'a' + byte(i)}, max(n-len(head), 0))...))
	}
	for _, chunk := range []int{1, 4, 100} {
		srv := quirky.Start(t, quirkyUser, quirkyPass, quirky.Quirks{}, []quirky.Folder{f})
		st, acct, _ := quirkyRun(t, srv, &migrate.Options{ChunkMessages: chunk})
		checkCopied(t, st, acct, f, want{local: "INBOX"})
		noProblems(t, st, acct)
	}
}
