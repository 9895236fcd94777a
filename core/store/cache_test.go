package store_test

import (
	"context"
	"testing"

	"mailferry/core/store"
)

func TestSetMessageCaches(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	a := account(t, s, "cache@example.test")
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte("Subject: x\r\n\r\nbody\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMessageCaches(ctx, []store.MessageCache{{MessageID: m.ID, Envelope: []byte("E"), Structure: []byte("S")}, {MessageID: 12345}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Message(ctx, inbox.ID, m.UID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Envelope) != "E" || string(got.Structure) != "S" {
		t.Fatalf("cache = %q, %q", got.Envelope, got.Structure)
	}
}
