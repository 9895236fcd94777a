package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core/store"
)

// A kept MTA-STS policy is read back until it expires, replaced, and
// forgotten; an oversized one is refused.
func TestMTASTSPolicy(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	if p, err := st.MTASTSPolicyOf(ctx, "sts.test"); p != nil || err != nil {
		t.Fatalf("none kept: %+v, %v", p, err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	want := store.MTASTSPolicy{ID: "2", Policy: "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 3600\n", Expires: exp}
	for _, p := range []store.MTASTSPolicy{{ID: "1", Policy: "old", Expires: exp}, want} {
		if err := st.SetMTASTSPolicy(ctx, "STS.test", p); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := st.MTASTSPolicyOf(ctx, "sts.test"); err != nil || p == nil || *p != want {
		t.Fatalf("kept %+v, %v; want %+v", p, err, want)
	}
	if err := st.SetMTASTSPolicy(ctx, "gone.test", store.MTASTSPolicy{ID: "1", Policy: "x", Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if p, err := st.MTASTSPolicyOf(ctx, "gone.test"); p != nil || err != nil {
		t.Errorf("expired policy: %+v, %v", p, err)
	}
	if err := st.SetMTASTSPolicy(ctx, "big.test", store.MTASTSPolicy{ID: "1", Policy: strings.Repeat("x", store.MaxMTASTSPolicy+1)}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("oversized policy: %v", err)
	}
	if err := st.DeleteMTASTSPolicy(ctx, "sts.test"); err != nil {
		t.Fatal(err)
	}
	if p, _ := st.MTASTSPolicyOf(ctx, "sts.test"); p != nil {
		t.Errorf("deleted policy still kept: %+v", p)
	}
}
