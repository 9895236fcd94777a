package imapfront_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// The latency benchmarks run Mailferry as Dovecot runs: a server process
// of its own (`mailferry serve`, built from this module), not inside the
// benchmark's process, where it would share its heap, garbage collector,
// scheduler and GOMAXPROCS with the benchmark's 10 client goroutines.

// serveBuild is the mailferry binary the latency benchmarks start, built
// once per test binary.
var serveBuild struct {
	once sync.Once
	dir  string // the temporary directory holding it, removed by TestMain
	path string
	err  error
}

// mailferryBinary returns the path of a mailferry binary built from this
// module (`go build -tags nogui`, as `make build` but without the GUI), or
// MAILFERRY_LATENCY_BIN if set.
func mailferryBinary(tb testing.TB) string {
	tb.Helper()
	serveBuild.once.Do(func() {
		if p := os.Getenv("MAILFERRY_LATENCY_BIN"); p != "" {
			serveBuild.path = p
			return
		}
		serveBuild.dir, serveBuild.err = os.MkdirTemp("", "mailferry-latency-bin")
		if serveBuild.err != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		serveBuild.path = filepath.Join(serveBuild.dir, "mailferry")
		out, err := exec.Command(goBin, "build", "-tags", "nogui", "-o", serveBuild.path, "mailferry/cmd/mailferry").CombinedOutput()
		if err != nil {
			serveBuild.err = fmt.Errorf("building mailferry: %v\n%s", err, out)
		}
	})
	if serveBuild.err != nil {
		tb.Fatal(serveBuild.err)
	}
	return serveBuild.path
}

// userStore opens a store on the database file db with the domain
// example.test and the test account (user, pass), and returns it with the
// account's INBOX.
func userStore(tb testing.TB, db string) (*store.Store, *store.Mailbox) {
	tb.Helper()
	st, err := store.Open(db, &store.Options{Logger: quietLogger(), Summarize: imapfront.Summarize})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		st.Close()
		tb.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, user, pass, nil)
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	return st, mb
}

// removeServeBinary removes the binary mailferryBinary built, if any.
func removeServeBinary() {
	if serveBuild.dir != "" {
		os.RemoveAll(serveBuild.dir)
	}
}

// seedServeData makes a data directory for `mailferry serve` holding the
// test account (user, pass) with n messages in its INBOX, the same as
// fill's (and seedDovecot's), written through the store as the migration
// engine writes them; the store is closed before it returns.
func seedServeData(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	st, mb := userStore(tb, filepath.Join(dir, "mailferry.db"))
	fill(tb, st, mb, n)
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// copyDir copies the data directory src to a new temporary one, for a
// second server on the same mail.
func copyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		tb.Fatalf("copying %s: %v\n%s", src, err, out)
	}
	return dst
}

// serveProc is a running `mailferry serve`: IMAP on a free loopback port
// with LOGIN allowed without TLS, every other listener off.
type serveProc struct {
	addr string
	cmd  *exec.Cmd
	log  string // its log file
}

// startServeProc starts bin's `serve` on data, its log written to logPath
// ("": a temporary file), and returns once it listens;
// the benchmark's end stops it (SIGINT, so that a CPU profile or trace the
// environment asked for is written). env is added to its environment
// (MAILFERRY_CPUPROFILE=file, MAILFERRY_TRACE=file); the benchmark's own
// MAILFERRY_CPUPROFILE and MAILFERRY_TRACE are not passed on, so that two
// servers never write one file.
func startServeProc(tb testing.TB, bin, data, logPath string, env ...string) *serveProc {
	tb.Helper()
	if logPath == "" {
		logPath = filepath.Join(tb.TempDir(), "serve.log")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &serveProc{addr: ln.Addr().String(), log: logPath}
	ln.Close()
	logf, err := os.Create(p.log)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "serve", "--data", data, "--imap", p.addr, "--imaps", "off",
		"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off",
		"--allow-insecure-auth")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAILFERRY_CPUPROFILE=") && !strings.HasPrefix(kv, "MAILFERRY_TRACE=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(append(p.cmd.Env, "XDG_CONFIG_HOME="+filepath.Join(data, "config")), env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return p
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(p.log)
			tb.Fatalf("mailferry serve ended before listening on %s:\n%s", p.addr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.log)
			tb.Fatalf("mailferry serve did not listen on %s within 30 s:\n%s", p.addr, b)
		}
	}
}

// cpu is the CPU time the serve process has used so far.
func (p *serveProc) cpu() time.Duration { return oldtest.ProcessCPU(p.cmd.Process.Pid) }
