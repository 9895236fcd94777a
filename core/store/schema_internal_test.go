package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// A database made by schema 1 (bytes inside the blobs row) upgrades in
// place and still serves every byte.
func TestUpgradeFromSchema1(t *testing.T) {
	sqliteOnly(t)
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: kept\r\n\r\nbytes\r\n")
	for _, q := range []string{schema[0], `PRAGMA user_version = 1`,
		`INSERT INTO domains(name, created) VALUES('example.test', 0)`,
		`INSERT INTO accounts(domain_id, address, password_hash, created) VALUES(1, 'a@example.test', 'x', 0)`,
		`INSERT INTO mailboxes(account_id, name, uid_validity) VALUES(1, 'INBOX', 7)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO blobs(key, size, refs, data) VALUES('k', ?, 0, ?)`, len(body), body); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO messages(mailbox_id, uid, internal_date, size, blob, modseq) VALUES(1, 1, 0, ?, 'k', 1)`, len(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO queue(created, mail_from, rcpts, blob, next_attempt) VALUES(0, 'a@example.test', '["x@y.test"]', 'k', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	got, err := s.Blob(ctx, "k")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("blob after upgrade: %q, %v", got, err)
	}
	var v int
	s.r.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != len(schema) {
		t.Fatalf("schema version %d, want %d", v, len(schema))
	}
	q, err := s.Queue(ctx)
	if err != nil || len(q) != 1 || q[0].Size != int64(len(body)) {
		t.Fatalf("queue after upgrade: %v, %v", q, err)
	}
	// IDs are not reused: the next item after deleting the last one gets a
	// new ID.
	if err := s.QueueDelete(ctx, q[0].ID); err != nil {
		t.Fatal(err)
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tx.Enqueue("a@example.test", []string{"x@y.test"}, body, "")
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil || id == q[0].ID {
		t.Fatalf("new queue ID %d (old %d), %v", id, q[0].ID, err)
	}
	if err := s.QueueDelete(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The last reference going removes the bytes too.
	if err := s.DeleteAccount(ctx, "a@example.test"); err != nil {
		t.Fatal(err)
	}
	var n int
	s.r.QueryRow(`SELECT count(*) FROM blob_data`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d blob_data rows left", n)
	}
}

// Commits are durable across a power loss, not only a process crash: the
// writer runs in WAL mode with synchronous=FULL (2).
func TestWriterDurable(t *testing.T) {
	sqliteOnly(t)
	s, err := Open(filepath.Join(t.TempDir(), "mail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode string
	var sync int
	if err := s.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Fatalf("journal_mode %q, synchronous %d; want wal, 2 (FULL)", mode, sync)
	}
}

// The writer keeps its temporary files (a batch INSERT's statement
// journal) in memory: temp_store=MEMORY (2), also on a connection the pool
// opens anew, while readers keep the default (0: files).
func TestWriterTempInMemory(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "mail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(db *sql.DB, want int) {
		t.Helper()
		var got int
		if err := db.QueryRow(`PRAGMA temp_store`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("temp_store %d, want %d", got, want)
		}
	}
	check(s.w, 2)
	check(s.r, 0)
	// A new connection of the writer's pool gets it too.
	ctx := context.Background()
	c, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Raw(func(any) error { return driver.ErrBadConn }) // the pool drops it
	c.Close()
	check(s.w, 2)
}

// Accounts migrated before passwords had an origin fail closed: the old
// server's password never replaces theirs (an admin may have reset a
// leaked one), and native accounts are the admin's.
func TestUpgradePasswordOriginFailsClosed(t *testing.T) {
	sqliteOnly(t)
	s := openSchema3(t,
		`INSERT INTO accounts(domain_id, address, password_hash, created, mig_state) VALUES(1, 'carol@example.test', 'x', 0, 'done')`,
		`INSERT INTO accounts(domain_id, address, password_hash, created) VALUES(1, 'native@example.test', 'x', 0)`)
	ctx := context.Background()
	for addr, want := range map[string]string{"carol@example.test": PasswordOld, "native@example.test": PasswordAdmin} {
		a, err := s.Account(ctx, addr)
		if err != nil || a.PasswordOrigin != want {
			t.Fatalf("%s after the upgrade: %+v, %v; want origin %q", addr, a, err, want)
		}
	}
	if err := s.AdoptOldPassword(ctx, "carol@example.test", "old-pw"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("AdoptOldPassword on an upgraded migrated account: %v, want ErrBadPassword", err)
	}
}

// Addresses made before they had to be canonical are made canonical by the
// upgrade, unless another account has the canonical form already.
func TestUpgradeCanonicalizesAddresses(t *testing.T) {
	sqliteOnly(t)
	s := openSchema3(t,
		`INSERT INTO accounts(domain_id, address, password_hash, created) VALUES(1, 'Carol@Example.Test.', 'x', 0)`,
		`INSERT INTO accounts(domain_id, address, password_hash, created) VALUES(1, 'dave@example.test', 'x', 0)`,
		`INSERT INTO accounts(domain_id, address, password_hash, created) VALUES(1, 'dave@example.test.', 'x', 0)`)
	ctx := context.Background()
	as, err := s.Accounts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range as {
		got = append(got, a.Address)
	}
	want := []string{"carol@example.test", "dave@example.test", "dave@example.test."}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("accounts after the upgrade %q, want %q", got, want)
	}
}

// openSchema3 makes a database as schema 3 left it, with example.test and
// the rows inserts add, and opens it (upgrading it); it is closed with t.
func openSchema3(t *testing.T, inserts ...string) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	steps := append([]string{schema[0], schema[1], schema[2], `PRAGMA user_version = 3`,
		`INSERT INTO domains(name, created) VALUES('example.test', 0)`}, inserts...)
	for _, q := range steps {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
