package pop3front_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
	"mailferry/core/testkit"
)

const msg1 = "From: a@example.test\r\nSubject: one\r\n\r\nHello\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
const msg2 = "From: b@example.test\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"

func TestTransaction(t *testing.T) {
	e := newEnv(t, nil)
	m1, m2 := e.put(msg1), e.put(msg2)
	p := e.login()
	if got, want := p.ok("STAT"), fmt.Sprintf("+OK 2 %d", m1.Size+m2.Size); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	p.ok("LIST")
	if got, want := string(p.multi()), fmt.Sprintf("1 %d\r\n2 %d\r\n", m1.Size, m2.Size); got != want {
		t.Errorf("LIST = %q, want %q", got, want)
	}
	if got, want := p.ok("LIST 2"), fmt.Sprintf("+OK 2 %d", m2.Size); got != want {
		t.Errorf("LIST 2 = %q, want %q", got, want)
	}
	mb := e.inbox()
	p.ok("UIDL")
	want := fmt.Sprintf("1 %08x%08x\r\n2 %08x%08x\r\n", mb.UIDValidity, m1.UID, mb.UIDValidity, m2.UID)
	if got := string(p.multi()); got != want {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	p.ok("RETR 1")
	if got := p.multi(); string(got) != msg1 {
		t.Errorf("RETR 1 = %q, want %q", got, msg1)
	}
	p.ok("TOP 2 0")
	if got, want := string(p.multi()), "From: b@example.test\r\nSubject: two\r\n\r\n"; got != want {
		t.Errorf("TOP 2 0 = %q, want %q", got, want)
	}
	p.ok("TOP 2 2")
	if got, want := string(p.multi()), "From: b@example.test\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\n"; got != want {
		t.Errorf("TOP 2 2 = %q, want %q", got, want)
	}
	p.ok("TOP 2 100")
	if got := string(p.multi()); got != msg2 {
		t.Errorf("TOP 2 100 = %q", got)
	}
	p.ok("DELE 1")
	if r := p.cmd("RETR 1"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("RETR of a deleted message: %q", r)
	}
	if got, want := p.ok("STAT"), fmt.Sprintf("+OK 1 %d", m2.Size); got != want {
		t.Errorf("STAT after DELE = %q, want %q", got, want)
	}
	p.ok("RSET")
	p.ok("STAT")
	p.ok("DELE 2")
	p.ok("NOOP")
	// Nothing changes before QUIT.
	if msgs, _ := e.st.Messages(context.Background(), mb.ID); len(msgs) != 2 {
		t.Fatalf("before QUIT: %d messages, want 2", len(msgs))
	}
	p.ok("QUIT")
	msgs, err := e.st.Messages(context.Background(), mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].UID != m1.UID {
		t.Fatalf("after QUIT: %v, want only message 1", msgs)
	}
}

// A connection that ends without QUIT removes nothing (RFC 1939 section 6).
func TestNoQuitNoUpdate(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	p := e.login()
	p.ok("DELE 1")
	p.c.Close()
	// the lock comes back once the session ended
	var p2 *conn
	for i := 0; ; i++ {
		p2 = e.dial()
		p2.ok("USER " + user)
		if r := p2.cmd("PASS " + pass); strings.HasPrefix(r, "+OK") {
			break
		} else if i > 50 {
			t.Fatalf("lock still held: %q", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := p2.ok("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT = %q: the message was removed without QUIT", r)
	}
}

func TestInUse(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	p := e.login()
	p2 := e.dial()
	p2.ok("USER " + user)
	if r := p2.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second session: %q, want -ERR [IN-USE]", r)
	}
	p.ok("QUIT")
	// The maildrop is free once QUIT is answered: a login at once finds
	// it free, every time.
	for range 30 {
		e.login().ok("QUIT")
	}
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t, nil)
	p := e.dial()
	p.ok("USER " + user)
	if r := p.cmd("PASS wrong"); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q", r)
	}
	p.ok("USER nobody@example.test")
	if r := p.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("unknown user: %q", r)
	}
	if _, err := e.st.Account(context.Background(), "nobody@example.test"); err == nil {
		t.Error("a failed login created an account")
	}
	if r := p.cmd("STAT"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("STAT before login: %q", r)
	}
}

func TestAuthPlain(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	p := e.dial()
	if r := p.cmd("AUTH PLAIN " + b64("\x00"+user+"\x00wrong")); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q", r)
	}
	if r := p.cmd("AUTH PLAIN " + b64("bob@example.test\x00"+user+"\x00"+pass)); !strings.HasPrefix(r, "-ERR [AUTH]") {
		t.Errorf("acting as another user: %q", r)
	}
	if r := p.cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("AUTH PLAIN without response: %q", r)
	}
	if r := p.cmd("*"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("cancel: %q", r)
	}
	if r := p.cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("AUTH PLAIN without response: %q", r)
	}
	p.ok(b64(user + "\x00" + user + "\x00" + pass))
	if r := p.ok("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT = %q", r)
	}
}

func TestCapa(t *testing.T) {
	e := newEnv(t, nil)
	p := e.dial()
	p.ok("CAPA")
	capa := string(p.multi())
	for _, c := range []string{"TOP\r\n", "UIDL\r\n", "RESP-CODES\r\n", "AUTH-RESP-CODE\r\n", "USER\r\n", "SASL PLAIN\r\n"} {
		if !strings.Contains(capa, c) {
			t.Errorf("CAPA lacks %q: %q", c, capa)
		}
	}
	if strings.Contains(capa, "STLS") {
		t.Errorf("CAPA offers STLS without TLS: %q", capa)
	}
}

// UIDLs kept from the old server are served for the messages of the same
// bytes, whatever their order; new mail gets UIDLs that never equal a
// kept one.
func TestKeptUIDLs(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	m1, m2 := e.put(msg1), e.put(msg2)
	mb := e.inbox()
	// The old server's list names message 2 first; one UIDL has no copy;
	// and one kept UIDL is exactly what message 3 would derive.
	collide := fmt.Sprintf("%08x%08x", mb.UIDValidity, m2.UID+1)
	err := e.st.KeepUIDLs(ctx, e.acct.ID, []store.KeptUIDL{
		{UIDL: "old-b", BlobKey: m2.BlobKey},
		{UIDL: "old-a", BlobKey: m1.BlobKey},
		{UIDL: "old-gone", BlobKey: strings.Repeat("0", 64)},
		{UIDL: collide, BlobKey: strings.Repeat("1", 64)},
	})
	if err != nil {
		t.Fatal(err)
	}
	m3 := e.put("Subject: new\r\n\r\nnew mail\r\n")
	p := e.login()
	p.ok("UIDL")
	want := fmt.Sprintf("1 old-a\r\n2 old-b\r\n3 %s-1\r\n", collide)
	if got := string(p.multi()); got != want {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	p.ok("QUIT")
	_ = m3
	// The match is kept: a message with the same bytes as message 1,
	// appended later, does not take its UIDL.
	e.put(msg1)
	p = e.login()
	p.ok("UIDL")
	got := string(p.multi())
	if strings.Count(got, "old-a") != 1 || !strings.HasPrefix(got, "1 old-a\r\n2 old-b\r\n") {
		t.Errorf("UIDL after a duplicate = %q", got)
	}
	if _, err := e.st.KeptUIDLs(ctx, e.acct.ID); err != nil {
		t.Fatal(err)
	}
}

// DELE then QUIT expunges, and an IMAP session idling on INBOX sees it.
func TestDeleteSeenByIMAP(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	e.put(msg2)
	ic, err := net.Dial("tcp", e.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	ir := bufio.NewReader(ic)
	ic.SetDeadline(time.Now().Add(20 * time.Second))
	expect := func(prefix string) string {
		t.Helper()
		for {
			l, err := ir.ReadString('\n')
			if err != nil {
				t.Fatalf("IMAP: %v waiting for %q", err, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
	}
	expect("* OK")
	fmt.Fprintf(ic, "a LOGIN %s %s\r\n", user, pass)
	expect("a OK")
	fmt.Fprintf(ic, "b SELECT INBOX\r\n")
	expect("b OK")
	fmt.Fprintf(ic, "c IDLE\r\n")
	expect("+ ")
	p := e.login()
	p.ok("DELE 1")
	p.ok("QUIT")
	expect("* 1 EXPUNGE")
	fmt.Fprintf(ic, "DONE\r\n")
	expect("c OK")
	fmt.Fprintf(ic, "d LOGOUT\r\n")
	expect("d OK")
}

// Hostile input: every bad line is answered -ERR, the session goes on, no
// line is buffered whole, and too many errors close the connection.
func TestHostileLines(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	bad := []string{
		"", "X", "RETRIEVE 1", "RE\x00R 1", "\xff\xfe", "USER", "PASS", "PASS x",
		"AUTH PLAIN !!!!", "AUTH CRAM-MD5", "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("no-nuls")),
		"STAT", "RETR 1", "STLS", "LIST  1",
	}
	after := []string{
		"RETR", "RETR 0", "RETR 2", "RETR -1", "RETR +1", "RETR 1 2", "RETR 99999999999999999999999",
		"TOP 1", "TOP 1 -1", "TOP 1 x", "LIST 1 2", "UIDL 0", "DELE 9", "USER " + user, "STLS", "NOOP 1",
	}
	p := e.dial()
	run := func(lines []string) {
		for i, l := range lines {
			if i > 0 && i%(8) == 0 {
				// stay below MaxErrors: a good command between
				p.ok("CAPA")
				p.multi()
			}
			if r := p.cmd(l); !strings.HasPrefix(r, "-ERR") {
				t.Errorf("%q answered %q", l, r)
			}
		}
	}
	run(bad[:8])
	p = e.dial()
	run(bad[8:])
	// An over-long line is answered -ERR and skipped.
	p = e.dial()
	p.send("USER " + strings.Repeat("a", 1<<20) + "\r\n")
	if r := p.line(); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("over-long line: %q", r)
	}
	p.ok("USER " + user)
	p.ok("PASS " + pass)
	run(after[:8])
	p.ok("QUIT")
	p = e.login()
	run(after[8:])
	if r := p.ok("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT after hostile lines = %q", r)
	}
	p.ok("QUIT")
	// Too many errors close the connection, whatever state and kind of
	// error: a line that does not parse, a command out of place, a failed
	// login, a bad argument.
	for _, bad := range []string{"BOGUS", "PASS x", "STAT", "PASS wrong"} {
		p = e.dial()
		try := func() string {
			if bad == "PASS wrong" {
				// (another account: alice's own failures are limited)
				p.ok("USER nobody@example.test")
			}
			return p.cmd(bad)
		}
		for i := 0; i < 9; i++ {
			try()
		}
		if r := try(); !strings.HasPrefix(r, "-ERR Too many") {
			t.Errorf("%q 10 times: %q", bad, r)
		}
		if !p.closed() {
			t.Errorf("%q: connection still open after too many bad commands", bad)
		}
	}
	p = e.login()
	for i := 0; i < 9; i++ {
		p.cmd("RETR 0")
	}
	if r := p.cmd("RETR 0"); !strings.HasPrefix(r, "-ERR Too many") {
		t.Errorf("10th bad RETR: %q", r)
	}
	if msgs, _ := e.st.Messages(context.Background(), e.inbox().ID); len(msgs) != 1 {
		t.Errorf("hostile lines changed the maildrop: %d messages", len(msgs))
	}
}

// A message with bare LFs and no final line end is served byte for byte;
// only the dot-stuffing and the last CRLF are added on the wire.
func TestExactBytes(t *testing.T) {
	e := newEnv(t, nil)
	raw := "Subject: lf\n\n.dot\nbody\r\nno end"
	m := e.put(raw)
	p := e.login()
	if r := p.ok("LIST 1"); r != fmt.Sprintf("+OK 1 %d", m.Size) {
		t.Errorf("LIST 1 = %q", r)
	}
	p.send("RETR 1\r\n")
	p.line()
	var got []byte
	for {
		l, err := p.r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		if string(l) == ".\r\n" {
			break
		}
		got = append(got, l...)
	}
	if want := "Subject: lf\n\n..dot\nbody\r\nno end\r\n"; string(got) != want {
		t.Errorf("wire = %q, want %q", got, want)
	}
	blob, _ := e.st.Blob(context.Background(), m.BlobKey)
	if !bytes.Equal(blob, []byte(raw)) {
		t.Error("stored bytes changed")
	}
}

// A session idle longer than Options.Idle is closed (and gives its lock
// back); the per-source connection bound answers -ERR.
func TestIdleAndConnLimit(t *testing.T) {
	e := newEnv(t, &envOpts{idle: 300 * time.Millisecond, maxConns: 2})
	p := e.login()
	time.Sleep(600 * time.Millisecond)
	if !p.closed() {
		t.Fatal("idle session still open")
	}
	q := e.login() // the lock came back
	q.ok("QUIT")
	if !q.closed() {
		t.Fatal("session open after QUIT")
	}
	a, b := e.dial(), e.dial()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(l, "-ERR [SYS/TEMP] Too many connections") {
		t.Errorf("third connection: %q", l)
	}
	_, _ = a, b
}

// A message another session expunged during the POP3 session: RETR says
// -ERR, and QUIT still removes the other marked messages.
func TestExpungedMeanwhile(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	m1 := e.put(msg1)
	e.put(msg2)
	e.put("Subject: three\r\n\r\n3\r\n")
	p := e.login()
	mb := e.inbox()
	if _, err := e.st.StoreFlags(ctx, mb.ID, []uint32{m1.UID}, store.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Expunge(ctx, mb.ID, nil); err != nil {
		t.Fatal(err)
	}
	if r := p.cmd("RETR 1"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("RETR of an expunged message: %q", r)
	}
	p.ok("DELE 1")
	p.ok("DELE 2")
	if r := p.ok("QUIT"); !strings.Contains(r, "1 messages removed") {
		t.Errorf("QUIT = %q", r)
	}
	msgs, _ := e.st.Messages(ctx, mb.ID)
	if len(msgs) != 1 {
		t.Errorf("%d messages left, want 1", len(msgs))
	}
}

// TestQuitAfterAccountMadeAgain: a session's QUIT after its account was
// deleted and made again (the new account's messages take UIDs from 1
// again) removes nothing of the new account, even a message with the same
// bytes under the same UID. The new account has a new ID (SQLite gave the
// old one again before account_id_top); the session also checks the
// account's creation time.
func TestQuitAfterAccountMadeAgain(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.put(msg1)
	old := e.inbox()
	p := e.login()
	p.ok("DELE 1")
	if err := e.st.DeleteAccount(ctx, user); err != nil {
		t.Fatal(err)
	}
	// Made again in a later second (the account's creation time is kept
	// in seconds).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	acct, err := e.st.CreateAccount(ctx, user, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.acct = acct
	// Neither the account's ID nor its INBOX's is given again (account_id_top,
	// mailbox_id_top), and the old session's QUIT must not touch the new
	// INBOX either way.
	if acct.ID == old.AccountID {
		t.Errorf("the account made again took the deleted account's ID %d", acct.ID)
	}
	m := e.put(msg1)
	if m.UID != 1 {
		t.Fatalf("new message has UID %d, want 1", m.UID)
	}
	if r := p.cmd("QUIT"); strings.Contains(r, "1 messages removed") {
		t.Errorf("QUIT = %q", r)
	}
	msgs, err := e.st.Messages(ctx, e.inbox().ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("the new account has %d messages, want 1: QUIT of the old account's session removed its mail", len(msgs))
	}
}

// TestLockAfterAccountMadeAgain: a session of an account that was then
// deleted and made again (with a new ID; SQLite gave the old one again
// before account_id_top) does not lock the new account's maildrop: the new
// account logs in at once, and the old session's end frees nothing of the
// new one's lock.
func TestLockAfterAccountMadeAgain(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.put(msg1)
	oldID := e.acct.ID
	p := e.login()
	if err := e.st.DeleteAccount(ctx, user); err != nil {
		t.Fatal(err)
	}
	// Made again in a later second (the account's creation time is kept
	// in seconds).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	acct, err := e.st.CreateAccount(ctx, user, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acct.ID == oldID {
		t.Errorf("the account made again took the deleted account's ID %d", acct.ID)
	}
	e.acct = acct
	p2 := e.dial()
	p2.ok("USER " + user)
	if r := p2.cmd("PASS " + pass); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login to the account made again while the deleted account's session lives: %q, want +OK", r)
	}
	// The old session ends: the new one's lock stays.
	p.cmd("QUIT")
	p3 := e.dial()
	p3.ok("USER " + user)
	if r := p3.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second session of the new account after the old account's session ended: %q, want -ERR [IN-USE]", r)
	}
	p2.ok("QUIT")
	e.login().ok("QUIT")
}

// TestUIDLsKeptWhenOldListComesLate: the old server's UIDL list of a
// migrated account could not be read at first (the POP3 session got
// UIDLs made here) and was read later: the UIDLs a client saw stay, and
// only a message copied after the list was read takes its old UIDL.
func TestUIDLsKeptWhenOldListComesLate(t *testing.T) {
	e := newEnv(t, &envOpts{noAccount: true})
	ctx := context.Background()
	var err error
	if e.acct, err = e.st.CreateAccount(ctx, user, pass, &store.AccountOptions{Migration: store.MigRunning}); err != nil {
		t.Fatal(err)
	}
	m1, m2 := e.put(msg1), e.put(msg2)
	p := e.login()
	p.ok("UIDL")
	first := string(p.multi())
	p.ok("QUIT")
	const msg3 = "Subject: three\r\n\r\ncopied after the list was read\r\n"
	sum := e.st.NewKeyHash() // the key the message copied later gets
	sum.Write([]byte(msg3))
	if err := e.st.KeepUIDLs(ctx, e.acct.ID, []store.KeptUIDL{
		{UIDL: "old-a", BlobKey: m1.BlobKey},
		{UIDL: "old-b", BlobKey: m2.BlobKey},
		{UIDL: "old-c", BlobKey: sum.Key()},
	}); err != nil {
		t.Fatal(err)
	}
	e.put(msg3)
	p = e.login()
	p.ok("UIDL")
	got := string(p.multi())
	if want := first + "3 old-c\r\n"; got != want {
		t.Errorf("UIDL after the old list was read = %q, want %q (the UIDLs a client saw must not change)", got, want)
	}
	p.ok("QUIT")
}

// The maildrop lock holds across nodes (RFC 1939 section 8): two POP3
// servers on one store, as two nodes on one database, never let two
// sessions hold one account; the second gets the maildrop once the first
// ends. Without the store's lock each node had its own and both got in.
func TestInUseAcrossNodes(t *testing.T) {
	e := newEnv(t, nil)
	e.put(msg1)
	e2 := newEnv(t, &envOpts{store: e.st, noAccount: true})
	e2.acct = e.acct
	p := e.login()
	p2 := e2.dial()
	p2.ok("USER " + user)
	if r := p2.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second node's session while the first node's lives: %q, want -ERR [IN-USE]", r)
	}
	p.ok("QUIT")
	e2.login().ok("QUIT")
}

// A session renews its lock: with a short LockTTL, the lock of a session
// idle for several TTLs still keeps out a second session. And a lock
// left by a node that died (never renewed) lapses after its TTL.
func TestMaildropLockRenewedAndLapses(t *testing.T) {
	const ttl = 300 * time.Millisecond
	e := newEnv(t, &envOpts{lockTTL: ttl})
	e.put(msg1)
	p := e.login()
	time.Sleep(4 * ttl)
	p2 := e.dial()
	p2.ok("USER " + user)
	if r := p2.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second session after the first idled %v (lock TTL %v): %q, want -ERR [IN-USE]", 4*ttl, ttl, r)
	}
	p.ok("QUIT")

	// A dead node's lock: taken, never renewed.
	ctx := context.Background()
	if err := e.st.LockMaildrop(ctx, e.acct.ID, "pop3 a node that died", ttl); err != nil {
		t.Fatal(err)
	}
	p3 := e.dial()
	p3.ok("USER " + user)
	if r := p3.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("login while a dead node's lock lasts: %q, want -ERR [IN-USE]", r)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	e.login().ok("QUIT")
}

// A session whose account is deleted loses its lock with it: its next
// renewal ends the session (an account made again under the same ID is
// not held by it).
func TestMaildropLockGoesWithAccount(t *testing.T) {
	const ttl = 300 * time.Millisecond
	e := newEnv(t, &envOpts{lockTTL: ttl})
	e.put(msg1)
	p := e.login()
	p.ok("DELE 1")
	if err := e.st.DeleteAccount(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.closed() {
		if time.Now().After(deadline) {
			t.Fatal("the session of a deleted account still open 10 s later")
		}
	}
}

// TestSTLSPipelined: a command sent in clear right behind STLS
// (CVE-2021-33515's kind: an attacker on the path injects it before the
// handshake) is dropped, never answered inside TLS, where the client
// would take the answer for one to its own command (RFC 2595 section 4).
func TestSTLSPipelined(t *testing.T) {
	e := newEnv(t, &envOpts{tls: testTLS(t), secure: true})
	p := e.dial()
	p.send("STLS\r\nUSER " + user + "\r\nCAPA\r\n")
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("STLS: %q", l)
	}
	tc := testkit.QuietTLS(t, p.c, &tls.Config{InsecureSkipVerify: true})
	tp := &conn{t: t, c: tc, r: newReader(tc)}
	// The USER sent in clear was forgotten too: PASS alone is refused.
	if r := tp.cmd("PASS " + pass); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("PASS after a USER sent in clear before STLS: %q", r)
	}
	tp.ok("USER " + user)
	tp.ok("PASS " + pass)
	tp.ok("QUIT")
}
