package migrate

import (
	"errors"
	"fmt"
	"testing"

	"mailferry/core/store"
)

// The error count is how many errors there were, not how many are kept.
func TestProgressCountsEveryError(t *testing.T) {
	p := newProgress()
	for i := range maxErrors + 5 {
		p.update(1, "a@example.test", EventError, fmt.Sprintf("error %d", i), nil)
	}
	got, _ := p.get(1)
	if got.ErrorCount != maxErrors+5 || len(got.Errors) != maxErrors {
		t.Errorf("ErrorCount %d with %d kept, want %d with %d kept", got.ErrorCount, len(got.Errors), maxErrors+5, maxErrors)
	}
}

// A store error while taking the old UIDVALIDITY is the store's error, not
// "UIDVALIDITY changed"; only the store's refusal (a mailbox with mail)
// is.
func TestAdoptErr(t *testing.T) {
	if err := adoptErr("INBOX", nil); err != nil {
		t.Errorf("no error: %v", err)
	}
	refused := fmt.Errorf("%w: mailbox 3 is not empty", store.ErrInvalid)
	if err := adoptErr("INBOX", refused); !errors.Is(err, errUIDValidity) {
		t.Errorf("refused: %v, want errUIDValidity", err)
	}
	broken := fmt.Errorf("store: %w", errors.New("disk I/O error"))
	err := adoptErr("INBOX", broken)
	var mberr *mailboxError
	if errors.Is(err, errUIDValidity) || errors.As(err, &mberr) || !errors.Is(err, broken) {
		t.Errorf("store failure reported as %v, want the store's error", err)
	}
}
