package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/testkit"
)

// The two-node acceptance (issue 19): two `mailferry serve` processes with
// the same configuration, one PostgreSQL database and one S3 bucket
// (SeaweedFS), each with its own data directory (so its own node name) and
// its own loopback port, migrating from the Dovecot fixture.

// nodeLease is the copy lease of the test's nodes (copy_lease_seconds):
// how long at most a dead node's copy waits for another node.
const nodeLease = 6 * time.Second

// cluster is the shared configuration of the test's nodes.
type cluster struct {
	old    *oldtest.Server
	config string // the configuration file every node and command reads
}

// newCluster starts the old server and writes the configuration file of
// the distributed engine (PostgreSQL + S3) with the domain migrating from
// it; master says whether the configuration names the master password
// file (so nodes resume copies without the user's login); users are the
// old server's (nil: oldtest's default), extra more configuration keys.
func newCluster(t *testing.T, master bool, users map[string]string, extra map[string]any) *cluster {
	t.Helper()
	old := oldtest.StartKind(t, oldtest.Dovecot, &oldtest.Options{Separator: '/', Users: users})
	dir := t.TempDir()
	cfg := map[string]any{"copy_lease_seconds": int(nodeLease / time.Second)}
	for k, v := range extra {
		cfg[k] = v
	}
	if master {
		pw := filepath.Join(dir, "master.pw")
		if err := os.WriteFile(pw, []byte(old.MasterPassword+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg["master_password_files"] = map[string]string{"example.test": pw}
	}
	c := &cluster{old: old, config: distributedConfig(t, dir, cfg)}
	oh, op, _ := net.SplitHostPort(old.IMAPAddr)
	if out, stderr, code := mf(t, t.TempDir(), "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
		"--imap-port", op, "--tls", "none", "--master-user", old.MasterUser, "--config", c.config); code != 0 {
		t.Fatalf("domain migrate: %s %s", out, stderr)
	}
	return c
}

// distributedConfig writes, in dir, a configuration file of the
// distributed engine: a new PostgreSQL database and a new bucket on the
// test binary's SeaweedFS, with the keys of extra added; it returns its
// path.
func distributedConfig(t testing.TB, dir string, extra map[string]any) string {
	t.Helper()
	s3 := testkit.StartS3(t)
	secret := filepath.Join(dir, "s3.secret")
	if err := os.WriteFile(secret, []byte(s3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"database_url": testkit.PostgresURL(t), "s3_endpoint": s3.Endpoint, "s3_bucket": s3.Bucket,
		"s3_access_key": s3.AccessKey, "s3_secret_key_file": secret, "s3_tls": false, "allow_insecure_auth": true,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "mailferry.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// node starts a `mailferry serve` of the cluster with a data directory of
// its own.
func (c *cluster) node(t *testing.T) *serveProc {
	t.Helper()
	return startServe(t, t.TempDir(), "", nil, "--config", c.config)
}

// compare runs testdata/compare.py: user logs in at node n (starting or
// finishing the copy) and every folder is compared with the old server.
func (c *cluster) compare(t *testing.T, n *serveProc, user string, timeout time.Duration) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (make test installs it)")
	}
	addr, pw := c.old.Address(t, user)
	oh, op, _ := net.SplitHostPort(c.old.IMAPAddr)
	nh, np, _ := net.SplitHostPort(n.addr)
	out, err := exec.Command(py, "testdata/compare.py", oh, op, nh, np, addr, pw,
		fmt.Sprint(int(timeout/time.Second))).CombinedOutput()
	if err != nil {
		t.Fatalf("compare %s through %s: %v\n%s\nnode log:\n%s", user, n.addr, err, out, n.log())
	}
	t.Logf("%s through %s: %s", user, n.addr, strings.TrimSpace(string(out)))
}

// inbox is how many messages user's INBOX holds in the shared store.
func (c *cluster) inbox(t *testing.T, user string) uint32 {
	addr, _ := c.old.Address(t, user)
	return inboxCount(t, t.TempDir(), addr, "--config", c.config)
}

// logged returns the time of the first line of logs (slog's text form)
// that contains what and is not before after; zero if there is none.
func logged(logs, what string, after time.Time) time.Time {
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, what) || !strings.HasPrefix(l, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(after) {
			return at
		}
	}
	return time.Time{}
}

// imapConn is a raw IMAP connection: lines as the wire has them.
type imapConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialIMAP(t *testing.T, addr, user, pw string) *imapConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ic := &imapConn{t: t, c: c, rd: bufio.NewReader(c)}
	ic.line() // greeting
	ic.cmd("l", fmt.Sprintf("LOGIN %q %q", user, pw))
	return ic
}

func (ic *imapConn) line() string {
	ic.t.Helper()
	ic.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := ic.rd.ReadString('\n')
	if err != nil {
		ic.t.Fatalf("IMAP read: %v", err)
	}
	return l
}

// cmd sends tag+" "+text and reads up to the tagged answer, failing
// unless it is OK; it returns the untagged lines.
func (ic *imapConn) cmd(tag, text string) []string {
	ic.t.Helper()
	fmt.Fprintf(ic.c, "%s %s\r\n", tag, text)
	return ic.until(tag)
}

func (ic *imapConn) until(tag string) []string {
	ic.t.Helper()
	var lines []string
	for {
		l := ic.line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				ic.t.Fatalf("IMAP %s: %s", tag, l)
			}
			return lines
		}
		lines = append(lines, l)
	}
}

// TestTwoNodesServeOneStore: a user migrated through node A reads
// identical mail through node B (folders, UIDVALIDITY, every message's
// UID, flags, INTERNALDATE and bytes), and an APPEND on A reaches an IDLE
// on B within a second.
func TestTwoNodesServeOneStore(t *testing.T) {
	c := newCluster(t, false, nil, nil)
	seedOld(t, c.old, '/')
	a, b := c.node(t), c.node(t)
	c.compare(t, a, "alice", 60*time.Second) // the first login, at A, copies
	c.compare(t, b, "alice", 10*time.Second) // B serves the same store

	addr, pw := c.old.Address(t, "alice")
	idle := dialIMAP(t, b.addr, addr, pw)
	var exists int
	for _, l := range idle.cmd("s", "SELECT INBOX") {
		fmt.Sscanf(l, "* %d EXISTS", &exists)
	}
	fmt.Fprintf(idle.c, "i IDLE\r\n")
	if l := idle.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %s", l)
	}
	app := dialIMAP(t, a.addr, addr, pw)
	var worst time.Duration
	for i := 0; i < 3; i++ {
		raw := fmt.Sprintf("Subject: across nodes %d\r\n\r\nfrom A to B\r\n", i)
		fmt.Fprintf(app.c, "a%d APPEND INBOX {%d}\r\n", i, len(raw))
		if l := app.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND at A: %s", l)
		}
		fmt.Fprintf(app.c, "%s\r\n", raw)
		app.until(fmt.Sprintf("a%d", i))
		ok := time.Now()
		exists++
		want := fmt.Sprintf("* %d EXISTS", exists)
		for {
			idle.c.SetReadDeadline(ok.Add(time.Second))
			l, err := idle.rd.ReadString('\n')
			if err != nil {
				t.Fatalf("IDLE at B did not see the APPEND at A within 1 s (%v)", err)
			}
			if strings.HasPrefix(l, want) {
				break
			}
		}
		lat := time.Since(ok)
		t.Logf("APPEND at A seen by IDLE at B %v after its OK", lat.Round(time.Millisecond))
		worst = max(worst, lat)
	}
	if worst > time.Second {
		t.Errorf("IDLE across nodes: worst %v, want within 1 s", worst)
	}
	fmt.Fprintf(idle.c, "DONE\r\n")
	idle.until("i")

	// carol's first login reaches both nodes at once (a client with two
	// connections): both let her in, and her mail is there once.
	caddr, cpw := c.old.Address(t, "carol")
	c.old.Append(t, "carol", "INBOX", []string{`\Seen`}, time.Now(), []byte("Subject: for carol\r\n\r\nhi\r\n"))
	res := make([]string, 2)
	var wg sync.WaitGroup
	for i, n := range []*serveProc{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = oldtest.LoginFrom(n.addr, "127.0.0.1", caddr, cpw) }()
	}
	wg.Wait()
	for i, r := range res {
		if !strings.HasPrefix(r, "a OK") {
			t.Errorf("carol's first login at node %d: %s", i, r)
		}
	}
	c.compare(t, a, "carol", 60*time.Second)

	// Status, from any machine with the configuration: the engine, where
	// the bytes are, and both nodes live; a node stopped cleanly is gone.
	if live := c.liveNodes(t); len(live) != 2 {
		t.Errorf("live nodes: %v, want 2", live)
	}
	a.stopClean(t)
	if live := c.liveNodes(t); len(live) != 1 {
		t.Errorf("live nodes after A stopped: %v, want 1", live)
	}
	b.stopClean(t)
}

// liveNodes reads `mailferry status --json` and `mailferry status` with
// the cluster's configuration: the names of the live nodes. It checks the
// engine and where the bytes are, and that the words say as much.
func (c *cluster) liveNodes(t *testing.T) []string {
	t.Helper()
	data := t.TempDir()
	out, stderr, code := mf(t, data, "", "status", "--json", "--config", c.config)
	if code != 0 {
		t.Fatalf("status --json: %s", stderr)
	}
	var rep struct {
		Engine, Database, Blobs string
		Nodes                   []struct {
			Name string
			Live bool
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Engine != "postgresql" || !strings.Contains(rep.Database, "xxxxx") || !strings.HasPrefix(rep.Blobs, "S3 http://127.0.0.1:") {
		t.Errorf("status --json: engine %q, database %q, blobs %q", rep.Engine, rep.Database, rep.Blobs)
	}
	var live []string
	for _, n := range rep.Nodes {
		if n.Live {
			live = append(live, n.Name)
		}
	}
	words, stderr, code := mf(t, data, "", "status", "--config", c.config)
	if code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	if want := fmt.Sprintf("nodes: %d live", len(live)); !strings.Contains(words, want) || !strings.Contains(words, "store: PostgreSQL, postgres://") {
		t.Errorf("status says\n%s\nwant %q and the store", words, want)
	}
	return live
}

// TestTwoNodesTakeOverCopy: node A is killed (SIGKILL) while it copies a
// user's mailbox; node B finishes the copy, with nothing missing, nothing
// twice and the old server's UIDs, within the copy lease of the dead node
// (plus a retry): after the user's next login at B, and, when the
// configuration names the domain's master password, by itself.
func TestTwoNodesTakeOverCopy(t *testing.T) {
	const n = 1000 // ~26 MB: seconds of copying into S3, even with the copy as fast as it is now (250 were copied whole before the kill landed)
	for _, tc := range []struct {
		name   string
		master bool
	}{
		{"login at B", false},
		{"master password", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.master, nil, nil)
			seedPadded(t, c.old, "bob", n)
			a, b := c.node(t), c.node(t)
			addr, pw := c.old.Address(t, "bob")
			dialIMAP(t, a.addr, addr, pw).c.Close() // the first login, at A
			deadline := time.Now().Add(60 * time.Second)
			for c.inbox(t, "bob") == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("A copied nothing within a minute:\n%s", a.log())
				}
				time.Sleep(50 * time.Millisecond)
			}
			a.kill()
			killed := time.Now()
			before := c.inbox(t, "bob")
			if before >= n {
				t.Fatalf("the copy finished (%d messages) before the kill landed: make the mailbox bigger", before)
			}
			t.Logf("A killed with %d of %d messages copied", before, n)

			if !tc.master {
				// The user comes back, at B.
				dialIMAP(t, b.addr, addr, pw).c.Close()
			}
			// B takes the lease (its log says "job started") and copies on.
			var took time.Time
			for took.IsZero() {
				if time.Since(killed) > 3*nodeLease {
					t.Fatalf("B did not take the copy over within %v:\n%s", 3*nodeLease, b.log())
				}
				time.Sleep(50 * time.Millisecond)
				took = logged(b.log(), `msg="migrate: job started" account=`+addr, killed)
			}
			takeover := took.Sub(killed)
			t.Logf("B took the copy over %v after A was killed (copy lease %v)", takeover.Round(time.Millisecond), nodeLease)
			// The lease was renewed at most a third of it before the kill;
			// B tries again as it expires. Half a second for B's own steps
			// on a loaded machine.
			if limit := nodeLease + nodeLease/12; takeover > limit {
				t.Errorf("takeover took %v, want within the copy lease and a bit (%v):\n%s", takeover, limit, b.log())
			}
			for c.inbox(t, "bob") == before {
				if time.Since(killed) > 60*time.Second {
					t.Fatalf("B copied nothing within a minute of the kill:\n%s", b.log())
				}
				time.Sleep(100 * time.Millisecond)
			}
			c.compare(t, b, "bob", 120*time.Second) // every message once, the old server's UIDs
			if got := c.inbox(t, "bob"); got != n {
				t.Errorf("INBOX holds %d messages, want %d", got, n)
			}
			b.stopClean(t)
		})
	}
}

// TestTwoNodesBulkMigrate: `mailferry migrate` of one user list on two
// nodes at once shares the users through the copy leases: every user is
// copied by one node only (the other only catches up after), and both
// nodes copy.
func TestTwoNodesBulkMigrate(t *testing.T) {
	const nUsers, nMsgs = 6, 40
	users := map[string]string{}
	var list strings.Builder
	for i := range nUsers {
		u := fmt.Sprintf("u%d@example.test", i)
		users[u] = fmt.Sprintf("Secret-%d-pw", i)
		list.WriteString(u + "\n")
	}
	c := newCluster(t, false, users, map[string]any{"migrate_accounts": 2})
	for u := range users {
		seedPadded(t, c.old, u, nMsgs)
	}
	file := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(file, []byte(list.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	type run struct {
		out, errs string
		code      int
	}
	runs := make([]run, 2)
	done := make(chan struct{})
	for i := range runs {
		go func() {
			defer func() { done <- struct{}{} }()
			data := t.TempDir()
			runs[i].out, runs[i].errs, runs[i].code = mf(t, data, c.old.MasterPassword+"\n", "migrate", "--domain", "example.test",
				"--users", file, "--master-user", c.old.MasterUser, "--config", c.config)
		}()
	}
	<-done
	<-done
	copied := map[string][]int{} // user: the runs that copied it (not a catch-up)
	for i, r := range runs {
		if r.code != 0 || !strings.Contains(r.out, fmt.Sprintf("%d of %d users migrated", nUsers, nUsers)) {
			t.Fatalf("migrate on node %d: exit %d\n%s\n%s", i, r.code, r.out, r.errs)
		}
		for _, l := range strings.Split(r.errs, "\n") {
			if strings.Contains(l, `msg="migrate: job started"`) && strings.Contains(l, "catchup=false") {
				_, acct, _ := strings.Cut(l, "account=")
				acct, _, _ = strings.Cut(acct, " ")
				copied[acct] = append(copied[acct], i)
			}
		}
	}
	per := [2]int{}
	for u := range users {
		switch got := copied[u]; len(got) {
		case 1:
			per[got[0]]++
		default:
			t.Errorf("%s copied by nodes %v, want by one", u, got)
		}
		if n := c.inbox(t, u); n != nMsgs {
			t.Errorf("%s: INBOX holds %d messages, want %d", u, n, nMsgs)
		}
	}
	t.Logf("users copied by node 0: %d, by node 1: %d", per[0], per[1])
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("one node did all the work: %v\nnode 0:\n%s\nnode 1:\n%s", per, runs[0].errs, runs[1].errs)
	}
}
