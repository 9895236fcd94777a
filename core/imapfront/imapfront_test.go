package imapfront_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

const simple = "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Hello\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m1@example.test>\r\n\r\nHi Alice.\r\n"

func TestCommandErrors(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	for _, tc := range []struct{ cmd, want string }{
		{"FROBNICATE", "BAD"},
		{"FETCH 1 FLAGS", "BAD"},        // not selected
		{"SELECT", "BAD"},               // missing argument
		{"SELECT nosuch", "NO"},         // no such mailbox
		{"LOGIN a b", "BAD"},            // already logged in
		{"CREATE INBOX", "NO"},          // exists
		{`CREATE "a*b"`, "NO"},          // wildcard in name
		{`CREATE "/lead"`, "NO"},        // leading separator
		{"DELETE INBOX", "NO"},          // never
		{"STATUS INBOX (BOGUS)", "BAD"}, // unknown item
		{"LIST", "BAD"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			got, all := c.status("%s", tc.cmd)
			if !strings.Contains("|"+tc.want+"|", "|"+got+"|") {
				t.Fatalf("%s: got %s, want %s\n%s", tc.cmd, got, tc.want, all)
			}
		})
	}
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"FETCH 1:* (FLAGS BOGUS)", "BAD"},
		{"FETCH x FLAGS", "NO|BAD"}, // go-imap answers NO [SERVERBUG] to a bad number set
		{"STORE 1 FLAGS (\\Bogus)", "BAD"},
		{"STORE 1 XFLAGS (\\Seen)", "BAD"},
		{"SEARCH BOGUS", "NO|BAD"}, // go-imap: NO [SERVERBUG]
		{"FETCH 5 FLAGS", "BAD"},   // beyond the mailbox, as Dovecot (TestSeqSetBeyondMailbox)
		{"COPY 1 nosuch", "BAD"},   // the set first, as Dovecot
		{"NOOP", "OK"},             // the connection lives on
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			got, all := c.status("%s", tc.cmd)
			if !strings.Contains("|"+tc.want+"|", "|"+got+"|") {
				t.Fatalf("%s: got %s, want %s\n%s", tc.cmd, got, tc.want, all)
			}
		})
	}
	e.put(e.inbox(), simple)
	c.ok("NOOP")
	if got, all := c.status("COPY 1 nosuch"); got != "NO" || !strings.Contains(all, "[TRYCREATE]") {
		t.Fatalf("COPY to missing mailbox: %s", all)
	}

	// Before login an unknown command ends the connection (cross-protocol
	// attacks); go-imap says BYE.
	c2 := e.dial()
	c2.send("x1 GET / HTTP/1.1\r\n")
	if l := c2.line(); !strings.HasPrefix(l, "* BYE") && !strings.HasPrefix(l, "x1 BAD") {
		t.Fatalf("unknown command before login: %q", l)
	}
}

func TestLoginFailures(t *testing.T) {
	m := &fakeMigrator{password: "old-pw", first: make(chan string, 10), loggedIn: make(chan string, 10)}
	e := newEnv(t, &envOpts{migrator: m})
	m.st = e.st
	c := e.dial()
	if got, all := c.status("LOGIN %s wrong", user); got != "NO" || !strings.Contains(all, "[AUTHENTICATIONFAILED]") {
		t.Fatalf("wrong password: %s", all)
	}
	// An unknown user whose old server refuses: NO, and no account.
	if got, all := c.status("LOGIN bob@example.test nope"); got != "NO" || !strings.Contains(all, "[AUTHENTICATIONFAILED]") {
		t.Fatalf("first login refused: %s", all)
	}
	if u := <-m.first; u != "bob@example.test" {
		t.Fatalf("FirstLogin for %q", u)
	}
	if _, err := e.st.Account(context.Background(), "bob@example.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("account after failed first login: %v", err)
	}
	// AUTHENTICATE PLAIN with a wrong password.
	if got, all := c.status("AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="); got != "NO" {
		t.Fatalf("AUTHENTICATE PLAIN wrong: %s", all)
	}
	// Case-insensitive usernames.
	c.ok("LOGIN ALICE@Example.TEST %s", pass)
	if a := <-m.loggedIn; a != user {
		t.Fatalf("LoggedIn(%q)", a)
	}
}

func TestFirstLogin(t *testing.T) {
	m := &fakeMigrator{password: "old-pw", first: make(chan string, 10), loggedIn: make(chan string, 10)}
	e := newEnv(t, &envOpts{migrator: m})
	m.st = e.st
	c := e.dial()
	c.ok("LOGIN carol@example.test old-pw")
	<-m.first
	un := c.ok("SELECT INBOX")
	if !strings.Contains(un, "* 0 EXISTS") {
		t.Fatalf("new account INBOX: %s", un)
	}
	// The second login finds the account: LoggedIn, not FirstLogin.
	c2 := e.dial()
	c2.ok(`AUTHENTICATE PLAIN AGNhcm9sQGV4YW1wbGUudGVzdABvbGQtcHc=`)
	select {
	case a := <-m.loggedIn:
		if a != "carol@example.test" {
			t.Fatalf("LoggedIn(%q)", a)
		}
	case u := <-m.first:
		t.Fatalf("FirstLogin(%q) for an existing account", u)
	case <-time.After(5 * time.Second):
		t.Fatal("LoggedIn not called")
	}
}

// An account a master-user bulk copy made has a password nobody knows;
// the user's first login checks the old server's password and keeps it. A
// native account's wrong password never reaches the migrator.
func TestLoginMigratedAccountTakesOldPassword(t *testing.T) {
	m := &fakeMigrator{password: "old-pw", first: make(chan string, 10), loggedIn: make(chan string, 10)}
	e := newEnv(t, &envOpts{migrator: m})
	m.st = e.st
	ctx := context.Background()
	if _, err := e.st.CreateAccount(ctx, "dave@example.test", "random-unknown", &store.AccountOptions{Migration: store.MigDone, PasswordOrigin: store.PasswordRandom}); err != nil {
		t.Fatal(err)
	}
	// An account whose password the admin set never takes the old one.
	if _, err := e.st.CreateAccount(ctx, "erin@example.test", "admin-set", &store.AccountOptions{Migration: store.MigDone}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	if got, all := c.status("LOGIN erin@example.test old-pw"); got != "NO" {
		t.Fatalf("old password opened an account whose password the admin set: %s", all)
	}
	if got, all := c.status("LOGIN dave@example.test not-old-pw"); got != "NO" {
		t.Fatalf("wrong old password: %s", all)
	}
	<-m.first
	c.ok("LOGIN dave@example.test old-pw")
	<-m.first
	if _, err := e.st.Authenticate(ctx, "dave@example.test", "old-pw"); err != nil {
		t.Fatalf("old password not kept: %v", err)
	}
	// Once someone logged in, the old server's word no longer changes the
	// password (m's password changes, as a leaked old one would be tried).
	m.password = "leaked-old-pw"
	if got, all := e.dial().status("LOGIN dave@example.test leaked-old-pw"); got != "NO" {
		t.Fatalf("old password replaced the password of an account someone logged in to: %s", all)
	}
	if got, _ := e.dial().status("LOGIN %s wrong", user); got != "NO" {
		t.Fatal("wrong password of a native account accepted")
	}
	select {
	case u := <-m.first:
		t.Fatalf("FirstLogin(%q) for a native account", u)
	default:
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, &envOpts{rateLimit: imapfront.LoginRateLimit{PerIP: 100, PerUser: 3, Refill: time.Hour}})
	c := e.dial()
	for i := 0; i < 3; i++ {
		if got, all := c.status("LOGIN %s bad%d", user, i); got != "NO" || !strings.Contains(all, "AUTHENTICATIONFAILED") {
			t.Fatalf("attempt %d: %s", i, all)
		}
	}
	// Now even the right password is refused without being checked.
	if got, all := c.status("LOGIN %s %s", user, pass); got != "NO" || !strings.Contains(all, "[UNAVAILABLE]") {
		t.Fatalf("after the limit: %s", all)
	}
	// Another user from the same address is not affected.
	if _, err := e.st.CreateAccount(context.Background(), "dave@example.test", "pw-dave", nil); err != nil {
		t.Fatal(err)
	}
	c.ok("LOGIN dave@example.test pw-dave")
}

func TestLiterals(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial()
	// LOGIN with synchronizing literals.
	c.send(fmt.Sprintf("l1 LOGIN {%d}\r\n", len(user)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	c.send(fmt.Sprintf("%s {%d+}\r\n%s\r\n", user, len(pass), pass))
	if _, tagged := c.until("l1"); !strings.HasPrefix(tagged, "l1 OK") {
		t.Fatalf("LOGIN with literals: %s", tagged)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 65537-len("Subject: big\r\n\r\n"))
	sizes := []string{"", "x", big}
	for _, msg := range sizes {
		if tagged := c.appendMsg("INBOX", "", msg); !strings.Contains(tagged, "OK [APPENDUID") {
			t.Fatalf("APPEND %d bytes: %s", len(msg), tagged)
		}
	}
	// Non-synchronizing (LITERAL+) for each size too.
	for i, msg := range sizes {
		c.send(fmt.Sprintf("n%d APPEND INBOX {%d+}\r\n%s\r\n", i, len(msg), msg))
		if _, tagged := c.until(fmt.Sprintf("n%d", i)); !strings.Contains(tagged, "OK [APPENDUID") {
			t.Fatalf("APPEND %d+ bytes: %s", len(msg), tagged)
		}
	}
	c.ok("SELECT INBOX")
	for i, msg := range append(sizes, sizes...) {
		un := c.ok("FETCH %d (RFC822.SIZE BODY.PEEK[])", i+1)
		if got := literalOf(t, un, "BODY[]"); got != msg {
			t.Fatalf("message %d: got %d bytes, want %d", i+1, len(got), len(msg))
		}
		if !strings.Contains(un, fmt.Sprintf("RFC822.SIZE %d", len(msg))) {
			t.Fatalf("message %d: size: %s", i+1, un[:min(len(un), 200)])
		}
	}
	// A literal over the APPEND limit is refused before it is sent.
	c.send("b1 APPEND INBOX {999999999}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "b1 NO [TOOBIG]") {
		t.Fatalf("huge literal: %q", l)
	}
	c.ok("NOOP")
}

func TestIdleSeesAppend(t *testing.T) {
	e := newEnv(t, nil)
	a := e.login()
	a.ok("SELECT INBOX")
	a.send("i1 IDLE\r\n")
	if l := a.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	b := e.login()
	if tagged := b.appendMsg("INBOX", `(\Seen)`, simple); !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
	if l := a.line() + a.line(); l != "* 1 EXISTS* 1 RECENT" {
		t.Fatalf("IDLE after APPEND from another connection: %q", l)
	}
	// The migration engine writes to the store directly.
	e.put(e.inbox(), simple)
	if l := a.line() + a.line(); l != "* 2 EXISTS* 2 RECENT" {
		t.Fatalf("IDLE after a store append: %q", l)
	}
	// Flags and expunges from elsewhere, during IDLE.
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS (\Deleted)`)
	if l := a.line(); l != `* 1 FETCH (UID 1 FLAGS (\Seen \Deleted \Recent))` {
		t.Fatalf("IDLE after STORE elsewhere: %q", l)
	}
	b.ok("EXPUNGE")
	if l := a.line(); l != "* 1 EXPUNGE" {
		t.Fatalf("IDLE after EXPUNGE elsewhere: %q", l)
	}
	a.send("DONE\r\n")
	if _, tagged := a.until("i1"); !strings.HasPrefix(tagged, "i1 OK") {
		t.Fatal(tagged)
	}
	un := a.ok("FETCH 1:* (UID)")
	if strings.TrimSpace(un) != "* 1 FETCH (UID 2)" {
		t.Fatalf("after IDLE: %q", un)
	}
}

func TestStoreExpungeSeenElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 3; i++ {
		e.put(e.inbox(), simple)
	}
	a, b := e.login(), e.login()
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	if un := b.ok(`STORE 2 +FLAGS (\Flagged)`); !strings.Contains(un, `* 2 FETCH (UID 2 FLAGS (\Flagged))`) {
		t.Fatalf("STORE answer: %q", un)
	}
	if un := b.ok("NOOP"); un != "" {
		t.Fatalf("own STORE repeated on NOOP: %q", un)
	}
	// a selected first: the messages are recent to a, not to b.
	if un := a.ok("NOOP"); !strings.Contains(un, `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent))`) {
		t.Fatalf("flag change elsewhere: %q", un)
	}
	b.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if un := b.ok("EXPUNGE"); un != "* 1 EXPUNGE\r\n" {
		t.Fatalf("EXPUNGE answer: %q", un)
	}
	// FETCH must not report an expunge (RFC 3501 7.4.1): sequence numbers
	// hold still until a command that allows it.
	un := a.ok("FETCH 1:* (UID)")
	if strings.Contains(un, "EXPUNGE") || !strings.Contains(un, "* 2 FETCH (UID 2)") || !strings.Contains(un, "* 3 FETCH (UID 3)") {
		t.Fatalf("FETCH during pending expunge: %q", un)
	}
	if un := a.ok("NOOP"); un != "* 1 EXPUNGE\r\n" {
		t.Fatalf("NOOP after EXPUNGE elsewhere: %q", un)
	}
	if un := a.ok("FETCH 1:* (UID)"); !strings.Contains(un, "* 1 FETCH (UID 2)") || !strings.Contains(un, "* 2 FETCH (UID 3)") {
		t.Fatalf("renumbered: %q", un)
	}
	// A message the migration engine stores shows up on NOOP.
	e.put(e.inbox(), simple)
	if un := a.ok("NOOP"); un != "* 3 EXISTS\r\n* 3 RECENT\r\n" {
		t.Fatalf("NOOP after a store append: %q", un)
	}
	// go-imap polls after each command: the EXISTS follows FETCH's data.
	if un := b.ok("FETCH 2 UID"); un != "* 2 FETCH (UID 3)\r\n* 3 EXISTS\r\n* 0 RECENT\r\n" {
		t.Fatalf("FETCH after a store append: %q", un)
	}
	if un := b.ok("FETCH 3 UID"); un != "* 3 FETCH (UID 4)\r\n" {
		t.Fatalf("FETCH of the new message: %q", un)
	}
	// UID EXPUNGE only removes the named messages.
	a.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	if un := a.ok("UID EXPUNGE 3"); un != "* 2 EXPUNGE\r\n" {
		t.Fatalf("UID EXPUNGE: %q", un)
	}
	if un := b.ok("NOOP"); !strings.Contains(un, "* 2 EXPUNGE") || !strings.Contains(un, `FETCH (UID 2 FLAGS (\Flagged \Deleted))`) || strings.Contains(un, "UID 4") {
		t.Fatalf("b after UID EXPUNGE: %q", un)
	}
}

func TestUTF7Names(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	// "Données/Été 2020" and "日本語" in modified UTF-7 (RFC 3501 5.1.3).
	c.ok(`CREATE "Donn&AOk-es/&AMk-t&AOk- 2020"`)
	c.ok(`CREATE &ZeVnLIqe-`)
	mbs, err := e.st.Mailboxes(context.Background(), e.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mbs {
		names = append(names, mb.Name)
	}
	// "Données" is only a parent, not a mailbox (as Dovecot).
	if got := strings.Join(names, ","); got != "INBOX,Données/Été 2020,日本語" {
		t.Fatalf("stored names: %s", got)
	}
	un := c.ok(`LIST "" "*"`)
	for _, want := range []string{`"Donn&AOk-es/&AMk-t&AOk- 2020"`, `"Donn&AOk-es"`, `&ZeVnLIqe-`} {
		if !strings.Contains(un, want) {
			t.Fatalf("LIST lacks %s:\n%s", want, un)
		}
	}
	c.ok(`SELECT "Donn&AOk-es/&AMk-t&AOk- 2020"`)
	c.ok(`STATUS &ZeVnLIqe- (MESSAGES)`)
	if tagged := c.appendMsg("&ZeVnLIqe-", "", simple); !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
	// UTF8=ACCEPT (RFC 6855): names travel as UTF-8.
	if un := c.ok("ENABLE UTF8=ACCEPT"); !strings.Contains(un, "ENABLED UTF8=ACCEPT") {
		t.Fatalf("ENABLE: %q", un)
	}
	un = c.ok(`LIST "" "*"`)
	if !strings.Contains(un, `"Données/Été 2020"`) || !strings.Contains(un, `"日本語"`) {
		t.Fatalf("LIST with UTF8=ACCEPT:\n%s", un)
	}
	if un := c.ok(`SELECT "日本語"`); !strings.Contains(un, "* 1 EXISTS") {
		t.Fatalf("SELECT UTF-8 name: %s", un)
	}
	// APPEND with the UTF8 data extension (RFC 6855 4).
	c.send("u1 APPEND INBOX UTF8 (~{21+}\r\nSubject: é\r\n\r\nbody\r\n)\r\n")
	if _, tagged := c.until("u1"); !strings.Contains(tagged, "OK [APPENDUID") {
		t.Fatalf("APPEND UTF8: %s", tagged)
	}
	c.ok(`CREATE "Ünïcode"`)
	if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Ünïcode"); err != nil {
		t.Fatal(err)
	}
}

func TestRenameWithChildren(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE a/b")
	c.ok("CREATE a/b/c") // "a" only a parent, renamed below with its children
	c.ok("SUBSCRIBE a/b")
	if tagged := c.appendMsg("a/b", "", simple); !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
	c.ok("RENAME a x/y")
	un := c.ok(`LIST "" "*"`)
	for _, want := range []string{`"/" "x"`, `"/" "x/y"`, `"/" "x/y/b"`, `"/" "x/y/b/c"`} {
		if !strings.Contains(un, want+"\r\n") {
			t.Fatalf("LIST lacks %s:\n%s", want, un)
		}
	}
	if strings.Contains(un, `"/" "a`) {
		t.Fatalf("old names remain:\n%s", un)
	}
	if un := c.ok(`STATUS x/y/b (MESSAGES)`); !strings.Contains(un, "MESSAGES 1") {
		t.Fatalf("messages did not follow: %s", un)
	}
	if un := c.ok(`LSUB "" "*"`); !strings.Contains(un, "x/y/b") {
		t.Fatalf("subscription did not follow: %s", un)
	}
	if un := c.ok(`LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)`); !strings.Contains(un, `(\HasChildren \Subscribed) "/" "x/y/b"`) {
		t.Fatalf("LIST (SUBSCRIBED): %s", un)
	}
	if got, all := c.status("RENAME x/y x/y/b/z"); got != "NO" {
		t.Fatalf("rename below itself: %s", all)
	}
	if got, all := c.status("RENAME nosuch z"); got != "NO" || !strings.Contains(all, "NONEXISTENT") {
		t.Fatalf("rename missing: %s", all)
	}
	// DELETE keeps children; the parent then lists as \Noselect.
	c.ok("DELETE x/y/b")
	if un := c.ok("%s", `LIST "" x/y/%`); !strings.Contains(un, `(\Noselect \HasChildren) "/" "x/y/b"`) {
		t.Fatalf("deleted parent: %s", un)
	}
}

func TestCopyMoveUIDPlus(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 3; i++ {
		e.put(e.inbox(), simple, "$Label")
	}
	c := e.login()
	c.ok("CREATE Archive")
	dst, err := e.st.Mailbox(context.Background(), e.acct.ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	c.ok("SELECT INBOX")
	_, tagged := c.do("COPY 1:2 Archive")
	if want := fmt.Sprintf("OK [COPYUID %d 1:2 1:2]", dst.UIDValidity); !strings.Contains(tagged, want) {
		t.Fatalf("COPY: %s, want %s", tagged, want)
	}
	un, tagged := c.do("UID MOVE 2:3 Archive")
	want := fmt.Sprintf("* OK [COPYUID %d 2:3 3:4]", dst.UIDValidity)
	if !strings.Contains(un, want) || !strings.Contains(un, "* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n") || !strings.Contains(tagged, "OK") {
		t.Fatalf("MOVE:\n%s%s\nwant %s", un, tagged, want)
	}
	un = c.ok("UID FETCH 1:* (FLAGS)")
	if strings.TrimSpace(un) != "* 1 FETCH (UID 1 FLAGS ($Label \\Recent))" {
		t.Fatalf("after MOVE: %q", un)
	}
	un = c.ok("STATUS Archive (MESSAGES UIDNEXT)")
	if !strings.Contains(un, "MESSAGES 4") || !strings.Contains(un, "UIDNEXT 5") {
		t.Fatalf("Archive: %s", un)
	}
	c.ok("EXAMINE INBOX")
	if got, all := c.status("MOVE 1 Archive"); got != "NO" {
		t.Fatalf("MOVE in read-only: %s", all)
	}
	if got, all := c.status(`STORE 1 +FLAGS (\Seen)`); got != "NO" {
		t.Fatalf("STORE in read-only: %s", all)
	}
	if got, all := c.status("EXPUNGE"); got != "NO" {
		t.Fatalf("EXPUNGE in read-only: %s", all)
	}
	c.ok("FETCH 1 BODY[]")
	if un := c.ok("FETCH 1 FLAGS"); strings.Contains(un, `\Seen`) {
		t.Fatalf("FETCH BODY[] in EXAMINE set \\Seen: %s", un)
	}
}

const noFinalCRLF = "Subject: no end\r\nFrom: x@example.test\r\n\r\nlast line without CRLF"

const eightBit = "From: Jérôme <jerome@exemple.test>\r\nSubject: Été à Paris – 日本語\r\nX-Raw: \xff\xfe not UTF-8\r\n\r\nCorps en 8 bits : àéîõü\r\n"

const multipart = "From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: in@example.test\n\ninner body\r\n--b1--\r\nepilogue\r\n"

const topRFC822 = "Content-Type: message/rfc822\r\n\r\nSubject: wrapped\r\n\r\nwrapped body\r\n"

func TestBodyExact(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	msgs := []string{noFinalCRLF, eightBit, multipart, "Subject: lf only\n\nbody\nmore\n", topRFC822}
	for _, m := range msgs {
		if tagged := c.appendMsg("INBOX", `(\Flagged) "02-Jan-2006 15:04:05 +0100"`, m); !strings.Contains(tagged, "OK") {
			t.Fatal(tagged)
		}
	}
	c.ok("SELECT INBOX")
	for i, m := range msgs {
		un := c.ok("FETCH %d (BODY.PEEK[] RFC822.SIZE INTERNALDATE)", i+1)
		if got := literalOf(t, un, "BODY[]"); got != m {
			t.Fatalf("message %d: BODY[] = %q, want %q", i+1, got, m)
		}
		if !strings.Contains(un, fmt.Sprintf("RFC822.SIZE %d", len(m))) || !strings.Contains(un, `INTERNALDATE " 2-Jan-2006 15:04:05 +0100"`) {
			t.Fatalf("message %d: %s", i+1, un)
		}
	}
	for _, tc := range []struct {
		seq  int
		item string
		want string
	}{
		{1, "BODY[]<0.10>", noFinalCRLF[:10]},
		{1, "BODY[]<17.1000>", noFinalCRLF[17:]},
		{1, "BODY[TEXT]", "last line without CRLF"},
		{1, "BODY[1]", "last line without CRLF"},
		{2, "BODY[HEADER]", eightBit[:strings.Index(eightBit, "\r\n\r\n")+4]},
		{2, `BODY[HEADER.FIELDS ("SUBJECT" "X-RAW")]`, "Subject: Été à Paris – 日本語\r\nX-Raw: \xff\xfe not UTF-8\r\n\r\n"},
		{2, `BODY[HEADER.FIELDS.NOT ("SUBJECT" "X-RAW")]`, "From: Jérôme <jerome@exemple.test>\r\n\r\n"},
		{3, "BODY[1]", "first part"},
		{3, "BODY[1.MIME]", "Content-Type: text/plain\r\n\r\n"},
		{3, "BODY[2]", "Subject: inner\r\nFrom: in@example.test\n\ninner body"},
		{3, "BODY[2.HEADER]", "Subject: inner\r\nFrom: in@example.test\n\n"},
		{3, "BODY[2.TEXT]", "inner body"},
		{3, "BODY[2.1]", "inner body"},
		{3, "BODY[3]", ""},
		{4, "BODY[TEXT]", "body\nmore\n"},
		{5, "BODY[1]", "Subject: wrapped\r\n\r\nwrapped body\r\n"},
		{5, "BODY[1.1]", "wrapped body\r\n"},
		{5, "BODY[1.HEADER]", "Subject: wrapped\r\n\r\n"},
		{5, "BODY[1.TEXT]", "wrapped body\r\n"},
		{5, "BODY[2]", ""},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.seq, tc.item), func(t *testing.T) {
			peek := strings.Replace(tc.item, "BODY[", "BODY.PEEK[", 1)
			un := c.ok("FETCH %d %s", tc.seq, peek)
			item := tc.item
			if i := strings.Index(item, "<"); i >= 0 {
				item = item[:i] + "<" + strings.Split(item[i+1:], ".")[0] + ">"
			}
			if got := literalOf(t, un, item); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// ENVELOPE and BODYSTRUCTURE of the 8-bit and multipart messages.
	un := c.ok("FETCH 2:3 (ENVELOPE BODYSTRUCTURE)")
	for _, want := range []string{`"jerome" "exemple.test"`, `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)`, `"message" "rfc822"`, `"mixed" ("boundary" "b1")`} {
		if !strings.Contains(un, want) {
			t.Fatalf("lacks %s:\n%s", want, un)
		}
	}
	// BODY[] without PEEK sets \Seen, and says so.
	if un := c.ok("FETCH 1 BODY[]<0.4>"); !strings.Contains(un, `FLAGS (\Flagged \Seen \Recent)`) {
		t.Fatalf("FETCH BODY[]: %s", un)
	}
	if un := c.ok("FETCH 2 BINARY.PEEK[1]"); !strings.Contains(un, "Corps en 8 bits") {
		t.Fatalf("BINARY: %s", un)
	}
}

func TestBrokenMessages(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	broken := []string{
		"this is not a mail header at all\r\nno colon here\r\n\r\nbody",
		"Content-Type: multipart/mixed; boundary=\"never\"\r\nSubject: lost boundary\r\n\r\nno parts at all\r\n",
		"Content-Type: multipart/mixed\r\n\r\n--\r\n--\r\n",
		"Content-Type: text/plain; charset=\"unterminated\r\nSubject: =?bogus?Q?x?=\r\nDate: yesterday-ish\r\nFrom: <<<@@@>>>\r\n\r\nx",
		"\x00\x01\x02\xff\xfe\r\n\r\n\x00",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\n",
		"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain\r\n\r\n!!!not base64!!!",
	}
	for _, m := range broken {
		if tagged := c.appendMsg("INBOX", "", m); !strings.Contains(tagged, "OK") {
			t.Fatalf("APPEND %q: %s", m, tagged)
		}
	}
	c.ok("SELECT INBOX")
	for i, m := range broken {
		un := c.ok("FETCH %d (ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[] BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[1] BINARY.SIZE[1])", i+1)
		// A literal cannot carry NUL (RFC 3501 4.3): BODY[] has 0x80 in
		// its place, as Dovecot; BINARY[] has the exact bytes.
		if got, want := literalOf(t, un, "BODY[]"), strings.ReplaceAll(m, "\x00", "\x80"); got != want {
			t.Fatalf("message %d: BODY[] = %q, want %q", i+1, got, want)
		}
		un = c.ok("FETCH %d BINARY.PEEK[]", i+1)
		if got := literalOf(t, strings.Replace(un, "~{", "{", 1), "BINARY[]"); got != m {
			t.Fatalf("message %d: BINARY[] = %q, want %q", i+1, got, m)
		}
	}
	c.ok("SEARCH TEXT anything BODY x HEADER Subject lost")
}

func TestSearch(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.appendMsg("INBOX", `(\Seen) "01-Jan-2020 10:00:00 +0000"`, simple)
	c.appendMsg("INBOX", `(\Flagged) "01-Jun-2021 10:00:00 +0000"`, eightBit)
	c.appendMsg("INBOX", `() "01-Jun-2022 10:00:00 +0000"`, multipart)
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ q, want string }{
		{"ALL", "* SEARCH 1 2 3"},
		{"SEEN", "* SEARCH 1"},
		{"UNSEEN", "* SEARCH 2 3"},
		{"FLAGGED", "* SEARCH 2"},
		{"SUBJECT hello", "* SEARCH 1"},
		{`SUBJECT "été"`, "* SEARCH 2"},
		{"FROM bob", "* SEARCH 1"},
		{"BODY alice", "* SEARCH 1"},
		{"TEXT inner", "* SEARCH 3"},
		{"BODY subject", "* SEARCH"},
		{"SINCE 1-Jan-2021", "* SEARCH 2 3"},
		{"BEFORE 1-Jan-2021", "* SEARCH 1"},
		{"SENTBEFORE 1-Jan-2007", "* SEARCH 1"},
		{"LARGER 140", "* SEARCH 1 3"},
		{"OR SEEN FLAGGED", "* SEARCH 1 2"},
		{"NOT SEEN", "* SEARCH 2 3"},
		{"2:*", "* SEARCH 2 3"},
		{"UID 3", "* SEARCH 3"},
		{"HEADER Message-ID m1", "* SEARCH 1"},
	} {
		t.Run(tc.q, func(t *testing.T) {
			if un := c.ok("SEARCH %s", tc.q); strings.TrimSpace(un) != tc.want {
				t.Fatalf("SEARCH %s = %q, want %q", tc.q, un, tc.want)
			}
		})
	}
	if un := c.ok("UID SEARCH RETURN (MIN MAX COUNT) UNSEEN"); !strings.Contains(un, "UID MIN 2 MAX 3 COUNT 2") {
		t.Fatalf("ESEARCH: %s", un)
	}
	c.ok("SEARCH RETURN (SAVE) FLAGGED")
	if un := c.ok("FETCH $ (UID)"); strings.TrimSpace(un) != "* 2 FETCH (UID 2)" {
		t.Fatalf("SEARCHRES: %q", un)
	}
}

func TestListSpecialUseAndStatus(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok(`CREATE Sent (USE (\Sent))`)
	if got, all := c.status(`CREATE Bad (USE (\Bogus))`); got != "NO" || !strings.Contains(all, "USEATTR") {
		t.Fatalf("bad special use: %s", all)
	}
	if un := c.ok(`LIST "" "*"`); !strings.Contains(un, `(\HasNoChildren \Sent) "/" "Sent"`) {
		t.Fatalf("LIST: %s", un)
	}
	if un := c.ok(`LIST (SPECIAL-USE) "" "*"`); strings.Contains(un, "INBOX") || !strings.Contains(un, "Sent") {
		t.Fatalf("LIST (SPECIAL-USE): %s", un)
	}
	if un := c.ok(`LIST "" ""`); !strings.Contains(un, `(\Noselect) "/" ""`) {
		t.Fatalf("LIST delimiter: %s", un)
	}
	e.put(e.inbox(), simple)
	e.put(e.inbox(), simple, `\Seen`)
	un := c.ok(`LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN SIZE))`)
	if !strings.Contains(un, fmt.Sprintf("* STATUS INBOX (MESSAGES 2 UNSEEN 1 SIZE %d)", 2*len(simple))) {
		t.Fatalf("LIST-STATUS: %s", un)
	}
	if un := c.ok("NAMESPACE"); !strings.Contains(un, `* NAMESPACE (("" "/")) NIL NIL`) {
		t.Fatalf("NAMESPACE: %s", un)
	}
	if un := c.ok("CAPABILITY"); !strings.Contains(un, "MOVE") || !strings.Contains(un, "UIDPLUS") || !strings.Contains(un, "APPENDLIMIT=67108864") || !strings.Contains(un, "LITERAL+") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	c.ok("SUBSCRIBE Sent")
	c.ok("UNSUBSCRIBE Sent")
	if un := c.ok(`LSUB "" "*"`); strings.Contains(un, "Sent") {
		t.Fatalf("LSUB after UNSUBSCRIBE: %s", un)
	}
}

func TestHierarchySeparator(t *testing.T) {
	e := newEnv(t, &envOpts{delim: '.'})
	c := e.login()
	c.ok("CREATE a.b")
	if un := c.ok(`LIST "" "*"`); !strings.Contains(un, `"." "a.b"`) || !strings.Contains(un, `(\Noselect \HasChildren) "." "a"`) {
		t.Fatalf("LIST with '.': %s", un)
	}
	if un := c.ok("NAMESPACE"); !strings.Contains(un, `(("" "."))`) {
		t.Fatalf("NAMESPACE: %s", un)
	}
}

func TestOwnAppendAndCopyShowUp(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("SELECT INBOX")
	c.tag++
	c.send(fmt.Sprintf("t%d APPEND INBOX {%d+}\r\n%s\r\n", c.tag, len(simple), simple))
	un, tagged := c.until(fmt.Sprintf("t%d", c.tag))
	if un != "* 1 EXISTS\r\n* 1 RECENT\r\n" || !strings.Contains(tagged, "[APPENDUID") {
		t.Fatalf("APPEND to the selected mailbox: %q %q", un, tagged)
	}
	un, tagged = c.do("COPY 1 INBOX")
	if un != "* 2 EXISTS\r\n* 2 RECENT\r\n" || !strings.Contains(tagged, "[COPYUID") {
		t.Fatalf("COPY to the selected mailbox: %q %q", un, tagged)
	}
	// MOVE to the same mailbox: see TestMoveIntoSelected.
}

// TestConcurrentSessions: several sessions IDLE while messages stream in
// (as during a migration) and one of them changes flags; each ends with the
// same view.
func TestConcurrentSessions(t *testing.T) {
	e := newEnv(t, nil)
	const n = 300
	var conns []*conn
	for i := 0; i < 3; i++ {
		c := e.login()
		c.ok("SELECT INBOX")
		c.send(fmt.Sprintf("i%d IDLE\r\n", i))
		if l := c.line(); !strings.HasPrefix(l, "+") {
			t.Fatal(l)
		}
		conns = append(conns, c)
	}
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		inbox := e.inbox()
		for i := 0; i < n; i += 10 {
			tx, err := e.st.Begin(ctx)
			if err != nil {
				done <- err
				return
			}
			for j := 0; j < 10; j++ {
				if _, err := tx.Append(inbox.ID, &store.NewMessage{Body: []byte(simple)}); err != nil {
					tx.Rollback()
					done <- err
					return
				}
			}
			if err := tx.Commit(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w := e.login()
	w.ok("SELECT INBOX")
	for i := 0; i < 20; i++ {
		w.ok(`STORE 1:* +FLAGS.SILENT ($Seen%d)`, i)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		// Read until the last EXISTS.
		for {
			l := c.line()
			if l == fmt.Sprintf("* %d EXISTS", n) {
				break
			}
			if !strings.HasPrefix(l, "* ") {
				t.Fatalf("session %d: %q", i, l)
			}
		}
		c.send("DONE\r\n")
		c.until(fmt.Sprintf("i%d", i))
		if un := c.ok("SEARCH ALL"); strings.Count(un, " ") != n+1 {
			t.Fatalf("session %d: SEARCH ALL: %d numbers", i, strings.Count(un, " ")-1)
		}
	}
}

// TestOddStoredFlags: flags copied from a lax old server that are not IMAP
// atoms are left out rather than breaking the response.
func TestOddStoredFlags(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), simple, "$ok", "bad(flag", "ünï", `\Seen`)
	c := e.login()
	un := c.ok("SELECT INBOX")
	if !strings.Contains(un, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $ok)`) {
		t.Fatalf("SELECT: %s", un)
	}
	if un := c.ok("FETCH 1 FLAGS"); strings.TrimSpace(un) != `* 1 FETCH (UID 1 FLAGS ($ok \Seen \Recent))` {
		t.Fatalf("FETCH: %q", un)
	}
}

// TestLogoutAnswered: the last words before the server closes a connection
// (BYE and LOGOUT's OK) reach the client; writes are coalesced, so Close
// must send what is pending.
func TestLogoutAnswered(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.send("z LOGOUT\r\n")
	if l := c.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("LOGOUT: %q", l)
	}
	if l := c.line(); !strings.HasPrefix(l, "z OK") {
		t.Fatalf("LOGOUT: %q", l)
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.r.ReadByte(); err == nil {
		t.Fatalf("data after LOGOUT: %q", n)
	}
	// Pipelined commands are all answered, in order.
	c2 := e.dial()
	c2.send("a LOGIN " + user + " " + pass + "\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n")
	var tags []string
	for {
		c2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := c2.r.ReadString('\n')
		if err != nil {
			break
		}
		if !strings.HasPrefix(l, "*") {
			tags = append(tags, strings.Fields(l)[0])
		}
	}
	if strings.Join(tags, "") != "abcd" {
		t.Fatalf("pipelined answers: %v", tags)
	}
}
