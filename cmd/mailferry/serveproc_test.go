package main_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// serveProc is a `mailferry serve` a benchmark runs on a data directory,
// IMAP only (every other listener off), with its log kept.
type serveProc struct {
	addr string    // the IMAP listener, on a free loopback port
	cmd  *exec.Cmd // the process; its ProcessState once stopped
	logW *io.PipeWriter
	read chan struct{} // closed when the log is read to its end

	mu      sync.Mutex
	logs    bytes.Buffer
	stopped bool
}

// startServe starts serve on data (args are added to its command line,
// e.g. --config), hands every line of its log to line if set, and returns
// once it listens. stop ends it; the benchmark's end does too.
func startServe(b testing.TB, data string, line func(string), args ...string) *serveProc {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &serveProc{addr: ln.Addr().String(), read: make(chan struct{})}
	ln.Close()
	p.cmd = exec.Command(mailferryBin, append([]string{"serve", "--data", data, "--imap", p.addr, "--imaps", "off",
		"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off", "--allow-insecure-auth"}, args...)...)
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	logR, logW := io.Pipe()
	p.cmd.Stderr, p.logW = logW, logW
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
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
	b.Cleanup(p.stop)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			p.stop()
			b.Fatalf("serve did not listen:\n%s", p.log())
		}
	}
}

// stop interrupts serve and waits for it and its log. Calling it again
// does nothing.
func (p *serveProc) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	p.logW.Close()
	<-p.read
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
