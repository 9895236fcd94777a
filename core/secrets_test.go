package core_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"mailferry/core"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
)

// TestOldPasswordNeverLoggedOrKept: "the old-server password a user typed
// is never written to disk or logs" (README, Security). Three users log
// in for the first time, one through each front end (IMAP LOGIN, POP3
// USER/PASS, SMTP AUTH PLAIN under STARTTLS), each first with a wrong
// password and then with the old server's: every first login takes the
// password to the old server and the copy runs with it. The log, at
// Debug level, and every file under the data directory (the database,
// its log, the packs) are then searched for each password typed, as it
// was typed and in base64 (SMTP AUTH's form on the wire): none may be
// there.
func TestOldPasswordNeverLoggedOrKept(t *testing.T) {
	users := map[string]string{
		"dave@example.test":  "Old-Pw-Dave-7f3kq",
		"erin@example.test":  "Old-Pw-Erin-2m9zt",
		"frank@example.test": "Old-Pw-Frank-5c1wx",
	}
	wrong := map[string]string{
		"dave@example.test":  "Wrong-Pw-Dave-8h4np",
		"erin@example.test":  "Wrong-Pw-Erin-3j7vb",
		"frank@example.test": "Wrong-Pw-Frank-6d2ly",
	}
	old := oldtest.StartKind(t, oldtest.InProcess, &oldtest.Options{Users: users})
	for u := range users {
		for i := range 3 {
			old.Append(t, u, "INBOX", nil, time.Now(), []byte("Subject: m"+strconv.Itoa(i)+"\r\n\r\nhello\r\n"))
		}
	}
	logs := &syncBuffer{}
	dir := t.TempDir()
	co, err := core.Open(core.Config{
		DataDir: dir, Hostname: "mail.test",
		IMAPListen: "127.0.0.1:0", IMAPSListen: core.Off, SMTPListen: core.Off,
		SubmissionListen: "127.0.0.1:0", SubmissionTLSListen: core.Off,
		POP3Listen: "127.0.0.1:0", POP3SListen: core.Off,
		AllowInsecureAuth: true,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(old.IMAPAddr)
	p, _ := strconv.Atoi(port)
	s := core.OldServerSettings{Host: oldserver.MustParseHost(host), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
		SMTPPort: 25, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
	ctx := context.Background()
	if err := co.SetMigration(ctx, oldtest.Domain, &s, true); err != nil {
		co.Close()
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			co.Close()
		}
	})

	// line speaks one raw line and returns the first answer line.
	dial := func(addr string) (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(60 * time.Second))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return c, r
	}
	answer := func(r *bufio.Reader, tag string) string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if tag == "" || strings.HasPrefix(l, tag+" ") {
				return strings.TrimSpace(l)
			}
		}
	}

	// IMAP: dave.
	c, r := dial(co.Addr("imap"))
	c.Write([]byte(`a LOGIN dave@example.test "` + wrong["dave@example.test"] + "\"\r\n"))
	if got := answer(r, "a"); !strings.HasPrefix(got, "a NO") {
		t.Fatalf("IMAP wrong password: %s", got)
	}
	c.Write([]byte(`b LOGIN dave@example.test "` + users["dave@example.test"] + "\"\r\n"))
	if got := answer(r, "b"); !strings.HasPrefix(got, "b OK") {
		t.Fatalf("IMAP first login: %s", got)
	}

	// POP3: erin.
	c, r = dial(co.Addr("pop3"))
	for _, pw := range []string{wrong["erin@example.test"], users["erin@example.test"]} {
		c.Write([]byte("USER erin@example.test\r\n"))
		answer(r, "")
		c.Write([]byte("PASS " + pw + "\r\n"))
		got := answer(r, "")
		if ok := strings.HasPrefix(got, "+OK"); ok != (pw == users["erin@example.test"]) {
			t.Fatalf("POP3 PASS %s: %s", pw, got)
		}
	}

	// SMTP AUTH PLAIN under STARTTLS: frank.
	tc := &tls.Config{InsecureSkipVerify: true}
	for _, pw := range []string{wrong["frank@example.test"], users["frank@example.test"]} {
		sc, _ := smtpStartTLS(t, co.Addr("submission"), tc)
		err := sc.Auth(sasl.NewPlainClient("", "frank@example.test", pw))
		if (err == nil) != (pw == users["frank@example.test"]) {
			t.Fatalf("SMTP AUTH with %s: %v", pw, err)
		}
		sc.Close()
	}

	// The copies finish with the passwords the logins gave.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := co.Status(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, u := range st.Users() {
			if _, ok := users[u.Address]; ok && u.State == core.MigDone && u.Messages == 3 {
				done++
			}
		}
		if done == len(users) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copies did not finish: %+v", st.Users())
		}
	}
	if err := co.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true

	var secrets []string
	for u := range users {
		for _, pw := range []string{users[u], wrong[u]} {
			secrets = append(secrets, pw, base64.StdEncoding.EncodeToString([]byte("\x00"+u+"\x00"+pw)))
		}
	}
	log := logs.String()
	if !strings.Contains(log, "first login") {
		t.Fatalf("the log does not show the first logins (was it captured?):\n%s", log)
	}
	for _, sec := range secrets {
		if strings.Contains(log, sec) {
			t.Errorf("the log holds %q", sec)
		}
	}
	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds %q", path, sec)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no file under the data directory")
	}
}
