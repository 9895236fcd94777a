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

// TestFetchDecodesOnlyWhatIsAsked: a FETCH decodes only the cached
// summaries it asks for: ENVELOPE alone does not decode the body structure
// (it did, a tenth of a FETCH's allocations), so a broken structure entry
// does not even make it parse the message; BODYSTRUCTURE does, and then
// parses the message and returns the entry to keep.
func TestFetchDecodesOnlyWhatIsAsked(t *testing.T) {
	raw := []byte("From: A <a@example.test>\r\nTo: b@example.test, c@example.test\r\nSubject: hello\r\nMessage-ID: <1@example.test>\r\n\r\nbody\r\n")
	env, _ := Summarize(raw)
	m := &store.Message{ID: 9, UID: 3, Envelope: env, Structure: []byte{cacheVersion, 'X'}}
	reads := 0
	readRaw := func() ([]byte, error) { reads++; return raw, nil }

	got, bs, fix, err := summaries(m, &imap.FetchOptions{Envelope: true}, readRaw)
	if err != nil || got == nil || got.Subject != "hello" || len(got.To) != 2 || bs != nil || fix != nil || reads != 0 {
		t.Fatalf("FETCH ENVELOPE: envelope %+v, structure %v, cache fix %v, %d reads of the message, %v; want the cached envelope, no structure, no fix, no read", got, bs, fix, reads, err)
	}
	got, bs, fix, err = summaries(m, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}, readRaw)
	if err != nil || bs == nil || fix == nil || fix.MessageID != 9 || reads != 1 || got.Subject != "hello" {
		t.Fatalf("FETCH BODYSTRUCTURE of a broken entry: structure %v, fix %v, %d reads, %v; want it parsed again from the message and a fix", bs, fix, reads, err)
	}
}

// TestDecodeEnvelopeAllocations: decoding a cached envelope copies its
// bytes into one string and cuts every field from it, rather than making
// a string per field (21 allocations for this one before, 7 after: the
// copy, the envelope, its zone, the address lists).
func TestDecodeEnvelopeAllocations(t *testing.T) {
	raw := []byte("Date: Tue, 1 Dec 2026 10:00:00 +0100\r\nFrom: Alice Example <alice@example.test>\r\nTo: Bob <bob@example.test>, Carol <carol@example.test>\r\nCc: Dan <dan@example.test>\r\nSubject: a subject\r\nMessage-ID: <1@example.test>\r\nIn-Reply-To: <0@example.test>\r\n\r\nbody\r\n")
	env, _ := Summarize(raw)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := decodeEnvelope(env); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 10 {
		t.Fatalf("decoding an envelope of 6 addresses: %.0f allocations, want at most 10 (not one per field)", allocs)
	}
}
