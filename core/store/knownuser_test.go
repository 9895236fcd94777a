package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"mailferry/core/store"
)

func knownAddrs(t *testing.T, st *store.Store, domain string) []string {
	t.Helper()
	ks, err := st.KnownUsers(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		out = append(out, k.Source+":"+k.Address)
	}
	return out
}

// The admin's list is replaced by each import; what the relay saw stays;
// a bad address changes nothing; everything goes with the domain.
func TestKnownUsers(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if err := st.NoteKnownUser(ctx, "example.test", "seen@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := st.ReplaceKnownUsers(ctx, "example.test", []string{"alice@example.test", "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReplaceKnownUsers(ctx, "example.test", []string{"bob@example.test", "carol@example.test"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"list:bob@example.test", "list:carol@example.test", "relay:seen@example.test"}
	if got := knownAddrs(t, st, "example.test"); !slices.Equal(got, want) {
		t.Fatalf("known users %v, want %v", got, want)
	}
	// The relay seeing a listed user changes nothing.
	if err := st.NoteKnownUser(ctx, "example.test", "bob@example.test"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"dave@example.test", "Eve@example.test"},   // not canonical
		{"dave@example.test", "mallory@other.test"}, // another domain
		{"dave@example.test", "not an address"},
	} {
		if err := st.ReplaceKnownUsers(ctx, "example.test", bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
	if err := st.NoteKnownUser(ctx, "example.test", "x@other.test"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("relay user of another domain: %v", err)
	}
	if got := knownAddrs(t, st, "example.test"); !slices.Equal(got, want) {
		t.Fatalf("after refused changes: %v, want %v", got, want)
	}
	if err := st.ReplaceKnownUsers(ctx, "never.test", []string{"a@never.test"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("list of an unknown domain: %v", err)
	}
	if err := st.DeleteDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if got := knownAddrs(t, st, "example.test"); len(got) != 0 {
		t.Errorf("known users outlived their domain: %v", got)
	}
}

func TestRouteProof(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if p, err := st.RouteProofOf(ctx, "example.test"); p != nil || err != nil {
		t.Fatalf("no proof yet: %+v, %v", p, err)
	}
	at := time.Unix(1800000000, 0)
	for _, p := range []store.RouteProof{
		{Route: "mx", Rcpt: "friend@gmail.test", Remote: "mx1.gmail.test", Reply: "250", At: at},
		{Route: "smarthost relay.test:587 (TLS starttls)", Rcpt: "x@y.test", Remote: "relay.test", Reply: "250 ok", At: at.Add(time.Hour)},
	} {
		if err := st.SetRouteProof(ctx, "Example.Test", p); err != nil {
			t.Fatal(err)
		}
		got, err := st.RouteProofOf(ctx, "example.test")
		if err != nil || got == nil || *got != p {
			t.Fatalf("proof %+v, %v; want %+v", got, err, p)
		}
	}
	if err := st.SetRouteProof(ctx, "never.test", store.RouteProof{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("proof of an unknown domain: %v", err)
	}
}
