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
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Epochs: telling a store's database from a copy of it.
//
// A copy of a store's database (a backup restored beside the live store,
// or in its place; a staging copy; a second machine started from a VM
// snapshot; a PostgreSQL physical copy, or a dump restored into another
// database) carries the store's ID, so the bucket's marker (identity.go)
// lets it in. Its Compact would delete every object the live store wrote
// since the copy (the copy's database does not name them), and every
// object whose message the copy expunged while the live store still
// names it. A copy cannot be told from the original by what it holds:
// only by what each does after they part. So each database leaves a trace
// in the bucket that the other does not know.
//
// Invariants:
//   - Every process with the store open mints an epoch at Open, every
//     epochPeriod after, and at Close: a random token, committed into its
//     database (store_epochs) first, then put into the bucket as the
//     object "mailferry-epochs/<store ID>/<token>" (a new name each time:
//     no write hides another's, conditional PUT or not). Another store's
//     epochs (a store opened once on this bucket by mistake, whose marker
//     was then deleted) are not looked at: the marker keeps other stores
//     out.
//   - A sweep deletes a batch only if every epoch in the bucket is one its
//     database committed, listed (then looked up) under the write lock
//     just before the batch. Two databases that parted each mint epochs
//     the other does not know: from the first one seen on, neither deletes
//     anything (they go on serving and storing mail) until an admin says
//     which database is the store's (AdoptBucket, `mailferry store
//     adopt-bucket`). That database then knows the other's epochs, and
//     its sweep keeps every object last modified before the adoption (the
//     other database's mail, or the mail a restored backup does not name:
//     recoverable from the bucket), unless the admin asks otherwise.
//   - A process deletes nothing before it has been open for epochSettle
//     (two periods): another database of the store that is running mints
//     an epoch meanwhile, which the check then finds. So a copy opened
//     beside a running store deletes nothing, however old the copy.
//   - Nodes of one store share its database, so each knows the others'
//     epochs (the row commits before the object is put, and a check lists
//     before it looks up): they sweep as one store.
//   - Epochs do not pile up: a sweep whose check passed deletes the epoch
//     objects of its own database older than epochKeep (never the newest),
//     and the rows older than epochRowKeep whose object is gone.
//
// A database opened at another place than its newest epoch's (another
// file, another PostgreSQL database or cluster: place.go) is held the
// same way until adopted, whether it is a copy or the store moved.
//
// What this cannot see: a copy run while the original is stopped, when
// the copy knows the original's last epoch (a snapshot of a stopped
// server started elsewhere while the original stays off, or a restore in
// place of a backup taken after the last epoch of a store that then
// crashed). Nothing in the bucket tells the two apart until the original
// mints again: the copy may meanwhile delete what it expunges, and the
// objects the original wrote after its last epoch (at most epochPeriod of
// them, after a crash; none after a clean stop, which mints).

// epochPrefix is where epochs live in the bucket (outside "blobs/": no
// sweep of blobs takes them), under the store's ID.
const epochPrefix = "mailferry-epochs/"

// epochDir is where this store's epochs live.
func (s *Store) epochDir() string { return epochPrefix + s.id + "/" }

const (
	// epochPeriod is how often a process with the store open mints.
	epochPeriod = 10 * time.Minute
	// epochRetry is how soon a mint that failed is tried again.
	epochRetry = time.Minute
	// epochSettle is how long a process must have been open before it
	// deletes anything: every other running process of any database of
	// the store has minted at least once meanwhile.
	epochSettle = 2 * epochPeriod
	// epochKeep is how long a sweep keeps its own database's epoch
	// objects; epochRowKeep how long their rows outlive them.
	epochKeep    = 24 * time.Hour
	epochRowKeep = 30 * 24 * time.Hour
)

// ErrDiverged: the bucket holds epochs this store's database did not
// write: another database of the same store (a copy, a restore) uses it.
// Compact deletes nothing then; serving and storing go on.
var ErrDiverged = errors.New("store: another database of this store uses its bucket")

// epoch is one epoch object as listed.
type epoch struct {
	token string
	at    time.Time // LastModified: the object storage's clock
}

// newToken returns 128 random bits in hex.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

// mintEpoch commits a new epoch into the database, then puts it into the
// bucket, and returns it.
func (s *Store) mintEpoch(ctx context.Context) (string, error) {
	// A store stopped after a failed fsync of its log (ErrStopped) writes
	// nothing more: an epoch whose row a power cut then lost would hold
	// the sweep for nothing.
	if s.wal != nil && !s.wal.usable() {
		return "", ErrStopped
	}
	token := newToken()
	if err := s.execAlone(ctx, `INSERT INTO store_epochs(token, made, adopted, place) VALUES (?, ?, 0, ?)`, token, time.Now().UnixMilli(), s.placeNow); err != nil {
		return "", fmt.Errorf("store: epoch: %w", err)
	}
	host, _ := os.Hostname()
	body := fmt.Appendf(nil, `mailferry-epoch: %s
mailferry-store: %s
database: %s
host: %s
pid: %d
made: %s

Each process of a Mailferry store writes such an object at start and every
%v while it runs, and records it in its database first. A database that
finds here an epoch it did not record is not the only one using this
bucket (a copy or a restore of it is): it then deletes nothing here until
an admin runs "mailferry store adopt-bucket" with the one that is the
store's.
`, token, s.id, s.where, Printable(host, 100), os.Getpid(), time.Now().UTC().Format(time.RFC3339), epochPeriod)
	o := s.objects
	pctx, cancel := o.opCtx(ctx, int64(len(body)))
	defer cancel()
	if _, err := o.c.PutObject(pctx, o.bucket, s.epochDir()+token, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "text/plain; charset=utf-8", SendContentMd5: true, DisableMultipart: true}); err != nil {
		return "", o.fail("write the epoch "+s.epochDir()+token, err)
	}
	return token, nil
}

// startEpochs mints this process's first epoch and then one every
// epochPeriod until Close (stopEpochs). A mint that fails is logged and
// tried again sooner: it does not stop the store.
func (s *Store) startEpochs() {
	s.opened = time.Now()
	if _, err := s.mintEpoch(context.Background()); err != nil {
		s.log.Warn("store: could not mark this process's start in the bucket; trying again", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.epochStop = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		wait := s.objects.period
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = s.objects.period
			if _, err := s.mintEpoch(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("store: could not mark this process's work in the bucket; trying again", "err", err)
				wait = min(wait, epochRetry)
			}
		}
	}()
}

// stopEpochs ends the minting, and mints the last epoch of a clean stop:
// a backup taken before it is told from the store at the next start.
func (s *Store) stopEpochs() {
	if s.epochStop == nil {
		return
	}
	s.epochStop()
	s.epochStop = nil
	ctx, cancel := context.WithTimeout(context.Background(), s.objects.timeout)
	defer cancel()
	if _, err := s.mintEpoch(ctx); err != nil {
		s.log.Warn("store: could not mark this process's stop in the bucket", "err", err)
	}
}

// listEpochs lists the store's epochs in the bucket.
func (s *Store) listEpochs(ctx context.Context) ([]epoch, error) {
	o := s.objects
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var list []epoch
	dir := s.epochDir()
	for info := range o.c.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if info.Err != nil {
			return nil, o.fail("list the epochs", info.Err)
		}
		if t := strings.TrimPrefix(info.Key, dir); isToken(t) {
			list = append(list, epoch{token: t, at: info.LastModified})
		}
	}
	return list, nil
}

// knownEpochs returns which of list this store's database recorded.
func (s *Store) knownEpochs(ctx context.Context, list []epoch) (map[string]bool, error) {
	known := map[string]bool{}
	for part := range slices.Chunk(list, 500) {
		args := make([]any, len(part))
		for i, e := range part {
			args[i] = e.token
		}
		// On a reader: a sweep checks while its transaction holds the
		// writer (SQLite's only writer connection).
		tokens, err := queryAll(ctx, s.r, func(r rowScanner) (string, error) {
			var t string
			return t, r.Scan(&t)
		}, `SELECT token FROM store_epochs WHERE token IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: epochs: %w", err)
		}
		for _, t := range tokens {
			known[t] = true
		}
	}
	return known, nil
}

// checkEpochs fails with ErrDiverged, in words, when the bucket holds an
// epoch this store's database did not record; it returns the listing.
// Its outcome is kept for SweepHeld.
func (s *Store) checkEpochs(ctx context.Context) ([]epoch, map[string]bool, error) {
	list, err := s.listEpochs(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Looked up after the listing: an epoch another node of this
	// database put was committed before.
	known, err := s.knownEpochs(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	var foreign []epoch
	for _, e := range list {
		if !known[e.token] {
			foreign = append(foreign, e)
		}
	}
	if len(foreign) == 0 {
		err := s.checkMoved(ctx)
		s.setHeld(err)
		if err != nil {
			return nil, nil, err
		}
		return list, known, nil
	}
	err = s.diverged(ctx, foreign)
	s.setHeld(err)
	return nil, nil, err
}

// diverged words the refusal to delete for the foreign epochs.
func (s *Store) diverged(ctx context.Context, foreign []epoch) error {
	newest := slices.MaxFunc(foreign, func(a, b epoch) int { return a.at.Compare(b.at) })
	oldest := slices.MinFunc(foreign, func(a, b epoch) int { return a.at.Compare(b.at) })
	by := ""
	if f, err := s.objects.readEpoch(ctx, s.epochDir()+newest.token); err == nil && f["database"] != "" {
		by = fmt.Sprintf(" (the newest written by database %s on host %s)", Printable(f["database"], 200), Printable(f["host"], 100))
	}
	return fmt.Errorf("%w: bucket %s holds %d epoch(s) under %s that this store's database %s did not write, from %s to %s%s: "+
		"another database of store %s uses this bucket, a copy of this one or this one restored from a backup "+
		"(a backup restored beside the store or in its place, a staging copy, a clone of this machine, a PostgreSQL copy). "+
		"Each would delete the mail the other wrote, so this store deletes nothing in the bucket (it serves and stores mail as before). "+
		"Stop the database that is not the store's (or give it a bucket of its own), then run 'mailferry store adopt-bucket' with the configuration of the one that is",
		ErrDiverged, s.objects, len(foreign), s.epochDir(), s.where,
		oldest.at.UTC().Format(time.RFC3339), newest.at.UTC().Format(time.RFC3339), by, s.id)
}

// readEpoch reads the fields of the epoch object name.
func (o *objects) readEpoch(ctx context.Context, name string) (map[string]string, error) {
	ctx, cancel := o.opCtx(ctx, 0)
	defer cancel()
	obj, err := o.c.GetObject(ctx, o.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, markerMax))
	if err != nil {
		return nil, err
	}
	f := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			f[k] = v
		}
	}
	return f, nil
}

// setHeld records why the sweep deletes nothing (nil: it may).
func (s *Store) setHeld(err error) {
	s.heldMu.Lock()
	s.held = err
	s.heldMu.Unlock()
}

// SweepHeld says, in words, why this store deletes nothing in its bucket
// (another database of the store uses it: ErrDiverged), as last checked
// (at Open and at each Compact); "" when nothing holds the sweep.
func (s *Store) SweepHeld() string {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held == nil {
		return ""
	}
	return s.held.Error()
}

// sweepFloor returns the time up to which objects are kept whatever
// their rows: the latest adoption's (a later adoption with deleteUnnamed
// gives up what an earlier one kept); zero when none.
func (s *Store) sweepFloor(ctx context.Context) (time.Time, error) {
	var ms int64
	err := s.r.QueryRowContext(ctx, `SELECT keep_before FROM bucket_adoptions ORDER BY at DESC, keep_before DESC LIMIT 1`).Scan(&ms)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("store: sweep: %w", err)
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

// cleanEpochs deletes this database's epoch objects older than epochKeep,
// but the newest, and the rows older than epochRowKeep whose object is
// gone. list and known are what a check that passed just found.
func (s *Store) cleanEpochs(ctx context.Context, list []epoch, known map[string]bool) error {
	var newest epoch
	for _, e := range list {
		if known[e.token] && e.at.After(newest.at) {
			newest = e
		}
	}
	ch := make(chan minio.ObjectInfo, len(list))
	n := 0
	for _, e := range list {
		if known[e.token] && e != newest && time.Since(e.at) > epochKeep {
			ch <- minio.ObjectInfo{Key: s.epochDir() + e.token}
			n++
		}
	}
	close(ch)
	if n > 0 {
		dctx, cancel := s.objects.opCtx(ctx, 0)
		defer cancel()
		for e := range s.objects.c.RemoveObjects(dctx, s.objects.bucket, ch, minio.RemoveObjectsOptions{}) {
			if e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
				return s.objects.fail("delete the epoch "+e.ObjectName, e.Err)
			}
		}
	}
	// A row goes only once its object is not listed: an epoch in the
	// bucket always has its row, whatever another node lists meanwhile.
	old, err := queryAll(ctx, s.w, func(r rowScanner) (string, error) {
		var t string
		return t, r.Scan(&t)
	}, `SELECT token FROM store_epochs WHERE made < ?`, time.Now().Add(-epochRowKeep).UnixMilli())
	if err != nil {
		return fmt.Errorf("store: epochs: %w", err)
	}
	listed := map[string]bool{}
	for _, e := range list {
		listed[e.token] = true
	}
	for _, t := range old {
		if listed[t] {
			continue
		}
		if err := s.execAlone(ctx, `DELETE FROM store_epochs WHERE token = ?`, t); err != nil {
			return fmt.Errorf("store: epochs: %w", err)
		}
	}
	return nil
}

// AdoptResult tells what AdoptBucket did.
type AdoptResult struct {
	Epochs int // other databases' epochs now known to this one
	// Kept and KeptBytes count the objects in the bucket this database
	// does not name that the sweep keeps (last modified before the
	// adoption): the other database's mail, or the mail written after
	// the backup this database was restored from. Zero with deleteUnnamed.
	Kept      int
	KeptBytes int64
	// KeepBefore is the adoption's time on the object storage's clock.
	KeepBefore time.Time
}

// AdoptBucket makes this store's database the one its bucket belongs to,
// after another database of the same store used it (ErrDiverged): the
// admin says so once the other is stopped. The other's epochs become
// known to this database, so its sweep deletes again; and, unless
// deleteUnnamed, every object last modified before now is kept whatever
// the database names (none of the other database's mail is deleted by
// it: an admin can find it in the bucket). The bucket's marker must name
// this store.
func (s *Store) AdoptBucket(ctx context.Context, deleteUnnamed bool) (AdoptResult, error) {
	var res AdoptResult
	if s.objects == nil {
		return res, fmt.Errorf("%w: this store keeps its message bytes in pack files, not in a bucket", ErrInvalid)
	}
	if err := s.checkMarker(ctx); err != nil {
		return res, err
	}
	list, err := s.listEpochs(ctx)
	if err != nil {
		return res, err
	}
	known, err := s.knownEpochs(ctx, list)
	if err != nil {
		return res, err
	}
	for _, e := range list {
		if known[e.token] {
			continue
		}
		if err := s.execAlone(ctx, `INSERT INTO store_epochs(token, made, adopted) VALUES (?, ?, 1) ON CONFLICT(token) DO NOTHING`,
			e.token, time.Now().UnixMilli()); err != nil {
			return res, fmt.Errorf("store: adopt: %w", err)
		}
		res.Epochs++
	}
	// The adoption's own epoch tells the time on the object storage's
	// clock, which the objects' times are compared with.
	token, err := s.mintEpoch(ctx)
	if err != nil {
		return res, err
	}
	sctx, cancel := s.objects.opCtx(ctx, 0)
	info, err := s.objects.c.StatObject(sctx, s.objects.bucket, s.epochDir()+token, minio.StatObjectOptions{})
	cancel()
	if err != nil {
		return res, s.objects.fail("check the epoch "+s.epochDir()+token, err)
	}
	res.KeepBefore = info.LastModified
	keep := int64(0)
	if !deleteUnnamed {
		keep = res.KeepBefore.UnixMilli()
		if res.Kept, res.KeptBytes, err = s.unnamedObjects(ctx); err != nil {
			return res, err
		}
	}
	if err := s.execAlone(ctx, `INSERT INTO bucket_adoptions(at, keep_before, epochs) VALUES (?, ?, ?)`,
		time.Now().UnixMilli(), keep, res.Epochs); err != nil {
		return res, fmt.Errorf("store: adopt: %w", err)
	}
	// The database's moves are this adoption's too (place.go).
	if err := s.execAlone(ctx, `DELETE FROM store_moves`); err != nil {
		return res, fmt.Errorf("store: adopt: %w", err)
	}
	s.setHeld(nil)
	s.log.Info("store: bucket adopted by this database", "bucket", s.objects.String(), "store", s.id,
		"epochs", res.Epochs, "kept_objects", res.Kept, "kept_bytes", res.KeptBytes)
	return res, nil
}

// unnamedObjects counts the blobs in the bucket no blob row names.
func (s *Store) unnamedObjects(ctx context.Context) (n int, size int64, err error) {
	o := s.objects
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var batch []minio.ObjectInfo
	count := func() error {
		if len(batch) == 0 {
			return nil
		}
		args := make([]any, len(batch))
		for i, info := range batch {
			args[i] = strings.TrimPrefix(info.Key, objectPrefix)
		}
		keys, err := queryAll(ctx, s.r, func(r rowScanner) (string, error) {
			var k string
			return k, r.Scan(&k)
		}, `SELECT key FROM blobs WHERE key IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
		if err != nil {
			return err
		}
		named := map[string]bool{}
		for _, k := range keys {
			named[k] = true
		}
		for _, info := range batch {
			if !named[strings.TrimPrefix(info.Key, objectPrefix)] {
				n++
				size += info.Size
			}
		}
		batch = batch[:0]
		return nil
	}
	for info := range o.c.ListObjects(lctx, o.bucket, minio.ListObjectsOptions{Prefix: objectPrefix, Recursive: true}) {
		if info.Err != nil {
			return n, size, o.fail("list", info.Err)
		}
		if !isBlobKey(strings.TrimPrefix(info.Key, objectPrefix)) {
			continue
		}
		batch = append(batch, info)
		if len(batch) == sweepBatch {
			if err := count(); err != nil {
				return n, size, err
			}
		}
	}
	return n, size, count()
}
