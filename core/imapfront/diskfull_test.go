package imapfront_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAppendDiskFull: an APPEND on a full disk is answered as Dovecot does,
// NO [OVERQUOTA] Not enough disk space (not SERVERBUG), and no message is
// half stored. The full disk is a small tmpfs (root only).
func TestAppendDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a full disk is simulated with a small tmpfs, which needs root (make test runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	e := newEnv(t, &envOpts{dir: dir})
	c := e.login()
	body := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	ok := 0
	var refused string
	for i := 0; i < 20 && refused == ""; i++ {
		r := c.appendMsg("INBOX", "", fmt.Sprintf("X-N: %d\r\n%s", i, body))
		if strings.Contains(r, " OK ") {
			ok++
			continue
		}
		refused = r
	}
	if !strings.Contains(refused, "NO [OVERQUOTA] Not enough disk space") {
		t.Fatalf("APPEND on a full disk: %q, want NO [OVERQUOTA] Not enough disk space", refused)
	}
	st, err := e.st.Status(context.Background(), e.inbox().ID)
	if err != nil {
		t.Fatal(err)
	}
	if int(st.Messages) != ok {
		t.Fatalf("INBOX holds %d messages after %d appends acknowledged", st.Messages, ok)
	}
	t.Logf("%d appends of 1 MiB before the disk was full", ok)
}
