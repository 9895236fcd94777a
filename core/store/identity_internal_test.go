package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mailferry/core/internal/pgtest"
	"mailferry/core/internal/s3test"
)

// bucketView looks into a bucket beside the stores using it.
type bucketView struct {
	c      *minio.Client
	bucket string
}

func newBucketView(t *testing.T, srv *s3test.Server, bucket string) *bucketView {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	// As a store would, so that a bucket no store made yet can be looked at.
	if err := c.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			t.Fatal(err)
		}
	}
	return &bucketView{c: c, bucket: bucket}
}

// objects lists every object of the bucket, marker included, but the
// epochs (epoch.go: every open store adds its own).
func (v *bucketView) objects(t *testing.T) []string {
	t.Helper()
	var keys []string
	for info := range v.c.ListObjects(context.Background(), v.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if info.Err != nil {
			t.Fatal(info.Err)
		}
		if !strings.HasPrefix(info.Key, epochPrefix) {
			keys = append(keys, info.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

// marker returns the bucket's marker, "" when it has none.
func (v *bucketView) marker(t *testing.T) string {
	t.Helper()
	obj, err := v.c.GetObject(context.Background(), v.bucket, markerName, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(obj); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return ""
		}
		t.Fatal(err)
	}
	return b.String()
}

func (v *bucketView) setMarker(t *testing.T, body string) {
	t.Helper()
	if _, err := v.c.PutObject(context.Background(), v.bucket, markerName, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// dropClaims deletes the stores' claims (identity.go), as an admin told
// to, or as in a bucket of a Mailferry before claims.
func (v *bucketView) dropClaims(t *testing.T) {
	t.Helper()
	for info := range v.c.ListObjects(context.Background(), v.bucket, minio.ListObjectsOptions{Prefix: claimPrefix, Recursive: true}) {
		if info.Err != nil {
			t.Fatal(info.Err)
		}
		if err := v.c.RemoveObject(context.Background(), v.bucket, info.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func (v *bucketView) dropMarker(t *testing.T) {
	t.Helper()
	if err := v.c.RemoveObject(context.Background(), v.bucket, markerName, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// openOnBucket opens the store at path (the run's engine) with its bytes
// in bucket.
func openOnBucket(t *testing.T, srv *s3test.Server, path, bucket string) (*Store, error) {
	t.Helper()
	o := s3Options(srv.Endpoint, bucket)
	// The real server's first write into a new bucket (three stores at
	// once, under CI's parallel load) took over s3Options' 2 s once: these
	// tests are about whose bucket it is, not a hung server (the proxy
	// tests are).
	o.Timeout = DefaultObjectTimeout
	s, err := testOpen(t, path, &Options{ChangePoll: -1, Objects: o})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// mailOnBucket opens a store on bucket and gives it n messages (and so n
// objects), returning the store, its inbox and the bodies.
func mailOnBucket(t *testing.T, srv *s3test.Server, path, bucket string, seed uint64, n int) (*Store, int64, [][]byte) {
	t.Helper()
	s, err := openOnBucket(t, srv, path, bucket)
	if err != nil {
		t.Fatal(err)
	}
	inbox := matrixInbox(t, s, "a@example.test")
	var bodies [][]byte
	for i := range n {
		bodies = append(bodies, fbody(seed+uint64(i), 8<<10))
	}
	mustAppend(t, s, inbox, true, bodies...)
	return s, inbox, bodies
}

// refusedOpen fails t unless opening path on bucket fails with
// ErrWrongBucket saying all of want. A store that opened all the same is
// made to sweep (every object old enough), to show what that costs.
func refusedOpen(t *testing.T, srv *s3test.Server, view *bucketView, path, bucket string, want ...string) {
	t.Helper()
	before := view.objects(t)
	s, err := openOnBucket(t, srv, path, bucket)
	if err == nil {
		s.objects.grace, s.objects.settle = 0, 0
		res, cerr := s.Compact(context.Background())
		t.Fatalf("Open accepted bucket %s, another store's: its Compact then deleted %d of its %d objects (%v)", bucket, res.ObjectsRemoved, len(before), cerr)
	}
	if !errors.Is(err, ErrWrongBucket) {
		t.Fatalf("Open on another store's bucket: %v, want ErrWrongBucket", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not say %q: %v", w, err)
		}
	}
	if after := view.objects(t); !slices.Equal(before, after) {
		t.Fatalf("the refused Open changed the bucket: %d objects before, %d after", len(before), len(after))
	}
}

// A new, empty database given the bucket of another store (a serve or
// migrate with a wrong database_url/s3_* pairing) is refused at Open, in
// words, and nothing of the other store's is deleted: not by it, and not
// by the other store's own Compact. Before stores marked their bucket,
// it opened and its first Compact deleted every object of the other.
func TestWrongBucketRefused(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	dir := t.TempDir()
	a, _, bodies := mailOnBucket(t, srv, filepath.Join(dir, "a.db"), bucket, 100, 5)
	objects := view.objects(t)
	refusedOpen(t, srv, view, filepath.Join(dir, "b.db"), bucket, a.ID(), bucket, "database_url", "s3_bucket")
	if _, err := openOnBucket(t, srv, filepath.Join(dir, "b.db"), bucket); err == nil || strings.Contains(err.Error(), "holds no message bytes") {
		t.Errorf("a bucket holding mail refused with the hint of an empty one: %v", err)
	}
	if m := view.marker(t); !strings.Contains(m, "mailferry-store: "+a.ID()) {
		t.Fatalf("the bucket's marker does not name its store %s: %q", a.ID(), m)
	}
	if len(objects) != 7 { // 5 blobs, the marker and the store's claim
		t.Fatalf("bucket holds %v, want 5 blobs, the marker and the store's claim", objects)
	}

	// A bucket with blobs and no marker (made by a Mailferry before
	// markers): the new database names none of them, so it is refused too,
	// and marks nothing.
	view.dropMarker(t)
	refusedOpen(t, srv, view, filepath.Join(dir, "c.db"), bucket, "names none", "new, empty bucket")
	if m := view.marker(t); m != "" {
		t.Fatalf("a refused store marked the bucket: %q", m)
	}

	// The bucket's own store takes it back at its next Open, and its
	// Compact deletes nothing it names.
	a.Close()
	a, err := openOnBucket(t, srv, filepath.Join(dir, "a.db"), bucket)
	if err != nil {
		t.Fatal(err)
	}
	if m := view.marker(t); !strings.Contains(m, "mailferry-store: "+a.ID()) {
		t.Fatalf("the store did not mark its bucket again: %q", m)
	}
	a.objects.grace, a.objects.settle = 0, 0
	if res, err := a.Compact(context.Background()); err != nil || res.ObjectsRemoved != 0 {
		t.Fatalf("compact of the bucket's own store: %+v %v", res, err)
	}
	for _, b := range bodies {
		mustServe(t, a, b)
	}
	if got := view.objects(t); !slices.Equal(got, objects) {
		t.Fatalf("bucket holds %v, want %v", got, objects)
	}
}

// A bucket marked by a store that never stored anything in it (opened
// once with a wrong database) is refused all the same, with the way out
// in words: its marker may be deleted.
func TestWrongBucketEmpty(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	dir := t.TempDir()
	a, err := openOnBucket(t, srv, filepath.Join(dir, "typo.db"), bucket)
	if err != nil {
		t.Fatal(err)
	}
	refusedOpen(t, srv, view, filepath.Join(dir, "right.db"), bucket, a.ID(), "holds no message bytes", "delete the object "+markerName, claimPrefix)
	view.dropMarker(t)
	view.dropClaims(t)
	if _, err := openOnBucket(t, srv, filepath.Join(dir, "right.db"), bucket); err != nil {
		t.Fatalf("after the marker was deleted: %v", err)
	}
}

// Compact deletes nothing in a bucket whose marker is gone or names
// another store (it changed after Open: another store marked it, someone
// deleted the marker), and sweeps again once the marker is its own.
func TestSweepNeedsOwnMarker(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	s, inbox, bodies := mailOnBucket(t, srv, filepath.Join(t.TempDir(), "a.db"), bucket, 200, 3)
	own := view.marker(t)
	expunge(t, s, inbox, 1) // its object is now garbage
	s.objects.grace, s.objects.settle = 0, 0
	ctx := context.Background()
	before := view.objects(t)
	other := strings.Replace(own, s.ID(), strings.Repeat("ab", 16), 1)
	for _, tc := range []struct {
		name, marker, want string
	}{
		{"another store's marker", other, strings.Repeat("ab", 16)},
		{"no marker", "", "no longer holds"},
	} {
		if tc.marker == "" {
			view.dropMarker(t)
		} else {
			view.setMarker(t, tc.marker)
		}
		res, err := s.Compact(ctx)
		if !errors.Is(err, ErrWrongBucket) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing deleted") {
			t.Errorf("%s: compact: %v, want ErrWrongBucket saying %q", tc.name, err, tc.want)
		}
		if res.ObjectsRemoved != 0 {
			t.Errorf("%s: compact removed %d objects", tc.name, res.ObjectsRemoved)
		}
		if after := view.objects(t); len(after) != len(before)-boolInt(tc.marker == "") {
			t.Fatalf("%s: compact changed the bucket: %v, was %v", tc.name, after, before)
		}
	}
	view.setMarker(t, own)
	if res, err := s.Compact(ctx); err != nil || res.ObjectsRemoved != 1 {
		t.Fatalf("compact with its own marker: %+v %v, want the expunged message's object removed", res, err)
	}
	for _, b := range bodies[1:] {
		mustServe(t, s, b)
	}
}

// The upgrade from a Mailferry before markers: the store's bucket has
// blobs and no marker, its database no store ID. It opens as before, with
// no manual step, marks the bucket, and serves and compacts as before;
// other databases are refused that bucket from then on. A store whose
// database names objects the bucket lacks (another old store's bucket),
// and one that names objects while the bucket is empty (a wrong bucket),
// are refused.
func TestBucketUpgrade(t *testing.T) {
	srv := s3test.Shared(t)
	ctx := context.Background()
	bucket, elsewhere := srv.Bucket(t), srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	dir := t.TempDir()
	pathA, pathC := filepath.Join(dir, "a.db"), filepath.Join(dir, "c.db")
	a, inbox, bodies := mailOnBucket(t, srv, pathA, bucket, 300, markerSample+4)
	oldID := a.ID()
	c, _, _ := mailOnBucket(t, srv, pathC, elsewhere, 400, 3)
	for _, s := range []*Store{a, c} {
		makeOld(t, s)
		s.Close()
	}
	// As in buckets of a Mailferry before markers (and claims).
	view.dropMarker(t)
	view.dropClaims(t)
	newBucketView(t, srv, elsewhere).dropMarker(t)
	newBucketView(t, srv, elsewhere).dropClaims(t)
	objects := view.objects(t)

	// Another old store's database on this bucket: it names objects the
	// bucket does not hold.
	refusedOpen(t, srv, view, pathC, bucket, "lacks blob")
	// The store's database on an empty bucket.
	empty := srv.Bucket(t)
	refusedOpen(t, srv, newBucketView(t, srv, empty), pathA, empty, "holds none")

	a, err := openOnBucket(t, srv, pathA, bucket)
	if err != nil {
		t.Fatalf("the upgraded store on its own bucket: %v", err)
	}
	if a.ID() == "" || a.ID() == oldID {
		t.Fatalf("store ID after the upgrade %q (before: %q)", a.ID(), oldID)
	}
	if m := view.marker(t); !strings.Contains(m, "mailferry-store: "+a.ID()) {
		t.Fatalf("the upgraded store did not mark its bucket: %q", m)
	}
	for _, b := range bodies {
		mustServe(t, a, b)
	}
	expunge(t, a, inbox, 1)
	a.objects.grace, a.objects.settle = 0, 0
	if res, err := a.Compact(ctx); err != nil || res.ObjectsRemoved != 1 {
		t.Fatalf("compact after the upgrade: %+v %v, want the expunged message's object removed", res, err)
	}
	refusedOpen(t, srv, view, filepath.Join(dir, "new.db"), bucket, a.ID())
	if got := len(view.objects(t)); got != len(objects)+1 { // one blob fewer, the marker and the claim more
		t.Fatalf("bucket holds %d objects, want %d", got, len(objects)+1)
	}
}

// makeOld makes s's database one of a Mailferry before store IDs: the
// table and its schema step gone.
func makeOld(t *testing.T, s *Store) {
	t.Helper()
	// The version before the identity's step (later steps make their
	// tables IF NOT EXISTS, so they run again harmlessly; SQLite's
	// ADD COLUMN of the durable marks and of the message count has no IF
	// NOT EXISTS: their columns are dropped too).
	before := func(steps []string) string {
		for i, step := range steps {
			if strings.Contains(step, "CREATE TABLE IF NOT EXISTS store_identity") {
				return strconv.Itoa(i)
			}
		}
		t.Fatal("no schema step makes store_identity")
		return ""
	}
	stmts := []string{`DROP TABLE store_identity`, `PRAGMA user_version = ` + before(schema)}
	if s.d.postgres() {
		stmts[1] = `UPDATE mailferry_schema SET version = ` + before(pgSchema)
	} else {
		stmts = append(stmts, `DROP INDEX mailboxes_past_mark`,
			`ALTER TABLE mailboxes DROP COLUMN uid_next_mark`, `ALTER TABLE mailboxes DROP COLUMN modseq_mark`)
		stmts = append(stmts, undoMessageCount...)
	}
	for _, q := range stmts {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// Two nodes of one store (one database) starting at once on a new bucket
// both open it, with one store ID, which the marker names; each one's
// Compact leaves the other's mail.
func TestTwoNodesOneBucket(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	path := filepath.Join(t.TempDir(), "mail.db")
	if testEngine == EnginePostgres {
		testDatabases.Store(path, pgtest.URL(t)) // both nodes on one database
	} else {
		// Two first opens of one SQLite file at once race on its schema;
		// a node's first open makes it before the two start here.
		s, err := testOpen(t, path, &Options{ChangePoll: -1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	var nodes [2]*Store
	var errs [2]error
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i], errs[i] = openOnBucket(t, srv, path, bucket) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if nodes[0].ID() != nodes[1].ID() {
		t.Fatalf("two nodes of one database have store IDs %s and %s", nodes[0].ID(), nodes[1].ID())
	}
	if m := view.marker(t); !strings.Contains(m, "mailferry-store: "+nodes[0].ID()) {
		t.Fatalf("marker %q", m)
	}
	inbox := matrixInbox(t, nodes[0], "a@example.test")
	one, two := fbody(500, 4<<10), fbody(501, 4<<10)
	mustAppend(t, nodes[0], inbox, true, one)
	mustAppend(t, nodes[1], inbox, true, two)
	for _, n := range nodes {
		n.objects.grace, n.objects.settle = 0, 0
		if res, err := n.Compact(context.Background()); err != nil || res.ObjectsRemoved != 0 {
			t.Fatalf("compact: %+v %v", res, err)
		}
	}
	for _, n := range nodes {
		mustServe(t, n, one)
		mustServe(t, n, two)
	}
}

// Stores of different databases starting at once on one new bucket: one
// marks it (a conditional PUT: only if no marker is there), the others
// are refused.
func TestNewBucketOneStoreWins(t *testing.T) {
	srv := s3test.Shared(t)
	for round := range 3 {
		oneStoreWins(t, srv, round, func(int) string { return srv.Endpoint })
	}
}

// oneStoreWins opens three stores of different databases at once on one
// new bucket, store i through endpoint(i), and fails t unless exactly one
// opens it and the marker names that one.
func oneStoreWins(t *testing.T, srv *s3test.Server, round int, endpoint func(i int) string) {
	t.Helper()
	bucket := srv.Bucket(t)
	view := newBucketView(t, srv, bucket)
	dir := t.TempDir()
	stores := make([]*Store, 3)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		path := filepath.Join(dir, "store"+strconv.Itoa(i)+".db")
		if testEngine == EnginePostgres {
			testDatabases.Store(path, pgtest.URL(t))
		}
		o := s3Options(endpoint(i), bucket)
		// The real server's first write into a new bucket (three stores at
		// once, under CI's parallel load) took over s3Options' 2 s once.
		o.Timeout = DefaultObjectTimeout
		wg.Go(func() {
			stores[i], errs[i] = testOpen(t, path, &Options{ChangePoll: -1, Objects: o})
			if errs[i] == nil {
				t.Cleanup(func() { stores[i].Close() })
			}
		})
	}
	wg.Wait()
	var won []string
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, stores[i].ID())
		case !errors.Is(err, ErrWrongBucket):
			t.Fatalf("round %d, store %d: %v", round, i, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("round %d: %d stores of different databases opened one new bucket, want 1", round, len(won))
	}
	if m := view.marker(t); !strings.Contains(m, "mailferry-store: "+won[0]) {
		t.Fatalf("round %d: the marker %q does not name the store that opened", round, m)
	}
}
