package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCompactWaitsForDurableExpunge: Compact deletes a pack once no blob
// row names it, as its reads see the rows; on SQLite they see an EXPUNGE
// committed but not yet durable (its grouped fsync under way,
// walsync.go). A power cut then takes the EXPUNGE back, and with it the
// message and its blob row, whose pack must still be there. Before, the
// pack was deleted at once, and the message came back without its bytes
// (mail lost); now Compact makes the log durable before it deletes.
func TestCompactWaitsForDurableExpunge(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	noCheckpoints(t) // a power cut (watchPowerCut)
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, PackSize: 4096}, 0)
	path := s.where
	// The first message fills pack 1; the second starts pack 2, so that
	// pack 1 is not the highest (Compact keeps that one).
	body := append([]byte("Subject: kept\r\n\r\n"), bytes.Repeat([]byte("x\x00y\r\n"), 1200)...)
	m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: other\r\n\r\nother\r\n")}); err != nil {
		t.Fatal(err)
	}
	pc := deletedOnDisk(t, s, mb, m)
	AgePacks(t, path)
	release := pc.holdFsyncs(t)
	expunged := make(chan error, 1)
	go func() {
		_, err := s.Expunge(ctx, mb.ID, []uint32{m.UID})
		expunged <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := s.Message(ctx, mb.ID, m.UID); err != nil {
			break // committed, seen gone; its fsync held
		}
		if time.Now().After(deadline) {
			t.Fatal("the EXPUNGE never committed")
		}
	}
	compacted := make(chan error, 1)
	go func() {
		_, err := s.Compact(ctx)
		compacted <- err
	}()
	select {
	case err := <-compacted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second): // waiting for the log's fsync
	}
	cut := pc.image(t)
	release()
	if err := <-expunged; err != nil {
		t.Fatal(err)
	}
	s2 := openSQLiteAt(t, cut)
	back, err := s2.Message(ctx, mb.ID, m.UID)
	if err != nil {
		t.Fatalf("the power cut did not take the EXPUNGE back (%v): the cut is not one", err)
	}
	got, err := s2.MessageBytes(ctx, back)
	if err != nil || !bytes.Equal(got, body) {
		if _, serr := os.Stat(filepath.Join(cut+"-packs", "00000001.pack")); serr != nil {
			t.Logf("pack 1 after the cut: %v", serr)
		}
		t.Fatalf("the message back after the power cut: %d bytes, %v; want its %d bytes (Compact deleted its pack before the EXPUNGE was durable)", len(got), err, len(body))
	}
}

// deletedOnDisk flags m \Deleted, watches s for a power cut from then on,
// and fsyncs the log: the flag is on disk, the EXPUNGE to come is not yet.
func deletedOnDisk(t *testing.T, s *Store, mb *Mailbox, m *Message) *powerCut {
	t.Helper()
	if _, err := s.StoreFlags(context.Background(), mb.ID, []uint32{m.UID}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	pc := watchPowerCut(t, s)
	if err := s.wal.sync(); err != nil {
		t.Fatal(err)
	}
	return pc
}
