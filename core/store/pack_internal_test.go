package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// Exported to the tests of package store_test.

// AgePacks makes every pack file look last written before the grace
// Compact gives a pack, as if that much time had passed.
func AgePacks(t testing.TB, dbPath string) {
	t.Helper()
	old := time.Now().Add(-packGrace - time.Hour)
	ids, err := packIDs(dbPath + "-packs")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := os.Chtimes(packName(dbPath+"-packs", id), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// BlobPlace tells in which pack, and where, the bytes of a blob are
// (pack 0 for a blob kept in blob_data).
func BlobPlace(s *Store, key string) (pack, off int64, err error) {
	var p, o *int64
	err = s.r.QueryRow(`SELECT pack, off FROM blobs WHERE key = ?`, key).Scan(&p, &o)
	if p != nil {
		pack, off = *p, *o
	}
	return pack, off, err
}

// ReadHandles lists the packs a Store holds a read handle on.
func ReadHandles(s *Store) []int64 {
	s.packs.mu.Lock()
	defer s.packs.mu.Unlock()
	var ids []int64
	for id := range s.packs.files {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// A blob written before packs existed (schema 2: bytes in blob_data, pack
// NULL) is still served, and Compact, busy with the packs around it, leaves
// it where it is.
func TestPackLegacyBlobSurvivesCompact(t *testing.T) {
	sqliteOnly(t) // blobs before packs were SQLite's only
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := testOpen(t, path, &Options{PackSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, "a@example.test", "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	legacy := []byte("Subject: from before packs\r\n\r\n\x00\xff binary \r\n.\r\n")
	sum := sha256.Sum256(legacy)
	key := hex.EncodeToString(sum[:])
	res, err := s.w.Exec(`INSERT INTO blobs(key, size, refs) VALUES(?, ?, 0)`, key, len(legacy))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := s.w.Exec(`INSERT INTO blob_data(id, data) VALUES(?, ?)`, id, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO messages(mailbox_id, uid, internal_date, size, blob, modseq) VALUES(?, 1, 0, ?, ?, 1)`,
		inbox.ID, len(legacy), key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE mailboxes SET uid_next = 2 WHERE id = ?`, inbox.ID); err != nil {
		t.Fatal(err)
	}

	// Packed messages around it, most of them deleted, so that Compact has
	// packs to move and delete.
	keep := map[string][]byte{}
	for i := 0; i < 40; i++ {
		body := bytes.Repeat([]byte{byte('a' + i%26), byte(i)}, 300+i)
		m, err := s.AppendMessage(ctx, inbox.ID, &NewMessage{Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if i%8 == 0 {
			keep[m.BlobKey] = body
		}
	}
	var del []uint32
	for i := uint32(2); i <= 41; i++ {
		if (i-2)%8 != 0 {
			del = append(del, i)
		}
	}
	if _, err := s.StoreFlags(ctx, inbox.ID, del, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = testOpen(t, path, &Options{PackSize: 4096}); err != nil {
		t.Fatal(err)
	}
	AgePacks(t, path)
	cr, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cr.PacksRemoved == 0 || cr.BlobsMoved == 0 {
		t.Fatalf("Compact did nothing with mostly dead packs: %+v", cr)
	}
	got, err := s.Blob(ctx, key)
	if err != nil || !bytes.Equal(got, legacy) {
		t.Fatalf("legacy blob after Compact: %q, %v", got, err)
	}
	if pack, _, err := BlobPlace(s, key); err != nil || pack != 0 {
		t.Fatalf("legacy blob now in pack %d (%v); Compact must leave blob_data alone", pack, err)
	}
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM blob_data`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d blob_data rows (%v), want 1", n, err)
	}
	for k, want := range keep {
		if got, err := s.Blob(ctx, k); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("kept message %s after Compact: %d bytes, %v", k[:8], len(got), err)
		}
	}
}
