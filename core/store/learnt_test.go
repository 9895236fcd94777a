package store_test

import (
	"context"
	"errors"
	"testing"

	"mailferry/core/store"
)

// What was learnt about a domain's old server is kept as given, replaced,
// removed, untouched by setting the domain's old server again, and goes
// with the domain.
func TestOldServerLearnt(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if l, err := st.OldServerLearnt(ctx, "example.test"); err != nil || l != "" {
		t.Fatalf("nothing learnt yet: %q, %v", l, err)
	}
	for _, want := range []string{`{"login_form":"local"}`, `{"login_form":"full","conn_cap":2}`} {
		if err := st.SetOldServerLearnt(ctx, "Example.TEST", want); err != nil {
			t.Fatal(err)
		}
		if l, err := st.OldServerLearnt(ctx, "example.test"); err != nil || l != want {
			t.Fatalf("learnt %q, %v; want %q", l, err, want)
		}
	}
	if err := st.SetDomainMigration(ctx, "example.test", true, `{"host":"old.example.test"}`); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.OldServerLearnt(ctx, "example.test"); l != `{"login_form":"full","conn_cap":2}` {
		t.Fatalf("setting the old server again changed what was learnt: %q", l)
	}
	if err := st.SetOldServerLearnt(ctx, "never.test", `{}`); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("learnt of an unknown domain: %v", err)
	}
	if l, err := st.OldServerLearnt(ctx, "never.test"); err != nil || l != "" {
		t.Errorf("learnt of an unknown domain: %q, %v", l, err)
	}
	if err := st.SetOldServerLearnt(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.OldServerLearnt(ctx, "example.test"); l != "" {
		t.Fatalf("removed: %q", l)
	}
	if err := st.SetOldServerLearnt(ctx, "example.test", `{"conn_cap":1}`); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteDomain(ctx, "example.test"); err != nil {
		t.Fatalf("a domain with learnt facts cannot be deleted: %v", err)
	}
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.OldServerLearnt(ctx, "example.test"); l != "" {
		t.Fatalf("a new domain of the same name inherits what was learnt: %q", l)
	}
}
