package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Sweeping the object storage: Compact deletes the objects no blob row
// names (their messages were expunged), and only those older than
// objectGrace. How a delete is kept from taking an object a transaction is
// about to name is told in object.go: the mark in object_sweeps, the
// write lock, and the check at commit (checkObjects). That only this
// store's database deletes, and only once no copy of it uses the bucket:
// identity.go and epoch.go.

// sweepBatch is how many objects one delete request (and one hold of the
// write lock) takes at most.
const sweepBatch = 500

// stagedObject is an object a transaction names that was put before it
// (Stage): the time its PUT began tells whether a sweep may have deleted
// it since.
type stagedObject struct {
	key string
	at  time.Time
}

// sweepObjects deletes the unreferenced objects older than the grace, and
// says how many and how many bytes.
func (s *Store) sweepObjects(ctx context.Context) (removed int, freed int64, err error) {
	o := s.objects
	// Until every other running database of this store has minted an
	// epoch since this process opened, this one cannot know it is alone
	// (epoch.go).
	if time.Since(s.opened) < o.settle {
		s.log.Debug("store: sweep waits until this process has been open a while", "open", time.Since(s.opened).Round(time.Second), "settle", o.settle)
		return 0, 0, nil
	}
	// Checked before anything is listed, and again before each batch.
	epochs, known, err := s.checkEpochs(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: sweep: nothing deleted: %w", err)
	}
	floor, err := s.sweepFloor(ctx)
	if err != nil {
		return 0, 0, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var batch []minio.ObjectInfo
	for info := range o.c.ListObjects(lctx, o.bucket, minio.ListObjectsOptions{Prefix: objectPrefix, Recursive: true}) {
		if info.Err != nil {
			return removed, freed, o.fail("list", info.Err)
		}
		key, ok := strings.CutPrefix(info.Key, objectPrefix)
		if !ok || !isBlobKey(key) || time.Since(info.LastModified) < o.grace || !info.LastModified.After(floor) {
			continue
		}
		batch = append(batch, info)
		if len(batch) == sweepBatch {
			n, size, err := s.sweepBatch(ctx, batch)
			removed, freed = removed+n, freed+size
			if err != nil {
				return removed, freed, err
			}
			batch = batch[:0]
		}
	}
	if err := ctx.Err(); err != nil {
		return removed, freed, err
	}
	n, size, err := s.sweepBatch(ctx, batch)
	removed, freed = removed+n, freed+size
	if err != nil {
		return removed, freed, err
	}
	return removed, freed, s.cleanEpochs(ctx, epochs, known)
}

// sweepBatch deletes the objects of batch no blob row names. It first
// commits the mark that tells committers a sweep may delete until then,
// then, holding the write lock (so that no transaction names one of them
// meanwhile), checks the rows and deletes.
func (s *Store) sweepBatch(ctx context.Context, batch []minio.ObjectInfo) (int, int64, error) {
	if len(batch) == 0 {
		return 0, 0, nil
	}
	// The mark is on the database's clock, as the stage times it is
	// compared with (clock.go); deadline is the same instant on this
	// node's monotonic clock.
	dbNow, err := s.dbNow(ctx, s.w)
	if err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	deadline := time.Now().Add(sweepHold)
	until := dbNow.Add(sweepHold)
	if err := s.execAlone(ctx, `INSERT INTO object_sweeps(id, busy_until) VALUES (1, ?)
ON CONFLICT(id) DO UPDATE SET busy_until = max(object_sweeps.busy_until, excluded.busy_until)`, until.UnixMilli()); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	if s.sweepMarked != nil {
		s.sweepMarked()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	defer tx.Rollback() // the transaction only holds the write lock
	if err := s.beginWrite(ctx, tx); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	args := make([]any, len(batch))
	for i, info := range batch {
		args[i] = strings.TrimPrefix(info.Key, objectPrefix)
	}
	rows, err := tx.QueryContext(ctx, `SELECT key FROM blobs WHERE key IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	named := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("store: sweep: %w", err)
		}
		named[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: %w", err)
	}
	var gone []minio.ObjectInfo
	var size int64
	for _, info := range batch {
		if !named[strings.TrimPrefix(info.Key, objectPrefix)] {
			gone = append(gone, info)
			size += info.Size
		}
	}
	if len(gone) == 0 {
		return 0, 0, nil
	}
	// The rows read may show an EXPUNGE committed but not yet durable
	// (waiting for its grouped fsync, walsync.go), which a power cut would
	// take back with the blob row naming the object: objects go only once
	// what freed them is on disk.
	if err := s.logDurable(); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: nothing deleted: %w", err)
	}
	// Only in this store's own bucket (identity.go): the objects another
	// store's database names are not garbage.
	if err := s.checkMarker(ctx); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: nothing deleted: %w", err)
	}
	// And only while no other database of this store uses the bucket
	// (epoch.go).
	if _, _, err := s.checkEpochs(ctx); err != nil {
		return 0, 0, fmt.Errorf("store: sweep: nothing deleted: %w", err)
	}
	// Deleting must end before the mark does, with room for the clocks of
	// other processes; each delete request is bounded by the timeout.
	if time.Until(deadline) < s.objects.timeout+objectClockSkew/2 {
		return 0, 0, fmt.Errorf("store: sweep: %w: the database's write lock came too late to delete within the sweep's mark", ErrObjectStorage)
	}
	ch := make(chan minio.ObjectInfo, len(gone))
	for _, info := range gone {
		ch <- minio.ObjectInfo{Key: info.Key}
	}
	close(ch)
	dctx, cancel := s.objects.opCtx(ctx, 0)
	defer cancel()
	var errs []error
	failed := 0
	for e := range s.objects.c.RemoveObjects(dctx, s.objects.bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
			failed++
			if len(errs) < 3 {
				errs = append(errs, s.objects.fail("delete "+e.ObjectName, e.Err))
			}
		}
	}
	if failed > 0 {
		// Which of them are gone is not known: count none as freed.
		return 0, 0, fmt.Errorf("store: sweep: %d of %d objects not deleted: %w", failed, len(gone), errors.Join(errs...))
	}
	return len(gone), size, nil
}

// checkObjects makes sure, in tx (which holds the write lock), that the
// staged objects a transaction names were not swept after their PUT began:
// any that a sweep may have deleted meanwhile is looked at, and one that
// is gone fails the commit with ErrNotDurable.
func (s *Store) checkObjects(ctx context.Context, tx wtx, list []stagedObject) error {
	if len(list) == 0 || s.objects == nil {
		return nil
	}
	var until int64
	err := tx.QueryRowContext(ctx, `SELECT busy_until FROM object_sweeps WHERE id = 1`).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // never swept
	} else if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	mark := time.UnixMilli(until).Add(objectClockSkew)
	seen := map[string]bool{}
	for _, so := range list {
		if so.at.After(mark) || seen[so.key] {
			continue
		}
		seen[so.key] = true
		ok, err := s.objects.exists(ctx, so.key)
		if err != nil {
			return fmt.Errorf("store: blob %s: %w: %w", so.key, ErrNotDurable, err)
		}
		if !ok {
			return fmt.Errorf("store: blob %s: %w: Compact deleted its object after it was staged; stage it again", so.key, ErrNotDurable)
		}
	}
	return nil
}
