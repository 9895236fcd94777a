package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// serveProc is a `mailferry serve` a test or benchmark runs on a data
// directory, IMAP only (every other listener off), with its log kept.
// It is the one way the command's tests start serve.
type serveProc struct {
	addr string    // the IMAP listener
	cmd  *exec.Cmd // the process; its ProcessState once stopped
	logW *io.PipeWriter
	read chan struct{} // closed when the log is read to its end

	mu      sync.Mutex
	logs    bytes.Buffer
	stopped bool
	exitErr error // why stop found it ended badly, if it did
}

// serveStopWait is how long stop waits for serve to end on SIGINT
// before it kills it.
const serveStopWait = 20 * time.Second

// startServe starts `mailferry serve --data data` with only the IMAP
// listener, on addr ("": a free loopback port), and args added to its
// command line (a --config, --allow-insecure-auth); hands every line of
// its log to line if set, and returns once it listens. stop ends it; the
// test's end does too.
func startServe(tb testing.TB, data, addr string, line func(string), args ...string) *serveProc {
	tb.Helper()
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	p := &serveProc{addr: addr, read: make(chan struct{})}
	p.cmd = exec.Command(mailferryBin, append([]string{"serve", "--data", data, "--imap", p.addr, "--imaps", "off",
		"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off"}, args...)...)
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	logR, logW := io.Pipe()
	p.cmd.Stderr, p.logW = logW, logW
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(p.read)
		sc := bufio.NewScanner(logR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(l + "\n")
			p.mu.Unlock()
			if line != nil {
				line(l)
			}
		}
		io.Copy(io.Discard, logR)
	}()
	tb.Cleanup(func() { p.stop() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			p.kill()
			tb.Fatalf("mailferry serve did not listen on %s:\n%s", p.addr, p.log())
		}
	}
}

// stop interrupts serve (SIGINT) and waits for it, killing it after
// serveStopWait, and for its log. It says why serve did not end cleanly
// (nil if it did). Calling it again does nothing and says it again.
func (p *serveProc) stop() error {
	return p.end(func() {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				p.exitErr = fmt.Errorf("mailferry serve exited with %w", err)
			}
		case <-time.After(serveStopWait):
			p.cmd.Process.Kill()
			<-done
			p.exitErr = fmt.Errorf("mailferry serve did not stop on SIGINT within %v", serveStopWait)
		}
	})
}

// stopClean is stop, failing the test unless serve ended cleanly.
func (p *serveProc) stopClean(t testing.TB) {
	t.Helper()
	if err := p.stop(); err != nil {
		t.Errorf("%v:\n%s", err, p.log())
	}
}

// kill ends serve with SIGKILL, as a machine that dies.
func (p *serveProc) kill() {
	p.end(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
}

// end ends serve the once, by how, then waits for its log.
func (p *serveProc) end(how func()) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		<-p.read
		return p.exitErr
	}
	p.stopped = true
	p.mu.Unlock()
	how()
	p.logW.Close()
	<-p.read
	return p.exitErr
}

// log is serve's log so far.
func (p *serveProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// saveLog writes serve's log to the file the environment variable env
// names, if set (the log of a benchmark's last run, for reading after).
func (p *serveProc) saveLog(env string) {
	if f := os.Getenv(env); f != "" {
		os.WriteFile(f, []byte(p.log()), 0o600)
	}
}
