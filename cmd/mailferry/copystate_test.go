package main_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// accountState reads an account's migration state and error through
// `mailferry status --json`, as an admin does.
func accountState(t *testing.T, data, user string) (state, reason string) {
	t.Helper()
	out, stderr, code := mf(t, data, "", "status", "--json")
	if code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	var rep struct {
		Domains []struct {
			Accounts []struct {
				Address   string
				Migration string
				Error     string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, d := range rep.Domains {
		for _, a := range d.Accounts {
			if strings.EqualFold(a.Address, user) {
				return a.Migration, a.Error
			}
		}
	}
	t.Fatalf("status --json has no %s:\n%s", user, out)
	return "", ""
}

// TestStatusAfterKillAndStop: `status` tells the truth about a copy whose
// `serve` died (kill -9) or was stopped (SIGTERM): interrupted, not
// running; a restarted serve, which has no old-server password, says the
// copy waits for the user's next login; that login resumes it to the end.
func TestStatusAfterKillAndStop(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (make test installs it)")
	}
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		old := oldtest.StartKind(t, kind, nil)
		const n = 4000 // (1,500 were all copied before the second stop landed, since copies got faster)
		seedPadded(t, old, "alice", n)
		data := t.TempDir()
		oh, op, _ := net.SplitHostPort(old.IMAPAddr)
		if out, stderr, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
			"--imap-port", op, "--tls", "none"); code != 0 {
			t.Fatalf("domain migrate: %s %s", out, stderr)
		}
		addr := freePort(t)
		nh, np, _ := net.SplitHostPort(addr)
		user, pw := old.Address(t, "alice")
		startServe := func() *exec.Cmd {
			cmd := exec.Command(mailferryBin, "serve", "--data", data, "--imap", addr, "--imaps", "off",
				"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off")
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					return cmd
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("serve did not start")
				}
			}
		}
		login := func() {
			out, err := exec.Command(py, "-c", `import imaplib,ssl,sys
c=imaplib.IMAP4(sys.argv[1],int(sys.argv[2]))
x=ssl.create_default_context(); x.check_hostname=False; x.verify_mode=ssl.CERT_NONE
c.starttls(ssl_context=x); c.login(sys.argv[3],sys.argv[4]); c.logout()`, nh, np, user, pw).CombinedOutput()
			if err != nil {
				t.Fatalf("login: %v %s", err, out)
			}
		}
		waitCopied := func(cmd *exec.Cmd, more uint32) bool {
			for deadline := time.Now().Add(60 * time.Second); inboxCount(t, data, user) < more; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("nothing copied within a minute")
				}
			}
			return inboxCount(t, data, user) < n
		}

		for _, stop := range []struct {
			name string
			sig  os.Signal
		}{{"kill -9", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
			cmd := startServe()
			before := inboxCount(t, data, user)
			login()
			if st, _ := accountState(t, data, user); st != "running" && st != "pending" {
				if st == "done" && inboxCount(t, data, user) >= n {
					cmd.Process.Kill()
					cmd.Wait()
					t.Skipf("the copy finished before %s landed", stop.name)
				}
				t.Errorf("status while copying: %q", st)
			}
			if !waitCopied(cmd, before+1) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Skipf("the copy finished before %s landed", stop.name)
			}
			cmd.Process.Signal(stop.sig)
			cmd.Wait()
			if inboxCount(t, data, user) >= n {
				t.Skipf("the copy finished before %s landed", stop.name)
			}
			if st, why := accountState(t, data, user); st != "interrupted" || why == "" {
				t.Fatalf("status after %s of serve: %q (%s), want interrupted with its reason", stop.name, st, why)
			}
		}

		// A new serve has no password: it says the copy waits for the
		// user's login, and the login resumes it.
		cmd := startServe()
		defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, why := accountState(t, data, user)
			if st == "waiting-login" && why != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status after serve restarted without the password: %q (%s), want waiting-login", st, why)
			}
		}
		out, err := exec.Command(py, "testdata/compare.py", oh, op, nh, np, user, pw, "120").CombinedOutput()
		if err != nil {
			t.Fatalf("compare after the login: %v\n%s", err, out)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if st, _ := accountState(t, data, user); st == "done" {
				break
			}
			if time.Now().After(deadline) {
				st, why := accountState(t, data, user)
				t.Fatalf("status after the copy: %q (%s), want done", st, why)
			}
		}
	})
}
