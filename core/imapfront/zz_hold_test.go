package imapfront_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

func TestZZHold(t *testing.T) {
	if os.Getenv("ZZHOLD") == "" {
		t.Skip()
	}
	old := oldtest.Start(t, nil)
	e := newEnv(t, nil)
	os.WriteFile("/tmp/zzhold.env", []byte(fmt.Sprintf("DOVE=%s\nDUSER=alice@example.test\nDPASS=%s\nMF=%s\n", old.IMAPAddr, old.Users["alice@example.test"], e.addr)), 0o644)
	for {
		if _, err := os.Stat("/tmp/zzhold.stop"); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}
