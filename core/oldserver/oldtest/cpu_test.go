package oldtest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// TestProcessCPU: the CPU time of a process grows with the work it does.
func TestProcessCPU(t *testing.T) {
	before := oldtest.ProcessCPU(os.Getpid())
	for start := time.Now(); time.Since(start) < 5*time.Second && oldtest.ProcessCPU(os.Getpid())-before < 100*time.Millisecond; {
		x := 0
		for i := 0; i < 1e7; i++ {
			x += i * i
		}
		_ = x
	}
	if got := oldtest.ProcessCPU(os.Getpid()) - before; got < 100*time.Millisecond {
		t.Fatalf("ProcessCPU grew by %v over 5 s of busy loop", got)
	}
	if got := oldtest.ProcessCPU(1 << 30); got != 0 {
		t.Errorf("ProcessCPU of a process that does not exist = %v", got)
	}
}

var cpuLiteral = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// TestDovecotCPU: Server.CPU counts the imap process of a session, while
// it runs and after it ended (its time then in the master's count of
// reaped children): a session's work never vanishes from it.
func TestDovecotCPU(t *testing.T) {
	srv := oldtest.Start(t, nil)
	user := "alice@" + oldtest.Domain
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 300)
	for i := 0; i < 50; i++ {
		srv.Append(t, user, "INBOX", nil, time.Time{}, append(msg(fmt.Sprintf("cpu%d", i)), body...))
	}
	c, err := net.Dial("tcp", srv.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	tag := 0
	do := func(cmd string) {
		tag++
		fmt.Fprintf(c, "c%d %s\r\n", tag, cmd)
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, fmt.Sprintf("c%d ", tag)) {
				if !strings.Contains(l, " OK") {
					t.Fatalf("%s: %s", cmd, l)
				}
				return
			}
			if m := cpuLiteral.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				io.CopyN(io.Discard, r, int64(n))
			}
		}
	}
	r.ReadString('\n')
	do(fmt.Sprintf("LOGIN %s %s", user, srv.Users[user]))
	do("EXAMINE INBOX")
	before := srv.CPU()
	if before <= 0 {
		t.Fatalf("CPU = %v before any session's work", before)
	}
	// SEARCH TEXT makes the imap process read and scan every message.
	for start := time.Now(); time.Since(start) < 20*time.Second && srv.CPU()-before < 200*time.Millisecond; {
		do("SEARCH TEXT nothing-matches-this")
	}
	during := srv.CPU()
	if during-before < 200*time.Millisecond {
		t.Fatalf("CPU grew by %v over 20 s of SEARCH TEXT", during-before)
	}
	do("LOGOUT")
	c.Close()
	time.Sleep(time.Second) // the imap process ends and is reaped
	if after := srv.CPU(); after < during {
		t.Errorf("CPU went from %v to %v once the session's imap process ended", during, after)
	}
}
