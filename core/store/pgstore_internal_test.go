package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	engineFree(t)
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`},
		{`SELECT '?' || ? FROM "we?ird" WHERE x = ?`, `SELECT '?' || $1 FROM "we?ird" WHERE x = $2`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
		{"-- ? at the end", "-- ? at the end"},
		{`SELECT a - ?`, `SELECT a - $1`},
		{`SELECT /* why? */ ?`, `SELECT /* why? */ $1`},
		{`SELECT /* a /* nested? */ still? */ ?`, `SELECT /* a /* nested? */ still? */ $1`},
		{`SELECT /* unterminated ?`, `SELECT /* unterminated ?`},
		{`SELECT $$ what? $$, ?`, `SELECT $$ what? $$, $1`},
		{`SELECT $tag$ a $$ b? $tag$, ?`, `SELECT $tag$ a $$ b? $tag$, $1`},
		{`SELECT $1, ?`, `SELECT $1, $1`},
		{`SELECT $x`, `SELECT $x`},
		{`SELECT $$ unterminated ?`, `SELECT $$ unterminated ?`},
		{`SELECT a/?, ?*2`, `SELECT a/$1, $2*2`},
	} {
		if got := rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestChangeNote: what one Store notifies, another reads as the same
// changes; a payload it cannot read (hostile, or another version's) tells
// every watcher, never fewer.
func TestChangeNote(t *testing.T) {
	engineFree(t)
	ch := &changes{queue: true}
	ch.account(7)
	ch.account(42)
	from, got, all := parseChangeNote(changeNote("me", ch))
	if from != "me" || all || !got.queue || got.domains || len(got.accounts) != 2 || !got.accounts[7] || !got.accounts[42] {
		t.Fatalf("round trip: %q %+v %v", from, got, all)
	}
	// Nothing named: watchers of everything are told.
	if _, got, all := parseChangeNote(changeNote("me", &changes{})); all || got == nil || !got.domains {
		t.Fatalf("empty change: %+v %v", got, all)
	}
	wide := &changes{}
	for i := int64(1); i < 2000; i++ {
		wide.account(i)
	}
	if n := changeNote("me", wide); len(n) > maxNote+32 {
		t.Fatalf("a note of %d bytes", len(n))
	} else if _, _, all := parseChangeNote(n); !all {
		t.Fatal("a change too wide to name is not told to all")
	}
	for _, p := range []string{"", " ", "x 1,a", "x -1", "x 0", "x 1,,2", "x 99999999999999999999", "x 1 z", "x 1 d q extra", strings.Repeat("x", 9000)} {
		if _, ch, all := parseChangeNote(p); !all && (ch == nil || len(ch.accounts) == 0 && !ch.domains && !ch.queue) {
			t.Errorf("payload %q tells nobody: %+v %v", p, ch, all)
		}
	}
}

// TestDatabaseURLRedacted: the database password is never in what the
// store says: not in Database(), not in an error about the URL.
func TestDatabaseURLRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:s3cret@db:5432/mail":                     "postgres://u:xxxxx@db:5432/mail",
		"postgresql://u@db/mail?password=s3cret&x=1":           "postgresql://u@db/mail?password=xxxxx&x=1",
		"host=db user=u password=s3cret dbname=mail":           "(database URL hidden)",
		"postgres://u:s3cret@db:5432/mail?sslmode=full":        "postgres://u:xxxxx@db:5432/mail?sslmode=full",
		"postgres://u@db/mail?sslkey=k.pem&sslpassword=s3cret": "postgres://u@db/mail?sslkey=k.pem&sslpassword=xxxxx",
	} {
		if got := RedactDatabaseURL(in); got != want {
			t.Errorf("RedactDatabaseURL(%q) = %q, want %q", in, got, want)
		}
	}
	dir := t.TempDir()
	for _, bad := range []string{
		"host=db user=u password=s3cret",
		"mysql://u:s3cret@db/mail",
		"postgres://u:s3cret@db:notaport/mail",
		"postgres://u:s3cret@db/mail?connect_timeout=x",
		"postgres://u:s3cret@%zz/mail",
	} {
		s, err := Open(filepath.Join(dir, "mail.db"), &Options{DatabaseURL: bad})
		if err == nil {
			s.Close()
			t.Fatalf("Open with %q succeeded", bad)
		}
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open with %q: %v; want ErrInvalid without the password", bad, err)
		}
	}
}

// TestListenerReconnects: when a Store's LISTEN connection is cut (the
// database restarted, a proxy dropped it), its watchers are told (commits
// may have been missed), and other Stores' commits are seen again after.
func TestListenerReconnects(t *testing.T) {
	if testEngine != EnginePostgres {
		t.Skip("about the PostgreSQL engine's LISTEN connection")
	}
	ctx := context.Background()
	a, b := twoStores(t)
	if _, err := a.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	w := b.Watch(0)
	defer w.Close()
	drain := func() {
		for {
			select {
			case <-w.C:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain()
	// Cut every LISTEN connection of the database but a's own writers'.
	if _, err := a.w.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not told after its LISTEN connection was cut")
	}
	drain()
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		if _, err := a.CreateAccount(ctx, "u"+string(rune('a'+n%26))+time.Now().Format("150405.000")+"@example.test", "Secret-1", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.C:
			return
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("another Store's commits are not seen after the LISTEN connection came back")
		}
	}
}
