package core

// Moving up: `mailferry store copy --to` copies the store of one
// configuration (the embedded SQLite + packs one, as a rule) into the
// store another configuration names (database_url + s3_*), then verifies
// the copy. The rules are the store's (core/store/storecopy.go): the
// source opened exclusively (nothing may serve it meanwhile), the target
// empty or holding an unfinished copy of the same source, one target
// transaction per account, a verify pass over every row and every
// message's bytes.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"mailferry/core/store"
)

// The store copy's vocabulary (see core/store).
type (
	StoreCopyProgress = store.CopyProgress
	StoreVerifyReport = store.VerifyReport
)

var (
	// ErrStoreInUse: the source store is open in another process.
	ErrStoreInUse = store.ErrInUse
	// ErrTargetNotEmpty: the target store holds data of its own.
	ErrTargetNotEmpty = store.ErrTargetNotEmpty
)

// StoreCopyTables says which tables a store copy moves and which not, why.
func StoreCopyTables() (copied []string, skipped map[string]string) { return store.CopyTables() }

// StoreCopy copies the store of from into the store of to, then verifies
// it (the report; a difference is not an error, check report.OK). The
// DKIM keys (files under the data directory) are copied to to's data
// directory too, unless a key of the same name is there already with
// other contents (an error: keys are never overwritten).
func StoreCopy(ctx context.Context, from, to Config, progress func(StoreCopyProgress)) (*StoreCopyProgress, *StoreVerifyReport, error) {
	from, to = from.Defaults(), to.Defaults()
	if err := from.Validate(); err != nil {
		return nil, nil, fmt.Errorf("source configuration: %w", err)
	}
	if err := to.Validate(); err != nil {
		return nil, nil, fmt.Errorf("target configuration (--to): %w", err)
	}
	sameDir := sameFile(from.DataDir, to.DataDir)
	if sameDir {
		return nil, nil, fmt.Errorf("%w: the target configuration has the same data directory as the source (%s): give it data_dir, the new node's own directory", ErrInvalid, from.DataDir)
	}
	if from.DatabaseURL != "" && from.DatabaseURL == to.DatabaseURL {
		return nil, nil, fmt.Errorf("%w: the target configuration names the source's own database", ErrInvalid)
	}
	srcObjects, err := from.objectStorage()
	if err != nil {
		return nil, nil, fmt.Errorf("source configuration: %w", err)
	}
	dstObjects, err := to.objectStorage()
	if err != nil {
		return nil, nil, fmt.Errorf("target configuration (--to): %w", err)
	}
	src, err := store.Open(filepath.Join(from.DataDir, "mailferry.db"), &store.Options{
		Logger: from.Logger, DatabaseURL: from.DatabaseURL, Objects: srcObjects, ChangePoll: -1, Exclusive: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open the source store in %s: %w", from.DataDir, err)
	}
	defer src.Close()
	dst, err := store.Open(filepath.Join(to.DataDir, "mailferry.db"), &store.Options{
		Logger: to.Logger, DatabaseURL: to.DatabaseURL, Objects: dstObjects, ChangePoll: -1, Exclusive: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open the target store (%s): %w", to.DataDir, err)
	}
	defer dst.Close()
	p, err := store.Copy(ctx, src, dst, &store.CopyOptions{Progress: progress})
	if err != nil {
		return p, nil, err
	}
	if err := copyKeys(filepath.Join(from.DataDir, "dkim"), filepath.Join(to.DataDir, "dkim")); err != nil {
		return p, nil, fmt.Errorf("copy the DKIM keys: %w", err)
	}
	r, err := store.VerifyCopy(ctx, src, dst, 0)
	if err != nil {
		return p, nil, fmt.Errorf("verify the copy: %w", err)
	}
	return p, r, nil
}

// sameFile reports whether two directory paths name one directory.
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// copyKeys copies the files under from (if any) to the same names under
// to, 0600 in 0700 directories. A file already at its target with the same
// bytes is left; with other bytes it is an error.
func copyKeys(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == from {
			return nil
		} else if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
			return os.Chmod(dst, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if old, err := os.ReadFile(dst); err == nil {
			if string(old) != string(body) {
				return fmt.Errorf("%s exists with other contents; not overwriting a key", dst)
			}
			return nil
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(body); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}
