package ui

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// synthetic is a snapshot with n users in two domains (every state, some
// errors) and a relay queue of five messages.
func synthetic(n int) *core.Status {
	states := []string{core.MigDone, core.MigRunning, core.MigPending, core.MigFailed, ""}
	old := core.OldServerSettings{Host: core.MustParseHost("old.example.org"), IMAPPort: 993, IMAPTLS: core.TLSImplicit, SMTPPort: 25}
	snap := &core.Status{Time: time.Now(), Listen: map[string]string{"imap": "127.0.0.1:143", "smtp": "127.0.0.1:25"}}
	for _, name := range []string{"example.org", "example.net"} {
		snap.Domains = append(snap.Domains, core.DomainStatus{Name: name, Migrating: true, OldServer: &old})
	}
	for i := range n {
		ds := &snap.Domains[i%2]
		u := core.UserStatus{
			Address: fmt.Sprintf("user%05d@%s", i, ds.Name), Domain: ds.Name, State: states[i%len(states)],
			FolderCount: i % 12, FoldersTotal: i % 12, Messages: int64(i * 3), MessagesTotal: int64(i * 3), Bytes: int64(i) << 12,
		}
		if u.State == core.MigFailed {
			u.Errors, u.LastError = 1, "=HYPERLINK(\"x\") the old server said NO"
		}
		switch u.State {
		case core.MigDone:
			ds.Moved++
		case "":
			ds.Native++
		}
		ds.Accounts = append(ds.Accounts, u)
	}
	for i := range 5 {
		snap.Queue.Items = append(snap.Queue.Items, &core.QueueItem{ID: int64(i + 1), From: "someone@outside.example", Rcpts: []string{"user00001@example.net"}, Size: 2048, Attempts: i})
	}
	return snap
}

// fillDashboard makes the dashboard read synthetic(n) and applies it.
func fillDashboard(t *testing.T, h *harness, n int) *core.Status {
	t.Helper()
	snap := synthetic(n)
	d := h.u.dash
	h.ui(func() { d.source = func(context.Context) (*core.Status, error) { return snap, nil } })
	// A refresh that read the real (empty) status before the swap must
	// not land after the synthetic one: let it finish first.
	for deadline := time.Now().Add(10 * time.Second); d.loading.Load() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	h.ui(func() { d.apply(snap, nil) })
	return snap
}

// Point 5: 10,000 users render, sort, filter by state and by text, and
// export as CSV, fast.
func TestDashboardTenThousandUsers(t *testing.T) {
	h := newHarness(t)
	h.ui(func() {
		h.u.tabs.SelectIndex(1)
		h.u.win.Resize(fyne.NewSize(800, 600))
	})
	start := time.Now()
	snap := fillDashboard(t, h, 10000)
	d := h.u.dash
	var img bool
	h.ui(func() {
		img = h.u.win.Canvas().Capture() != nil // renders the visible cells
	})
	el := time.Since(start)
	t.Logf("10,000 users: applied and rendered in %v", el)
	if el > 3*time.Second || !img {
		t.Errorf("10,000 users took %v to apply and render", el)
	}
	if len(d.rows) != 10000 || d.table.count.Text != "10000 users" {
		t.Fatalf("%d rows, count %q", len(d.rows), d.table.count.Text)
	}
	// Filter by state: every fifth user failed.
	start = time.Now()
	h.ui(func() { d.table.state.SetSelected(stateText(core.MigFailed)) })
	el = time.Since(start)
	t.Logf("filtered by state in %v", el)
	if el > time.Second {
		t.Errorf("filtering took %v", el)
	}
	if len(d.rows) != 2000 || d.table.count.Text != "2000 of 10000 users" {
		t.Fatalf("failed filter: %d rows, count %q", len(d.rows), d.table.count.Text)
	}
	for _, u := range d.rows {
		if u.State != core.MigFailed {
			t.Fatalf("filter let %s (%q) through", u.Address, u.State)
		}
	}
	// Sort by messages, then the other way (tap the header twice).
	h.ui(func() { d.table.sortBy(3) })
	if d.rows[0].Messages > d.rows[len(d.rows)-1].Messages {
		t.Error("not sorted by messages")
	}
	h.ui(func() { d.table.sortBy(3) })
	if d.rows[0].Messages < d.rows[len(d.rows)-1].Messages {
		t.Error("not sorted by messages, descending")
	}
	// The header says which column sorts; tapping a header sorts by it.
	h.ui(func() {
		b := d.table.table.CreateHeader().(*widget.Button)
		d.table.table.UpdateHeader(widget.TableCellID{Row: -1, Col: 3}, b)
		if b.Text != "Messages ▼" {
			t.Errorf("header %q", b.Text)
		}
		d.table.table.UpdateHeader(widget.TableCellID{Row: -1, Col: 4}, b)
		test.Tap(b)
	})
	if d.table.sortCol != 4 || d.rows[0].Bytes > d.rows[len(d.rows)-1].Bytes {
		t.Error("tapping the Size header does not sort by size")
	}
	// Filter by text, and a refresh keeps the filter.
	h.setText(d.table.search, "user0001")
	h.ui(func() { d.apply(snap, nil) })
	if len(d.rows) == 0 || len(d.rows) > 10 {
		t.Fatalf("text filter: %d rows", len(d.rows))
	}
	for _, u := range d.rows {
		if !strings.Contains(u.Address, "user0001") || u.State != core.MigFailed {
			t.Fatalf("filters let %s (%q) through", u.Address, u.State)
		}
	}
	// CSV of what is shown, formula-safe.
	var buf bytes.Buffer
	if err := d.table.writeCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(d.rows)+1 || recs[0][0] != "address" || recs[1][0] != d.rows[0].Address {
		t.Fatalf("CSV = %q", recs)
	}
	if le := recs[1][8]; !strings.HasPrefix(le, "'=") {
		t.Errorf("a formula went into the CSV as is: %q", le)
	}
	h.ui(func() { d.table.state.SetSelected(allStates) })
	h.setText(d.table.search, "")
	if len(d.rows) != 10000 {
		t.Errorf("%d rows after clearing the filters", len(d.rows))
	}
}
