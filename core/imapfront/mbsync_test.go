package imapfront_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// needTool returns the path of a third-party client's program. Without it
// the test is skipped, or fails under MAILFERRY_REQUIRE_OLDSERVER=1 (make
// test installs it: isync in TEST_PKGS).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(oldtest.RequireEnv) == "1" {
		t.Fatalf("%s not found (Debian package %s; %s=1 requires it)", name, pkg, oldtest.RequireEnv)
	}
	t.Skipf("%s not found (Debian package %s; make test installs it)", name, pkg)
	return ""
}

// maildirMsg is one message of a Maildir: its bytes and its flag letters
// (the ":2," suffix of its name, Maildir's info).
type maildirMsg struct {
	path  string
	body  []byte
	flags string
}

// readMaildir reads every message in dir's cur and new.
func readMaildir(t *testing.T, dir string) []maildirMsg {
	t.Helper()
	var out []maildirMsg
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			p := filepath.Join(dir, sub, ent.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var flags string
			if i := strings.LastIndex(ent.Name(), ":2,"); i >= 0 {
				flags = ent.Name()[i+3:]
			}
			out = append(out, maildirMsg{path: p, body: b, flags: flags})
		}
	}
	return out
}

// toLF is a message as mbsync keeps it in a Maildir: lines end in LF.
func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// maildirFlags is the Maildir info of IMAP flags (the ones mbsync maps).
func maildirFlags(flags []string) string {
	var out []byte
	for _, f := range flags {
		switch strings.ToLower(f) {
		case `\draft`:
			out = append(out, 'D')
		case `\flagged`:
			out = append(out, 'F')
		case `\answered`:
			out = append(out, 'R')
		case `\seen`:
			out = append(out, 'S')
		case `\deleted`:
			out = append(out, 'T')
		}
	}
	slices.Sort(out)
	return string(out)
}

// TestMbsync syncs a mailbox with Debian's mbsync (isync), a client we did
// not write, both ways: Mailferry's INBOX down to a local Maildir (every
// message's bytes and flags), then changes made in the Maildir back up (a
// flag set, a flag cleared, a new message, a message deleted), then a
// change made on the server down again. mbsync uses UIDPLUS, a SELECT per
// mailbox, UID FETCH of flags and bodies, UID STORE, APPEND and EXPUNGE.
func TestMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync", "isync")
	e := newEnv(t, nil)
	ctx := context.Background()
	inbox := e.inbox()
	seed := []struct {
		body  string
		flags []string
	}{
		{"From: a@example.test\r\nSubject: plain\r\n\r\nhello\r\n", nil},
		{"From: b@example.test\r\nSubject: seen\r\n\r\nseen one\r\n", []string{`\Seen`}},
		{"From: c@example.test\r\nSubject: flagged\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac\r\n", []string{`\Flagged`, `\Seen`}},
		{"From: d@example.test\r\nSubject: answered\r\n\r\n" + strings.Repeat("line of text\r\n", 2000), []string{`\Answered`}},
		{"From: e@example.test\r\nSubject: to delete\r\n\r\nbye\r\n", nil},
	}
	for _, m := range seed {
		e.put(inbox, m.body, m.flags...)
	}
	dir := t.TempDir()
	local := filepath.Join(dir, "mail")
	host, port, _ := net.SplitHostPort(e.addr)
	rc := filepath.Join(dir, "mbsyncrc")
	conf := fmt.Sprintf(`IMAPAccount mf
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore mf-remote
Account mf

MaildirStore mf-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel mf
Far :mf-remote:
Near :mf-local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
`, host, port, user, pass, local, local)
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(what string) {
		t.Helper()
		cmd := exec.Command(mbsync, "-c", rc, "-V", "mf")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync (%s): %v\n%s", what, err, out)
		}
		if bytes.Contains(out, []byte("IMAP error")) || bytes.Contains(out, []byte("Error:")) {
			t.Fatalf("mbsync (%s) reported an error:\n%s", what, out)
		}
	}
	serverMsgs := func() []*store.Message {
		t.Helper()
		ms, err := e.st.Messages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	blob := func(m *store.Message) []byte {
		t.Helper()
		b, err := e.st.Blob(ctx, m.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// checkSame: the Maildir and the server hold the same messages, with
	// the same bytes (as LF lines in the Maildir) and flags.
	checkSame := func(when string) []maildirMsg {
		t.Helper()
		loc := readMaildir(t, filepath.Join(local, "INBOX"))
		srv := serverMsgs()
		if len(loc) != len(srv) {
			t.Fatalf("%s: %d messages in the Maildir, %d on the server", when, len(loc), len(srv))
		}
		for _, m := range srv {
			// mbsync adds an X-TUID line to what it uploads, not to its copy.
			want := stripTUID(toLF(blob(m)))
			i := slices.IndexFunc(loc, func(l maildirMsg) bool { return bytes.Equal(stripTUID(l.body), want) })
			if i < 0 {
				t.Fatalf("%s: server message UID %d (%q) not in the Maildir byte for byte", when, m.UID, firstLine(want))
			}
			if got, wantF := loc[i].flags, maildirFlags(m.Flags); got != wantF {
				t.Errorf("%s: UID %d flags: Maildir %q, server %q (%v)", when, m.UID, got, wantF, m.Flags)
			}
		}
		return loc
	}

	// Down: every message, its bytes and flags.
	run("first sync")
	loc := checkSame("after the first sync")
	for _, m := range seed {
		if !slices.ContainsFunc(loc, func(l maildirMsg) bool { return bytes.Equal(stripTUID(l.body), toLF([]byte(m.body))) }) {
			t.Fatalf("seeded message %q not in the Maildir byte for byte", firstLine([]byte(m.body)))
		}
	}

	// Up: flags changed, a message added and one deleted in the Maildir.
	byBody := func(part string) maildirMsg {
		t.Helper()
		for _, l := range loc {
			if bytes.Contains(l.body, []byte(part)) {
				return l
			}
		}
		t.Fatalf("no local message with %q", part)
		return maildirMsg{}
	}
	rename := func(l maildirMsg, flags string) {
		t.Helper()
		name := filepath.Base(l.path)
		if i := strings.LastIndex(name, ":2,"); i >= 0 {
			name = name[:i]
		}
		np := filepath.Join(filepath.Dir(filepath.Dir(l.path)), "cur", name+":2,"+flags)
		if err := os.Rename(l.path, np); err != nil {
			t.Fatal(err)
		}
	}
	rename(byBody("Subject: plain"), "RS")     // \Answered \Seen set
	rename(byBody("Subject: flagged"), "S")    // \Flagged cleared
	rename(byBody("Subject: to delete"), "ST") // \Deleted: expunged both sides
	newMsg := "From: local@example.test\nSubject: written offline\nMessage-ID: <offline@example.test>\n\nwritten in the Maildir\n\xe2\x82\xac\n"
	if err := os.WriteFile(filepath.Join(local, "INBOX", "new", "1700000000.offline.host"), []byte(newMsg), 0o600); err != nil {
		t.Fatal(err)
	}
	run("push")
	srv := serverMsgs()
	if len(srv) != 5 {
		t.Fatalf("after the push the server holds %d messages, want 5 (one deleted, one added)", len(srv))
	}
	find := func(subject string) *store.Message {
		t.Helper()
		for _, m := range srv {
			if bytes.Contains(blob(m), []byte("Subject: "+subject+"\r\n")) {
				return m
			}
		}
		t.Fatalf("no server message with Subject %s", subject)
		return nil
	}
	if got := maildirFlags(find("plain").Flags); got != "RS" {
		t.Errorf("pushed flags of 'plain': %v", find("plain").Flags)
	}
	if got := maildirFlags(find("flagged").Flags); got != "S" {
		t.Errorf("pushed flags of 'flagged': %v", find("flagged").Flags)
	}
	up := blob(find("written offline"))
	if want := strings.ReplaceAll(newMsg, "\n", "\r\n"); string(stripTUIDCRLF(up)) != want {
		t.Errorf("pushed message stored as\n%q\nwant (CRLF lines)\n%q", up, want)
	}
	checkSame("after the push")

	// Down again: a change made on the server (another client).
	if _, err := e.st.StoreFlags(ctx, inbox.ID, []uint32{find("seen").UID}, store.FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatal(err)
	}
	run("second pull")
	checkSame("after the second pull")
}

// stripTUID drops the X-TUID header line mbsync may add to a message it
// uploads (to find it again on servers without UIDPLUS), LF form.
func stripTUID(b []byte) []byte { return stripHeaderLine(b, "X-TUID: ", "\n") }

// stripTUIDCRLF is stripTUID for CRLF lines.
func stripTUIDCRLF(b []byte) []byte { return stripHeaderLine(b, "X-TUID: ", "\r\n") }

func stripHeaderLine(b []byte, prefix, eol string) []byte {
	end := bytes.Index(b, []byte(eol+eol))
	if end < 0 {
		return b
	}
	i := bytes.Index(b[:end+len(eol)], []byte(prefix))
	if i < 0 || (i > 0 && !bytes.HasSuffix(b[:i], []byte(eol))) {
		return b
	}
	j := bytes.Index(b[i:], []byte(eol))
	return append(append([]byte{}, b[:i]...), b[i+j+len(eol):]...)
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
