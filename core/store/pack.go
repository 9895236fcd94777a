package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Message bytes live in append-only pack files in a directory beside the
// database ("<db>-packs/00000001.pack", ...); the blobs row names the pack
// and the offset. SQLite keeps only metadata, so a copy writes each
// message's bytes once, sequentially, instead of through SQLite's pages and
// its write-ahead log.
//
// Invariants:
//   - A pack is appended to by one Store only: the one that created it
//     (O_EXCL) and holds its lock (lockPack) while it does. Several
//     processes may use one store (serve, and the CLI's migrate), each
//     writing its own pack; nobody ever cuts or rewrites bytes another may
//     be writing.
//   - A pack's bytes are synced to disk before any transaction that names
//     them commits (a pack that is left for a new one is synced as it is
//     left). A committed blob row never points at bytes a crash can take
//     back.
//   - A failed write or fsync of a pack abandons it for good: once the
//     failure is reported, this Store starts no write or fsync of it again
//     (the next write starts a new pack), because Linux reports a lost
//     write-back only once and a later fsync may succeed without the lost
//     bytes. Its bytes synced before the failure stay valid; every other
//     blob staged or written into it is refused: SyncStaged and the
//     commit of any transaction naming it fail with ErrNotDurable, so no
//     committed blob row names them. Every pack a transaction names is
//     checked at commit, not only the newest.
//   - Bytes no committed blob row names (a rolled back transaction, a
//     staged blob never used, a crash) are dead space, given back by
//     Compact. Compact only touches packs whose lock it can take and that
//     were left packGrace ago: copies the live blobs of a mostly dead pack
//     to its own pack, commits their new places, and only then deletes the
//     old file, once the log is durable (an EXPUNGE that freed its last
//     blob may be seen before its fsync: logDurable). It never deletes the
//     highest-numbered pack, so that no
//     pack number is used twice.
//
// Blobs written before packs existed (schema 2) stay in blob_data, where
// Blob still finds them.

const packExt = ".pack"

// packGrace is how long a pack its writer has left must have gone
// unwritten before Compact touches it: a place in it may have been handed
// out to a staged blob or a running transaction that commits only after
// the pack was left (blob rows Compact cannot see yet).
const packGrace = time.Hour

// packs manages the pack directory: read handles for any reader, and the
// pack this Store appends to, which any goroutine may do.
type packs struct {
	dir     string
	maxSize int64

	mu    sync.Mutex
	files map[int64]*os.File // read handles by pack number
	reads atomic.Int64       // reads made of packs (read), for tests

	syncMu sync.Mutex // held while syncing or leaving the pack appended to
	wmu    sync.Mutex // guards the fields below
	w      packFile   // the pack this Store appends to (locked); nil before the first write
	wid    int64
	end    int64 // end of the bytes written to pack wid
	synced int64 // end of the bytes of pack wid known to be on disk
	// broken is the failed write or fsync that abandoned pack wid: nothing
	// more is written to it, the next append starts a new pack, and its
	// bytes past synced are lost.
	broken error
	// lost holds the packs this Store abandoned after a failed write or
	// fsync (see broken), by number; the packs it left in good order
	// (synced as they were left) are not in it.
	lost map[int64]packLoss

	// Direct writes (packdirect.go): dw is pack wid opened with O_DIRECT
	// (nil when not in use), buf its aligned buffer of the bytes from
	// flushed to end, not yet in the file.
	dw      packFile
	buf     []byte
	flushed int64
	// fls are the queued direct writes, oldest first (at most
	// directQueue), free the buffers no write uses but buf.
	fls  []*directFlush
	free [][]byte
	// wrapDirect (tests) stands between this Store and each direct
	// handle, as wrap does for the ordinary one.
	wrapDirect func(*os.File) packFile

	// room is the disk reserve (reserve.go): released when a write fails
	// for a full disk, made again after a write succeeds.
	room *reserve

	// wrap, when set (only by tests), stands between this Store and each
	// pack it creates, to inject write and fsync failures.
	wrap func(*os.File) packFile
}

// packFile is what this Store does to the pack it appends to: an
// *os.File, or in tests a wrapper that fails on demand (packs.wrap).
type packFile interface {
	WriteAt(b []byte, off int64) (int, error)
	Sync() error
	Close() error
}

// packLoss is what a failed write or fsync left of a pack: the bytes
// before durable are on disk, those after it may be gone.
type packLoss struct {
	durable int64
	err     error
}

func packName(dir string, id int64) string {
	return filepath.Join(dir, fmt.Sprintf("%08d%s", id, packExt))
}

// packIDs lists the pack numbers in dir, ascending.
func packIDs(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), packExt)
		if !ok {
			continue
		}
		if id, err := strconv.ParseInt(n, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// openPacks opens the pack directory, creating it if need be, and makes
// it 0700 (whatever the umask, and also if an older Mailferry or someone
// else made it looser). The first write creates this Store's own pack.
func openPacks(dir string, maxSize int64) (*packs, error) {
	if err := mkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(dir)
		if err == nil && st.Mode().Perm() != 0o700 {
			err = os.Chmod(dir, 0o700)
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return &packs{dir: dir, maxSize: maxSize, files: map[int64]*os.File{}, room: newReserve(dir)}, nil
}

// rotate makes a new pack, numbered after every existing one, the one to
// append to, after syncing the one it leaves. A pack whose sync fails is
// left all the same, as abandoned (see lost), so that the append that
// called rotate still goes to the new pack. The caller holds syncMu and
// wmu.
func (p *packs) rotate() error {
	if p.w != nil && p.broken == nil && p.synced < p.end {
		if err := p.flushLocked(); err != nil {
			// broken is set: the pack is left as abandoned below.
		} else if err := p.w.Sync(); err != nil {
			p.broken = fmt.Errorf("sync: %w", err)
		} else {
			p.synced = p.end
		}
	}
	// Creating and locking a pack is one step for every process (dirLock),
	// so Compact never finds a new pack before its writer locked it.
	unlock, err := p.dirLock()
	if err != nil {
		return fmt.Errorf("store: new pack: %w", err)
	}
	defer unlock()
	ids, err := packIDs(p.dir)
	if err != nil {
		return fmt.Errorf("store: new pack: %w", err)
	}
	id := p.wid + 1
	if len(ids) > 0 {
		id = max(id, ids[len(ids)-1]+1)
	}
	var f *os.File
	for ; ; id++ {
		f, err = os.OpenFile(packName(p.dir, id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: new pack: %w", err)
	}
	if err := lockFile(f, false); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("store: new pack: %w", err)
	}
	// 0600 whatever the umask (which can only have taken bits away).
	if err := chmodPrivate(f, 0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("store: new pack: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		f.Close()
		return fmt.Errorf("store: new pack: %w", err)
	}
	if p.w != nil {
		if p.broken != nil {
			if p.lost == nil {
				p.lost = map[int64]packLoss{}
			}
			p.lost[p.wid] = packLoss{durable: p.synced, err: p.broken}
		}
		p.stopDirect()
		p.w.Close() // releases its lock
	}
	var w packFile = f
	if p.wrap != nil {
		w = p.wrap(f)
	}
	p.w, p.wid, p.end, p.synced, p.broken = w, id, 0, 0, nil
	p.startDirect(f.Name())
	return nil
}

// dirLock takes the pack directory's lock, which orders the creation of a
// pack against Compact's look at packs, in every process using the store.
func (p *packs) dirLock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(p.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// 0600 whatever the umask was when it was made: a lock file made 0400
	// could not be opened again.
	if st, err := f.Stat(); err != nil || st.Mode().Perm() != 0o600 {
		if err == nil {
			err = chmodPrivate(f, 0o600)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := lockFile(f, true); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// inUse reports whether some Store (in any process, this one included:
// locks of separate opens conflict) appends to pack id. A pack found not
// in use never will be again: only its creator writes it. The caller
// holds dirLock.
func (p *packs) inUse(id int64) (bool, error) {
	f, err := os.OpenFile(packName(p.dir, id), os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if lockFile(f, false) != nil {
		return true, nil
	}
	unlockFile(f)
	return false, nil
}

// syncDir makes a new directory entry durable. Windows has no such call
// (and needs none).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes body at the end of this Store's pack and returns where;
// the bytes are durable once sync(id, off+len(body)) returned nil. A
// failed write abandons the pack (see packs.broken).
func (p *packs) append(body []byte) (id, off int64, err error) {
	p.wmu.Lock()
	if p.w == nil || p.end >= p.maxSize || p.broken != nil {
		// Lock order: syncMu, then wmu.
		p.wmu.Unlock()
		p.syncMu.Lock()
		p.wmu.Lock()
		if p.w == nil || p.end >= p.maxSize || p.broken != nil {
			err = p.rotate()
		}
		p.syncMu.Unlock()
		if err != nil {
			p.wmu.Unlock()
			return 0, 0, err
		}
	}
	defer p.wmu.Unlock()
	if p.dw != nil {
		// Gathered for a direct write (packdirect.go); in the file by the
		// next sync.
		if err := p.bufferLocked(body); err != nil {
			return 0, 0, err
		}
		off = p.end
		p.end += int64(len(body))
		return p.wid, off, nil
	}
	if _, err := p.w.WriteAt(body, p.end); err != nil {
		// Whatever part was written is dead space, and so is whatever of
		// this pack is not yet known to be on disk: after a failed write
		// the kernel may have dropped other dirty pages of the file too.
		p.broken = fmt.Errorf("write: %w", err)
		if IsDiskFull(err) {
			p.room.release()
		}
		return 0, 0, fmt.Errorf("store: write pack %d: %w: %w", p.wid, ErrNotDurable, err)
	}
	p.room.restore()
	off = p.end
	p.end += int64(len(body))
	p.flushed = p.end
	return p.wid, off, nil
}

// packSpan is the end of the bytes written to one pack that a transaction
// (or a SyncStaged) needs on disk.
type packSpan struct{ pack, end int64 }

// addSpan records that the bytes of pack id up to end are needed.
func addSpan(spans []packSpan, id, end int64) []packSpan {
	for i := range spans {
		if spans[i].pack == id {
			spans[i].end = max(spans[i].end, end)
			return spans
		}
	}
	return append(spans, packSpan{id, end})
}

// syncAll makes the bytes of every span durable, or fails with
// ErrNotDurable if some of them may be lost.
func (p *packs) syncAll(spans []packSpan) error {
	for _, sp := range spans {
		if err := p.sync(sp.pack, sp.end); err != nil {
			return err
		}
	}
	return nil
}

// sync makes the bytes of pack id up to end durable. One fsync covers
// every append before it, so concurrent writers share them. After a failed
// write or fsync of the pack (here or in another goroutine), bytes not
// synced before it are never reported durable: Linux reports a lost
// write-back once, and a later fsync of the same file may succeed without
// them (fsyncgate). sync then fails with ErrNotDurable.
func (p *packs) sync(id, end int64) error {
	if id == 0 {
		return nil // nothing written
	}
	p.wmu.Lock()
	done, err := p.durableLocked(id, end)
	p.wmu.Unlock()
	if done {
		return err
	}
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	p.wmu.Lock()
	// Another goroutine's fsync may have covered the bytes (or failed)
	// meanwhile, or the pack have been left.
	done, err = p.durableLocked(id, end)
	f, target := p.w, p.flushed // what this fsync covers: the bytes in the file now
	if !done && p.w != nil && id == p.wid && p.broken == nil {
		// Buffered bytes go to the file first (packdirect.go): the
		// whole blocks queued, and waited for without wmu, so that
		// appends go on meanwhile (past target: not this fsync's).
		if err = p.flushQueueLocked(); err == nil {
			target = p.flushed
			err = p.waitFlushedLocked(target)
		}
		if err == nil && p.broken != nil {
			// A write failed and was taken in by another meanwhile.
			done, err = p.durableLocked(id, end)
		}
	}
	p.wmu.Unlock()
	if done || err != nil {
		return err
	}
	if f == nil {
		return fmt.Errorf("store: sync pack %d: %w", id, os.ErrClosed)
	}
	if err := f.Sync(); err != nil {
		p.wmu.Lock()
		if p.broken == nil {
			p.broken = fmt.Errorf("sync: %w", err)
		}
		p.wmu.Unlock()
		return fmt.Errorf("store: sync pack %d: %w: %w", id, ErrNotDurable, err)
	}
	p.wmu.Lock()
	p.synced = max(p.synced, target)
	p.wmu.Unlock()
	return nil
}

// durableLocked tells whether the bytes of pack id before end need no
// fsync (done) and, if so, whether they may be lost (err). The caller
// holds wmu.
func (p *packs) durableLocked(id, end int64) (done bool, err error) {
	if id == p.wid {
		switch {
		case end <= p.synced:
			return true, nil
		case p.broken != nil:
			return true, fmt.Errorf("store: pack %d: bytes %d to %d: %w (%w)", id, p.synced, end, ErrNotDurable, p.broken)
		}
		return false, nil
	}
	if l, ok := p.lost[id]; ok && end > l.durable {
		return true, fmt.Errorf("store: pack %d: bytes %d to %d: %w (%w)", id, l.durable, end, ErrNotDurable, l.err)
	}
	return true, nil // a pack left in good order was synced when it was left
}

// reader returns a read handle on pack id.
func (p *packs) reader(id int64) (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.files[id]; f != nil {
		return f, nil
	}
	f, err := os.Open(packName(p.dir, id))
	if err != nil {
		return nil, err
	}
	p.files[id] = f
	return f, nil
}

// read reads size bytes at off of pack id.
func (p *packs) read(id, off, size int64) ([]byte, error) {
	f, err := p.reader(id)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	p.reads.Add(1)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// remove closes and deletes pack id. The file goes under mu, so that no
// reader opens it again in between and keeps it (and its space) open.
func (p *packs) remove(id int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.files[id]; f != nil {
		f.Close()
		delete(p.files, id)
	}
	if err := os.Remove(packName(p.dir, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// dropGone closes the read handles of packs whose file is gone (another
// process's Compact deleted it), giving their disk space back. A reader
// that was using one meets os.ErrClosed and looks its blob up again, as
// after remove. Pack numbers are never reused, so a name that still exists
// is the file the handle reads.
func (p *packs) dropGone() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, f := range p.files {
		if _, err := os.Stat(packName(p.dir, id)); errors.Is(err, fs.ErrNotExist) {
			f.Close()
			delete(p.files, id)
		}
	}
}

func (p *packs) close() {
	p.mu.Lock()
	for id, f := range p.files {
		f.Close()
		delete(p.files, id)
	}
	p.mu.Unlock()
	p.syncMu.Lock()
	p.wmu.Lock()
	if p.w != nil {
		if p.broken == nil {
			// Staged bytes go to the file as they did unbuffered: dead
			// space unless a commit names them (none can now).
			p.flushLocked()
		}
		p.stopDirect()
		p.w.Close()
		p.w = nil
	}
	p.wmu.Unlock()
	p.syncMu.Unlock()
}

// putBlob stores body (once per distinct content) and returns its key.
func (s *Store) putBlob(ctx context.Context, tx wtx, ch *changes, body []byte) (string, error) {
	key := s.blobKey(body)
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM blobs WHERE key = ?`, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		var id, off int64
		if s.objects != nil {
			// Put under the write lock this transaction holds: no sweep
			// deletes the object before the row naming it commits.
			id = objectPack
			err = s.objects.put(ctx, key, body)
		} else {
			id, off, err = s.packs.append(body)
		}
		if err == nil {
			err = insertBlob(ctx, tx, ch, key, int64(len(body)), id, off)
		}
	}
	if err != nil {
		return "", fmt.Errorf("store: write blob: %w", err)
	}
	return key, nil
}

func insertBlob(ctx context.Context, tx wtx, ch *changes, key string, size, pack, off int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO blobs(key, size, refs, pack, off) VALUES(?, ?, 0, ?, ?)`, key, size, pack, off); err != nil {
		return err
	}
	ch.wrotePack(pack, off+size)
	return nil
}

// Blob returns the bytes stored under a blob key, exactly as appended.
func (s *Store) Blob(ctx context.Context, key string) ([]byte, error) {
	// A blob that Compact moves meanwhile is looked up again.
	for try := 0; ; try++ {
		var pack, off sql.NullInt64
		var size int64
		var data []byte
		err := s.r.QueryRowContext(ctx, `SELECT b.pack, b.off, b.size, d.data FROM blobs b LEFT JOIN blob_data d ON d.id = b.id WHERE b.key = ?`, key).
			Scan(&pack, &off, &size, &data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("blob %s: %w", key, ErrNotFound)
		} else if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if !pack.Valid {
			if data == nil {
				data = []byte{}
			}
			return data, nil
		}
		if pack.Int64 == objectPack {
			if s.objects == nil {
				return nil, fmt.Errorf("store: read blob %s: its bytes are in object storage, and none is configured (s3_endpoint)", key)
			}
			return s.objects.get(ctx, key, size)
		}
		data, err = s.packs.read(pack.Int64, off.Int64, size)
		if err == nil {
			return data, nil
		}
		if try < 2 && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrClosed)) {
			continue
		}
		return nil, fmt.Errorf("store: read blob %s: %w", key, err)
	}
}
