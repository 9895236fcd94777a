package imapfront_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNeomutt drives Debian's neomutt (a real client we did not write) on a
// pseudo-terminal (script(1)), in batch with pushed keys: it flags a
// message and deletes another, syncing the mailbox (UID STORE, EXPUNGE);
// then a flag is changed on the server and neomutt, started again, acts on
// the message by its new flag (it read the flags again).
func TestNeomutt(t *testing.T) {
	neomutt := needTool(t, "neomutt", "neomutt")
	script := needTool(t, "script", "bsdutils")
	e := newEnv(t, nil)
	ctx := context.Background()
	inbox := e.inbox()
	for _, s := range []string{"plain", "to delete", "other"} {
		e.put(inbox, fmt.Sprintf("From: a@example.test\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\n%s\r\n", s, strings.ReplaceAll(s, " ", "."), s))
	}
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(e.addr)
	rc := filepath.Join(dir, "muttrc")
	conf := fmt.Sprintf(`set folder="imap://%s:%s/"
set spoolfile="+INBOX"
set imap_user="%s"
set imap_pass="%s"
set ssl_starttls=no
set ssl_force_tls=no
set imap_idle=no
set mail_check=0
set move=no
set delete=yes
set quit=yes
set confirmappend=no
set wait_key=no
set header_cache=""
set message_cachedir=""
`, host, port, user, pass)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(keys string) {
		t.Helper()
		cmdline := fmt.Sprintf("%s -n -F %s -e 'push \"%s\"'", neomutt, rc, keys)
		cmd := exec.Command("timeout", "60", script, "-qec", cmdline, "/dev/null")
		cmd.Env = append(os.Environ(), "HOME="+dir, "TERM=xterm", "COLUMNS=120", "LINES=40")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("neomutt %q: %v\n%s", keys, err, out)
		}
	}
	flagsOf := func() map[string][]string {
		t.Helper()
		ms, err := e.st.Messages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, m := range ms {
			b, err := e.st.Blob(ctx, m.BlobKey)
			if err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(b), "Subject: ")
			subj := strings.SplitN(string(b)[i+9:], "\r\n", 2)[0]
			out[subj] = m.Flags
		}
		return out
	}

	start := time.Now()
	run(`<tag-pattern>~s plain<enter><tag-prefix><flag-message><untag-pattern>.<enter><tag-pattern>~s delete<enter><tag-prefix><delete-message><sync-mailbox><quit>`)
	got := flagsOf()
	if _, ok := got["to delete"]; ok || len(got) != 2 {
		t.Fatalf("after neomutt's delete and sync: %v", got)
	}
	if !slices.Contains(got["plain"], `\Flagged`) {
		t.Fatalf("neomutt's flag not stored: %v", got)
	}

	// A flag changed on the server; neomutt finds the message by it.
	c := e.login()
	c.ok("SELECT INBOX")
	c.ok(`UID STORE 3 +FLAGS (\Flagged)`)
	c.ok(`UID STORE 1 -FLAGS (\Flagged)`)
	c.ok("LOGOUT")
	run(`<tag-pattern>~F<enter><tag-prefix><delete-message><sync-mailbox><quit>`)
	got = flagsOf()
	if _, ok := got["plain"]; !ok || len(got) != 1 {
		t.Fatalf("after the server's flag change and neomutt's delete of ~F: %v", got)
	}
	t.Logf("two neomutt runs in %v", time.Since(start).Round(time.Millisecond))
}
