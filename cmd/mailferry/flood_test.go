package main_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// peakRSS reads a process's peak resident set size (VmHWM) in KiB.
func peakRSS(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestLoginFloodBounded: 60 parallel wrong-password logins for one account
// from one address against the real binary. Its peak RSS stays under
// 200 MB (each argon2id check holds 19 MiB; before the login policy they
// all ran at once: 1.1 GB), and the owner, from another address, logs in
// right after. The figures are the README's ("Security").
func TestLoginFloodBounded(t *testing.T) {
	data := t.TempDir()
	if out, stderr, code := mf(t, data, "", "domain", "add", "example.test"); code != 0 {
		t.Fatalf("domain add: %s %s", out, stderr)
	}
	if out, stderr, code := mf(t, data, "Carol-Secret-1\n", "account", "add", "carol@example.test"); code != 0 {
		t.Fatalf("account add: %s %s", out, stderr)
	}
	addr := freePort(t)
	cmd := exec.Command(mailferryBin, "serve", "--data", data, "--imap", addr, "--imaps", "off",
		"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off", "--allow-insecure-auth")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := peakRSS(t, cmd.Process.Pid)
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := oldtest.LoginFrom(addr, "127.0.0.1", "carol@example.test", fmt.Sprintf("guess-%d", i))
			kind := got
			switch {
			case strings.Contains(got, "AUTHENTICATIONFAILED"):
				kind = "wrong password"
			case strings.Contains(got, "Too many failed"), strings.Contains(got, "[UNAVAILABLE]"):
				// Refused without a check: at once when the bucket is
				// empty of failures, or "try again later" when the
				// checks holding its tokens outlast the login's wait.
				kind = "refused unchecked"
			case strings.HasPrefix(got, "* BYE") && strings.Contains(got, "Too many connections"):
				kind = "too many connections"
			}
			mu.Lock()
			answers[kind]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	burst := time.Since(t0)
	t1 := time.Now()
	owner := oldtest.LoginFrom(addr, "127.0.0.2", "carol@example.test", "Carol-Secret-1")
	ownerTime := time.Since(t1)
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("60 parallel wrong logins: %v in %v; peak RSS %d MiB (%d MiB before); the owner's login after: %v",
		answers, burst.Round(time.Millisecond), peak/1024, before/1024, ownerTime.Round(time.Millisecond))
	if !strings.HasPrefix(owner, "a OK") {
		t.Fatalf("the owner from another address: %s\n%s", owner, logs.String())
	}
	if peak > 200*1000 {
		t.Fatalf("peak RSS %d KiB, want under 200 MB", peak)
	}
	if answers["wrong password"] != 10 || answers["wrong password"]+answers["refused unchecked"]+answers["too many connections"] != 60 {
		t.Fatalf("answers %v", answers)
	}
}
