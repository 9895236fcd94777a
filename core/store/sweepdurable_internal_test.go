package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"mailferry/core/internal/s3test"
)

// TestSweepWaitsForDurableExpunge: the object sweep deletes the objects
// no blob row names, as it reads the rows; on SQLite that read sees an
// EXPUNGE committed but not yet durable (its grouped fsync under way,
// walsync.go) once the sweep's own mark is committed (the mark's fsync
// covers only what came before it). A power cut then takes the EXPUNGE
// back, with the message and its blob row, whose object must still be
// there. Before, the object was deleted at once (mail lost); now the sweep
// makes the log durable before it deletes.
func TestSweepWaitsForDurableExpunge(t *testing.T) {
	engineFree(t) // SQLite's grouped fsync; its store is a SQLite one
	srv := s3test.Shared(t)
	objs := s3Options(srv.Endpoint, srv.Bucket(t))
	noCheckpoints(t) // a power cut (watchPowerCut)
	s, mb, _ := inboxStore(t, &Options{ChangePoll: -1, Objects: objs}, 0)
	ctx := context.Background()
	body := append([]byte("Subject: kept\r\n\r\n"), bytes.Repeat([]byte("x\x00y\r\n"), 300)...)
	m, err := s.AppendMessage(ctx, mb.ID, &NewMessage{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	pc := deletedOnDisk(t, s, mb, m)
	s.objects.grace, s.objects.settle = 0, 0
	release := pc.holdFsyncs(t)
	expunged := make(chan error, 1)
	// The EXPUNGE commits right after the sweep's mark did, its fsync held.
	s.sweepMarked = func() {
		go func() {
			_, err := s.Expunge(ctx, mb.ID, []uint32{m.UID})
			expunged <- err
		}()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := s.Message(ctx, mb.ID, m.UID); err != nil {
				return // committed, seen gone
			}
			if time.Now().After(deadline) {
				t.Error("the EXPUNGE never committed")
				return
			}
		}
	}
	compacted := make(chan error, 1)
	go func() {
		_, err := s.Compact(ctx)
		compacted <- err
	}()
	select {
	case err := <-compacted:
		compacted <- err
	case <-time.After(3 * time.Second): // waiting for the log's fsync
	}
	// The power goes now: the store as it opens again, on the same bucket.
	s2, err := Open(pc.image(t), &Options{ChangePoll: -1, Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	back, err := s2.Message(ctx, mb.ID, m.UID)
	if err != nil {
		t.Fatalf("the power cut did not take the EXPUNGE back (%v): the cut is not one", err)
	}
	got, err := s2.MessageBytes(ctx, back)
	release()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the message back after the power cut: %d bytes, %v; want its %d bytes (the sweep deleted its object before the EXPUNGE was durable)", len(got), err, len(body))
	}
	select {
	case err := <-expunged:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the sweep never marked (the EXPUNGE beside it never ran)")
	}
	// The first store goes on in this process after the "power cut": its
	// sweep then finds the epoch the image's store left in the bucket and
	// deletes nothing (epoch.go), which is right for two databases of one
	// store; what the test checks came before, with the image's open.
	if err := <-compacted; err != nil && !errors.Is(err, ErrDiverged) {
		t.Fatal(err)
	}
}
