package main_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// TestTwoMigrateOneDataDir runs two `mailferry migrate` of the same user
// at once on one data directory, as an admin who started the bulk run
// twice. One process copies the account at a time (its copy lease): the
// other waits for it and then only catches up, so the mailbox's bytes are
// in the packs once, both commands succeed, and every message is there once.
func TestTwoMigrateOneDataDir(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		old := oldtest.StartKind(t, kind, nil)
		// Enough that the copy outlasts the second process's start: with
		// 300 (15 MB) the in-process server's copy was done in 0.4 s, before
		// the second looked (non-root go test ./..., session 9).
		const n = 1000
		total := seedPaddedKB(t, old, "alice", n, 52)

		data := t.TempDir()
		oh, op, _ := net.SplitHostPort(old.IMAPAddr)
		if out, stderr, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
			"--imap-port", op, "--tls", "none", "--master-user", old.MasterUser); code != 0 {
			t.Fatalf("domain migrate: %s %s", out, stderr)
		}
		users := filepath.Join(t.TempDir(), "users.csv")
		os.WriteFile(users, []byte("alice\n"), 0o600)
		type result struct {
			out, errs string
			code      int
		}
		res := make([]result, 2)
		start := time.Now()
		// The second starts once the first copies (its log says so).
		started := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for i := range res {
			if i == 1 {
				select {
				case <-started:
				case <-time.After(60 * time.Second):
					t.Fatal("the first migrate did not start copying")
				}
			}
			cmd := exec.Command(mailferryBin, "migrate", "--domain", "example.test", "--users", users,
				"--master-user", old.MasterUser, "--data", data)
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
			cmd.Stdin = strings.NewReader(old.MasterPassword + "\n")
			var out bytes.Buffer
			cmd.Stdout = &out
			errPipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var errb bytes.Buffer
				sc := bufio.NewScanner(errPipe)
				for sc.Scan() {
					errb.WriteString(sc.Text() + "\n")
					if strings.Contains(sc.Text(), "job started") {
						once.Do(func() { close(started) })
					}
				}
				cmd.Wait()
				res[i] = result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
			}()
		}
		wg.Wait()
		t.Logf("two migrate processes took %v", time.Since(start).Round(time.Millisecond))
		for i, r := range res {
			if r.code != 0 || !strings.Contains(r.out, "1 of 1 users migrated") {
				t.Errorf("migrate #%d: exit %d\n%s\n%s", i+1, r.code, r.out, r.errs)
			}
		}
		if !strings.Contains(res[1].errs, "being copied by another process; waiting for it") {
			t.Errorf("the second migrate did not meet the first's copy:\n%s", res[1].errs)
		}
		var packs int64
		filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".pack") {
				if fi, err := d.Info(); err == nil {
					packs += fi.Size()
				}
			}
			return nil
		})
		t.Logf("mail %d bytes, packs %d bytes", total, packs)
		if packs > total*13/10 {
			t.Errorf("packs hold %d bytes for %d bytes of mail: both processes copied the mailbox", packs, total)
		}
		if got := inboxCount(t, data, "alice@example.test"); got != n {
			t.Errorf("INBOX holds %d messages, want %d", got, n)
		}
	})
}
