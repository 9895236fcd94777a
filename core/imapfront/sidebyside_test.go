package imapfront_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// TestSideBySide drives Mailferry and the Dovecot fixture with the same raw
// command scripts (what Thunderbird, iOS Mail, K-9 and mutt send) and writes
// each server's transcript of each script to the directory named by
// MAILFERRY_IMAP_SIDEBYSIDE (dovecot-NAME.txt, mailferry-NAME.txt), for
// comparing by eye or with diff (MAILFERRY_IMAP_SIDEBYSIDE_ONLY=name,name
// runs those scripts). It asserts nothing: the conformance tests
// hold what was found.
func TestSideBySide(t *testing.T) {
	dir := os.Getenv("MAILFERRY_IMAP_SIDEBYSIDE")
	if dir == "" {
		t.Skip("MAILFERRY_IMAP_SIDEBYSIDE=dir writes the transcripts there")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := oldtest.Start(t, nil)
	e := newEnv(t, nil)
	sides := []*side{
		{name: "dovecot", addr: old.IMAPAddr, user: "alice@example.test", pass: old.Users["alice@example.test"]},
		{name: "mailferry", addr: e.addr, user: user, pass: pass},
	}
	only := os.Getenv("MAILFERRY_IMAP_SIDEBYSIDE_ONLY") // scripts' names, comma-separated
	for _, sc := range sideScripts {
		if only != "" && !slices.Contains(strings.Split(only, ","), sc.name) {
			continue
		}
		for _, sd := range sides {
			sd.t, sd.box, sd.out, sd.conns = t, "SBS-"+sc.name, &strings.Builder{}, 0
			sc.run(sd)
			f := filepath.Join(dir, sd.name+"-"+sc.name+".txt")
			if err := os.WriteFile(f, []byte(normalize(sd.out.String())), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// side is one server under a script.
type side struct {
	t                *testing.T
	name, addr       string
	user, pass       string
	box              string // the script's own mailbox
	out              *strings.Builder
	conns            int
	idleTag, idleWho string
}

// sconn is a session of a side, its exchanges logged.
type sconn struct {
	*conn
	sd  *side
	who string
}

func (sd *side) dial() *sconn {
	sd.t.Helper()
	sd.conns++
	s := &sconn{conn: dialAddr(sd.t, sd.addr), sd: sd, who: string(rune('A' + sd.conns - 1))}
	fmt.Fprintf(sd.out, "%s< %s\n", s.who, s.line())
	return s
}

func (sd *side) login() *sconn {
	s := sd.dial()
	s.quiet("LOGIN %q %q", sd.user, sd.pass)
	return s
}

// quiet runs a command without logging it (a login).
func (s *sconn) quiet(format string, args ...any) {
	s.t.Helper()
	_, tagged := s.do(format, args...)
	fmt.Fprintf(s.sd.out, "%s> (LOGIN)\n%s< %s\n", s.who, s.who, tagged)
}

// x runs a command and logs it and its answer.
func (s *sconn) x(format string, args ...any) string {
	s.t.Helper()
	cmd := fmt.Sprintf(format, args...)
	un, tagged := s.do("%s", cmd)
	s.log(cmd, un, tagged)
	return un
}

func (s *sconn) log(cmd, un, tagged string) {
	fmt.Fprintf(s.sd.out, "%s> %s\n", s.who, cmd)
	for _, l := range strings.SplitAfter(un, "\r\n") {
		if l != "" {
			fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, strings.TrimSuffix(l, "\r\n"))
		}
	}
	fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, tagged)
}

// appendx APPENDs msg with the given flags/date arguments.
func (s *sconn) appendx(box, args, msg string) {
	s.t.Helper()
	s.tag++
	tag := fmt.Sprintf("t%d", s.tag)
	if args != "" {
		args += " "
	}
	cmd := fmt.Sprintf("APPEND %s %s{%d}", box, args, len(msg))
	s.send(tag + " " + cmd + "\r\n")
	if l := s.line(); !strings.HasPrefix(l, "+") {
		fmt.Fprintf(s.sd.out, "%s> %s\n%s< %s\n", s.who, cmd, s.who, l)
		return
	}
	s.send(msg + "\r\n")
	un, tagged := s.until(tag)
	s.log(cmd+" <literal>", un, tagged)
}

// lines reads what comes for d, unsolicited (in IDLE, or after a BYE).
func (s *sconn) lines(d time.Duration) {
	end := time.Now().Add(d)
	for {
		s.c.SetReadDeadline(end)
		l, err := s.r.ReadString('\n')
		if l != "" {
			fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, strings.TrimSuffix(l, "\r\n"))
		}
		if err != nil {
			if !strings.Contains(err.Error(), "timeout") {
				fmt.Fprintf(s.sd.out, "%s: %v\n", s.who, err)
			}
			return
		}
	}
}

// try runs a command on a session that may have been closed.
func (s *sconn) try(format string, args ...any) {
	cmd := fmt.Sprintf(format, args...)
	s.tag++
	fmt.Fprintf(s.sd.out, "%s> %s\n", s.who, cmd)
	s.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(s.c, "t%d %s\r\n", s.tag, cmd); err != nil {
		fmt.Fprintf(s.sd.out, "%s: %v\n", s.who, err)
		return
	}
	s.lines(time.Second)
}

func (s *sconn) idle() {
	s.tag++
	fmt.Fprintf(s.sd.out, "%s> IDLE\n", s.who)
	s.send(fmt.Sprintf("t%d IDLE\r\n", s.tag))
	fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, s.line())
}

func (s *sconn) done() {
	fmt.Fprintf(s.sd.out, "%s> DONE\n", s.who)
	s.send("DONE\r\n")
	un, tagged := s.until(fmt.Sprintf("t%d", s.tag))
	for _, l := range strings.SplitAfter(un, "\r\n") {
		if l != "" {
			fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, strings.TrimSuffix(l, "\r\n"))
		}
	}
	fmt.Fprintf(s.sd.out, "%s< %s\n", s.who, tagged)
}

func (sd *side) note(s string) { fmt.Fprintf(sd.out, "## %s\n", s) }

// script runs cmds on the script's own mailbox holding msgs, then deletes
// it.
func (sd *side) script(msgs []appendArgs, cmds []string) {
	a := sd.login()
	a.x("CREATE %s", sd.box)
	for _, m := range msgs {
		a.appendx(sd.box, m.args, m.body)
	}
	a.x("SELECT %s", sd.box)
	for _, c := range cmds {
		a.x("%s", c)
	}
	a.x("UNSELECT")
	a.x("DELETE %s", sd.box)
}

var (
	normUIDValidity = regexp.MustCompile(`(UIDVALIDITY|uidvalidity) \d+`)
	normDate        = regexp.MustCompile(`"\d\d-[A-Z][a-z][a-z]-\d{4} \d\d:\d\d:\d\d [-+]\d{4}"`)
	normTime        = regexp.MustCompile(`\(\d+\.\d+ \+ \d+\.\d+( \+ \d+\.\d+)? secs\)\.?`)
)

func normalize(s string) string {
	s = normUIDValidity.ReplaceAllString(s, "$1 V")
	s = normTime.ReplaceAllString(s, "")
	return s
}

func msgN(n int) string {
	return fmt.Sprintf("From: a@example.test\r\nTo: b@example.test\r\nSubject: m%d\r\nMessage-ID: <m%d@example.test>\r\nDate: Mon, 7 Dec 2026 01:00:00 +0000\r\n\r\nbody %d\r\n", n, n, n)
}

var sideScripts = []struct {
	name string
	run  func(sd *side)
}{
	{"startup", func(sd *side) {
		a := sd.dial()
		a.x("CAPABILITY")
		a.x(`ID ("name" "Thunderbird" "version" "128.0")`)
		a.quiet("LOGIN %q %q", sd.user, sd.pass)
		a.x("CAPABILITY")
		a.x("ENABLE QRESYNC")
		a.x("NAMESPACE")
		a.x(`LIST (SPECIAL-USE) "" "*"`)
		a.x(`LIST "" "*" RETURN (SPECIAL-USE SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN UIDVALIDITY UIDNEXT HIGHESTMODSEQ))`)
		a.x(`LSUB "" "*"`)
		a.x(`LIST "" ""`)
		a.x(`STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)`)
		a.x(`GETQUOTAROOT INBOX`)
		a.x(`SELECT INBOX (CONDSTORE)`)
		a.x(`UNSELECT`)
		a.x(`COMPRESS DEFLATE`)
		a.x("LOGOUT")
	}},
	{"recent", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(1))
		a.appendx(sd.box, "", msgN(2))
		sd.note("B EXAMINEs first")
		b := sd.login()
		b.x("STATUS %s (RECENT MESSAGES)", sd.box)
		b.x("EXAMINE %s", sd.box)
		b.x("FETCH 1:* (FLAGS)")
		b.x("SEARCH RECENT")
		b.x("STATUS %s (RECENT)", sd.box)
		sd.note("C SELECTs")
		c := sd.login()
		c.x("SELECT %s", sd.box)
		c.x("FETCH 1:* (FLAGS)")
		sd.note("B NOOP after C claimed")
		b.x("NOOP")
		b.x("FETCH 1:* (FLAGS)")
		b.x("STATUS %s (RECENT)", sd.box)
		sd.note("new mail while B examines and C selects")
		a.appendx(sd.box, "", msgN(3))
		b.x("NOOP")
		b.x("FETCH 1:* (FLAGS)")
		b.x("STATUS %s (RECENT)", sd.box)
		c.x("NOOP")
		c.x("FETCH 1:* (FLAGS)")
		sd.note("new mail, B first to know (EXAMINE)")
		a.appendx(sd.box, "", msgN(4))
		b.x("NOOP")
		b.x("FETCH 4 (FLAGS)")
		d := sd.login()
		d.x("EXAMINE %s", sd.box)
		c.x("NOOP")
		c.x("FETCH 4 (FLAGS)")
		a.x("DELETE %s", sd.box)
	}},
	{"delete", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(1))
		a.appendx(sd.box, "", msgN(2))
		b := sd.login()
		b.x("SELECT %s", sd.box)
		c := sd.login()
		c.x("SELECT %s", sd.box)
		c.idle()
		sd.note("A deletes the mailbox B and C have selected (C idles)")
		a.x("DELETE %s", sd.box)
		c.lines(2 * time.Second)
		b.try("NOOP")
		b.try("FETCH 1 (FLAGS)")
		sd.note("A creates it again with other mail")
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(7))
		b.try("NOOP")
		b.try("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
		b.try(`STORE 1 +FLAGS (\Deleted)`)
		b.try("EXPUNGE")
		c.try("DONE")
		c.try("FETCH 1 (FLAGS)")
		a.x("SELECT %s", sd.box)
		a.x("FETCH 1:* (FLAGS)")
		a.x("DELETE %s", sd.box)
	}},
	{"rename", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(1))
		b := sd.login()
		b.x("SELECT %s", sd.box)
		c := sd.login()
		c.x("SELECT %s", sd.box)
		c.idle()
		sd.note("A renames the mailbox B and C have selected")
		a.x("RENAME %s %s-new", sd.box, sd.box)
		c.lines(2 * time.Second)
		b.try("NOOP")
		b.try("FETCH 1 (FLAGS)")
		a.appendx(sd.box+"-new", "", msgN(2))
		b.try("NOOP")
		sd.note("A creates the old name again")
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(3))
		b.try("NOOP")
		b.try("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
		c.try("DONE")
		a.x("DELETE %s", sd.box)
		a.x("DELETE %s-new", sd.box)
	}},
	{"qresync", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for i := 1; i <= 5; i++ {
			a.appendx(sd.box, "", msgN(i))
		}
		b := sd.login()
		b.x("ENABLE QRESYNC")
		sel := b.x("SELECT %s", sd.box)
		uv := uidValidityRe.FindStringSubmatch(sel)[1]
		ms := highestModSeqRe.FindStringSubmatch(sel)[1]
		b.x("FETCH 1:* (UID FLAGS MODSEQ)")
		b.x("UNSELECT")
		sd.note("A changes flags, expunges 2, appends")
		a.x("SELECT %s", sd.box)
		a.x(`STORE 1 +FLAGS (\Seen)`)
		a.x(`STORE 2 +FLAGS (\Deleted)`)
		a.x("EXPUNGE")
		a.appendx(sd.box, `(\Flagged $Forwarded)`, msgN(6))
		sd.note("B resyncs (QRESYNC with known UIDs and sequence match data); modseq and uidvalidity from its select")
		b.x("SELECT %s (QRESYNC (%s %s 1:5))", sd.box, uv, ms)
		b.x("UNSELECT")
		b.x("SELECT %s (QRESYNC (%s %s 1:5 (1:4 1:4)))", sd.box, uv, ms)
		b.x("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %s VANISHED)", ms)
		b.x("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
		b.x("FETCH 1:* (FLAGS) (CHANGEDSINCE %s)", ms)
		b.x("UID SEARCH MODSEQ 5")
		b.x(`STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\Answered)`)
		b.x("NOOP")
		a.x("DELETE %s", sd.box)
	}},
	{"idle", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, "", msgN(1))
		a.appendx(sd.box, "", msgN(2))
		a.appendx(sd.box, "", msgN(3))
		b := sd.login()
		b.x("ENABLE CONDSTORE")
		b.x("SELECT %s", sd.box)
		b.idle()
		a.x("SELECT %s", sd.box)
		a.appendx(sd.box, `(\Seen)`, msgN(4))
		b.lines(1500 * time.Millisecond)
		a.x(`STORE 1 +FLAGS (\Flagged)`)
		b.lines(1500 * time.Millisecond)
		a.x(`STORE 2 +FLAGS (\Deleted)`)
		a.x("EXPUNGE")
		b.lines(1500 * time.Millisecond)
		a.x(`STORE 1 +FLAGS (NewKeyword)`)
		b.lines(1500 * time.Millisecond)
		b.done()
		sd.note("polling without IDLE/NOTIFY: NOOP, STATUS of the selected and another mailbox")
		a.appendx(sd.box, "", msgN(5))
		a.appendx("INBOX", "", msgN(9))
		b.x("STATUS INBOX (MESSAGES UIDNEXT)")
		b.x("NOOP")
		b.x("UID FETCH 1:* (FLAGS)")
		a.x("DELETE %s", sd.box)
	}},
	{"move", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.x("CREATE %s-dst", sd.box)
		for i := 1; i <= 4; i++ {
			a.appendx(sd.box, "", msgN(i))
		}
		b := sd.login()
		b.x("SELECT %s", sd.box)
		a.x("SELECT %s", sd.box)
		a.x("MOVE 1 %s-dst", sd.box)
		a.x("UID MOVE 3 %s-dst", sd.box)
		a.x("UID MOVE 3 %s-dst", sd.box)
		a.x("MOVE 1 %s-nonexistent", sd.box)
		a.x(`UID STORE 2,4 +FLAGS.SILENT (\Deleted)`)
		a.x("UID EXPUNGE 4")
		a.x("COPY 1 %s-dst", sd.box)
		a.x("UID COPY 99 %s-dst", sd.box)
		a.x("MOVE 1 %s", sd.box)
		b.x("NOOP")
		b.x("FETCH 1:* (UID FLAGS)")
		a.x("STATUS %s-dst (MESSAGES UIDNEXT)", sd.box)
		a.x("CLOSE")
		a.x("DELETE %s", sd.box)
		a.x("DELETE %s-dst", sd.box)
	}},
	{"append", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.appendx(sd.box, `(\Seen $Label1) "05-Jan-2020 10:11:12 +0100"`, msgN(1))
		a.appendx(sd.box, `() " 5-Jan-2020 10:11:12 -0800"`, msgN(2))
		a.appendx(sd.box, `(\Recent)`, msgN(3))
		a.appendx(sd.box, `(\Deleted \Draft \Answered \Flagged)`, msgN(4))
		a.appendx(sd.box+"-nonexistent", "", msgN(5))
		a.appendx(sd.box, `"32-Jan-2020 10:11:12 +0100"`, msgN(6))
		a.x("SELECT %s", sd.box)
		a.x("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)")
		a.x("UID SEARCH SINCE 1-Jan-2020 BEFORE 6-Jan-2020")
		a.x("SEARCH KEYWORD $Label1")
		a.x("SEARCH UNKEYWORD $Label1 DRAFT")
		a.x("SORT (REVERSE ARRIVAL) UTF-8 ALL")
		a.x("THREAD REFERENCES UTF-8 ALL")
		a.x("UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
		a.x("DELETE %s", sd.box)
	}},
	{"literalplus", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for _, args := range []string{`"32-Jan-2020 10:11:12 +0100"`, `(\Bogus)`, `(\Seen`} {
			inj := fmt.Sprintf("x1 CREATE %s-injected\r\n", sd.box)
			a.tag++
			cmd := fmt.Sprintf("t%d APPEND %s %s {%d+}\r\n%s\r\n", a.tag, sd.box, args, len(inj), inj)
			fmt.Fprintf(sd.out, "A> %q\n", cmd)
			a.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(a.c, cmd); err != nil {
				fmt.Fprintf(sd.out, "A: %v\n", err)
				a = sd.login()
				continue
			}
			a.lines(time.Second)
		}
		a.x(`LIST "" "%s*"`, sd.box)
		a.try("DELETE %s-injected", sd.box)
		a.try("DELETE %s", sd.box)
	}},
	{"fetch", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		multi := "From: \"A, B\" <a@example.test>\r\nTo: undisclosed-recipients:;\r\nCc: team: c@example.test, d@example.test;\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 7 Dec 2026 01:00:00 +0000\r\nMessage-ID: <multi@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--b1\r\nContent-Type: application/octet-stream; name=x.bin\r\nContent-Disposition: attachment; filename=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgc=\r\n--b1--\r\n"
		a.appendx(sd.box, "", multi)
		a.appendx(sd.box, "", msgN(2))
		a.x("EXAMINE %s", sd.box)
		a.x("FETCH 1 (ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)")
		a.x("FETCH 1 (BODY)")
		a.x("FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[2]<0.4> BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[HEADER.FIELDS.NOT (DATE FROM TO CC MESSAGE-ID MIME-VERSION CONTENT-TYPE)])")
		a.x("FETCH 1:2 (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])")
		a.x("FETCH 1 (FLAGS)")
		a.x("UID SEARCH CHARSET UTF-8 SUBJECT café")
		a.x("SEARCH FROM \"A, B\"")
		a.x("SEARCH TEXT 00000")
		a.x("SEARCH OR HEADER Message-ID multi LARGER 100000")
		a.x("SEARCH 2:* NOT DELETED")
		a.x("UID SEARCH UID 2:*")
		a.x("SORT (SUBJECT) US-ASCII ALL")
		a.x("SEARCH RETURN (COUNT) ALL")
		a.x("ESORT")
		a.x("SORT RETURN (COUNT) (DATE) UTF-8 ALL")
		a.x("FETCH 1 (SNIPPET (FUZZY))")
		a.x("FETCH 1 (PREVIEW)")
		a.x("STATUS %s (SIZE MESSAGES)", sd.box)
		a.x("DELETE %s", sd.box)
	}},
	{"list", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s/a/b", sd.box)
		a.x("CREATE %s/c", sd.box)
		a.x("SUBSCRIBE %s/a/b", sd.box)
		a.x("CREATE %s-drafts (USE (\\Drafts))", sd.box)
		a.x(`LIST "" %s`, sd.box+"/%")
		a.x(`LIST "" %s*`, sd.box)
		a.x(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %s*`, sd.box)
		a.x(`LIST "" (%s %s/a) RETURN (CHILDREN STATUS (MESSAGES SIZE))`, sd.box, sd.box)
		a.x(`LSUB "" %s*`, sd.box)
		a.x(`LIST "%s/" %%`, sd.box)
		a.x(`LIST "" "~/x"`)
		a.x(`RENAME %s/a %s/z`, sd.box, sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x(`UNSUBSCRIBE %s/z/b`, sd.box)
		a.x(`UNSUBSCRIBE %s/a/b`, sd.box)
		a.x(`DELETE %s`, sd.box)
		a.x(`DELETE %s/z/b`, sd.box)
		a.x(`DELETE %s/z`, sd.box)
		a.x(`DELETE %s/c`, sd.box)
		a.x(`DELETE %s`, sd.box)
		a.x(`DELETE %s-drafts`, sd.box)
	}},
	{"errors", func(sd *side) {
		a := sd.login()
		a.x("SELECT nonexistent-box")
		a.x("FETCH 1 FLAGS")
		a.x("CREATE INBOX")
		a.x("CREATE %s", sd.box)
		a.x("CREATE %s", sd.box)
		a.x("SELECT %s", sd.box)
		a.x("FETCH 1 FLAGS")
		a.x("FETCH 1:* FLAGS")
		a.x("UID FETCH 1:* FLAGS")
		a.x("FETCH * FLAGS")
		a.x("SEARCH UID 1")
		a.x("STORE 1 +FLAGS (\\Seen)")
		a.x("COPY 1 INBOX")
		a.x("RENAME INBOX %s-inbox", sd.box)
		a.x("DELETE INBOX")
		a.x("FROBNICATE")
		a.try("DELETE %s", sd.box)
		a.try("NOOP")
		a.try("STATUS %s (MESSAGES)", sd.box)
		a.try("LOGOUT")
	}},
	{"envelope-date", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for _, date := range []string{
			"Mon, 7 Dec 2026 01:00:00 +0000",
			"Mon, 07 Dec 2026 01:00:00 +0000 (UTC)",
			"7 Dec 26 01:00 EST",
			"Mon,  7 Dec 2026 01:00:00 -0800\r\n (folded)",
			"next tuesday, maybe",
			"Mon, 7 Dec 2026 01:00:00 +0000   ",
			"\"quoted\" date",
			"",
		} {
			msg := "From: a@example.test\r\nSubject: d\r\n"
			if date != "" {
				msg += "Date: " + date + "\r\n"
			}
			a.appendx(sd.box, "", msg+"\r\nbody\r\n")
		}
		a.appendx(sd.box, "", "From: a@example.test\r\nDate:\r\nSubject: empty date\r\n\r\nbody\r\n")
		a.appendx(sd.box, "", "From: a@example.test\r\nDate: first\r\nDate: second\r\n\r\nbody\r\n")
		fwd := "From: a@example.test\r\nDate: outer, not a date\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.test\r\nDate: inner,  not a date either\r\nSubject: inner\r\n\r\ninner body\r\n"
		a.appendx(sd.box, "", fwd)
		a.x("EXAMINE %s", sd.box)
		a.x("FETCH 1:* (ENVELOPE)")
		a.x("FETCH 11 (BODYSTRUCTURE)")
		a.x("SORT (DATE) UTF-8 ALL")
		a.x("SEARCH SENTSINCE 1-Dec-2026")
		a.x("DELETE %s", sd.box)
	}},
	{"seqset", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.x("CREATE %s-dst", sd.box)
		a.x("SELECT %s", sd.box)
		for _, c := range []string{"FETCH 1 (FLAGS)", "FETCH * (FLAGS)", "FETCH 1:* (FLAGS)", "STORE 1:* +FLAGS (\\Seen)",
			"COPY 1:* DST", "MOVE * DST", "UID FETCH 1:* (FLAGS)", "UID STORE * +FLAGS (\\Seen)", "SEARCH 1:*", "SEARCH 2"} {
			a.x("%s", strings.ReplaceAll(c, "DST", sd.box+"-dst"))
		}
		for i := 1; i <= 3; i++ {
			a.appendx(sd.box, "", msgN(i))
		}
		a.x("NOOP")
		for _, c := range []string{"FETCH 4 (FLAGS)", "FETCH 2:4 (FLAGS)", "FETCH 4:* (FLAGS)", "FETCH 3:* (FLAGS)", "FETCH 1,5 (FLAGS)",
			"FETCH 5,1 (FLAGS)", "FETCH * (FLAGS)", "STORE 4 +FLAGS (\\Seen)", "COPY 3:4 DST", "MOVE 9 DST",
			"UID FETCH 4:9 (FLAGS)", "SEARCH 4", "SEARCH RETURN (SAVE) 2:3", "FETCH $ (FLAGS)", "UID COPY 9 DST"} {
			a.x("%s", strings.ReplaceAll(c, "DST", sd.box+"-dst"))
		}
		b := sd.login()
		b.x("SELECT %s", sd.box)
		b.x("STORE 3 +FLAGS.SILENT (\\Deleted)")
		b.x("EXPUNGE")
		sd.note("A still knows 3 messages; B expunged the third")
		a.x("FETCH 3 (FLAGS)")
		a.x("FETCH 3 (FLAGS)")
		a.x("NOOP")
		a.x("FETCH 3 (FLAGS)")
		a.x("UNSELECT")
		a.x("DELETE %s", sd.box)
		a.x("DELETE %s-dst", sd.box)
	}},
	{"create-parents", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s/a/b", sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x(`LIST "" %s/%%`, sd.box)
		a.x(`LIST "" %%`)
		a.x(`LIST () "" %s*`, sd.box)
		a.x(`LIST "" %s* RETURN (CHILDREN)`, sd.box)
		a.x(`LIST "" (%s %s/a) RETURN (CHILDREN STATUS (MESSAGES))`, sd.box, sd.box)
		a.x(`LIST (SUBSCRIBED) "" %s*`, sd.box)
		a.x(`LSUB "" %s*`, sd.box)
		a.x("SELECT %s/a", sd.box)
		a.x("STATUS %s/a (MESSAGES)", sd.box)
		a.x("SUBSCRIBE %s/a", sd.box)
		a.appendx(sd.box+"/a", "", msgN(1))
		a.x("RENAME %s/a %s/z", sd.box, sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x("RENAME %s/z/b %s/y/x", sd.box, sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x("CREATE %s/y", sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x("CREATE %s/w/", sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x("DELETE %s/z", sd.box)
		a.x("DELETE %s/y", sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x("DELETE %s/y/x", sd.box)
		a.x("DELETE %s/z/b", sd.box)
		a.x("DELETE %s/w", sd.box)
		a.x(`LIST "" %s*`, sd.box)
	}},
	{"esort", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for _, subj := range []string{"c", "a", "d", "b", "a", "e"} {
			a.appendx(sd.box, "", "From: x@example.test\r\nSubject: "+subj+"\r\n\r\nbody\r\n")
		}
		a.x("SELECT %s", sd.box)
		a.x(`STORE 4 +FLAGS (\Seen)`)
		for _, c := range []string{
			"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL",
			"SORT RETURN (ALL) (SUBJECT) UTF-8 ALL",
			"SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL",
			"UID SORT RETURN (MIN MAX) (SUBJECT) UTF-8 ALL",
			"UID SORT RETURN (COUNT ALL) (REVERSE ARRIVAL) UTF-8 UNSEEN",
			"SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL",
			"SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 SUBJECT zzz",
			"SORT RETURN (COUNT) (SUBJECT) UTF-8 2:4",
			"SORT RETURN (SAVE) (SUBJECT) UTF-8 ALL",
			"SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL",
			"SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL",
			"SORT RETURN (COUNT) (SUBJECT) BOGUS-CHARSET ALL",
			"SORT RETURN COUNT (SUBJECT) UTF-8 ALL",
		} {
			a.x("%s", c)
		}
		a.x("UNSELECT")
		a.x("DELETE %s", sd.box)
	}},
	{"sort-display", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s", sd.box)
		for _, ft := range sortDisplayMsgs {
			a.appendx(sd.box, "", ft+"Subject: s\r\n\r\nbody\r\n")
		}
		a.x("SELECT %s", sd.box)
		a.x("SORT (DISPLAYFROM) UTF-8 ALL")
		a.x("SORT (REVERSE DISPLAYFROM) UTF-8 ALL")
		a.x("SORT (DISPLAYTO) UTF-8 ALL")
		a.x("UID SORT (DISPLAYTO REVERSE DATE) US-ASCII ALL")
		a.x("SORT (FROM) UTF-8 ALL")
		a.x("SORT (DISPLAYFROM) UTF-8 UNSEEN")
		a.x("SORT (DISPLAYCC) UTF-8 ALL")
		a.x("UNSELECT")
		a.x("DELETE %s", sd.box)
	}},
	{"long-line", func(sd *side) {
		// A command line longer than Mailferry's 50 KiB and Dovecot's
		// 64 KiB (a client's long UID set).
		var set strings.Builder
		for i := 1; set.Len() < 70<<10; i += 2 {
			fmt.Fprintf(&set, "%d,", i)
		}
		sd.script([]appendArgs{{body: msgN(1)}}, []string{
			"UID SEARCH UID " + strings.TrimSuffix(set.String()[:40<<10], ","),
			"UID SEARCH UID " + strings.TrimSuffix(set.String(), ","),
			"NOOP",
		})
	}},
	{"within", func(sd *side) { sd.script(withinMsgs(time.Now()), withinCmds) }},
	{"preview", func(sd *side) {
		msgs := make([]appendArgs, len(previewMsgs))
		for i, m := range previewMsgs {
			msgs[i].body = m
		}
		sd.script(msgs, previewCmds)
	}},
	{"thread-refs", func(sd *side) {
		cmds := make([]string, len(threadRefsCmds))
		for i, c := range threadRefsCmds {
			cmds[i] = c.cmd
		}
		sd.script(threadRefsMsgs(), cmds)
	}},
	{"bodystructure-defaults", func(sd *side) {
		msgs := make([]appendArgs, len(structureDefaultMsgs))
		for i, m := range structureDefaultMsgs {
			msgs[i].body = m
		}
		cmds := []string{}
		for i := range structureDefaultMsgs {
			cmds = append(cmds, fmt.Sprintf("FETCH %d (BODYSTRUCTURE)", i+1), fmt.Sprintf("FETCH %d (BODY)", i+1))
		}
		sd.script(msgs, cmds)
	}},
	{"auth-login", func(sd *side) {
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		// step sends a line (logged as shown) and logs what comes back
		// until a continuation or the command's end.
		step := func(a *sconn, line, shown string) {
			fmt.Fprintf(sd.out, "%s> %s\n", a.who, shown)
			a.send(line + "\r\n")
			for {
				l := a.line()
				fmt.Fprintf(sd.out, "%s< %s\n", a.who, l)
				if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "t1 ") || strings.HasPrefix(l, "* BYE") {
					return
				}
			}
		}
		run := func(name string, lines ...[2]string) {
			sd.note(name)
			a := sd.dial()
			for _, l := range lines {
				step(a, l[0], l[1])
			}
			a.c.Close()
		}
		tag := func(a string) [2]string { return [2]string{"t1 " + a, "t1 " + a} }
		user, pass := [2]string{b64(sd.user), "(user)"}, [2]string{b64(sd.pass), "(password)"}
		run("two steps", tag("AUTHENTICATE LOGIN"), user, pass)
		run("user as initial response", [2]string{"t1 AUTHENTICATE LOGIN " + b64(sd.user), "t1 AUTHENTICATE LOGIN (user)"}, pass)
		run("lower case", tag("authenticate login"), user, pass)
		run("wrong password", tag("AUTHENTICATE LOGIN"), user, [2]string{b64("wrong"), "d3Jvbmc="})
		run("cancel at user", tag("AUTHENTICATE LOGIN"), [2]string{"*", "*"})
		run("cancel at password", tag("AUTHENTICATE LOGIN"), user, [2]string{"*", "*"})
		run("bad base64", tag("AUTHENTICATE LOGIN"), [2]string{"!!!", "!!!"})
		run("empty initial response", tag("AUTHENTICATE LOGIN ="))
		run("empty user", tag("AUTHENTICATE LOGIN"), [2]string{"", ""}, pass)
		run("unknown user", tag("AUTHENTICATE LOGIN"), [2]string{b64("nobody@example.test"), "(nobody)"}, pass)
	}},
	{"two-dates", func(sd *side) {
		sd.script([]appendArgs{
			{body: "From: a@example.test\r\nDate: Mon, 7 Dec 2026 01:00:00 +0000\r\nDate: Wed, 9 Dec 2026 01:00:00 +0000\r\nSubject: two\r\n\r\nbody\r\n"},
			{body: "From: a@example.test\r\nDate: Tue, 8 Dec 2026 01:00:00 +0000\r\nSubject: one\r\n\r\nbody\r\n"},
			{body: "From: a@example.test\r\nDate: Tue, 8 Dec 2026 01:00:00 +0000  \r\n  \r\nSubject: spaces\r\n\r\nbody\r\n"},
		}, []string{"FETCH 1:* (ENVELOPE)", "SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "SEARCH SENTON 7-Dec-2026", "SEARCH SENTON 9-Dec-2026", "SEARCH SENTBEFORE 8-Dec-2026"})
	}},
	{"savedate", func(sd *side) {
		today := time.Now().Format("2-Jan-2006")
		a := sd.login()
		a.x("CREATE %s", sd.box)
		a.x("CREATE %s-dst", sd.box)
		a.appendx(sd.box, `"01-Jan-2020 10:00:00 +0000"`, msgN(1))
		a.appendx(sd.box, "", msgN(2))
		a.x("SELECT %s", sd.box)
		a.x("FETCH 1:* (INTERNALDATE SAVEDATE)")
		a.x("COPY 1 %s-dst", sd.box)
		a.x("MOVE 2 %s-dst", sd.box)
		for _, c := range []string{"SAVEDON " + today, "SAVEDSINCE " + today, "SAVEDBEFORE " + today, "SAVEDON 1-Jan-2020",
			"SAVEDATESUPPORTED", "NOT SAVEDATESUPPORTED", "SAVEDSINCE 1-Jan-2000 SAVEDBEFORE 1-Jan-3000", "SAVEDON x", "SAVEDSINCE"} {
			a.x("SEARCH %s", c)
		}
		a.x("SELECT %s-dst", sd.box)
		a.x("FETCH 1:* (INTERNALDATE SAVEDATE)")
		a.x("UID SEARCH SAVEDON %s", today)
		a.x("UNSELECT")
		a.x("DELETE %s", sd.box)
		a.x("DELETE %s-dst", sd.box)
	}},
	{"list-nonexistent", func(sd *side) {
		a := sd.login()
		a.x("CREATE %s/a/b", sd.box)
		a.x("CREATE %s-x/y", sd.box)
		a.x("DELETE %s-x", sd.box)
		a.x(`LIST () "" %s*`, sd.box)
		a.x(`LIST "" %s*`, sd.box)
		a.x(`LIST () "" (%s %s/a)`, sd.box, sd.box)
		a.x(`LIST () "" %s*/%%`, sd.box)
		a.x(`LIST (REMOTE) "" %s*`, sd.box)
		a.x(`LIST "" %s* RETURN (CHILDREN)`, sd.box)
		a.x(`LIST "" %s* RETURN ()`, sd.box)
		a.x(`LIST () "" %s* RETURN (SUBSCRIBED)`, sd.box)
		a.x("DELETE %s/a/b", sd.box)
		a.x("DELETE %s-x/y", sd.box)
	}},
}

// structureDefaultMsgs are the messages of the "bodystructure-defaults"
// script and TestStructureDefaults: parts whose Content-Type is missing,
// bare or broken, whose BODYSTRUCTURE takes RFC 2045's defaults.
var structureDefaultMsgs = []string{
	"From: a@example.test\r\nSubject: no type\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: text/plain\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: text/html; format=flowed\r\n\r\n<p>body</p>\r\n",
	"From: a@example.test\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: TEXT/PLAIN; CHARSET=ISO-8859-1\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: text\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: ;;\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: application/pdf\r\n\r\nJVBERi0=\r\n",
	"From: a@example.test\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.test\r\nSubject: inner\r\n\r\ninner body\r\n",
	"From: a@example.test\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\npart\r\n--x--\r\n",
	"From: a@example.test\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nno type\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>h</p>\r\n--x\r\nContent-Type: text/plain; format=flowed; charset=utf-8\r\n\r\nf\r\n--x--\r\n",
	"From: a@example.test\r\nContent-Type: multipart/digest; boundary=x\r\n\r\n--x\r\n\r\nFrom: c@example.test\r\nSubject: digest\r\n\r\nd\r\n--x--\r\n",
	"From: a@example.test\r\nContent-Type: text/plain; charset=\"\"\r\n\r\nbody\r\n",
	"From: a@example.test\r\nContent-Type: text/plain; format=flowed; delsp=yes\r\n\r\nbody\r\n",
}

// sortDisplayMsgs are the From and To fields of the "sort-display" script
// and TestSortDisplay.
var sortDisplayMsgs = []string{
	"From: Zed <a@example.test>\r\nTo: =?utf-8?q?=C3=89mile?= <m@example.test>\r\n",
	"From: b@example.test\r\nTo: \"zz\" <a@example.test>\r\n",
	"From: =?utf-8?q?=C3=89mile?= <c@example.test>\r\nTo: n@example.test\r\n",
	"From: \"alice\" <z@example.test>\r\nTo: undisclosed-recipients:;\r\n",
	"To: Bob <o@example.test>\r\n",
	"From: \"  \" <d@example.test>\r\nTo: \"Bob\" <a@example.test>, Al <b@example.test>\r\n",
	"From: ALICE <y@example.test>\r\nTo: =?utf-8?q?b=C3=B6b?= <p@example.test>\r\n",
	"From: team: x@example.test;\r\nTo: \"b\" <q@example.test>\r\n",
}
