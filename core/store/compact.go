package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Compaction: giving back the space of deleted messages in pack files.

// CompactResult tells what Compact did.
type CompactResult struct {
	PacksRemoved   int   // pack files deleted
	BlobsMoved     int   // live blobs copied out of mostly dead packs
	BytesFreed     int64 // disk space given back (packs and objects)
	ObjectsRemoved int   // objects deleted from the object storage
}

// Compact gives back the disk space of deleted messages, and closes this
// Store's read handles on packs other processes deleted: a pack no Store
// has written for packGrace and with no live blob is deleted, and one that
// is mostly dead has its live blobs copied to this Store's pack first. It
// is safe to run at any time; each step commits on its own, so an
// interrupted Compact loses nothing. With object storage, the objects no
// blob row names that are older than an hour are deleted too (sweep.go).
func (s *Store) Compact(ctx context.Context) (CompactResult, error) {
	var res CompactResult
	s.packs.dropGone()
	ids, err := packIDs(s.packs.dir)
	if err != nil {
		return res, fmt.Errorf("store: %w", err)
	}
	// The highest-numbered pack stays, even dead: a new pack is numbered
	// after it, so no number is used twice and a read handle another
	// process still holds on a deleted pack never stands for a new one.
	if len(ids) > 0 {
		ids = ids[:len(ids)-1]
	}
	// A pack that cannot be compacted (unreadable, a blob that no longer
	// matches its key) is reported and left as it is; the others go on.
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		removed, freed, moved, err := s.compactPack(ctx, id)
		res.BlobsMoved += moved
		if err != nil {
			errs = append(errs, err)
		} else if removed {
			res.PacksRemoved++
			res.BytesFreed += freed
		}
	}
	if s.objects != nil {
		n, freed, err := s.sweepObjects(ctx)
		res.ObjectsRemoved += n
		res.BytesFreed += freed
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// compactPack deletes pack id if no Store writes it and it is dead or
// mostly dead (copying its live blobs on first), and says whether it did
// and how much that freed.
func (s *Store) compactPack(ctx context.Context, id int64) (removed bool, freed int64, moved int, err error) {
	busy, size, err := s.packIdle(id)
	if err != nil || busy {
		return false, 0, 0, err
	}
	// Counted now that the pack is idle: no blob can join it any more.
	var live, count int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0), count(*) FROM blobs WHERE pack = ?`, id).Scan(&live, &count); err != nil {
		return false, 0, 0, fmt.Errorf("store: %w", err)
	}
	if count > 0 && live*2 >= size {
		return false, 0, 0, nil // mostly live: not worth copying
	}
	if count > 0 {
		if moved, err = s.movePack(ctx, id); err != nil {
			return false, 0, moved, err
		}
	}
	if err := s.removePack(ctx, id); err != nil {
		return false, 0, moved, err
	}
	return true, size, moved, nil
}

// packIdle tells whether pack id is being written (by this or another
// process) or was within packGrace and, if not, its size.
func (s *Store) packIdle(id int64) (busy bool, size int64, err error) {
	unlock, err := s.packs.dirLock()
	if err != nil {
		return false, 0, fmt.Errorf("store: compact: %w", err)
	}
	defer unlock()
	if busy, err = s.packs.inUse(id); err != nil || busy {
		return busy, 0, err
	}
	st, err := os.Stat(packName(s.packs.dir, id))
	if err != nil {
		return false, 0, fmt.Errorf("store: compact: %w", err)
	}
	if time.Since(st.ModTime()) < packGrace {
		return true, 0, nil
	}
	return false, st.Size(), nil
}

// movePack copies the live blobs of pack id to this Store's pack, a few
// megabytes per transaction, checking each one against its key on the way.
func (s *Store) movePack(ctx context.Context, id int64) (int, error) {
	type blob struct {
		id, off, size int64
		key           string
	}
	list, err := queryAll(ctx, s.r, func(r rowScanner) (blob, error) {
		var b blob
		return b, r.Scan(&b.id, &b.off, &b.size, &b.key)
	}, `SELECT id, off, size, key FROM blobs WHERE pack = ? ORDER BY off`, id)
	if err != nil {
		return 0, err
	}
	moved := 0
	for len(list) > 0 {
		var part []blob
		var bytes int64
		for len(list) > 0 && (len(part) == 0 || bytes+list[0].size <= 8<<20) {
			bytes += list[0].size
			part = append(part, list[0])
			list = list[1:]
		}
		err := s.write(ctx, func(tx wtx, ch *changes) error {
			for _, b := range part {
				data, err := s.packs.read(id, b.off, b.size)
				if err != nil {
					return fmt.Errorf("store: compact: read blob %s: %w", b.key, err)
				}
				if ok, _ := checkKey(b.key, data); !ok {
					return fmt.Errorf("store: compact: blob %s in %s does not match its key; pack left as it is", b.key, packName(s.packs.dir, id))
				}
				nid, noff, err := s.packs.append(data)
				if err != nil {
					return err
				}
				// Only if it is still there (a blob freed meanwhile stays freed).
				if _, err := tx.ExecContext(ctx, `UPDATE blobs SET pack = ?, off = ? WHERE id = ? AND pack = ? AND off = ?`, nid, noff, b.id, id, b.off); err != nil {
					return fmt.Errorf("store: compact: %w", err)
				}
				ch.wrotePack(nid, noff+b.size)
			}
			return nil
		})
		if err != nil {
			return moved, err
		}
		moved += len(part)
	}
	return moved, nil
}

// removePack deletes pack id once no blob names it.
func (s *Store) removePack(ctx context.Context, id int64) error {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM blobs WHERE pack = ?`, id).Scan(&n); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("store: compact: pack %d still holds %d blobs", id, n)
	}
	// The count saw every commit, also one not yet durable (an EXPUNGE
	// waiting for its grouped fsync, walsync.go) that a power cut would
	// take back, and with it the blob rows naming this pack: the bytes go
	// only once what freed them is on disk.
	if err := s.logDurable(); err != nil {
		return fmt.Errorf("store: compact: pack %d left: %w", id, err)
	}
	if err := s.packs.remove(id); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}
