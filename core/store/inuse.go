package store

import (
	"errors"
	"fmt"
	"os"
)

// ErrInUse: the store is open elsewhere in a way that excludes this open:
// Options.Exclusive while another Store (serve, migrate, the assistant)
// has it open, or any open while an exclusive one (a store copy reading
// it) holds it.
var ErrInUse = errors.New("store: in use")

// lockInUse takes the lock every Store holds on "<path>-lock" beside its
// database while it is open: shared by ordinary opens, in any number of
// processes, or exclusive (Options.Exclusive), which only one open may
// hold and only while no other has the store open. The lock is the
// operating system's (flock, LockFileEx): it goes with the process, so a
// crashed serve leaves nothing to clean up. Closing the file releases it.
func lockInUse(path string, exclusive bool) (*os.File, error) {
	name := path + "-lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := tryLock(f, exclusive); err != nil {
		f.Close()
		if exclusive {
			return nil, fmt.Errorf("%w: %s is open in another Mailferry process (serve, migrate or the assistant); stop it first: %w", ErrInUse, path, err)
		}
		return nil, fmt.Errorf("%w: %s is being copied by `mailferry store copy`; wait for it to finish: %w", ErrInUse, path, err)
	}
	return f, nil
}
