package imapfront_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/imapfront"
)

// lockedBuffer is a bytes.Buffer several loggers write to at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAuthenticateNeverLogsPassword (session 17 review of AUTH=LOGIN): the
// log at its Debug level, of logins by AUTHENTICATE LOGIN (with and
// without SASL-IR), AUTHENTICATE PLAIN and LOGIN, right and wrong, to
// the rate limit, of an unknown user (the on-login migration) and of
// usernames holding NUL, CR and LF, holds no password, in clear or in
// base64, and every log line is one record: a username's CR or LF does
// not make a line of its own. Each mechanism's failures count towards
// the one limit, whichever comes first (a client alternating them).
func TestAuthenticateNeverLogsPassword(t *testing.T) {
	var log lockedBuffer
	m := &fakeMigrator{password: "Old-Secret-7", first: make(chan string, 10), loggedIn: make(chan string, 10)}
	e := newEnv(t, &envOpts{migrator: m, log: &log,
		rateLimit: imapfront.LoginRateLimit{PerIP: 100, PerUser: 4, Refill: time.Hour}})
	m.st = e.st
	secrets := []string{pass, "Old-Secret-7"}
	plain := func(c *conn, user, pw string) string {
		c.tag++
		tag := fmt.Sprintf("p%d", c.tag)
		c.send(tag + " AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pw)) + "\r\n")
		_, tg := c.until(tag)
		return tg
	}
	c := e.dial()
	if tg := authLogin(t, c, user, pass); !strings.Contains(tg, " OK ") {
		t.Fatalf("AUTHENTICATE LOGIN: %s", tg)
	}
	c = e.dial()
	if tg := plain(c, user, pass); !strings.Contains(tg, " OK ") {
		t.Fatalf("AUTHENTICATE PLAIN: %s", tg)
	}
	c = e.dial()
	c.send("i AUTHENTICATE LOGIN " + base64.StdEncoding.EncodeToString([]byte(user)) + "\r\n")
	c.line()
	c.send(base64.StdEncoding.EncodeToString([]byte(pass)) + "\r\n")
	if _, tg := c.until("i"); !strings.HasPrefix(tg, "i OK ") {
		t.Fatalf("AUTHENTICATE LOGIN with SASL-IR: %s", tg)
	}
	c = e.dial()
	if tg := authLogin(t, c, "dave@example.test", "Old-Secret-7"); !strings.Contains(tg, " OK ") {
		t.Fatalf("first login of an unknown user: %s", tg)
	}
	// Usernames with NUL, CR, LF (and the password typed after them).
	for i, u := range []string{"ali\x00ce@example.test", user + "\r\nx", "a\nb INFO forged=1", user + "\x00" + pass} {
		wrong := fmt.Sprintf("Wrong-Secret-%d", i)
		secrets = append(secrets, wrong)
		c = e.dial()
		if tg := authLogin(t, c, u, wrong); !strings.Contains(tg, " NO ") {
			t.Fatalf("AUTHENTICATE LOGIN as %q: %s", u, tg)
		}
	}
	// Wrong passwords, alternating mechanisms, to the account's limit (4).
	c = e.dial()
	for i := range 4 {
		wrong := fmt.Sprintf("Bad-Secret-%d", i)
		secrets = append(secrets, wrong)
		var tg string
		switch i % 3 {
		case 0:
			tg = authLogin(t, c, user, wrong)
		case 1:
			tg = plain(c, user, wrong)
		default:
			_, tg = c.status("LOGIN %s %s", user, wrong)
			tg = "x " + tg
		}
		if !strings.Contains(tg, " NO") {
			t.Fatalf("wrong password %d: %s", i, tg)
		}
	}
	for i, try := range []func() string{
		func() string { return authLogin(t, c, user, pass) },
		func() string { return plain(c, user, pass) },
	} {
		if tg := try(); !strings.Contains(tg, " NO [UNAVAILABLE]") {
			t.Fatalf("right password %d after the limit: %s", i, tg)
		}
	}

	out := log.String()
	if !strings.Contains(out, "login refused") && !strings.Contains(out, "failed") {
		t.Fatalf("the log shows no refused login; is it captured?\n%s", out)
	}
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(s)), "=")} {
			if strings.Contains(out, form) {
				t.Errorf("the log holds the password %q (as %q):\n%s", s, form, out)
			}
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "time=") {
			t.Errorf("a log line that is not a record (a username's CR/LF?): %q", l)
		}
	}
}

// TestAuthenticatePlainMalformed (session 17 review): a SASL PLAIN
// response that is base64 but not "[authzid] NUL user NUL password"
// (empty, as "=" or an empty line; one NUL) is answered BAD, as one that
// is not base64, and the session goes on; it was NO [SERVERBUG] Internal
// server error, logged as the server's own error ("handling AUTHENTICATE
// command"), by any client before login, as often as it liked.
func TestAuthenticatePlainMalformed(t *testing.T) {
	var log lockedBuffer
	e := newEnv(t, &envOpts{log: &log})
	c := e.dial()
	for _, lines := range []string{
		"a AUTHENTICATE PLAIN =\r\n",
		"b AUTHENTICATE PLAIN\r\n=\r\n",
		"c AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user)) + "\r\n",
		"d AUTHENTICATE PLAIN\r\n\r\n",
		"e AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte(user+"\x00"+pass)) + "\r\n",
	} {
		c.send(lines)
		tag := lines[:1]
		if _, tg := c.until(tag); !strings.HasPrefix(tg, tag+" BAD ") {
			t.Errorf("%q: %s, want %s BAD", lines, tg, tag)
		}
	}
	c.send("f AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + "\r\n")
	if _, tg := c.until("f"); !strings.HasPrefix(tg, "f OK ") {
		t.Fatalf("AUTHENTICATE PLAIN after the malformed ones: %s", tg)
	}
	if out := log.String(); strings.Contains(out, "handling AUTHENTICATE") || strings.Contains(out, "sasl:") {
		t.Errorf("a client's malformed response logged as the server's error:\n%s", out)
	}
}
