package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

// TestNodes: two Stores on one database (two nodes) see each other's
// beats; a beat renews a node's row, a clean stop removes it, a node not
// seen within NodeLive is listed but not live; hostile names are refused
// and nothing is written.
func TestNodes(t *testing.T) {
	ctx := context.Background()
	a, b := openTwo(t)
	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := a.NodeBeat(ctx, "mail1:/var/lib/mailferry", "v1", started); err != nil {
		t.Fatal(err)
	}
	if err := b.NodeBeat(ctx, "mail2:/var/lib/mailferry", "v2", started); err != nil {
		t.Fatal(err)
	}
	if err := b.NodeBeat(ctx, "mail2:/var/lib/mailferry", "v2", started); err != nil {
		t.Fatalf("a second beat: %v", err)
	}
	ns, err := a.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].Name != "mail1:/var/lib/mailferry" || ns[1].Version != "v2" || !ns[1].Started.Equal(started) {
		t.Fatalf("nodes: %+v", ns)
	}
	now := time.Now()
	if !ns[0].Live(now) || !ns[1].Live(now) || ns[0].Live(now.Add(store.NodeLive)) {
		t.Fatalf("liveness: %+v", ns)
	}
	if err := b.NodeGone(ctx, "mail2:/var/lib/mailferry"); err != nil {
		t.Fatal(err)
	}
	if ns, err := a.Nodes(ctx); err != nil || len(ns) != 1 {
		t.Fatalf("after a clean stop: %+v %v", ns, err)
	}
	for _, name := range []string{"", strings.Repeat("n", 201)} {
		if err := a.NodeBeat(ctx, name, "v1", started); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("NodeBeat(%q): %v, want ErrInvalid", name, err)
		}
	}
	if err := a.NodeBeat(ctx, "n", strings.Repeat("v", 201), started); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NodeBeat with a long version: %v, want ErrInvalid", err)
	}
	if ns, err := a.Nodes(ctx); err != nil || len(ns) != 1 {
		t.Fatalf("after refused beats: %+v %v", ns, err)
	}
}
