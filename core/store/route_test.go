package store_test

import (
	"context"
	"errors"
	"testing"

	"mailferry/core/store"
)

// A domain's outbound route is kept as given, replaced, removed, and goes
// with the domain.
func TestOutboundRoute(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if r, err := st.OutboundRoute(ctx, "example.test"); err != nil || r != "" {
		t.Fatalf("no route yet: %q, %v", r, err)
	}
	for _, want := range []string{`{"route":"mx"}`, `{"route":"smarthost","host":"relay.test"}`} {
		if err := st.SetOutboundRoute(ctx, "Example.TEST", want); err != nil {
			t.Fatal(err)
		}
		if r, err := st.OutboundRoute(ctx, "example.test"); err != nil || r != want {
			t.Fatalf("route %q, %v; want %q", r, err, want)
		}
	}
	if err := st.SetOutboundRoute(ctx, "never.test", `{"route":"mx"}`); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("route of an unknown domain: %v", err)
	}
	if r, err := st.OutboundRoute(ctx, "never.test"); err != nil || r != "" {
		t.Errorf("route of an unknown domain: %q, %v", r, err)
	}
	if err := st.DeleteDomain(ctx, "example.test"); err != nil {
		t.Fatalf("a domain with a route cannot be deleted: %v", err)
	}
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if r, err := st.OutboundRoute(ctx, "example.test"); err != nil || r != "" {
		t.Errorf("a new domain inherits the old one's route: %q, %v", r, err)
	}
	if err := st.SetOutboundRoute(ctx, "example.test", `{"route":"mx"}`); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOutboundRoute(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.OutboundRoute(ctx, "example.test"); r != "" {
		t.Errorf("removed route still there: %q", r)
	}
}
