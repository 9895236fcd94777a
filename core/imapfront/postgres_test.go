package imapfront_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mailferry/core/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	removeServeBinary()
	os.Exit(code)
}

// TestPostgresEngine runs the server on the store's PostgreSQL engine:
// Python's imaplib (APPEND, FETCH and the rest of imaplib_check.py, then
// CONDSTORE/QRESYNC/SORT/THREAD) as on SQLite, and two servers (two
// nodes) on one database: an APPEND through one reaches an IDLE on the
// other within a second.
func TestPostgresEngine(t *testing.T) {
	for _, script := range []struct{ file, ok string }{
		{"testdata/imaplib_check.py", "imaplib OK"},
		{"testdata/imaplib_sync_check.py", "imaplib sync OK"},
	} {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(script.file, "testdata/"), ".py"), func(t *testing.T) {
			py, err := exec.LookPath("python3")
			if err != nil {
				t.Skip("python3 not found")
			}
			e := newEnv(t, &envOpts{databaseURL: pgtest.URL(t)})
			host, port, _ := net.SplitHostPort(e.addr)
			cmd := exec.Command(py, script.file)
			cmd.Env = append(os.Environ(), "IMAP_HOST="+host, "IMAP_PORT="+port, "IMAP_USER="+user, "IMAP_PASS="+pass)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), script.ok) {
				t.Fatalf("imaplib: %v\n%s", err, out)
			}
		})
	}
	t.Run("idle-across-nodes", func(t *testing.T) {
		nodeA := newEnv(t, &envOpts{databaseURL: pgtest.URL(t)})
		nodeB := newEnv(t, &envOpts{peer: nodeA})
		idler := nodeB.login()
		idler.ok("SELECT INBOX")
		idler.send("i1 IDLE\r\n")
		if l := idler.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("IDLE: %q", l)
		}
		for i := 1; i <= 3; i++ {
			start := time.Now()
			if tagged := nodeA.login().appendMsg("INBOX", `(\Seen)`, simple); !strings.Contains(tagged, "OK") {
				t.Fatal(tagged)
			}
			acked := time.Now()
			if l := idler.line(); l != "* "+string(rune('0'+i))+" EXISTS" {
				t.Fatalf("IDLE on node B after APPEND %d on node A: %q", i, l)
			}
			if d := time.Since(acked); d > time.Second {
				t.Fatalf("IDLE on node B told %v after node A's APPEND OK, want < 1 s", d)
			} else {
				t.Logf("APPEND %d: OK on A after %v, EXISTS on B %v after that", i, acked.Sub(start), d)
			}
			idler.line() // * n RECENT
		}
		idler.send("DONE\r\n")
		if _, tagged := idler.until("i1"); !strings.HasPrefix(tagged, "i1 OK") {
			t.Fatal(tagged)
		}
		un := idler.ok("FETCH 1:3 (FLAGS BODY[])")
		if strings.Count(un, "Subject:") != 3 {
			t.Fatalf("node B serves: %q", un)
		}
	})
}
