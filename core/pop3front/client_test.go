package pop3front_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mailferry/core/certs"
)

// PoplibRun runs testdata/poplib_check.py against addr: it checks a wrong
// password, bad lines, STAT, LIST, UIDL (when uidls is not nil), RETR and
// TOP n 0 of each message of want, then deletes message dele (0: none)
// and QUITs.
func PoplibRun(t testing.TB, addr, user, pass string, stls bool, want [][]byte, uidls []string, dele int) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found (poplib tests need it)")
	}
	dir := t.TempDir()
	for i, m := range want {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.eml", i+1)), m, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	env := []string{"POP_HOST=" + host, "POP_PORT=" + port, "POP_USER=" + user, "POP_PASS=" + pass, "EXPECT_DIR=" + dir}
	if stls {
		env = append(env, "POP_STLS=1")
	}
	if dele > 0 {
		env = append(env, fmt.Sprintf("POP_DELE=%d", dele))
	}
	if uidls != nil {
		f := filepath.Join(dir, "uidls")
		if err := os.WriteFile(f, []byte(strings.Join(uidls, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "POP_UIDLS="+f)
	}
	script, err := filepath.Abs("testdata/poplib_check.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		// called from another package's tests
		script = filepath.Join(moduleRoot(t), "core", "pop3front", "testdata", "poplib_check.py")
	}
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "poplib OK") {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
}

func moduleRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func TestPoplib(t *testing.T) {
	e := newEnv(t, nil)
	m1, m2 := e.put(msg1), e.put(msg2)
	mb := e.inbox()
	uidls := []string{fmt.Sprintf("1 %08x%08x", mb.UIDValidity, m1.UID), fmt.Sprintf("2 %08x%08x", mb.UIDValidity, m2.UID)}
	PoplibRun(t, e.addr, user, pass, false, [][]byte{[]byte(msg1), []byte(msg2)}, uidls, 1)
	p := e.login()
	if r := p.ok("STAT"); r != fmt.Sprintf("+OK 1 %d", m2.Size) {
		t.Errorf("after poplib's DELE 1 and QUIT: STAT = %q", r)
	}
}

func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := certs.SelfSigned(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
}

// Without TLS no login is taken; STLS (with poplib) and implicit TLS
// allow it.
func TestTLS(t *testing.T) {
	cfg := testTLS(t)
	e := newEnv(t, &envOpts{tls: cfg, secure: true})
	e.put(msg1)
	p := e.dial()
	p.ok("CAPA")
	if capa := string(p.multi()); !strings.Contains(capa, "STLS\r\n") || strings.Contains(capa, "USER\r\n") {
		t.Errorf("CAPA before STLS: %q", capa)
	}
	if r := p.cmd("USER " + user); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("USER without TLS: %q", r)
	}
	b := "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABTZWNyZXQtcHctMQ=="
	if r := p.cmd(b); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("AUTH without TLS: %q", r)
	}
	PoplibRun(t, e.addr, user, pass, true, [][]byte{[]byte(msg1)}, nil, 0)

	// implicit TLS on its own listener
	ln := listen(t)
	go e.srv.ServeTLS(ln)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := &conn{t: t, c: c, r: newReader(c)}
	if g := tp.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	tp.ok("USER " + user)
	tp.ok("PASS " + pass)
	tp.ok("QUIT")
}
