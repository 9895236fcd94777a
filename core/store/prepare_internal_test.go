package store

import (
	"context"
	"testing"
	"time"
)

// TestAppendPreparedOutsideWriter: an APPEND parses its message (Summarize)
// and writes and syncs its bytes before it takes the writer, so that other
// writes (a STORE, an EXPUNGE) do not wait for that work. Bytes the store
// holds already are not written again.
func TestAppendPreparedOutsideWriter(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, Summarize: func(raw []byte) ([]byte, []byte) {
		if string(raw) == "Subject: slow\r\n\r\nx\r\n" {
			entered <- struct{}{}
			<-release
		}
		return []byte("env"), []byte("bs")
	}}, 0)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: slow\r\n\r\nx\r\n")})
		done <- err
	}()
	<-entered
	short, cancel := context.WithTimeout(ctx, time.Second)
	tx, err := s.Begin(short)
	cancel()
	if err != nil {
		t.Errorf("another write while an APPEND parses its message: %v", err)
	} else {
		tx.Rollback()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, err := s.Message(ctx, mb.ID, 1)
	if err != nil || string(m.Envelope) != "env" || string(m.Structure) != "bs" {
		t.Fatalf("appended message: %+v, %v", m, err)
	}
	if got, err := s.Blob(ctx, m.BlobKey); err != nil || string(got) != "Subject: slow\r\n\r\nx\r\n" {
		t.Fatalf("bytes %q, %v", got, err)
	}
	end := s.packs.end
	for i := 0; i < 2; i++ {
		if _, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: []byte("Subject: again\r\n\r\nx\r\n")}); err != nil {
			t.Fatal(err)
		}
	}
	if grew := s.packs.end - end; grew != int64(len("Subject: again\r\n\r\nx\r\n")) {
		t.Fatalf("packs grew by %d bytes for one content appended twice, want %d", grew, len("Subject: again\r\n\r\nx\r\n"))
	}
}
