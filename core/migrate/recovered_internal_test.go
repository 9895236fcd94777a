package migrate

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// A panic in work run through recovered is that work's error, never a
// success.
func TestRecoveredTurnsPanicIntoError(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := recovered(log, "commit a@example.test", func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "commit a@example.test") {
		t.Fatalf("panic gave %v", err)
	}
	want := errors.New("plain")
	if err := recovered(log, "x", func() error { return want }); err != want {
		t.Fatalf("error passed as %v", err)
	}
	if err := recovered(log, "x", func() error { return nil }); err != nil {
		t.Fatalf("success passed as %v", err)
	}
}
