package core_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mailferry/core"
)

// TestNodeInStatus: a serving Core is a live node of Status (its name,
// version, "this one"), with where message bytes go; a clean Close takes
// it off the list. A hostile node_name or a lease out of range is refused
// before anything is opened.
func TestNodeInStatus(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		cfg  core.Config
		want string
	}{
		{core.Config{NodeName: "mail1\x1b[2J"}, "node_name"},
		{core.Config{NodeName: "mail1 pid 7"}, "node_name"},
		{core.Config{NodeName: strings.Repeat("n", 201)}, "node_name"},
		{core.Config{CopyLeaseSeconds: 1}, "copy_lease_seconds"},
		{core.Config{CopyLeaseSeconds: -5}, "copy_lease_seconds"},
	} {
		if err := c.cfg.Defaults().Validate(); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("Validate(%q, %d): %v, want a %s error", c.cfg.NodeName, c.cfg.CopyLeaseSeconds, err, c.want)
		}
	}
	if def := (core.Config{DataDir: "/var/lib/mf"}).Defaults(); !strings.HasSuffix(def.NodeName, ":/var/lib/mf") {
		t.Errorf("default node name %q, want host:data dir", def.NodeName)
	}

	data := t.TempDir()
	cfg := core.Config{DataDir: data, NodeName: "mail1", Version: "9.9", CopyLeaseSeconds: 6,
		IMAPListen: "127.0.0.1:0", IMAPSListen: core.Off, SMTPListen: core.Off, SubmissionListen: core.Off,
		SubmissionTLSListen: core.Off, POP3Listen: core.Off, POP3SListen: core.Off, Logger: slog.New(slog.DiscardHandler)}
	co, err := core.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	var st *core.Status
	for range 100 { // the node service beats as it starts
		if st, err = co.Status(ctx, nil); err != nil {
			co.Close()
			t.Fatal(err)
		}
		if len(st.Nodes) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "mail1" || st.Nodes[0].Version != "9.9" || !st.Nodes[0].Live || !st.Nodes[0].Self {
		t.Errorf("nodes: %+v", st.Nodes)
	}
	if st.Node != "mail1" || !strings.HasPrefix(st.Blobs, "packs in ") || st.NodesSummary() != "1 live: mail1 (this one)" {
		t.Errorf("node %q, blobs %q, summary %q", st.Node, st.Blobs, st.NodesSummary())
	}
	if err := co.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.NodeName = "status"
	co, err = core.Open(cfg) // as `mailferry status` does: no Start, no beat
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if st, err = co.Status(ctx, nil); err != nil || len(st.Nodes) != 0 || st.NodesSummary() != "0 live" {
		t.Errorf("after a clean stop: %+v %v", st, err)
	}
}
