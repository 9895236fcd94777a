package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSaveDate: a message's save date (RFC 8514) is kept as given
// (the migration gives its internal date), now when not given and for a
// COPY's or MOVE's copy; after the schema step that adds it (SQLite's 30,
// PostgreSQL's 13), a message stored before reads its internal date.
func TestSaveDate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := testOpen(t, path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mb, uids := fillInbox(t, s, 1)
	old := time.Date(2020, 1, 1, 10, 0, 0, 0, time.FixedZone("", 3600))
	given, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: m\r\n\r\nm\r\n"), InternalDate: old, SaveDate: old})
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: n\r\n\r\nn\r\n"), InternalDate: old})
	if err != nil {
		t.Fatal(err)
	}
	if !now.SaveDate.After(old) || time.Since(now.SaveDate) > time.Minute {
		t.Fatalf("save date not given: %v, want now", now.SaveDate)
	}
	for _, uid := range []uint32{given.UID, now.UID} {
		m, err := s.Message(ctx, mb.ID, uid)
		if err != nil {
			t.Fatal(err)
		}
		want := now.SaveDate
		if uid == given.UID {
			want = old
		}
		if !m.SaveDate.Equal(want) {
			t.Errorf("UID %d: save date %v, want %v", uid, m.SaveDate, want)
		}
	}
	acct, err := s.Account(ctx, "u@example.test")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := s.CreateMailbox(ctx, acct.ID, "dst", nil)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := s.Copy(ctx, mb.ID, []uint32{given.UID}, dst.ID)
	if err != nil || len(pairs) != 1 {
		t.Fatal(pairs, err)
	}
	moved, err := s.Move(ctx, mb.ID, []uint32{uids[0]}, dst.ID)
	if err != nil || len(moved) != 1 {
		t.Fatal(moved, err)
	}
	for _, uid := range []uint32{pairs[0].Dst, moved[0].Dst} {
		m, err := s.Message(ctx, dst.ID, uid)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(m.SaveDate) > time.Minute {
			t.Errorf("copy %d: save date %v, want now", uid, m.SaveDate)
		}
	}

	// Back to the schema before the step, as an older Mailferry left it:
	// the rows it wrote read their internal date.
	// (The steps after it, applied again, are self-contained.)
	stmts := []string{`ALTER TABLE messages DROP COLUMN save_date`, fmt.Sprintf(`PRAGMA user_version = %d`, stepOf(t, schema, "save_date"))}
	if s.d.postgres() {
		stmts[1] = fmt.Sprintf(`UPDATE mailferry_schema SET version = %d`, stepOf(t, pgSchema, "save_date"))
	}
	s = reopenAfter(t, s, path, stmts)
	defer s.Close()
	m, err := s.Message(ctx, mb.ID, now.UID)
	if err != nil {
		t.Fatal(err)
	}
	if !m.SaveDate.Equal(m.InternalDate) || !m.InternalDate.Equal(old) {
		t.Errorf("after the upgrade: save date %v, internal date %v, want both %v", m.SaveDate, m.InternalDate, old)
	}
	if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: after\r\n\r\n")}); err != nil {
		t.Fatal(err)
	}
}

// reopenAfter runs stmts on s's database (a schema taken back to before a
// step, as an older Mailferry left it), closes s and opens path again,
// which applies the steps again.
func reopenAfter(t *testing.T, s *Store, path string, stmts []string) *Store {
	t.Helper()
	for _, q := range stmts {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	s.Close()
	s, err := testOpen(t, path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stepOf is the number of schema steps before the one that names what.
func stepOf(t *testing.T, steps []string, what string) int {
	t.Helper()
	for i, q := range steps {
		if strings.Contains(q, what) {
			return i
		}
	}
	t.Fatalf("no schema step names %s", what)
	return 0
}
