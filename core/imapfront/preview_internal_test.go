package imapfront

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPreviewBounded: the preview of messages made to cost (one 50 MB
// line, a 50 MB attachment before the text, 50 MB of quoted lines, parts
// nested a thousand deep, a hundred thousand parts) is made in bounded time
// and allocates a few times previewInput, not the message's size.
func TestPreviewBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB messages")
	}
	const size = 50 << 20
	var nested strings.Builder
	nested.WriteString("Subject: nested\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 1000; i++ {
		fmt.Fprintf(&nested, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	nested.WriteString("--b999\r\n\r\ndeep text\r\n")
	var many strings.Builder
	many.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for n := 0; n < 100000; n++ {
		many.WriteString("--b\r\nContent-Type: image/gif\r\n\r\n")
	}
	many.WriteString("--b\r\n\r\nlast text\r\n--b--\r\n")
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"one line", "Subject: long\r\n\r\n" + strings.Repeat("x", size) + "\r\n", strings.Repeat("x", 200)},
		{"attachment first", "Subject: att\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			strings.Repeat(strings.Repeat("A", 76)+"\r\n", size/78) + "--b\r\nContent-Type: text/plain\r\n\r\nthe text\r\n--b--\r\n", "the text"},
		{"quotes", "Subject: quotes\r\n\r\n" + strings.Repeat("> quoted\r\n", size/10) + "late text\r\n", ""},
		{"html quotes", "Subject: q\r\nContent-Type: text/html\r\n\r\n" + strings.Repeat("<blockquote>", size/12) + "x", ""},
		{"nested", nested.String(), ""},
		{"many parts", many.String(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.msg)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			got := preview(raw)
			d := time.Since(start)
			runtime.ReadMemStats(&after)
			if got != tc.want {
				t.Errorf("preview %.100q, want %.100q", got, tc.want)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			if alloc > 16*previewInput {
				t.Errorf("preview of %d bytes allocated %d bytes", len(raw), alloc)
			}
			if d > time.Minute {
				t.Errorf("preview took %v", d)
			}
			t.Logf("%d bytes: %v, allocated %d bytes", len(raw), d, alloc)
		})
	}
}
