package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/internal/pgtest"
	"mailferry/core/internal/s3test"
)

// copyDatabase makes the database of path to a copy of the database of
// from, as an admin does from a backup: the SQLite file copied (from must
// be closed), or, on PostgreSQL, a new database loaded from pg_dump of
// the first.
func copyDatabase(t *testing.T, from, to string) {
	t.Helper()
	if testEngine == EnginePostgres {
		u, ok := testDatabases.Load(from)
		if !ok {
			t.Fatalf("no database for %s", from)
		}
		testDatabases.Store(to, pgtest.Restore(t, u.(string)))
		return
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(to + sfx)
	}
	for _, sfx := range []string{"", "-wal"} {
		b, err := os.ReadFile(from + sfx)
		if errors.Is(err, os.ErrNotExist) && sfx != "" {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+sfx, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// storeAndCopy gives a store on a new bucket n messages (seed), closes it
// and copies its database (copyDatabase): the paths of both, the bucket,
// the store's inbox and the bodies.
func storeAndCopy(t *testing.T, srv *s3test.Server, seed uint64, n int) (path, copied, bucket string, inbox int64, bodies [][]byte) {
	t.Helper()
	bucket = srv.Bucket(t)
	dir := t.TempDir()
	path, copied = filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	a, inbox, bodies := mailOnBucket(t, srv, path, bucket, seed, n)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	copyDatabase(t, path, copied)
	return path, copied, bucket, inbox, bodies
}

// inBucket fails t unless the bucket holds the object of b.
func inBucket(t *testing.T, view *bucketView, b []byte, what string) {
	t.Helper()
	if !slices.Contains(view.objects(t), objectName(fkey(b))) {
		t.Fatalf("%s: the object of message %s is gone from the bucket", what, fkey(b)[:8])
	}
}

// compactRemoves fails t unless a Compact of s removes n objects, without
// error.
func compactRemoves(t *testing.T, s *Store, n int, what string) {
	t.Helper()
	if res, err := s.Compact(context.Background()); err != nil || res.ObjectsRemoved != n {
		t.Fatalf("%s: compact: %+v %v, want %d objects removed", what, res, err, n)
	}
}

// mustHold fails t unless a Compact of s (every object old enough)
// deletes nothing and says why: another database uses the bucket.
func mustHold(t *testing.T, s *Store, who string) {
	t.Helper()
	s.objects.grace, s.objects.settle = 0, 0
	res, err := s.Compact(context.Background())
	if res.ObjectsRemoved != 0 {
		t.Fatalf("%s: Compact deleted %d objects of a bucket another database of the store uses (%v)", who, res.ObjectsRemoved, err)
	}
	if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "nothing deleted") || !strings.Contains(err.Error(), "adopt-bucket") {
		t.Fatalf("%s: Compact: %v, want ErrDiverged saying nothing was deleted and what to do", who, err)
	}
	if h := s.SweepHeld(); !strings.Contains(h, "adopt-bucket") {
		t.Fatalf("%s: SweepHeld %q, want the reason the sweep is held", who, h)
	}
}

// A copy of a store's database (a backup restored beside it, a staging
// copy; on PostgreSQL a database restored from pg_dump of the store's)
// opened on the store's bucket while the store runs: its Compact deletes
// none of the mail the store wrote since the copy, nor the objects of
// messages it expunges that the store still names. The store's own
// Compact deletes nothing either, until the admin stops the copy and
// adopts the bucket with the store's database: then the store sweeps
// again, keeping the copy's mail. Without epochs the copy's Compact
// deleted the store's new message.
func TestCopyBesideLiveDeletesNothing(t *testing.T) {
	srv := s3test.Shared(t)
	pathA, pathB, bucket, inbox, bodies := storeAndCopy(t, srv, 600, 3)
	view := newBucketView(t, srv, bucket)
	a, err := openOnBucket(t, srv, pathA, bucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openOnBucket(t, srv, pathB, bucket)
	if err != nil {
		t.Fatalf("the copy could not open (it should, and serve): %v", err)
	}
	if b.ID() != a.ID() {
		t.Fatalf("the copy has store ID %s, the store %s", b.ID(), a.ID())
	}
	newMail := fbody(699, 8<<10)
	mustAppend(t, a, inbox, true, newMail)
	expunge(t, b, inbox, 1) // the copy expunges a message the store keeps

	mustHold(t, b, "the copy")
	mustHold(t, a, "the store")
	inBucket(t, view, newMail, "after the copy's Compact")
	inBucket(t, view, bodies[0], "after the copy's Compact")
	mustServe(t, a, newMail)
	for _, body := range bodies {
		mustServe(t, a, body)
	}
	// The copy goes on serving and storing.
	copyMail := fbody(698, 4<<10)
	mustAppend(t, b, inbox, true, copyMail)
	mustServe(t, b, copyMail)

	// The admin stops the copy and says the store's database is the one.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := a.AdoptBucket(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epochs == 0 || res.Kept < 1 {
		t.Fatalf("adopt: %+v, want the copy's epochs adopted and its message's object kept", res)
	}
	if h := a.SweepHeld(); h != "" {
		t.Fatalf("after the adoption the sweep is still held: %s", h)
	}
	expunge(t, a, inbox, 4) // newMail: written after the copy, so its object is new
	res2, err := a.Compact(context.Background())
	if err != nil {
		t.Fatalf("the store's Compact after the adoption: %v", err)
	}
	t.Logf("after the adoption: %+v; compact %+v", res, res2)
	// newMail's object was made before the adoption: kept, as the copy's.
	inBucket(t, view, newMail, "after the adoption")
	inBucket(t, view, copyMail, "after the adoption")
	for _, body := range bodies {
		mustServe(t, a, body)
	}
	// What is written and expunged after the adoption is swept (object
	// times are in whole seconds: a second later).
	time.Sleep(1100 * time.Millisecond)
	later := fbody(697, 4<<10)
	mustAppend(t, a, inbox, true, later)
	expunge(t, a, inbox, 5)
	compactRemoves(t, a, 1, "after the adoption, the object expunged since")
}

// A copy opened while the store runs deletes nothing before it has been
// open for epochSettle, whatever the age of the objects: the running
// store mints meanwhile, and the copy's check then finds it.
func TestCopySettlesBeforeSweeping(t *testing.T) {
	srv := s3test.Shared(t)
	_, pathB, bucket, inbox, _ := storeAndCopy(t, srv, 610, 2)
	// The copy first, so that it knows every epoch there is.
	b, err := openOnBucket(t, srv, pathB, bucket)
	if err != nil {
		t.Fatal(err)
	}
	expunge(t, b, inbox, 1)
	b.objects.grace = 0
	compactRemoves(t, b, 0, "a store open for less than epochSettle")
}

// A store restored in place from a backup (its database replaced by an
// older copy of itself) deletes none of the objects of the mail that came
// after the backup: the store minted epochs since, which the backup does
// not know. After the admin adopts the bucket those objects are kept (the
// mail is recoverable from the bucket), and the sweep goes on for what is
// expunged later.
func TestRestoreInPlaceKeepsNewerMail(t *testing.T) {
	srv := s3test.Shared(t)
	path, backup, bucket, inbox, bodies := storeAndCopy(t, srv, 620, 2)
	view := newBucketView(t, srv, bucket)
	a, err := openOnBucket(t, srv, path, bucket)
	if err != nil {
		t.Fatal(err)
	}
	newMail := fbody(629, 8<<10)
	mustAppend(t, a, inbox, true, newMail)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	copyDatabase(t, backup, path) // the restore

	r, err := openOnBucket(t, srv, path, bucket)
	if err != nil {
		t.Fatalf("the restored store could not open (it should, and serve): %v", err)
	}
	if h := r.SweepHeld(); !strings.Contains(h, "restored") {
		t.Errorf("the restored store's Open did not tell why its sweep is held: %q", h)
	}
	mustHold(t, r, "the restored store")
	inBucket(t, view, newMail, "after the restored store's Compact")
	for _, b := range bodies {
		mustServe(t, r, b)
	}
	res, err := r.AdoptBucket(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != 1 || res.KeptBytes != int64(len(newMail)) {
		t.Fatalf("adopt: %+v, want the one message after the backup kept", res)
	}
	compactRemoves(t, r, 0, "after the adoption")
	inBucket(t, view, newMail, "after the adoption")
	expunge(t, r, inbox, 1)
	// Its object is older than the adoption: kept as well.
	compactRemoves(t, r, 0, "after the adoption, a message from before it expunged")
	// Until the admin gives them up: both go.
	if _, err := r.AdoptBucket(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	compactRemoves(t, r, 2, "adopted again with deleteUnnamed")
	mustServe(t, r, bodies[1])
}

// A move of the database while the store is stopped (the SQLite file to
// a new disk; on PostgreSQL, pg_dump into a new database) is seen: the
// moved database knows every epoch, but it is not where its newest epoch
// was minted, as a copy would not be (a staging copy run while the store
// is stopped would otherwise sweep what it expunges, the store's mail).
// It serves, deletes nothing, says why, and sweeps again once the admin
// adopted the bucket with it; reopened, it stays adopted.
func TestMovedDatabaseAdopted(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	old, moved := filepath.Join(t.TempDir(), "mail.db"), filepath.Join(t.TempDir(), "new-disk", "mail.db")
	a, inbox, bodies := mailOnBucket(t, srv, old, bucket, 630, 3)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(moved), 0o700); err != nil {
		t.Fatal(err)
	}
	copyDatabase(t, old, moved)
	if testEngine != EnginePostgres {
		os.Remove(old)
	}
	m, err := openOnBucket(t, srv, moved, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if h := m.SweepHeld(); !strings.Contains(h, "moved, copied or restored") {
		t.Fatalf("the moved database's sweep: held %q, want it held as moved", h)
	}
	expunge(t, m, inbox, 1)
	mustHold(t, m, "the moved store")
	if _, err := m.AdoptBucket(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	compactRemoves(t, m, 1, "the moved store adopted (deleting what it does not name), after an expunge")
	for _, b := range bodies[1:] {
		mustServe(t, m, b)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m, err = openOnBucket(t, srv, moved, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if h := m.SweepHeld(); h != "" {
		t.Fatalf("reopened after the adoption, the sweep is held: %s", h)
	}
}

// Two nodes of one store (one database, PostgreSQL or one SQLite file)
// each mint epochs, which the other knows: each sweeps what is expunged.
func TestTwoNodesSweepAsOne(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	path := filepath.Join(t.TempDir(), "mail.db")
	one, inbox, bodies := mailOnBucket(t, srv, path, bucket, 640, 3)
	two, err := openOnBucket(t, srv, path, bucket)
	if err != nil {
		t.Fatal(err)
	}
	// Each mints again, as every epochPeriod.
	for _, n := range []*Store{one, two, one} {
		if _, err := n.mintEpoch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []*Store{two, one} {
		expunge(t, n, inbox, uint32(i+1))
		n.objects.grace, n.objects.settle = 0, 0
		compactRemoves(t, n, 1, "node "+strconv.Itoa(i)+", after an expunge")
	}
	mustServe(t, one, bodies[2])
	mustServe(t, two, bodies[2])
}

// The epochs do not pile up: a sweep deletes its own database's epoch
// objects older than epochKeep, but the newest, and never another
// database's.
func TestEpochsCleaned(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	s, _, _ := mailOnBucket(t, srv, filepath.Join(t.TempDir(), "a.db"), bucket, 650, 1)
	for range 3 {
		if _, err := s.mintEpoch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.listEpochs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known, err := s.knownEpochs(context.Background(), list)
	if err != nil || len(known) != len(list) || len(list) < 4 {
		t.Fatalf("%d epochs, %d known: %v", len(list), len(known), err)
	}
	// As if they were all two days old.
	for i := range list {
		list[i].at = list[i].at.Add(-2 * epochKeep)
	}
	if err := s.cleanEpochs(context.Background(), list, known); err != nil {
		t.Fatal(err)
	}
	left, err := s.listEpochs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		t.Fatalf("%d epochs left, want the newest only", len(left))
	}
	s.objects.grace, s.objects.settle = 0, 0
	compactRemoves(t, s, 0, "after cleaning the epochs")
}
