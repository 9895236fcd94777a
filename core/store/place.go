package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Where a database physically is: what a copy of it does not share, beside
// the epochs (epoch.go), which only tell two databases apart once both
// have run. Each epoch records its database's place; a database opened at
// another place than its newest epoch's was moved, copied or restored
// (the SQLite file is another file; the PostgreSQL database has another
// name, or is in another cluster), and its sweep deletes nothing until an
// admin adopts the bucket: a copy run while the store is stopped (a
// staging copy of a backup, with the original down for maintenance)
// would otherwise sweep what it expunges, the original's mail.
//
// Invariants:
//   - A place is "key=value" pairs joined by ";": SQLite "inode=<n>" of
//     the database file (the path is not in it: a container may mount
//     the same file elsewhere; not on Windows); PostgreSQL
//     "database=<name>" and, when the role may read it,
//     "system=<pg_control_system().system_identifier>" (a new cluster,
//     pg_upgrade included, has another). Two places differ only in a key
//     both have: a place not known is never a move.
//   - Every node of one store has the same place (one file, or one
//     PostgreSQL database: a promoted standby keeps the cluster's
//     identifier and the database's name).
//   - A move is recorded (store_moves) at Open and holds the sweep until
//     AdoptBucket, which removes it; serving and storing go on.
//   - What a place cannot tell: a file restored over the old one in
//     place (cp keeps the inode), a clone of a whole machine or VM (same
//     inode, same cluster identifier). The epochs tell those once the
//     original runs.

// place returns where this store's database is ("" when not known).
func (s *Store) place(ctx context.Context) string {
	if !s.d.postgres() {
		if ino := fileInode(s.where); ino != 0 {
			return fmt.Sprintf("inode=%d", ino)
		}
		return ""
	}
	var name string
	if err := s.r.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return ""
	}
	p := "database=" + name
	var sys string
	// Superusers and pg_monitor may read it; others go by the name.
	if err := s.r.QueryRowContext(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&sys); err == nil && sys != "" {
		p += ";system=" + sys
	}
	return p
}

// samePlace tells whether a and b may be one place: no key both have
// differs.
func samePlace(a, b string) bool {
	pairs := func(p string) map[string]string {
		m := map[string]string{}
		for kv := range strings.SplitSeq(p, ";") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		return m
	}
	pb := pairs(b)
	for k, v := range pairs(a) {
		if w, ok := pb[k]; ok && w != v {
			return false
		}
	}
	return true
}

// notePlace finds this database's place and records a move when its
// newest epoch was minted elsewhere.
func (s *Store) notePlace(ctx context.Context) error {
	s.placeNow = s.place(ctx)
	if s.placeNow == "" {
		return nil
	}
	var last string
	err := s.w.QueryRowContext(ctx, `SELECT place FROM store_epochs WHERE adopted = 0 AND place <> '' ORDER BY made DESC LIMIT 1`).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && samePlace(last, s.placeNow)) {
		return nil
	} else if err != nil {
		return fmt.Errorf("store: epochs: %w", err)
	}
	if err := s.execAlone(ctx, `INSERT INTO store_moves(at, was, now) VALUES (?, ?, ?)`, time.Now().UnixMilli(), last, s.placeNow); err != nil {
		return fmt.Errorf("store: epochs: %w", err)
	}
	s.log.Warn("store: this database is not where it was when it last used its bucket: moved, copied or restored; it deletes nothing in the bucket until adopted",
		"was", last, "now", s.placeNow, "database", s.where)
	return nil
}

// checkMoved fails with ErrDiverged, in words, while a move of this
// database is not adopted.
func (s *Store) checkMoved(ctx context.Context) error {
	var was, now string
	err := s.r.QueryRowContext(ctx, `SELECT was, now FROM store_moves ORDER BY at DESC LIMIT 1`).Scan(&was, &now)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("store: epochs: %w", err)
	}
	return fmt.Errorf("%w: this store's database %s is not where it was when it last used bucket %s (%s, now %s): it was moved, copied or restored. "+
		"A copy (a backup restored beside the store, a staging copy) must not use the store's bucket: it would delete the store's mail. "+
		"So this store deletes nothing in the bucket (it serves and stores mail as before). "+
		"If this database is the store's (moved to a new disk or cluster, or restored, and the old one no longer in use), run 'mailferry store adopt-bucket' with its configuration",
		ErrDiverged, s.where, s.objects, Printable(was, 200), Printable(now, 200))
}
