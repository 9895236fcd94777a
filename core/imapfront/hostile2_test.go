package imapfront_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"mailferry/core/imapfront"
)

// foldedSubject is a Subject field of n repeats of word, then n of tail,
// folded into lines of at most 998 characters (RFC 5322 2.1.1), as a
// message from outside can carry it.
func foldedSubject(word string, n int, tail string) string {
	var b strings.Builder
	b.WriteString("Subject:")
	line := len("Subject:")
	for i := 0; i < 2*n; i++ {
		if i == n {
			if tail == "" {
				break
			}
			word = tail
		}
		if line+len(word)+1 > 998 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(" " + word)
		line += len(word) + 1
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestSortHostileSubject sorts and threads messages whose Subject is a
// megabyte of "Re: " leaders, of blobs, of "[fwd: " wrappers: anyone can
// send such a message to a user, whose client then sorts its mailbox by
// subject. Each base subject was a pass over the subject per leader or
// blob (quadratic: a megabyte of "Re: " minutes of a core), and was taken
// again at every comparison of the sort. Each command is answered at once
// and the session goes on.
func TestSortHostileSubject(t *testing.T) {
	e := newEnv(t, nil)
	const size = 1 << 20
	for _, subj := range []string{
		foldedSubject("Re:", size/4, ""),
		foldedSubject("[a]", size/4, ""),
		foldedSubject("[fwd:", size/8, "]"),
		"Subject: plain\r\n",
	} {
		e.put(e.inbox(), "From: a@x.test\r\n"+subj+"\r\nbody\r\n")
	}
	c := e.login()
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"SORT (SUBJECT) UTF-8 ALL",
		"SORT (REVERSE SUBJECT FROM) UTF-8 ALL",
		"THREAD ORDEREDSUBJECT UTF-8 ALL",
		"THREAD REFERENCES UTF-8 ALL",
	} {
		start := time.Now()
		un := c.ok("%s", cmd)
		took := time.Since(start)
		for n := 1; n <= 4; n++ {
			if !strings.Contains(un+" ", fmt.Sprintf("%d", n)) {
				t.Errorf("%s: message %d missing: %s", cmd, n, un)
			}
		}
		t.Logf("%s: %v", cmd, took)
	}
	c.ok("NOOP")
}

// readUntilClosed reads what the server sends until it closes the
// connection (or 20 s pass), whatever the client still sends meanwhile.
func (c *conn) readUntilClosed() string {
	c.t.Helper()
	var sb strings.Builder
	c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		l, err := c.r.ReadString('\n')
		sb.WriteString(l)
		if err != nil {
			return sb.String()
		}
	}
}

// sendAll writes s from a goroutine of its own, so that a server that
// closes the connection early does not block or fail the test; the
// returned channel is closed when the write ended.
func (c *conn) sendAll(s string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c.c, s)
	}()
	return done
}

// TestCommandTooLong sends commands over the 50 KiB a command may hold:
// a line, and a line of many small literals, which were all read into
// memory (300 literals of 4,000 bytes answered OK). Nothing the client sent
// after the limit is taken for a command: the tail of an over-long quoted
// string ("Z DELETE "Trash, closed by the string's own quote) was run as a
// command of the user's session, and deleted Trash. An over-long line is
// answered BAD and the rest of it dropped (fork change 44, as Dovecot
// answers), the session going on; literals past the limit end the
// connection with * BYE [TOOBIG] (change 48: a non-synchronizing
// literal's bytes could not be told from commands).
func TestCommandTooLong(t *testing.T) {
	e := newEnv(t, nil)
	e.login().ok("CREATE Trash")
	// In SEARCH, and in a command the server does not know (its line
	// dropped after the handler: the rest went on as commands there too).
	for _, cmd := range []string{"SEARCH TEXT", "XUNKNOWN"} {
		c := e.login()
		c.ok("SELECT INBOX")
		done := c.sendAll("t1 " + cmd + " \"" + strings.Repeat("a", 60000) + " DELETE \"Trash\"\r\nt2 NOOP\r\n")
		un, tagged := c.until("t2")
		<-done
		if !strings.HasPrefix(un, "t1 BAD ") || strings.Count(un, "\n") != 1 || !strings.Contains(tagged, " OK ") {
			t.Errorf("%s, 60,000 bytes in a quoted string: got %q then %q, want t1 BAD alone, then t2 OK", cmd, un, tagged)
		}
		if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
			t.Errorf("Trash after the over-long %s: %v", cmd, err)
		}
	}

	c := e.login()
	c.ok("SELECT INBOX")
	var lits strings.Builder
	lits.WriteString("t1 SEARCH")
	for i := 0; i < 300; i++ {
		lits.WriteString(" NOT TEXT {4000+}\r\n" + strings.Repeat("q", 4000))
	}
	lits.WriteString("\r\nt2 NOOP\r\n")
	done := c.sendAll(lits.String())
	got := c.readUntilClosed()
	<-done
	if !strings.HasPrefix(got, "* BYE [TOOBIG] ") || strings.Contains(got, "t1 ") || strings.Contains(got, "t2 ") {
		t.Errorf("300 literals of 4,000 bytes: got %.300q, want * BYE [TOOBIG] and the connection closed", got)
	}

	// Within the limit, literals still count as before: 12 of 4,000 bytes.
	c = e.login()
	c.ok("SELECT INBOX")
	lits.Reset()
	c.tag++
	fmt.Fprintf(&lits, "t%d SEARCH", c.tag)
	for i := 0; i < 12; i++ {
		lits.WriteString(" NOT TEXT {4000+}\r\n" + strings.Repeat("q", 4000))
	}
	c.send(lits.String() + "\r\n")
	if _, tagged := c.until(fmt.Sprintf("t%d", c.tag)); !strings.Contains(tagged, " OK ") {
		t.Errorf("12 literals of 4,000 bytes: %q", tagged)
	}
}

// TestThreadDeepReferences threads messages whose References chain into
// one thread hundreds of thousands deep, as anyone can send a user: one
// message of 300,000 References (finding the root set walked up from
// every container, minutes), then 25 messages of 1,000 each, each
// continuing the last one's chain (25,000 deep). THREAD REFERENCES
// answers, each message once, and the session goes on.
func TestThreadDeepReferences(t *testing.T) {
	e := newEnv(t, nil)
	var refs strings.Builder
	for i := 0; i < 300000; i++ {
		fmt.Fprintf(&refs, " <%d@r>", i)
	}
	e.put(e.inbox(), "Message-ID: <big@t>\r\nSubject: big\r\nReferences:"+refs.String()+"\r\n\r\nbody\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	start := time.Now()
	un := c.ok("THREAD REFERENCES UTF-8 ALL")
	t.Logf("one message of 300,000 References: %v, %.100q", time.Since(start), un)
	if strings.TrimSpace(un) != "* THREAD (1)" {
		t.Errorf("one message of 300,000 References: %.200q", un)
	}

	prev := "<big@t>"
	for m := 0; m < 25; m++ {
		refs.Reset()
		refs.WriteString(" " + prev)
		for i := 0; i < 999; i++ {
			fmt.Fprintf(&refs, " <%d.%d@c>", m, i)
		}
		id := fmt.Sprintf("<m%d@t>", m)
		e.put(e.inbox(), "Message-ID: "+id+"\r\nSubject: chain\r\nReferences:"+refs.String()+"\r\n\r\nbody\r\n")
		prev = id
	}
	c.ok("NOOP") // told of the 25
	start = time.Now()
	un = c.ok("THREAD REFERENCES UTF-8 ALL")
	t.Logf("25,000 deep: %v", time.Since(start))
	line := strings.NewReplacer("(", " ", ")", " ").Replace(strings.TrimPrefix(strings.TrimSpace(un), "* THREAD"))
	for n := 1; n <= 26; n++ {
		if got := strings.Count(" "+line+" ", fmt.Sprintf(" %d ", n)); got != 1 {
			t.Errorf("25,000 deep: message %d appears %d times: %.300s", n, got, un)
		}
	}
	c.ok("NOOP")
}

// TestStartTLSPipelined: a command sent in clear right behind STARTTLS
// (CVE-2021-33515's kind: an attacker on the path injects it before the
// handshake) is never answered inside TLS, where the client would take
// the answer for one to its own command. The server reads what followed
// STARTTLS as the start of the handshake, which then fails.
func TestStartTLSPipelined(t *testing.T) {
	cfg, err := imapfront.SelfSignedTLS(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	insecure := false
	e := newEnv(t, &envOpts{tls: cfg, insecure: &insecure})
	c := e.dial()
	c.send("a STARTTLS\r\nb CAPABILITY\r\n")
	if l := c.line(); !strings.HasPrefix(l, "a OK ") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(bufferedConn{c.c, c.r}, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Logf("handshake: %v (the injected line was read as its start)", err)
		return
	}
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, _ := io.ReadAll(tc); len(got) > 0 {
		t.Errorf("inside TLS, before the client said anything: %q", got)
	}
}

// bufferedConn reads what its reader buffered before the connection.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// smallInbox is a server whose INBOX holds n small messages ("Subject:
// m0"...), and a session logged in to it, nothing selected.
func smallInbox(t *testing.T, n int) *conn {
	e := newEnv(t, nil)
	for i := 0; i < n; i++ {
		e.put(e.inbox(), fmt.Sprintf("Subject: m%d\r\n\r\nbody\r\n", i))
	}
	return e.login()
}

// TestSearchNestedTooDeep: search keys nested past 100 levels of NOT, OR
// or parentheses are answered BAD at once, in SEARCH, SORT and THREAD, and
// the session goes on. Each level is a call of the matching per message:
// 12,000 nested NOT (48 KB) took 0.65-3 s over 200 small messages, minutes
// over a mailbox of 100,000. 100 levels still search.
func TestSearchNestedTooDeep(t *testing.T) {
	c := smallInbox(t, 20)
	c.ok("SELECT INBOX")
	for _, keys := range []string{
		strings.Repeat("NOT ", 12000) + "ALL",
		strings.Repeat("NOT ", 101) + "ALL",
		strings.Repeat("OR SEEN ", 101) + "ALL",
		strings.Repeat("(", 101) + "ALL" + strings.Repeat(")", 101),
	} {
		for _, cmd := range []string{"SEARCH ", "SORT (SUBJECT) UTF-8 ", "THREAD REFERENCES UTF-8 "} {
			start := time.Now()
			got, all := c.status("%s%s", cmd, keys)
			if got != "BAD" || !strings.Contains(all, "nested too deep") {
				t.Errorf("%s%.30s... (%d bytes): %.200s", cmd, keys, len(keys), all)
			}
			t.Logf("%s%.12s... (%d bytes): %v", cmd, keys, len(keys), time.Since(start))
		}
	}
	for _, keys := range []string{
		strings.Repeat("NOT ", 100) + "ALL",
		strings.Repeat("OR SEEN ", 100) + "ALL",
		strings.Repeat("(", 100) + "ALL" + strings.Repeat(")", 100),
	} {
		if un := c.ok("SEARCH %s", keys); !strings.Contains(un, "* SEARCH 1 2 ") {
			t.Errorf("SEARCH %.30s... (100 levels): %.100q", keys, un)
		}
	}
}

// TestSearchManyTextKeys: a SEARCH of 400 TEXT keys reads each message
// once, not once per key: it took 400 parses and decodings of every
// message (6 s over 200 messages of 5 KB), now about what one key takes.
// Medians of 3 runs of each, interleaved; the keys still find what they
// should, in a header, a text part and a base64 part.
func TestSearchManyTextKeys(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 200; i++ {
		e.put(e.inbox(), fmt.Sprintf("From: a@x.test\r\nSubject: m%d\r\n\r\n%s\r\n", i, strings.Repeat("body text ", 500)))
	}
	e.put(e.inbox(), "Subject: needle-in-subject\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nplain needle-in-text\r\n"+
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nbmVlZGxlLWluLWJhc2U2NA==\r\n--b--\r\n")
	c := e.login()
	c.ok("SELECT INBOX")
	var many strings.Builder
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&many, "NOT TEXT zq%d ", i)
	}
	var one, all []time.Duration
	for r := 0; r < 3; r++ {
		start := time.Now()
		c.ok("SEARCH NOT TEXT zq")
		one = append(one, time.Since(start))
		start = time.Now()
		if un := c.ok("SEARCH %sALL", many.String()); !strings.Contains(un, " 200 201") {
			t.Fatalf("400 TEXT keys: %.100q", un)
		}
		all = append(all, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[1]
	}
	t.Logf("one TEXT key %v, 400 keys %v (medians of 3)", med(one), med(all))
	if med(all) > 40*med(one) {
		t.Errorf("400 TEXT keys took %v, one %v: more than 40 times as long", med(all), med(one))
	}
	for _, tc := range []struct{ keys, want string }{
		{"TEXT NEEDLE-IN-SUBJECT", "* SEARCH 201"},
		{"BODY needle-in-subject", "* SEARCH"},
		{"BODY needle-in-text", "* SEARCH 201"},
		{"TEXT needle-in-base64 BODY NEEDLE-in-BASE64", "* SEARCH 201"},
		{"TEXT needle-in-subject BODY needle-in-text NOT BODY zq", "* SEARCH 201"},
	} {
		if un := strings.TrimSpace(c.ok("SEARCH %s", tc.keys)); un != tc.want {
			t.Errorf("SEARCH %s: %q, want %q", tc.keys, un, tc.want)
		}
	}
}

// TestLiteralPlusOver4096: a non-synchronizing literal of 5,000 bytes in
// a SEARCH (a search string holding line breaks or 8-bit text, sent with
// LITERAL+) is read as
// the string it is. It was refused as over 4,096 bytes while its bytes,
// already sent, were then read as commands: a line of the search string
// ("Z DELETE Trash") was run in the user's session.
func TestLiteralPlusOver4096(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE Trash")
	c.ok("SELECT INBOX")
	e.put(e.inbox(), "Subject: x\r\n\r\nbody\r\n")
	c.ok("NOOP")
	lit := strings.Repeat("q", 4980) + "\r\nZ DELETE Trash\r\n"
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(fmt.Sprintf("%s SEARCH NOT TEXT {%d+}\r\n%s\r\n", tag, len(lit), lit))
	un, tagged := c.until(tag)
	if !strings.Contains(tagged, " OK ") || strings.TrimSpace(un) != "* SEARCH 1" {
		t.Errorf("SEARCH with a LITERAL+ of %d bytes: %q %q", len(lit), tagged, un)
	}
	c.ok("NOOP")
	if _, err := e.st.Mailbox(context.Background(), e.acct.ID, "Trash"); err != nil {
		t.Errorf("Trash after the search: %v", err)
	}
}

// TestStalledReaderBounded: a session that asks for 20 MB (FETCH 1:*
// BODY[] of 500 messages of 40 KB) and never reads holds at most its
// socket's buffers and one coalesced write (64 KiB) of the answer: the
// server's heap does not grow by the answer, and another session of the
// same user is answered meanwhile (coalesce.go, write deadlines).
func TestStalledReaderBounded(t *testing.T) {
	e := newEnv(t, nil)
	body := strings.Repeat("0123456789abcdef", 2560)
	for i := 0; i < 500; i++ {
		e.put(e.inbox(), fmt.Sprintf("Subject: m%d\r\n\r\n%s\r\n", i, body))
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	stalled := e.login()
	stalled.ok("SELECT INBOX")
	stalled.send("s1 FETCH 1:* BODY[]\r\n")
	time.Sleep(2 * time.Second) // the answer fills the sockets' buffers

	other := e.login()
	other.ok("SELECT INBOX")
	start := time.Now()
	other.ok("FETCH 1:10 (FLAGS BODY[])")
	if tagged := other.appendMsg("INBOX", "", "Subject: during\r\n\r\nbody\r\n"); !strings.Contains(tagged, " OK ") {
		t.Errorf("APPEND beside the stalled session: %q", tagged)
	}
	other.ok("NOOP")
	t.Logf("the other session's FETCH, APPEND, NOOP: %v", time.Since(start))

	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap: %d KB before, %d KB with the stalled answer (%+d KB)", before.HeapAlloc>>10, during.HeapAlloc>>10, grew>>10)
	if grew > 8<<20 {
		t.Errorf("the heap grew by %d KB while a 20 MB answer waited for its reader", grew>>10)
	}
}

// TestHugeSequenceSets: sets written to the line's limit
// ("1:4294967295," over and over, or 4,000 separate numbers) are merged as
// they are read and answered at once, by sequence (BAD: beyond the
// mailbox) and by UID, in FETCH, STORE, SEARCH and COPY.
func TestHugeSequenceSets(t *testing.T) {
	c := smallInbox(t, 50)
	c.ok("CREATE Other")
	c.ok("SELECT INBOX")
	full := strings.TrimSuffix(strings.Repeat("1:4294967295,", 3800), ",")
	var odd strings.Builder
	for i := 1; i < 8000; i += 2 {
		fmt.Fprintf(&odd, "%d,", i)
	}
	sparse := strings.TrimSuffix(odd.String(), ",")
	for _, tc := range []struct{ cmd, want string }{
		{"FETCH " + full + " FLAGS", "BAD"},
		{"UID FETCH " + full + " FLAGS", "OK"},
		{"UID FETCH " + sparse + " FLAGS", "OK"},
		{"UID STORE " + sparse + " +FLAGS.SILENT (x)", "OK"},
		{"SEARCH UID " + full, "OK"},
		{"SEARCH " + sparse, "OK"},
		{"UID COPY " + sparse + " Other", "OK"},
	} {
		start := time.Now()
		got, all := c.status("%s", tc.cmd)
		if got != tc.want {
			t.Errorf("%.40s... (%d bytes): %.200s", tc.cmd, len(tc.cmd), all)
		}
		t.Logf("%.30s... (%d bytes): %s in %v", tc.cmd, len(tc.cmd), got, time.Since(start))
	}
	if un := c.ok("STATUS Other (MESSAGES)"); !strings.Contains(un, "MESSAGES 25") {
		t.Errorf("after UID COPY of the odd UIDs: %q", un)
	}
}

// TestAppendAnnouncedNotHeld: APPENDs that announce messages of 60 MB
// (under the 64 MiB limit) and send 1,000 bytes of them hold what they
// sent, not what they announced: eight sessions took 480 MB of heap,
// allocated at the announcement. A message sent whole is stored exact.
func TestAppendAnnouncedNotHeld(t *testing.T) {
	e := newEnv(t, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var conns []*conn
	for i := 0; i < 8; i++ {
		c := e.login()
		c.send("a1 APPEND INBOX {60000000+}\r\n" + strings.Repeat("x", 1000))
		conns = append(conns, c)
	}
	time.Sleep(time.Second) // for the sessions to read what was sent
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap: %d KB before, %d KB with eight APPENDs of 60 MB announced (%+d KB)", before.HeapAlloc>>10, during.HeapAlloc>>10, grew>>10)
	if grew > 32<<20 {
		t.Errorf("eight APPENDs announcing 60 MB and sending 1,000 bytes each: the heap grew by %d MB", grew>>20)
	}
	for _, c := range conns {
		c.c.Close()
	}

	c := e.login()
	msg := "Subject: whole\r\n\r\n" + strings.Repeat("0123456789", 30000) + "\r\n"
	if tagged := c.appendMsg("INBOX", "", msg); !strings.Contains(tagged, " OK ") {
		t.Fatalf("APPEND of %d bytes: %q", len(msg), tagged)
	}
	c.ok("SELECT INBOX")
	if got := literalOf(t, c.ok("FETCH 1 BODY.PEEK[]"), "BODY[]"); got != msg {
		t.Errorf("the message stored: %d bytes, want the %d sent", len(got), len(msg))
	}
}

// TestSASLResponseTooLong: an AUTHENTICATE response longer than the
// server's line buffer (4,096 bytes) ends the connection with * BYE
// [TOOBIG]: it was answered NO [SERVERBUG] Internal server error, and the
// rest of the line read as commands.
func TestSASLResponseTooLong(t *testing.T) {
	c := newEnv(t, nil).dial()
	done := c.sendAll("a AUTHENTICATE PLAIN\r\n" + strings.Repeat("QUFB", 2500) + "\r\nb NOOP\r\n")
	got := c.readUntilClosed()
	<-done
	if !strings.HasPrefix(got, "+") || !strings.Contains(got, "\r\n* BYE [TOOBIG] ") || strings.Contains(got, "b OK") || strings.Contains(got, "SERVERBUG") {
		t.Errorf("a SASL response of 10,000 bytes: got %.300q, want * BYE [TOOBIG] and the connection closed", got)
	}
}

// TestAppendsHeldPerAccount: an account's APPENDs in progress hold at most
// twice APPENDLIMIT in memory (here 1 MiB, so 2 MiB): two sessions each
// sending a message of 1,000,000 bytes, all but its last byte, hold it;
// a third's is answered NO [LIMIT] (its bytes read and dropped), and
// once the first two ended an APPEND goes through again. Every session of
// a user could hold a whole message at once: 50 connections of a source,
// 3 GiB at the 64 MiB limit.
func TestAppendsHeldPerAccount(t *testing.T) {
	e := newEnv(t, &envOpts{appendLimit: 1 << 20})
	msg := "Subject: big\r\n\r\n" + strings.Repeat("x", 1000000-18) + "\r\n"
	var held []*conn
	for i := 0; i < 2; i++ {
		c := e.login()
		c.send(fmt.Sprintf("a1 APPEND INBOX {%d+}\r\n%s", len(msg), msg[:len(msg)-1]))
		held = append(held, c)
	}
	time.Sleep(2 * time.Second) // for the server to read them
	third := e.login()
	third.send(fmt.Sprintf("a1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := third.until("a1"); !strings.HasPrefix(tagged, "a1 NO [LIMIT] ") {
		t.Errorf("a third APPEND of 1,000,000 bytes beside two: %q, want NO [LIMIT]", tagged)
	}
	third.ok("NOOP")
	for _, c := range held {
		c.send(msg[len(msg)-1:] + "\r\n")
		if _, tagged := c.until("a1"); !strings.HasPrefix(tagged, "a1 OK ") {
			t.Errorf("APPEND held while a third was refused: %q", tagged)
		}
	}
	if tagged := third.appendMsg("INBOX", "", msg); !strings.Contains(tagged, " OK ") {
		t.Errorf("APPEND once the others ended: %q", tagged)
	}
	third.ok("SELECT INBOX")
	if got := literalOf(t, third.ok("FETCH 3 BODY.PEEK[]"), "BODY[]"); got != msg {
		t.Errorf("the message stored: %d bytes, want the %d sent", len(got), len(msg))
	}
}
