package core

// Adopting the bucket: after a copy or a restore of a store's database
// used the store's bucket (store.ErrDiverged: each database left epochs
// there the other does not know, so neither deletes anything any more),
// `mailferry store adopt-bucket` says which database is the store's
// (core/store/epoch.go).

import (
	"context"
	"fmt"
	"path/filepath"

	"mailferry/core/store"
)

// BucketAdoption tells what AdoptBucket did (store.AdoptResult).
type BucketAdoption = store.AdoptResult

// ErrDiverged: another database of the store (a copy, a restore) uses its
// bucket; the store deletes nothing in it until adopted.
var ErrDiverged = store.ErrDiverged

// AdoptBucket makes the database of cfg the one its bucket belongs to:
// the other databases' epochs become known to it, so its Compact deletes
// again; unless deleteUnnamed, every object in the bucket from before now
// is kept whatever the database names (the other database's mail, or the
// mail written after the backup this one was restored from). Stop the
// other database first: one still running leaves new epochs, and the
// sweep is held again.
func AdoptBucket(ctx context.Context, cfg Config, deleteUnnamed bool) (*BucketAdoption, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	objects, err := cfg.objectStorage()
	if err != nil {
		return nil, err
	}
	if objects == nil {
		return nil, fmt.Errorf("%w: this configuration keeps message bytes in pack files (no s3_* keys): there is no bucket to adopt", ErrInvalid)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "mailferry.db"), &store.Options{
		Logger: cfg.Logger, DatabaseURL: cfg.DatabaseURL, Objects: objects, ChangePoll: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("open the store in %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	res, err := st.AdoptBucket(ctx, deleteUnnamed)
	if err != nil {
		return nil, err
	}
	return &res, nil
}
