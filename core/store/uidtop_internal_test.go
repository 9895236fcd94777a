package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// TestCopyAtTopOfUIDs: a COPY or MOVE into a mailbox whose UIDNEXT is near
// 2^32-1 (a mailbox migrated from an old server with high UIDs, or moved
// up to its marks after a power cut: jumpToMarks stops at 2^32-1) copies
// only what fits below 2^32-1, as an APPEND does, and otherwise changes
// nothing: before, the UID counter (uint32) wrapped past 2^32-1 to 0 and
// UIDNEXT went back to a small number, so the next APPEND was given a UID
// already used (one a client may cache for another message).
func TestCopyAtTopOfUIDs(t *testing.T) {
	for _, move := range []bool{false, true} {
		name := "COPY"
		if move {
			name = "MOVE"
		}
		t.Run(name, func(t *testing.T) {
			s := openAt(t, filepath.Join(t.TempDir(), "mail.db"), nil) // the run's engine
			ctx := context.Background()
			src, err := s.MailboxByID(ctx, matrixInbox(t, s, "u@example.test"))
			if err != nil {
				t.Fatal(err)
			}
			var uids []uint32
			for i := range 3 {
				m, err := s.AppendMessage(ctx, src.ID, &NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i)})
				if err != nil {
					t.Fatal(err)
				}
				uids = append(uids, m.UID)
			}
			dst, err := s.CreateMailbox(ctx, src.AccountID, "Top", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendMessage(ctx, dst.ID, &NewMessage{Body: []byte("Subject: first\r\n\r\nfirst\r\n")}); err != nil {
				t.Fatal(err)
			}
			// Two UIDs left below 2^32-1 (which no message may take).
			if _, err := s.w.Exec(`UPDATE mailboxes SET uid_next = ?, uid_next_mark = ? WHERE id = ?`, uint32(1<<32-3), uint32(1<<32-3), dst.ID); err != nil {
				t.Fatal(err)
			}
			before, err := s.Status(ctx, dst.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.copyOrMove(ctx, src.ID, uids, dst.ID, move)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s of 3 messages with 2 UIDs left: %v, want ErrInvalid (out of UIDs)", name, err)
			}
			after, err := s.Status(ctx, dst.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.UIDNext != before.UIDNext || after.Messages != before.Messages {
				t.Errorf("after the refused %s: UIDNEXT %d, %d messages; want %d, %d (unchanged)", name, after.UIDNext, after.Messages, before.UIDNext, before.Messages)
			}
			if st, err := s.Status(ctx, src.ID); err != nil || st.Messages != 3 {
				t.Errorf("source after the refused %s: %+v, %v; want its 3 messages", name, st, err)
			}
			// What fits is copied, and the next APPEND is refused, never
			// given a UID again.
			pairs, err := s.copyOrMove(ctx, src.ID, uids[:2], dst.ID, move)
			if err != nil || len(pairs) != 2 || pairs[1].Dst != 1<<32-2 {
				t.Fatalf("%s of 2 messages with 2 UIDs left: %v, %v", name, pairs, err)
			}
			if m, err := s.AppendMessage(ctx, dst.ID, &NewMessage{Body: []byte("Subject: more\r\n\r\nmore\r\n")}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("APPEND into the full mailbox: %+v, %v; want ErrInvalid", m, err)
			}
		})
	}
}
