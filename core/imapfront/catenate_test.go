package imapfront_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"mailferry/core/store"
)

// catMsg is a message whose parts CATENATE URLs name: a multipart with a
// text part (trailing spaces, a bare LF kept as they are) and a
// message/rfc822.
const catMsg = "From: Alice <alice@example.test>\r\nSubject: parts\r\nX-Odd:  spaced  \r\n" +
	"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--b\r\n" +
	"Content-Type: text/plain\r\n\r\nfirst part  \nbare LF\r\n--b\r\n" +
	"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n\r\ninner body\r\n--b--\r\n"

var catUIDRe = regexp.MustCompile(`\[APPENDUID \d+ ([\d:,]+)\]`)

// catenateOf is an APPEND to INBOX of one message of n parts, each part.
func catenateOf(n int, part string) string {
	return "APPEND INBOX CATENATE (" + strings.TrimSuffix(strings.Repeat(part+" ", n), " ") + ")"
}

// lit is a non-synchronizing literal (LITERAL+).
func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// TestCatenateBytes: the bytes a URL names are FETCH BODY.PEEK[section]'s,
// exactly, with PARTIAL's range applied, between TEXT parts (RFC 4469 5:
// BODY[section] raw).
func TestCatenateBytes(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), catMsg)
	c := e.login()
	c.ok("SELECT INBOX")
	for _, tc := range []struct {
		fetch, urlSection string
		off, size         int // PARTIAL; off < 0 none, size < 0 to the end
		item              string
	}{
		{"", "", -1, 0, ""},
		{"HEADER", "HEADER", -1, 0, ""},
		{"TEXT", "text", -1, 0, ""},
		{"1", "1", -1, 0, ""},
		{"1.MIME", "1.MIME", -1, 0, ""},
		{"2", "2", -1, 0, ""},
		{"2.HEADER", "2.HEADER", -1, 0, ""},
		{"2.TEXT", "2.TEXT", -1, 0, ""},
		{"HEADER.FIELDS (SUBJECT X-ODD)", "HEADER.FIELDS%20(SUBJECT%20X-ODD)", -1, 0, `BODY[HEADER.FIELDS ("SUBJECT" "X-ODD")]`},
		{"HEADER.FIELDS.NOT (SUBJECT)", "HEADER.FIELDS.NOT%20(SUBJECT)", -1, 0, `BODY[HEADER.FIELDS.NOT ("SUBJECT")]`},
		{"", "", 5, 20, ""},
		{"1", "1", 3, -1, ""},
		{"TEXT", "TEXT", 100000, 1, ""},
	} {
		un := c.ok("UID FETCH 1 BODY.PEEK[%s]", tc.fetch)
		if tc.item == "" {
			tc.item = "BODY[" + tc.fetch + "]"
		}
		want := literalOf(t, un, tc.item)
		u := "/INBOX/;UID=1"
		if tc.urlSection != "" {
			u += "/;SECTION=" + tc.urlSection
		}
		if tc.off >= 0 {
			u += "/;PARTIAL=" + strconv.Itoa(tc.off)
			want = want[min(tc.off, len(want)):]
			if tc.size >= 0 {
				u += "." + strconv.Itoa(tc.size)
				want = want[:min(tc.size, len(want))]
			}
		}
		_, tagged := c.do("APPEND INBOX CATENATE (TEXT %s URL %q TEXT %s)", lit("pre:"), u, lit(":post"))
		m := catUIDRe.FindStringSubmatch(tagged)
		if m == nil {
			t.Fatalf("%s: %s", u, tagged)
		}
		got := literalOf(t, c.ok("UID FETCH %s BODY.PEEK[]", m[1]), "BODY[]")
		if got != "pre:"+want+":post" {
			t.Errorf("%s: got %q, want %q", u, got, "pre:"+want+":post")
		}
	}
}

// TestCatenateExactBytes: a message with NUL bytes (a binary part, which
// FETCH BODY[] serves with NUL as 0x80) is copied by CATENATE byte for
// byte: the new message's BINARY.PEEK[] (its exact bytes) is the
// original's with the TEXT before it. Mail is never altered on the way.
func TestCatenateExactBytes(t *testing.T) {
	e := newEnv(t, nil)
	raw := "Subject: nul\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\xff\r\n\x00\r\n"
	e.put(e.inbox(), raw)
	c := e.login()
	_, tagged := c.do("APPEND INBOX CATENATE (TEXT %s URL \"/INBOX/;UID=1/;SECTION=TEXT\")", lit("X-Copy: 1\r\n\r\n"))
	m := catUIDRe.FindStringSubmatch(tagged)
	if m == nil {
		t.Fatal(tagged)
	}
	c.ok("SELECT INBOX")
	un := c.ok("UID FETCH %s BINARY.PEEK[]", m[1])
	got := literalOf(t, strings.Replace(un, "~{", "{", 1), "BINARY[]")
	if want := "X-Copy: 1\r\n\r\n" + raw[strings.Index(raw, "\r\n\r\n")+4:]; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestCatenateBadURL: an absolute URL (another user's mailbox, or the
// user's own: refused as Dovecot 2.3 does), a mailbox that
// does not exist or only exists as a parent, a wrong UIDVALIDITY, an
// expunged UID, a part the message has not, URLAUTH, anything that does not
// parse: NO [BADURL url] with the same text whatever the reason (nothing
// learned about the other user's mailboxes), nothing appended, also to a
// MULTIAPPEND's other messages. A URL with "]" and spaces cannot break out
// of the response code.
func TestCatenateBadURL(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	bob, err := e.st.CreateAccount(ctx, "bob@example.test", "Bob-pw-12345", nil)
	if err != nil {
		t.Fatal(err)
	}
	bobInbox, err := e.st.Mailbox(ctx, bob.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AppendMessage(ctx, bobInbox.ID, &store.NewMessage{Body: []byte("Subject: bob's\r\n\r\nsecret\r\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateMailbox(ctx, bob.ID, "Private", nil); err != nil {
		t.Fatal(err)
	}
	e.put(e.inbox(), catMsg)
	e.put(e.inbox(), "Subject: gone\r\n\r\nexpunged\r\n")
	c := e.login()
	c.ok("CREATE a/b")
	c.ok("SELECT INBOX")
	c.ok("STORE 2 +FLAGS (\\Deleted)")
	c.ok("EXPUNGE")
	un := c.ok("STATUS INBOX (UIDVALIDITY)")
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(un)[1]
	uvBad, _ := strconv.Atoi(uv)

	var text string
	for _, u := range []string{
		"imap://bob@example.test/INBOX/;UID=1",
		"imap://bob@127.0.0.1/Private/;UID=1",
		"imap://bob%40example.test;AUTH=*@localhost/INBOX/;UID=1",
		"imap://alice@example.test@127.0.0.1/INBOX/;UID=1",
		"imap://alice%40example.test@127.0.0.1/INBOX/;UID=1",
		"imap://127.0.0.1/INBOX/;UID=1",
		"/Nope/;UID=1",
		"/a/;UID=1",
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=1", uvBad+1),
		"/INBOX/;UID=2",
		"/INBOX/;UID=999",
		"/INBOX/;UID=1/;SECTION=9",
		"/INBOX/;UID=1/;SECTION=1.4.2",
		"/INBOX/;UID=1/;SECTION=BOGUS",
		"/INBOX/;UID=1;URLAUTH=anonymous:internal:0123456789abcdef",
		"/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=user+alice:internal:00",
		"/INBOX/;UID=0",
		"/INBOX",
		"http://example.test/INBOX/;UID=1",
		"/INBOX/;UID=1/;PARTIAL=x",
	} {
		_, tagged := c.do("APPEND INBOX CATENATE (TEXT %s URL %q)", lit("x: y\r\n\r\n"), u)
		want := "NO [BADURL " + u + "] "
		if !strings.Contains(tagged, want) {
			t.Errorf("%s: %q, want %q", u, tagged, want)
			continue
		}
		rest := tagged[strings.Index(tagged, want)+len(want):]
		if text == "" {
			text = rest
		} else if rest != text {
			t.Errorf("%s: text %q, others %q: tells reasons apart", u, rest, text)
		}
	}
	// In a MULTIAPPEND: the first message good, the second's URL bad:
	// neither appended.
	_, tagged := c.do("APPEND INBOX CATENATE (URL \"/INBOX/;UID=1\") CATENATE (URL \"/Nope/;UID=1\")")
	if !strings.Contains(tagged, "NO [BADURL /Nope/;UID=1]") {
		t.Errorf("MULTIAPPEND: %q", tagged)
	}
	// A URL with "]", a space and a quote stays inside the response code.
	_, tagged = c.do("APPEND INBOX CATENATE (URL \"/No]pe x\\\"/;UID=1\")")
	if !strings.Contains(tagged, `NO [BADURL /No%5Dpe%20x"/;UID=1] `) {
		t.Errorf("URL with ]: %q", tagged)
	}
	if un := c.ok("STATUS INBOX (MESSAGES)"); !strings.Contains(un, "(MESSAGES 1)") {
		t.Errorf("after refused CATENATEs: %q", un)
	}
	// The session goes on.
	c.ok("NOOP")
}

// TestCatenateNames: a URL's mailbox name is percent-encoded UTF-8 (RFC
// 5092), nested; the name's modified UTF-7 form is another name (none).
func TestCatenateNames(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login()
	c.ok("CREATE \"Entw&APw-rfe/Sub dir\"")
	if tagged := c.appendMsg("\"Entw&APw-rfe/Sub dir\"", "", "Subject: nested\r\n\r\nin a nested folder\r\n"); !strings.Contains(tagged, "OK") {
		t.Fatal(tagged)
	}
	u := "/" + url.PathEscape("Entwürfe") + "/" + url.PathEscape("Sub dir") + "/;UID=1/;SECTION=TEXT"
	_, tagged := c.do("APPEND INBOX CATENATE (TEXT %s URL %q)", lit("Subject: copy\r\n\r\n"), u)
	if !strings.Contains(tagged, "OK [APPENDUID") {
		t.Fatalf("%s: %s", u, tagged)
	}
	c.ok("SELECT INBOX")
	if got := literalOf(t, c.ok("FETCH 1 BODY.PEEK[]"), "BODY[]"); got != "Subject: copy\r\n\r\nin a nested folder\r\n" {
		t.Errorf("got %q", got)
	}
	_, tagged = c.do("APPEND INBOX CATENATE (URL \"/Entw&APw-rfe/Sub%%20dir/;UID=1\")")
	if !strings.Contains(tagged, "NO [BADURL") {
		t.Errorf("modified UTF-7 in the URL: %s", tagged)
	}
}

// TestCatenateBounds: the assembled message counts against APPENDLIMIT
// (NO [TOOBIG]) however it is made: the same message's URL again and
// again, the memory held stays near the limit (measured: TotalAlloc of
// the command); 10,000 tiny parts are refused (the parts bound, or the
// command's 50 KiB bound on its line), the session and the mailbox as
// they were.
func TestCatenateBounds(t *testing.T) {
	limit := 1 << 20
	size := 700 << 10
	if v := os.Getenv("MAILFERRY_CATENATE_MB"); v != "" {
		// MAILFERRY_CATENATE_MB=50: a 50 MB message at the default 64 MiB.
		n, _ := strconv.Atoi(v)
		limit, size = 0, n<<20
	}
	e := newEnv(t, &envOpts{appendLimit: uint32(limit)})
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcde\n", size/16)
	e.put(e.inbox(), big)
	c := e.login()
	c.ok("SELECT INBOX")

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, tagged := c.do("%s", catenateOf(100, `URL "/INBOX/;UID=1"`))
	runtime.ReadMemStats(&after)
	if !strings.Contains(tagged, "NO [TOOBIG]") {
		t.Errorf("100 URLs of a %d-byte message: %q", len(big), tagged)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("100 URLs of a %d-byte message: %s; allocated %d MiB", len(big), tagged, alloc>>20)
	if lim := uint64(6 * len(big)); alloc > lim {
		t.Errorf("allocated %d bytes for a %d-byte message, more than %d", alloc, len(big), lim)
	}

	// 10,000 TEXT parts of one byte each, synchronizing literals: NO
	// [LIMIT] past maxCatenateParts, before the next literal is sent.
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	c.send(tag + " APPEND INBOX CATENATE (TEXT {1}\r\n")
	parts := 0
	for parts < 10000 {
		l := c.line()
		if !strings.HasPrefix(l, "+") {
			tagged = l
			break
		}
		parts++
		c.send("x TEXT {1}\r\n")
	}
	if !strings.HasPrefix(tagged, tag+" NO [LIMIT]") || parts > 1001 {
		t.Errorf("10,000 parts: %q after %d parts", tagged, parts)
	}
	t.Logf("10,000 TEXT parts, synchronizing: %s after %d parts", tagged, parts)

	// The same with LITERAL+: the command cannot be answered before its
	// end (the literals come anyway), and its line passes the 50 KiB bound
	// on a command first: BYE (go-imap fork change 48).
	c2 := e.login()
	sent := c2.sendAll("z " + catenateOf(10000, "TEXT "+lit("x")) + "\r\n")
	if got := c2.readUntilClosed(); !strings.Contains(got, "* BYE Command line too long") {
		t.Errorf("10,000 parts, LITERAL+: %q", got)
	}
	<-sent

	// 10,000 URLs of a byte each.
	_, tagged = c.do("%s", catenateOf(10000, "URL /INBOX/;UID=1/;PARTIAL=0.1"))
	if !strings.Contains(tagged, "NO [LIMIT]") && !strings.Contains(tagged, "BAD") {
		t.Errorf("10,000 URLs: %q", tagged)
	}
	t.Logf("10,000 URL parts: %s", tagged)
	if un := c.ok("STATUS INBOX (MESSAGES)"); !strings.Contains(un, "(MESSAGES 1)") {
		t.Errorf("after refused CATENATEs: %q", un)
	}
}

// TestCatenateGivesBackMemory: what a CATENATE message held is given back
// to the account's APPEND memory bound (twice APPENDLIMIT) when it fails
// (BADURL after a large TEXT, TOOBIG) and when it is appended: ten of them
// in a row, then a message of nearly APPENDLIMIT is still taken. Held
// bytes not given back would leave the account NO [LIMIT] after two.
func TestCatenateGivesBackMemory(t *testing.T) {
	const limit = 1 << 20
	e := newEnv(t, &envOpts{appendLimit: limit})
	e.put(e.inbox(), "Subject: big\r\n\r\n"+strings.Repeat("x", 700<<10)+"\r\n")
	c := e.login()
	text := "TEXT " + lit("Subject: t\r\n\r\n"+strings.Repeat("y", 900<<10))
	for i := 0; i < 10; i++ {
		for cmd, want := range map[string]string{
			"APPEND INBOX CATENATE (" + text + ` URL "/Nope/;UID=1")`:  "NO [BADURL",
			"APPEND INBOX CATENATE (" + text + ` URL "/INBOX/;UID=1")`: "NO [TOOBIG]",
			`APPEND Nope CATENATE (URL "/INBOX/;UID=1")`:               "NO [TRYCREATE]",
			`APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=TEXT") ` +
				`CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT ` + lit("z") + ")": "OK [APPENDUID",
		} {
			if _, tagged := c.do("%s", cmd); !strings.Contains(tagged, want) {
				t.Fatalf("round %d: %.80q...: %q, want %q", i, cmd, tagged, want)
			}
		}
	}
	if _, tagged := c.do("APPEND INBOX CATENATE (%s)", text); !strings.Contains(tagged, "OK [APPENDUID") {
		t.Fatalf("after the failures: %q", tagged)
	}
}

// TestPythonImaplibCatenate: Python's imaplib sends CATENATE as a raw
// APPEND (its _simple_command, a literal for the TEXT part) and reads the
// message back.
func TestPythonImaplibCatenate(t *testing.T) {
	e := newEnv(t, nil)
	e.put(e.inbox(), catMsg)
	runImaplib(t, e, "testdata/imaplib_catenate.py", "imaplib catenate OK")
}

// runImaplib runs a Python imaplib script of testdata against e as the
// test user; it must exit 0 and print marker. Without python3 the test is
// skipped.
func runImaplib(t *testing.T, e *env, script, marker string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	host, port, _ := net.SplitHostPort(e.addr)
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), "IMAP_HOST="+host, "IMAP_PORT="+port, "IMAP_USER="+user, "IMAP_PASS="+pass)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), marker) {
		t.Fatalf("imaplib %s: %v\n%s", script, err, out)
	}
}
