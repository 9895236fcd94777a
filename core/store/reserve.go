package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The disk reserve: message bytes could fill the disk to the last block,
// and then the database could not record even that the disk is full (a
// copy's state, its wait), nor anything else. So the packs directory
// keeps a reserve file of reserveSize bytes; the first pack write that
// fails for a full disk deletes it, which leaves the database room to
// record what happened, and a later pack write that succeeds (space is
// back) makes it again, trying at most once per reserveRetry: while the
// disk stays too full for it, each try writes until the disk is full
// (and fsyncs), which would otherwise come after every pack write and
// take the last blocks the database needs while it lasts.

// reserveSize is the room kept for the database.
const reserveSize = 4 << 20

const reserveName = "reserve.space"

// reserveRetry is how long after a failed try the reserve is tried again.
const reserveRetry = 10 * time.Second

type reserve struct {
	path string
	mu   sync.Mutex
	gone bool             // deleted for a full disk, to be made again
	next time.Time        // while gone, when to try again at the earliest
	now  func() time.Time // time.Now; tests set it
}

// newReserve makes the reserve file in dir if it is missing (a disk
// already too full to hold it leaves it missing, to be made later).
func newReserve(dir string) *reserve {
	r := &reserve{path: filepath.Join(dir, reserveName), now: time.Now}
	if _, err := os.Stat(r.path); errors.Is(err, fs.ErrNotExist) {
		r.gone = !r.make()
	}
	return r
}

func (r *reserve) make() bool {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return false
	}
	err = chmodPrivate(f, 0o600) // whatever the umask, as the packs
	if err == nil {
		_, err = f.Write(make([]byte, reserveSize)) // written, so the blocks are taken (not a sparse file)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(r.path)
		return false
	}
	return true
}

// release gives the reserve's room back (after a write failed for a full
// disk).
func (r *reserve) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.gone {
		os.Remove(r.path)
		r.gone = true
	}
}

// restore makes the reserve again if it was released (after a write that
// succeeded: there may be room again), unless a try failed less than
// reserveRetry ago.
func (r *reserve) restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone && !r.now().Before(r.next) {
		r.gone = !r.make()
		r.next = r.now().Add(reserveRetry)
	}
}
