package migrate

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHolderAlive: a holder of this node is dead when its process is gone
// here, whether it names this machine or no machine (an older holder);
// one naming another machine is alive until its lease expires, whatever
// its process ID looks like here; another node's always is.
func TestHolderAlive(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1) to make a dead process ID")
	}
	pid := dead.Process.Pid
	h, err := newHolder("mail1")
	if err != nil {
		t.Fatal(err)
	}
	if thisMachine != "" && !strings.Contains(h, fmt.Sprintf(" pid %d on %s #", os.Getpid(), thisMachine)) {
		t.Fatalf("holder %q does not name this machine %q", h, thisMachine)
	}
	for _, c := range []struct {
		node, holder string
		alive        bool
	}{
		{"mail1", h, true},
		{"mail1", fmt.Sprintf("mail1 pid %d on %s #x", pid, thisMachine), false},
		{"mail1", fmt.Sprintf("mail1 pid %d #x", pid), false},
		{"mail1", fmt.Sprintf("mail1 pid %d on other-boot/1 #x", pid), true},
		{"mail1", fmt.Sprintf("mail2 pid %d on %s #x", pid, thisMachine), true},
		{"mail1", "", false},
	} {
		if got := holderAlive(c.node, c.holder); got != c.alive {
			t.Errorf("holderAlive(%q, %q) = %v, want %v", c.node, c.holder, got, c.alive)
		}
	}
}
