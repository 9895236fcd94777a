package imapfront

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// TestFetchOneExpungedMeanwhile: a message whose row was read but whose
// bytes went with an EXPUNGE from another session (the race TestStressOneMailbox
// runs into) is skipped, not answered NO [NONEXISTENT] (RFC 3501 5.5).
func TestFetchOneExpungedMeanwhile(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &session{srv: &Server{st: st, ctx: context.Background(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	gone := &store.Message{UID: 7, BlobKey: "0000000000000000000000000000000000000000000000000000000000000000"}
	opts := &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	if _, err := s.fetchOne(nil, 1, gone, opts, false, true); !errors.Is(err, errExpunged) {
		t.Fatalf("fetchOne of a message whose bytes are gone: %v, want errExpunged", err)
	}
}
