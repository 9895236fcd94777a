// Package pgtest gives tests a real PostgreSQL: one cluster per test
// binary, started on first use from the installed PostgreSQL 15 (initdb,
// then postgres on 127.0.0.1 with a random port, its Unix socket and data
// in a temporary directory), and a fresh database per test.
//
// Invariants:
//   - Nothing is mocked: it is Debian's PostgreSQL, found in
//     MAILFERRY_PG_BIN, /usr/lib/postgresql/15/bin or PATH.
//   - Without PostgreSQL a test is skipped with the reason, unless
//     MAILFERRY_REQUIRE_POSTGRES=1 (make test), when it fails.
//   - PostgreSQL refuses to run as root: as root the cluster is made and
//     run as the user nobody (setpriv), in a directory it owns.
//   - The cluster listens on loopback only and asks a password
//     (scram-sha-256), random per cluster.
//   - It runs without fsync (tests need no durability), unless
//     MAILFERRY_PGTEST_FSYNC=1 (benchmarks beside SQLite's fsyncs).
//   - It stops when Stop is called (a TestMain's), or else when the test
//     binary exits (the parent-death signal), and the next cluster started
//     removes the directory of one whose test binary is gone; a database
//     is dropped at the end of the test that made it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is the running PostgreSQL.
type cluster struct {
	dir      string // the temporary directory: data, sock, pw, log
	bin      string // PostgreSQL's programs
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{}

	mu    sync.Mutex // admin, n
	admin *pgx.Conn
	n     int
}

var (
	once     sync.Once
	running  *cluster
	startErr error
	// ErrNotInstalled is Available's error when PostgreSQL is not
	// installed (a reason to skip, not to fail, under plain go test).
	ErrNotInstalled = errors.New("PostgreSQL is not installed")
)

// URL returns the URL of a new, empty database in the test cluster
// (starting it on first use), dropped when the test ends. It skips the
// test if PostgreSQL is not installed, unless MAILFERRY_REQUIRE_POSTGRES=1.
func URL(t testing.TB) string {
	t.Helper()
	c := start(t)
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n)
	_, err := c.admin.Exec(context.Background(), `CREATE DATABASE `+name)
	c.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, err := c.admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.url(name)
}

// Restore returns the URL of a new database holding what the database at
// src holds, as an admin makes one from a backup: pg_dump of src piped
// into psql on a database made with createdb (URL). It is dropped when
// the test ends.
func Restore(t testing.TB, src string) string {
	t.Helper()
	c := start(t)
	dst := URL(t)
	dump := exec.Command(filepath.Join(c.bin, "pg_dump"), "--no-owner", "--dbname="+src)
	load := exec.Command(filepath.Join(c.bin, "psql"), "-q", "-v", "ON_ERROR_STOP=1", "--dbname="+dst)
	var err error
	if load.Stdin, err = dump.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	var dumpErr strings.Builder
	dump.Stderr = &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatalf("pgtest: pg_dump: %v", err)
	}
	out, lerr := load.CombinedOutput()
	if err := dump.Wait(); err != nil {
		t.Fatalf("pgtest: pg_dump: %v: %s", err, dumpErr.String())
	}
	if lerr != nil {
		t.Fatalf("pgtest: psql: %v: %s", lerr, out)
	}
	return dst
}

// Available reports whether tests can have a cluster: nil, or why not.
// It starts the cluster if it can.
func Available() error {
	once.Do(func() { running, startErr = startCluster() })
	return startErr
}

// Stop stops the cluster, if one was started, and removes its directory.
// A TestMain calls it after m.Run.
func Stop() {
	if running == nil {
		return
	}
	c := running
	running = nil
	c.admin.Close(context.Background())
	c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	os.RemoveAll(c.dir)
}

func start(t testing.TB) *cluster {
	t.Helper()
	err := Available()
	switch {
	case err == nil:
		return running
	case errors.Is(err, ErrNotInstalled) && os.Getenv("MAILFERRY_REQUIRE_POSTGRES") != "1":
		t.Skipf("pgtest: %v (install postgresql; MAILFERRY_REQUIRE_POSTGRES=1 makes this a failure)", err)
	default:
		t.Fatalf("pgtest: %v", err)
	}
	return nil
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://mailferry:%s@127.0.0.1:%d/%s?sslmode=disable", c.password, c.port, db)
}

// binDir finds PostgreSQL's programs.
func binDir() (string, error) {
	for _, d := range []string{os.Getenv("MAILFERRY_PG_BIN"), "/usr/lib/postgresql/15/bin"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("%w: no initdb in MAILFERRY_PG_BIN, /usr/lib/postgresql/15/bin or PATH", ErrNotInstalled)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Dir(p), nil
}

func startCluster() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	removeOrphans()
	dir, err := os.MkdirTemp("", "mailferry-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &cluster{dir: dir, bin: bin, exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	var pw [16]byte
	rand.Read(pw[:])
	c.password = hex.EncodeToString(pw[:])
	if err := os.Mkdir(filepath.Join(dir, "sock"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(c.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	// As root, everything runs as nobody, which must own the directory.
	var as []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no user nobody to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "sock"), filepath.Join(dir, "pw")} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no setpriv to run PostgreSQL as nobody: %w", err)
		}
		as = []string{setpriv, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--pdeathsig=TERM", "--"}
	}
	command := func(name string, args ...string) *exec.Cmd {
		argv := append(append(append([]string{}, as...), filepath.Join(bin, name)), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "TZ=UTC")
		dieWithParent(cmd)
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := command("initdb", "-D", data, "-U", "mailferry", "--pwfile="+filepath.Join(dir, "pw"),
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(c.port), "-k", filepath.Join(dir, "sock"),
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
	if os.Getenv("MAILFERRY_PGTEST_FSYNC") != "1" {
		// Tests need no durability from their database; benchmarks that
		// compare with SQLite's synchronous=FULL set MAILFERRY_PGTEST_FSYNC=1.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	c.cmd = command("postgres", args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.admin, err = pgx.Connect(ctx, c.url("postgres"))
		cancel()
		if err == nil {
			break
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("postgres exited: %s", tail(string(log)))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			<-c.exited
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("postgres did not answer within a minute: %v: %s", err, tail(string(log)))
		}
	}
	ok = true
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
