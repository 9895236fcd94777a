package imapfront_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"mailferry/core/imapfront"
	"mailferry/core/store"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestStructureDefaults: BODYSTRUCTURE and BODY of parts whose Content-Type
// is missing or bare take RFC 2045's defaults as Dovecot 2.3 gives them
// (side-by-side script "bodystructure-defaults"): a text part without a
// charset has ("charset" "us-ascii") (RFC 2045 5.2), also inside a
// message/rfc822 part and a multipart; a multipart/digest's child without
// Content-Type is message/rfc822 (RFC 2046 5.1.5), with its envelope and
// structure. Parameters are sent sorted and lower-cased (RFC 2045 5.1:
// their order and the case of names are not significant; Dovecot keeps the
// header's order and case).
func TestStructureDefaults(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	for _, m := range structureDefaultMsgs {
		if tg := c.appendMsg("INBOX", "", m); !strings.Contains(tg, " OK") {
			t.Fatal(tg)
		}
	}
	c.ok("SELECT INBOX")
	want := map[int]string{
		1:  `BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
		2:  `BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
		3:  `BODYSTRUCTURE ("text" "html" ("charset" "us-ascii" "format" "flowed") NIL NIL "7bit" 13 1 NIL NIL NIL NIL)`,
		4:  `BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
		5:  `BODYSTRUCTURE ("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
		8:  `BODYSTRUCTURE ("application" "pdf" NIL NIL NIL "7bit" 10 NIL NIL NIL NIL)`,
		9:  `BODYSTRUCTURE ("message" "rfc822" NIL NIL NIL "7bit" 52 (NIL "inner" ((NIL NIL "b" "example.test")) ((NIL NIL "b" "example.test")) ((NIL NIL "b" "example.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)`,
		11: `BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "7bit" 1 0 NIL NIL NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL)`,
		12: `BODYSTRUCTURE (("message" "rfc822" NIL NIL NIL "7bit" 42 (NIL "digest" ((NIL NIL "c" "example.test")) ((NIL NIL "c" "example.test")) ((NIL NIL "c" "example.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) "digest" ("boundary" "x") NIL NIL NIL)`,
		13: `BODYSTRUCTURE ("text" "plain" ("charset" "") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
		14: `BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii" "delsp" "yes" "format" "flowed") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
	}
	for n, w := range want {
		// Twice: the first FETCH may summarize, the second reads the cache.
		for range 2 {
			un := c.ok("FETCH %d (BODYSTRUCTURE)", n)
			if !strings.Contains(un, w) {
				t.Errorf("message %d:\n got %s\nwant %s", n, strings.TrimSpace(un), w)
			}
		}
	}
	// BODY (the non-extensible form) carries the same default.
	if un := c.ok("FETCH 1 (BODY)"); !strings.Contains(un, `BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)`) {
		t.Errorf("BODY: %s", un)
	}
	// The digest's child is addressed as the message it is, as its
	// structure says: 1.1 is its body ("d", 1 byte, as the structure's
	// size).
	if un := c.ok("FETCH 12 (BODY.PEEK[1.HEADER.FIELDS (SUBJECT)] BODY.PEEK[1.1])"); !strings.Contains(un, "Subject: digest") || !strings.Contains(un, "BODY[1.1] {1}\r\nd)") {
		t.Errorf("digest part: %q", un)
	}
}

// TestListExtendedNonExistent: an extended LIST (RFC 5258) gives a level
// that is only a parent \NonExistent, also when its only extended syntax is
// an empty selection list, an empty RETURN or a parenthesized pattern list,
// as Dovecot 2.3 does (side-by-side script "list-nonexistent"); a basic
// LIST keeps \Noselect (RFC 3501 6.3.8), and so does LSUB.
func TestListExtendedNonExistent(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE p/a/b")
	c.ok("SUBSCRIBE p/a/b")
	for cmd, want := range map[string]string{
		`LIST () "" p*`:                `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST () "" p/%`:               `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST "" p* RETURN ()`:         `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST "" (p/a)`:                `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST "" (p*)`:                 `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST (REMOTE) "" p*`:          `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
		`LIST "" p*`:                   `* LIST (\Noselect \HasChildren) "/" "p/a"`,
		`LIST "" p/%`:                  `* LIST (\Noselect \HasChildren) "/" "p/a"`,
		`LSUB "" p/%`:                  `* LSUB (\Noselect) "/" "p/a"`,
		`LIST "" p* RETURN (CHILDREN)`: `* LIST (\NonExistent \HasChildren) "/" "p/a"`,
	} {
		if un := c.ok("%s", cmd); !strings.Contains(un, want+"\r\n") {
			t.Errorf("%s:\n%s\nwant %s", cmd, un, want)
		}
	}
}

// authLogin runs AUTHENTICATE LOGIN with the username and password given
// (in clear; each sent in base64 after its challenge) and returns the
// tagged answer.
func authLogin(t *testing.T, c *conn, username, password string) string {
	t.Helper()
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(tag + " AUTHENTICATE LOGIN\r\n")
	if l := c.line(); l != "+ VXNlcm5hbWU6" { // "Username:"
		t.Fatalf("first challenge %q", l)
	}
	c.send(base64.StdEncoding.EncodeToString([]byte(username)) + "\r\n")
	if l := c.line(); l != "+ UGFzc3dvcmQ6" { // "Password:"
		t.Fatalf("second challenge %q", l)
	}
	c.send(base64.StdEncoding.EncodeToString([]byte(password)) + "\r\n")
	_, tagged := c.until(tag)
	return tagged
}

// TestAuthLogin: AUTH=LOGIN (the SASL LOGIN mechanism Outlook and some
// phones use; Dovecot 2.3 offers it) logs in as LOGIN does, with the
// challenges Dovecot sends ("Username:", "Password:"; side-by-side script
// "auth-login"), the username also as SASL-IR's initial response; through
// the same login policy: a wrong password is NO [AUTHENTICATIONFAILED],
// failures count towards the same rate limit as LOGIN's, and the first
// login of an unknown user goes to the migrator (on-login migration).
func TestAuthLogin(t *testing.T) {
	m := &fakeMigrator{password: "old-pw", first: make(chan string, 10), loggedIn: make(chan string, 10)}
	e := newEnv(t, &envOpts{migrator: m, rateLimit: imapfront.LoginRateLimit{PerIP: 100, PerUser: 3, Refill: time.Hour}})
	m.st = e.st
	c := e.dial()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, " AUTH=PLAIN AUTH=LOGIN") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	if tg := authLogin(t, c, user, pass); !strings.Contains(tg, " OK ") {
		t.Fatalf("AUTHENTICATE LOGIN: %s", tg)
	}
	if a := <-m.loggedIn; a != user {
		t.Fatalf("LoggedIn(%q)", a)
	}
	c.ok("SELECT INBOX")

	// The username as the initial response (SASL-IR): one challenge.
	c = e.dial()
	c.send("a AUTHENTICATE LOGIN " + base64.StdEncoding.EncodeToString([]byte(user)) + "\r\n")
	if l := c.line(); l != "+ UGFzc3dvcmQ6" {
		t.Fatalf("challenge after an initial response %q", l)
	}
	c.send(base64.StdEncoding.EncodeToString([]byte(pass)) + "\r\n")
	if _, tg := c.until("a"); !strings.HasPrefix(tg, "a OK ") {
		t.Fatalf("AUTHENTICATE LOGIN with SASL-IR: %s", tg)
	}
	// "=" is an empty initial response: none, the username is asked for.
	c = e.dial()
	c.send("b AUTHENTICATE LOGIN =\r\n")
	if l := c.line(); l != "+ VXNlcm5hbWU6" {
		t.Fatalf("challenge after an empty initial response %q", l)
	}
	c.send("*\r\n")
	c.until("b")

	// First login of an unknown user: the migrator is asked, as for LOGIN.
	c = e.dial()
	if tg := authLogin(t, c, "carol@example.test", "old-pw"); !strings.Contains(tg, " OK ") {
		t.Fatalf("first login: %s", tg)
	}
	if u := <-m.first; u != "carol@example.test" {
		t.Fatalf("FirstLogin(%q)", u)
	}

	// Wrong passwords, by AUTHENTICATE LOGIN and LOGIN, share the limit.
	c = e.dial()
	for i := range 2 {
		if tg := authLogin(t, c, user, fmt.Sprintf("bad%d", i)); !strings.Contains(tg, " NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("wrong password %d: %s", i, tg)
		}
	}
	if got, all := c.status("LOGIN %s bad2", user); got != "NO" {
		t.Fatalf("LOGIN wrong: %s", all)
	}
	if tg := authLogin(t, c, user, pass); !strings.Contains(tg, " NO [UNAVAILABLE]") {
		t.Fatalf("AUTHENTICATE LOGIN after the limit: %s", tg)
	}
}

// TestAuthLoginHostile: a response that is not base64 or is "*" (cancel)
// is answered BAD and the session goes on (RFC 3501 6.2.2; Dovecot says NO
// [ALERT] to bad base64); a response longer than the line buffer ends the
// connection (BYE [TOOBIG]) without being held, as for PLAIN; without TLS
// where LOGIN is not allowed, AUTH=LOGIN is not offered and AUTHENTICATE
// LOGIN is NO [PRIVACYREQUIRED] before any challenge.
func TestAuthLoginHostile(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	for _, tc := range []struct{ lines, want string }{
		{"a AUTHENTICATE LOGIN\r\n*\r\n", "a BAD "},
		{"b AUTHENTICATE LOGIN\r\n" + base64.StdEncoding.EncodeToString([]byte(user)) + "\r\n*\r\n", "b BAD "},
		{"c AUTHENTICATE LOGIN\r\n!!!\r\n", "c BAD "},
		{"d AUTHENTICATE LOGIN\r\nYWxp Y2U=\r\n", "d BAD "},
		{"e AUTHENTICATE LOGIN !!!\r\n", "e BAD "},
		{"f AUTHENTICATE LOGIN\r\n\r\n\r\n", "f NO [AUTHENTICATIONFAILED]"},
		{"g AUTHENTICATE PLAIN !!!\r\n", "g BAD "}, // it was NO [SERVERBUG] (fork change 72)
	} {
		c.send(tc.lines)
		tag := strings.Fields(tc.lines)[0]
		if _, tg := c.until(tag); !strings.HasPrefix(tg, tc.want) {
			t.Errorf("%q: %s, want %s", tc.lines, tg, tc.want)
		}
	}
	if tg := authLogin(t, c, user, pass); !strings.Contains(tg, " OK ") {
		t.Fatalf("AUTHENTICATE LOGIN after the refused ones: %s", tg)
	}

	// A huge username, then a huge password: the connection ends.
	for _, first := range []bool{true, false} {
		c := e.dial()
		lines := "a AUTHENTICATE LOGIN\r\n"
		if !first {
			lines += base64.StdEncoding.EncodeToString([]byte(user)) + "\r\n"
		}
		done := c.sendAll(lines + strings.Repeat("QUFB", 250000) + "\r\nb NOOP\r\n")
		got := c.readUntilClosed()
		<-done
		if !strings.Contains(got, "\r\n* BYE [TOOBIG] ") || strings.Contains(got, "b OK") {
			t.Errorf("a 1 MB response (first %v): got %.300q, want * BYE [TOOBIG] and the connection closed", first, got)
		}
	}

	cfg, err := imapfront.SelfSignedTLS(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	insecure := false
	e = newEnv(t, &envOpts{tls: cfg, insecure: &insecure})
	c = e.dial()
	if un := c.ok("CAPABILITY"); strings.Contains(un, "AUTH=") || !strings.Contains(un, "LOGINDISABLED") {
		t.Fatalf("CAPABILITY without TLS: %s", un)
	}
	c.send("a AUTHENTICATE LOGIN\r\n")
	if l := c.line(); !strings.HasPrefix(l, "a NO [PRIVACYREQUIRED]") {
		t.Fatalf("AUTHENTICATE LOGIN without TLS: %q", l)
	}
	// Over implicit TLS, go-sasl's LOGIN client (it sends the username as
	// the initial response) through go-imap's client.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)
	tc, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if !tc.Caps().Has(imap.AuthCap(sasl.Login)) {
		t.Fatalf("over TLS, caps %v", tc.Caps())
	}
	if err := tc.Authenticate(sasl.NewLoginClient(user, pass)); err != nil {
		t.Fatalf("AUTHENTICATE LOGIN over TLS: %v", err)
	}
	if _, err := tc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestSaveDate: SAVEDATE (RFC 8514) is when a message was saved into its
// mailbox: an APPEND's is now, whatever INTERNALDATE it gave; a COPY's and
// a MOVE's copy is saved now in its new mailbox; a message the migration
// stored has its internal date (store.NewMessage.SaveDate, as
// core/migrate gives it); a message stored before save dates were kept
// has its internal date. SAVEDSINCE, SAVEDBEFORE and SAVEDON compare dates
// as SINCE/BEFORE/ON do, SAVEDATESUPPORTED holds for every message (side-by-
// side script "savedate": the same answers as Dovecot 2.3).
func TestSaveDate(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	old := time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC)
	if _, err := e.st.AppendMessage(ctx, e.inbox().ID, &store.NewMessage{Body: []byte(msgN(0)), InternalDate: old, SaveDate: old}); err != nil {
		t.Fatal(err)
	}
	c := e.login()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, " SAVEDATE") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	c.ok("CREATE dst")
	before := time.Now().Add(-time.Second)
	if tg := c.appendMsg("INBOX", `"01-Jan-2020 10:00:00 +0000"`, msgN(1)); !strings.Contains(tg, " OK") {
		t.Fatal(tg)
	}
	c.ok("SELECT INBOX")
	c.ok("COPY 1:2 dst")
	after := time.Now().Add(time.Second)
	un := c.ok("FETCH 1:2 (INTERNALDATE SAVEDATE)")
	dates := regexp.MustCompile(`SAVEDATE "([^"]+)"`).FindAllStringSubmatch(un, -1)
	if len(dates) != 2 {
		t.Fatalf("FETCH: %s", un)
	}
	parse := func(s string) time.Time {
		d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", s)
		if err != nil {
			t.Fatalf("SAVEDATE %q: %v", s, err)
		}
		return d
	}
	if d := parse(dates[0][1]); !d.Equal(old) {
		t.Errorf("the migrated message's SAVEDATE %v, want its internal date %v", d, old)
	}
	if d := parse(dates[1][1]); d.Before(before) || d.After(after) {
		t.Errorf("the APPENDed message's SAVEDATE %v, want now (its INTERNALDATE is 2020's)", d)
	}
	today := time.Now().Format("2-Jan-2006")
	for key, want := range map[string]string{
		"SAVEDON " + today:                             "* SEARCH 2\r\n",
		"SAVEDSINCE " + today:                          "* SEARCH 2\r\n",
		"SAVEDBEFORE " + today:                         "* SEARCH 1\r\n",
		"SAVEDON 1-Jan-2020":                           "* SEARCH 1\r\n",
		"SAVEDATESUPPORTED":                            "* SEARCH 1 2\r\n",
		"NOT SAVEDATESUPPORTED":                        "* SEARCH\r\n",
		"SAVEDSINCE 1-Jan-2000 SAVEDBEFORE 1-Jan-2021": "* SEARCH 1\r\n",
		"OR SAVEDON 1-Jan-2020 SAVEDON " + today:       "* SEARCH 1 2\r\n",
	} {
		if got := c.ok("SEARCH %s", key); got != want {
			t.Errorf("SEARCH %s: %q, want %q", key, got, want)
		}
	}
	if got, all := c.status("SEARCH SAVEDON x"); got != "BAD" {
		t.Errorf("SEARCH SAVEDON x: %s", all)
	}
	// Both copies were saved now, the migrated one too.
	c.ok("SELECT dst")
	if got := c.ok("SEARCH SAVEDON %s", today); got != "* SEARCH 1 2\r\n" {
		t.Errorf("copies saved today: %q", got)
	}
	c.ok("MOVE 1 INBOX")
	c.ok("SELECT INBOX")
	if got := c.ok("SEARCH SAVEDON %s", today); got != "* SEARCH 2 3\r\n" {
		t.Errorf("moved back, saved today: %q", got)
	}
}
