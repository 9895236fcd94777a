package imapfront

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/store"
)

// announcedLiteral is an APPEND literal that announces size bytes and
// sends body, then fails (the client went away) if body is shorter.
type announcedLiteral struct {
	size int64
	r    io.Reader
}

func (l *announcedLiteral) Size() int64 { return l.size }
func (l *announcedLiteral) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// TestAppendWithoutMultiAppendHoldsWhatCame: session.Append, which the
// fork calls for an APPEND when MULTIAPPEND is not advertised, reads a
// message as its bytes come and holds them against appendMem, as every
// APPEND does (appendBatch). Before, it allocated the size announced at
// once (60 MiB for 1,000 bytes sent) and was bounded by nothing but
// APPENDLIMIT. Mailferry always advertises MULTIAPPEND, so this path is
// reached only through the interface; it stays safe should that change.
func TestAppendWithoutMultiAppendHoldsWhatCame(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: log, Summarize: Summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	acct, err := st.CreateAccount(ctx, "carol@example.test", "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64 << 20
	srv := &Server{st: st, ctx: ctx, log: log, limit: limit, appending: newAppendMem(limit)}
	s := &session{srv: srv, acct: acct}
	opts := &imap.AppendOptions{}

	// Announced 60 MiB, sent 1,000 bytes.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = s.Append("INBOX", &announcedLiteral{size: 60 << 20, r: bytes.NewReader(make([]byte, 1000))}, opts)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("APPEND of a literal cut short: OK")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Errorf("APPEND announcing 60 MiB, sending 1,000 bytes: %d MiB allocated, want what came (under 8 MiB)", got>>20)
	}
	if srv.appending.all != 0 {
		t.Errorf("after a failed APPEND, appendMem holds %d bytes, want 0", srv.appending.all)
	}

	// A whole message is stored as sent.
	msg := []byte("Subject: hi\r\n\r\nexact bytes\r\n")
	data, err := s.Append("INBOX", &announcedLiteral{size: int64(len(msg)), r: bytes.NewReader(msg)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.Mailbox(ctx, acct.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if data.UID != 1 || data.UIDValidity != mb.UIDValidity {
		t.Errorf("APPENDUID %d %d, want %d 1", data.UIDValidity, data.UID, mb.UIDValidity)
	}
	var got []byte
	if err := st.EachMessageLocated(ctx, mb.ID, 1, 1, false, func(m *store.Message) error {
		got, err = st.Blob(ctx, m.BlobKey)
		return err
	}); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("stored %q (%v), want %q", got, err, msg)
	}

	// The account's bound on APPENDs held applies.
	srv.appending = &appendMem{acct: map[int64]int64{}, maxA: 100 << 10, maxAll: 1 << 30}
	_, err = s.Append("INBOX", &announcedLiteral{size: 1 << 20, r: bytes.NewReader(make([]byte, 1<<20))}, opts)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeLimit {
		t.Errorf("APPEND of 1 MiB past an account bound of 100 KiB: %v, want NO [LIMIT]", err)
	}
}

// TestAppendMemFairShare: accounts holding the whole bound in all between
// them (eight of one attacker at their own bound, trickling their bytes)
// do not have every other account's APPEND answered NO [INUSE]: an account
// holding at most its share of the bound in all (the bound divided by the
// accounts holding) takes what it needs past it, up to twice the bound;
// the accounts over their share are refused.
func TestAppendMemFairShare(t *testing.T) {
	const limit = 64 << 20
	m := newAppendMem(limit)
	for a := int64(1); a <= 8; a++ {
		if err := m.take(a, 2*limit); err != nil {
			t.Fatalf("account %d's first 128 MiB: %v", a, err)
		}
	}
	var ie *imap.Error
	if err := m.take(9, 10<<20); err != nil {
		t.Errorf("another account's APPEND of 10 MiB while eight hold 1 GiB: %v, want it taken", err)
	}
	if err := m.take(1, 1); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeLimit {
		t.Errorf("an account at its own bound: %v, want NO [LIMIT]", err)
	}
	m.give(1, 1<<20)
	if err := m.take(1, 1<<20); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeInUse {
		t.Errorf("an account over its share of the bound in all: %v, want NO [INUSE]", err)
	}
	// Many accounts each under its share: in all at most twice the bound.
	for a := int64(100); a < 10000; a++ {
		m.take(a, 1<<20)
	}
	if m.all > 2*m.maxAll {
		t.Errorf("held in all %d MiB, want at most %d", m.all>>20, 2*m.maxAll>>20)
	}
	if m.all <= m.maxAll {
		t.Errorf("held in all %d MiB: no account past the bound in all took its share", m.all>>20)
	}
}
