package imapfront_test

import (
	"database/sql"
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
