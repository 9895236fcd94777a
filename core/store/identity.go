package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// A store's identity, and the marker that gives its object storage bucket
// to it. Compact deletes the objects its own database does not name
// (sweep.go): a second store on the same bucket (a new, empty database
// given another deployment's s3_* keys) would delete all of the first
// one's mail, and the first would delete the second's. So one bucket
// serves one store.
//
// Invariants:
//   - Every store has an ID: 128 random bits in hex, made at its first
//     Open (store_identity, one row), the same for every node on its
//     database (whichever node makes it first; the others read it).
//   - A bucket in use names its store in the object "mailferry-store-id"
//     (the marker; outside "blobs/", so no sweep ever takes it). Open
//     checks it before anything reads or writes a blob: a marker naming
//     another store fails Open with ErrWrongBucket, in words, having
//     changed nothing in the bucket.
//   - Open writes the marker into a bucket that has none only after it
//     won the bucket's election (claims, below), only if no other marker
//     is there (a conditional PUT, If-None-Match: *, then read back), and
//     only into a bucket that holds no blob, or one whose
//     blobs are this store's: its database names objects and every one of
//     a sample of them (markerSample, taken at random points of the key
//     space) is in the bucket. That is the upgrade from a Mailferry
//     before markers: an existing store keeps its bucket without a manual
//     step. A bucket with blobs whose database names none, or that lacks
//     one the database names, is refused; so is an empty bucket for a
//     database that names objects (the wrong bucket: its mail is not
//     there).
//   - The election, for object storages without conditional writes
//     (which ignore If-None-Match: two stores could each write the marker,
//     read back their own, and open): a store puts its claim
//     "mailferry-claims/<ID>" (a name of its own: no write hides
//     another's), then lists the claims, and wins only if its own is the
//     only one. With a listing that shows every write completed before it
//     (S3's strong consistency), two stores cannot both win: the one that
//     lists last sees the other's claim. A loser takes its claim back,
//     waits a random while and tries again (the marker the winner writes
//     meanwhile refuses it then, in words); stores that all lose, having
//     claimed at the same moment, try again the same way. The winner's
//     claim stays: a store that read "no marker" just before the winner
//     wrote it still loses. Nodes of one store claim the same name.
//   - Compact deletes objects only while the marker names this store: it
//     reads it again before every batch it deletes, under the write lock,
//     and deletes nothing when it is gone or names another store.
//   - The marker tells stores apart, not copies of one store's database
//     (a restore, a clone), which carry its ID: epoch.go keeps those from
//     deleting each other's mail.
//
// What S3 semantics leave open: an object storage whose listing does not
// show a write completed before it (eventually consistent listings; AWS
// S3 is strongly consistent since 2020, as MinIO, Ceph RGW and SeaweedFS)
// could let two new stores both win the election, if it also ignores
// If-None-Match.

// markerName is the object naming the store a bucket belongs to.
const markerName = "mailferry-store-id"

// markerSample is how many of the objects its database names a store
// checks are in a bucket without a marker before it adopts it.
const markerSample = 16

// markerMax bounds the marker's size as read.
const markerMax = 4 << 10

// claimPrefix is where stores claim a bucket that has no marker yet.
const claimPrefix = "mailferry-claims/"

// claimTries is how many elections a store runs before it gives up on a
// bucket others claim too.
const claimTries = 5

// ErrWrongBucket: the object storage bucket belongs to another store (its
// marker names another), or, without a marker, holds blobs that are not
// this store's. Nothing was changed in it.
var ErrWrongBucket = errors.New("store: the object storage bucket is another store's")

// ID is the store's identity: every node on its database has the same,
// and its bucket's marker names it.
func (s *Store) ID() string { return s.id }

// loadID reads the store's ID, making it at the first Open.
func (s *Store) loadID(ctx context.Context) error {
	var b [16]byte
	rand.Read(b[:])
	if err := s.execAlone(ctx, `INSERT INTO store_identity(id, store, created) VALUES (1, ?, ?) ON CONFLICT(id) DO NOTHING`,
		hex.EncodeToString(b[:]), time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store: identity: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, `SELECT store FROM store_identity WHERE id = 1`).Scan(&s.id); err != nil {
		return fmt.Errorf("store: identity: %w", err)
	}
	return nil
}

// marker is what a bucket's marker says.
type marker struct {
	store    string // the ID
	database string // where the store that wrote it kept its metadata then
	created  string
}

// markerBody is the marker this store writes: its ID, then words for an
// admin who finds it in the bucket.
func (s *Store) markerBody() []byte {
	return fmt.Appendf(nil, `mailferry-store: %s
database: %s
created: %s

This bucket keeps the message bytes of the Mailferry store named above.
Every node of that store uses this bucket with the same database; no other
store may use it (each store deletes the objects its own database does
not name). A Mailferry store opened on this bucket with another database
refuses it.
`, s.id, s.where, time.Now().UTC().Format(time.RFC3339))
}

// parseMarker reads a marker; ok is false for an object that is not one.
func parseMarker(b []byte) (m marker, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ": ")
		if !found {
			continue
		}
		switch k {
		case "mailferry-store":
			m.store = v
		case "database":
			m.database = v
		case "created":
			m.created = v
		}
	}
	if len(m.store) != 32 || strings.Trim(m.store, "0123456789abcdef") != "" {
		return m, false
	}
	return m, true
}

// readMarker reads the bucket's marker; found is false when there is none.
func (o *objects) readMarker(ctx context.Context) (m marker, found bool, err error) {
	ctx, cancel := o.opCtx(ctx, 0)
	defer cancel()
	obj, err := o.c.GetObject(ctx, o.bucket, markerName, minio.GetObjectOptions{})
	if err != nil {
		return m, false, o.fail("read the marker "+markerName, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, markerMax))
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return m, false, nil
		}
		return m, false, o.fail("read the marker "+markerName, err)
	}
	m, ok := parseMarker(b)
	if !ok {
		return m, true, fmt.Errorf("%w: bucket %s holds an object %s that is not a Mailferry store's marker; this store will not use the bucket (give it a bucket of its own)", ErrWrongBucket, o, markerName)
	}
	return m, true, nil
}

// writeMarker puts body as the marker unless one is there already:
// written is false when another was there (or came first).
func (o *objects) writeMarker(ctx context.Context, body []byte) (written bool, err error) {
	ctx, cancel := o.opCtx(ctx, int64(len(body)))
	defer cancel()
	put := func(ifNone bool) error {
		opts := minio.PutObjectOptions{ContentType: "text/plain; charset=utf-8", SendContentMd5: true, DisableMultipart: true}
		if ifNone {
			opts.SetMatchETagExcept("*")
		}
		_, err := o.c.PutObject(ctx, o.bucket, markerName, bytes.NewReader(body), int64(len(body)), opts)
		return err
	}
	err = put(true)
	switch minio.ToErrorResponse(err).Code {
	case "":
		if err != nil {
			return false, o.fail("write the marker "+markerName, err)
		}
		return true, nil
	case "PreconditionFailed", "ConditionalRequestConflict":
		return false, nil
	case "NotImplemented":
		// An object storage without conditional writes: a plain PUT, and
		// the read back that follows tells who wrote last.
		if err := put(false); err != nil {
			return false, o.fail("write the marker "+markerName, err)
		}
		return true, nil
	default:
		return false, o.fail("write the marker "+markerName, err)
	}
}

// claimBucket checks that the bucket is this store's, and marks it so if
// it has no marker yet and may be (see the invariants above).
func (s *Store) claimBucket(ctx context.Context) error {
	o := s.objects
	var others []string
	for try := range claimTries + 1 {
		m, found, err := o.readMarker(ctx)
		if err != nil {
			return err
		}
		if found {
			if m.store != s.id {
				return s.wrongBucket(m)
			}
			return nil
		}
		if try == claimTries {
			break
		}
		if err := s.mayAdopt(ctx); err != nil {
			return err
		}
		began := time.Now()
		if others, err = s.elect(ctx); err != nil {
			return err
		}
		if len(others) > 0 {
			// Lost: another store claims the bucket too. Its marker, if it
			// won, refuses this store at the next look. Stores that all
			// lost try again at random times, spread wider each time and
			// over several elections' length (a loaded object storage),
			// so that one of them soon claims alone.
			spread := max(500*time.Millisecond, 4*time.Since(began)) * time.Duration(try+1)
			time.Sleep(time.Duration(mrand.Int64N(int64(spread))))
			continue
		}
		if _, err := o.writeMarker(ctx, s.markerBody()); err != nil {
			return err
		}
		// Read back: the marker there is ours, or another store's that
		// came first (an object storage with conditional writes).
	}
	if len(others) > 0 {
		return fmt.Errorf("%w: bucket %s has no marker %s, and other stores claim it (%s%s): "+
			"another Mailferry store is opening this bucket, or opened it and stopped before marking it. This store does not use it and changed nothing in it. "+
			"Check that database_url and s3_endpoint/s3_bucket are those of one store; if no other store uses this bucket, delete the objects under %s and start again",
			ErrWrongBucket, o, markerName, claimPrefix, strings.Join(others, ", "+claimPrefix), claimPrefix)
	}
	return fmt.Errorf("%w: bucket %s: the marker %s was written but cannot be read back", ErrObjectStorage, o, markerName)
}

// elect puts this store's claim on the bucket and lists the claims: it
// won when others is empty. A loser's claim is taken back.
func (s *Store) elect(ctx context.Context) (others []string, err error) {
	o := s.objects
	name := claimPrefix + s.id
	body := s.markerBody()
	pctx, cancel := o.opCtx(ctx, int64(len(body)))
	_, err = o.c.PutObject(pctx, o.bucket, name, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "text/plain; charset=utf-8", SendContentMd5: true, DisableMultipart: true})
	cancel()
	if err != nil {
		return nil, o.fail("write the claim "+name, err)
	}
	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for info := range o.c.ListObjects(lctx, o.bucket, minio.ListObjectsOptions{Prefix: claimPrefix, Recursive: true}) {
		if info.Err != nil {
			return nil, o.fail("list the claims", info.Err)
		}
		if id := strings.TrimPrefix(info.Key, claimPrefix); id != s.id {
			others = append(others, Printable(id, 64))
		}
	}
	if len(others) > 0 {
		dctx, cancel := o.opCtx(ctx, 0)
		defer cancel()
		if err := o.c.RemoveObject(dctx, o.bucket, name, minio.RemoveObjectOptions{}); err != nil {
			s.log.Warn("store: could not take back this store's claim on the bucket", "claim", name, "err", o.fail("delete the claim "+name, err))
		}
	}
	return others, nil
}

// wrongBucket words the refusal of a bucket whose marker m names another
// store.
func (s *Store) wrongBucket(m marker) error {
	made := ""
	if m.database != "" {
		made = " (made with database " + Printable(m.database, 200)
		if m.created != "" {
			made += " on " + Printable(m.created, 40)
		}
		made += ")"
	}
	// A bucket that holds no message bytes yet may have been marked by a
	// store opened once by mistake (a wrong database_url, since fixed).
	hint := ""
	if blob, err := s.objects.anyBlob(context.Background()); err == nil && blob == "" {
		hint = fmt.Sprintf("; the bucket holds no message bytes: if store %s is one that no longer exists (opened once with a wrong database), delete the object %s and the objects under %s from the bucket and start again", m.store, markerName, claimPrefix)
	}
	return fmt.Errorf("%w: bucket %s belongs to another Mailferry store: its marker %s names store %s%s, and this store's database %s is store %s. "+
		"Two stores on one bucket delete each other's mail, so this store does not use it and changed nothing in it. "+
		"Check that the database (database_url, or the data directory) and the bucket (s3_endpoint, s3_bucket) are those of one store: "+
		"every node of a store uses the same database and the same bucket, and a new store needs a new, empty bucket%s",
		ErrWrongBucket, s.objects, markerName, m.store, made, s.where, s.id, hint)
}

// mayAdopt tells whether this store may mark a bucket that has no marker:
// it holds no blob, or the blobs this store's database names.
func (s *Store) mayAdopt(ctx context.Context) error {
	o := s.objects
	blob, err := o.anyBlob(ctx)
	if err != nil {
		return err
	}
	var named string
	err = s.w.QueryRowContext(ctx, `SELECT key FROM blobs WHERE pack = ? AND size > 0 LIMIT 1`, objectPack).Scan(&named)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: identity: %w", err)
	}
	switch {
	case blob == "" && named == "":
		return nil // a new bucket, or one holding things not ours to touch
	case blob == "":
		return fmt.Errorf("%w: this store's database %s names message bytes kept in object storage (blob %s, and maybe more), but bucket %s holds none: "+
			"it is not this store's bucket, and its mail would be missing. Check s3_endpoint and s3_bucket", ErrWrongBucket, s.where, named, o)
	case named == "":
		return fmt.Errorf("%w: bucket %s holds message bytes (%s) but has no marker %s, and this store's database %s names none of its own there: "+
			"the bucket is another store's (made by a Mailferry before stores marked their bucket), and using it would delete that store's mail. "+
			"Check that database_url and s3_endpoint/s3_bucket are those of one store; if this store is new, give it a new, empty bucket "+
			"(its database names no message bytes in object storage, so it loses nothing)", ErrWrongBucket, o, blob, markerName, s.where)
	}
	keys, err := s.sampleObjects(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		ok, err := o.exists(ctx, k)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: bucket %s holds message bytes but has no marker %s, and it lacks blob %s that this store's database %s names: "+
				"it is not this store's bucket (another store's, made by a Mailferry before stores marked their bucket), and using it would delete that store's mail. "+
				"Check that database_url and s3_endpoint/s3_bucket are those of one store", ErrWrongBucket, o, markerName, k, s.where)
		}
	}
	s.log.Info("store: object storage bucket marked as this store's (its blobs are the ones the database names)",
		"bucket", o.String(), "store", s.id, "checked", len(keys))
	return nil
}

// sampleObjects returns up to markerSample distinct keys of objects the
// database names, taken after random points of the key space (each
// found through the key index).
func (s *Store) sampleObjects(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	for range markerSample {
		var b [32]byte
		rand.Read(b[:])
		var k string
		err := s.w.QueryRowContext(ctx, `SELECT key FROM blobs WHERE key >= ? AND pack = ? AND size > 0 ORDER BY key LIMIT 1`, hex.EncodeToString(b[:]), objectPack).Scan(&k)
		if errors.Is(err, sql.ErrNoRows) {
			err = s.w.QueryRowContext(ctx, `SELECT key FROM blobs WHERE pack = ? AND size > 0 ORDER BY key LIMIT 1`, objectPack).Scan(&k)
		}
		if err != nil {
			return nil, fmt.Errorf("store: identity: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// checkMarker fails, in words, unless the bucket's marker names this
// store: Compact deletes nothing then.
func (s *Store) checkMarker(ctx context.Context) error {
	m, found, err := s.objects.readMarker(ctx)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("%w: bucket %s no longer holds the marker %s naming this store (%s): someone deleted it, or the bucket is not the one this store opened; "+
			"this store deletes nothing in it. Restart Mailferry to have the bucket checked and marked again", ErrWrongBucket, s.objects, markerName, s.id)
	case m.store != s.id:
		return s.wrongBucket(m)
	}
	return nil
}
