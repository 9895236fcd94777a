package store

import (
	"context"
	"errors"
	"os"
	"testing"
)

// TestFullCommitAfterStopRefused: a transaction begun before the store
// stopped (an SMTP delivery's, a migration batch's, a CREATE's: Begin
// checks only at its start) and committed after a grouped fsync of the
// log failed is refused with ErrStopped and commits nothing. Before, it
// committed and was answered OK (an SMTP 250) although the log it went
// into had lost pages the kernel could not write: after a power cut its
// frames lie beyond the hole SQLite's recovery stops at, so the message
// a sender was told delivered would be gone.
func TestFullCommitAfterStopRefused(t *testing.T) {
	s, mb, _ := inboxStore(t, nil, 1)
	ctx := context.Background()
	before, err := s.Status(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Append(mb.ID, &NewMessage{Body: []byte("Subject: delivered\r\n\r\nx\r\n")}); err != nil {
		t.Fatal(err)
	}
	// Meanwhile another session's grouped fsync (an APPEND's) fails.
	errDisk := errors.New("injected fsync error")
	s.wal.syncFile = func(*os.File) error { return errDisk }
	if err := s.wal.sync(); !errors.Is(err, ErrStopped) {
		t.Fatalf("the failing fsync: %v, want ErrStopped", err)
	}
	s.wal.syncFile = (*os.File).Sync
	if err := tx.Commit(); !errors.Is(err, ErrStopped) {
		t.Fatalf("a transaction committed after the store stopped: %v; want ErrStopped", err)
	}
	after, err := s.Status(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Messages != before.Messages || after.UIDNext != before.UIDNext {
		t.Fatalf("after the refused commit %d messages, UIDNEXT %d; want %d, %d (nothing committed)", after.Messages, after.UIDNext, before.Messages, before.UIDNext)
	}
}

// TestFlagsAfterStopRefused: a STORE whose transaction was under way when
// a grouped fsync of the log failed is refused with ErrStopped and changes
// nothing, as every write after the store stopped (walsync.go). Before, it
// committed and was answered OK.
func TestFlagsAfterStopRefused(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 1)
	ctx := context.Background()
	errDisk := errors.New("injected fsync error")
	err := s.writeFlags(ctx, func(tx wtx, ch *changes) error {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET flags = '\Seen' WHERE mailbox_id = ? AND uid = ?`, mb.ID, uids[0]); err != nil {
			return err
		}
		// Another session's grouped fsync fails meanwhile.
		s.wal.syncFile = func(*os.File) error { return errDisk }
		if err := s.wal.sync(); !errors.Is(err, ErrStopped) {
			t.Errorf("the failing fsync: %v, want ErrStopped", err)
		}
		return nil
	})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("a flag change committed as the store stopped: %v; want ErrStopped", err)
	}
	if m, err := s.Message(ctx, mb.ID, uids[0]); err != nil || m.HasFlag(`\Seen`) {
		t.Fatalf("the refused change is there (%v)", err)
	}
}

// TestCloseAfterStopKeepsLog: Close of a store stopped by a failed fsync
// of its log leaves the log as it is on disk, for the next start to
// recover from (walsync.go), as after a crash. Before, the last
// connection's close checkpointed it into the database file and deleted
// it: the checkpoint copies the log's pages as read back, which after a
// failed fsync may be what the kernel kept or what the disk had (it does
// not check the frames' checksums, as the recovery at open does), so the
// database could be left with torn pages and no log to recover from. Once
// open again the store has the message its log held.
func TestCloseAfterStopKeepsLog(t *testing.T) {
	sqliteOnly(t)
	s, mb, _ := inboxStore(t, nil, 1)
	ctx := context.Background()
	path := s.where
	s.wal.syncFile = func(*os.File) error { return errors.New("injected fsync error") }
	if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: before the stop\r\n\r\nx\r\n")}); !errors.Is(err, ErrStopped) {
		t.Fatalf("an APPEND whose fsync failed: %v, want ErrStopped", err)
	}
	if err := s.Close(); !errors.Is(err, ErrStopped) && err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path + "-wal")
	if err != nil || st.Size() == 0 {
		t.Fatalf("the log after Close of a stopped store: %v (size %d); want it left for the next start", err, func() int64 {
			if st == nil {
				return 0
			}
			return st.Size()
		}())
	}
	s2, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, err := s2.Status(ctx, mb.ID); err != nil || got.Messages != 2 {
		t.Fatalf("reopened: %+v, %v; want the 2 messages the log holds", got, err)
	}
}
