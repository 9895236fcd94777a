package imapfront_test

import (
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// TestSyncUnrecordedExpunge removes a message the way a Mailferry older
// than the expunged table would (no record of the expunge): a session
// still learns of it (sync checks the message count and reads the whole
// mailbox when it does not add up), and of the flags changed with it.
func TestSyncUnrecordedExpunge(t *testing.T) {
	e := newEnv(t, nil)
	fill5(e)
	// Another session claims \Recent (RFC 3501 2.3.2), so the flags
	// below are the stored ones.
	e.login().ok("SELECT INBOX")
	c := e.login()
	c.ok("SELECT INBOX")
	db, err := sql.Open("sqlite3", "file:"+e.db+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mb := e.inbox()
	for _, q := range []string{
		`DELETE FROM messages WHERE mailbox_id = ? AND uid = 2`,
		`UPDATE messages SET flags = '\Flagged', modseq = (SELECT highest_modseq + 1 FROM mailboxes WHERE id = ?1) WHERE mailbox_id = ?1 AND uid = 4`,
		`UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?`,
	} {
		if _, err := db.Exec(q, mb.ID); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var seen strings.Builder
	for time.Now().Before(deadline) {
		seen.WriteString(c.ok("NOOP"))
		if strings.Contains(seen.String(), "* 2 EXPUNGE") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := seen.String(); !strings.Contains(got, "* 2 EXPUNGE") || !strings.Contains(got, `* 3 FETCH (UID 4 FLAGS (\Flagged))`) {
		t.Fatalf("after an unrecorded expunge:\n%s", got)
	}
	if un := c.ok("FETCH 1:* (UID)"); strings.Count(un, "FETCH") != 4 || strings.Contains(un, "UID 2)") {
		t.Fatalf("view after the unrecorded expunge:\n%s", un)
	}
}

// TestQResyncBeforeExpungeHistory resynchronises from a MODSEQ older than
// the store's record of expunges (a mailbox from before schema 7, whose
// expunge then was not recorded): VANISHED (EARLIER) still names the
// message, with every other UID not in the mailbox.
func TestQResyncBeforeExpungeHistory(t *testing.T) {
	e := newEnv(t, nil)
	fill5(e)
	c := e.login()
	c.ok("ENABLE QRESYNC")
	un := c.ok("SELECT INBOX")
	hms := highestModSeq(t, un)
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(un)[1]
	c.ok("LOGOUT")
	db, err := sql.Open("sqlite3", "file:"+e.db+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mb := e.inbox()
	for _, q := range []string{
		`DELETE FROM messages WHERE mailbox_id = ? AND uid = 2`,
		`UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?`,
		`INSERT OR REPLACE INTO expunge_history(mailbox_id, since) SELECT id, highest_modseq FROM mailboxes WHERE id = ?`,
	} {
		if _, err := db.Exec(q, mb.ID); err != nil {
			t.Fatal(err)
		}
	}
	n := e.login()
	n.ok("ENABLE QRESYNC")
	if un = n.ok("SELECT INBOX (QRESYNC (%s %d))", uv, hms); !strings.Contains(un, "* VANISHED (EARLIER) 2\r\n") {
		t.Fatalf("SELECT QRESYNC from before the expunge history:\n%s", un)
	}
	if un = n.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", hms); !strings.Contains(un, "* VANISHED (EARLIER) 2\r\n") {
		t.Fatalf("UID FETCH VANISHED from before the expunge history:\n%s", un)
	}
}
