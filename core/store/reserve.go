package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The disk reserve: message bytes could fill the disk to the last block,
// and then the database could not record even that the disk is full (a
// copy's state, its wait), nor anything else. So the packs directory
// keeps a reserve file of reserveSize bytes; the first pack write that
// fails for a full disk deletes it, which leaves the database room to
// record what happened, and a later pack write that succeeds (space is
// back) makes it again.

// reserveSize is the room kept for the database.
const reserveSize = 4 << 20

const reserveName = "reserve.space"

type reserve struct {
	path string
	mu   sync.Mutex
	gone bool // deleted for a full disk, to be made again
}

// newReserve makes the reserve file in dir if it is missing (a disk
// already too full to hold it leaves it missing, to be made later).
func newReserve(dir string) *reserve {
	r := &reserve{path: filepath.Join(dir, reserveName)}
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
// succeeded: there may be room again).
func (r *reserve) restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		r.gone = !r.make()
	}
}
