package ui

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"

	"mailferry/core"
)

// The tests of issue 16, as a new admin meets the assistant: one old
// server defined once, Cancel keeps the input, failures in words, no
// stale results, no jumping fields, the keyboard, the flow.

// silentPort is a port that accepts connections and never answers.
func silentPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-stop; c.Close() }()
		}
	}()
	t.Cleanup(func() { close(stop); ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// topDialog is the dialog the keyboard reaches, or nil.
func (h *harness) topDialog() *openDialog {
	var od *openDialog
	h.ui(func() {
		if n := len(h.u.dialogs); n > 0 {
			od = h.u.dialogs[n-1]
		}
	})
	return od
}

func key(name fyne.KeyName) *fyne.KeyEvent { return &fyne.KeyEvent{Name: name} }

// Point 2: the old server defined before is offered for a new domain;
// Cancel during the test stops it and keeps the input; the test shows a
// progress bar; the dialog opens with the first field focused, and Escape
// closes it; opened again, it still holds what was typed.
func TestAddDomainKeepsInputAndOffersOldServer(t *testing.T) {
	h := newHarness(t)
	srv, err := h.core.StartDemo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	demo := core.DemoSettings(srv)
	if err := h.core.EnableMigration(t.Context(), "first.test", demo); err != nil {
		t.Fatal(err)
	}
	d := h.u.dash
	refreshed := make(chan struct{}, 8)
	h.ui(func() { d.onRefresh = func() { refreshed <- struct{}{} } })
	d.refresh()
	select {
	case <-refreshed:
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not refresh")
	}

	h.ui(d.addDomain)
	e := d.addDlg
	if e == nil || h.topDialog() == nil || h.topDialog().d != e.dlg {
		t.Fatal("the Add-a-domain dialog is not open")
	}
	if e.pick == nil || !strings.Contains(e.pick.Selected, "first.test") {
		t.Fatalf("the old server of first.test is not offered (pick %v)", e.pick)
	}
	if e.old.host.Text != demo.Host.String() || e.old.imapPort.Text != strconv.Itoa(demo.IMAPPort) || e.old.pin.Text != demo.PinnedSHA256 {
		t.Errorf("form = %q %q %q, want the old server of first.test", e.old.host.Text, e.old.imapPort.Text, e.old.pin.Text)
	}
	if f := h.u.win.Canvas().Focused(); f != e.domain {
		t.Errorf("focused %T, want the domain field", f)
	}

	// A test that hangs: progress bar, then Cancel stops it and keeps all.
	done := make(chan error, 4)
	h.ui(func() { e.onDone = func(err error) { done <- err } })
	h.setText(e.domain, "second.test")
	h.setText(e.old.imapPort, strconv.Itoa(silentPort(t)))
	h.tap(e.enable)
	h.ui(func() {
		if e.busy == nil || !e.bar.Visible() {
			t.Error("no progress bar while the connection is tested")
		}
	})
	h.tap(e.cancel)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Cancel did not stop the test")
	}
	if h.topDialog() == nil || h.topDialog().d != e.dlg {
		t.Fatal("Cancel during the test closed the dialog")
	}
	if e.domain.Text != "second.test" || e.old.host.Text != demo.Host.String() {
		t.Errorf("input lost: %q %q", e.domain.Text, e.old.host.Text)
	}
	if !strings.Contains(e.status.Text, "canceled") {
		t.Errorf("status %q", e.status.Text)
	}
	if doms, _ := h.core.Domains(t.Context()); len(doms) != 1 {
		t.Errorf("%d domains after a canceled test", len(doms))
	}

	// Escape (in a field) closes it; Add again shows the same input.
	h.ui(func() { e.domain.TypedKey(key(fyne.KeyEscape)) })
	if h.topDialog() != nil {
		t.Fatal("Escape did not close the dialog")
	}
	h.ui(d.addDomain)
	if d.addDlg != e || e.domain.Text != "second.test" {
		t.Fatalf("the dialog lost its input when closed: %q", d.addDlg.domain.Text)
	}
	// Enter in a field runs the default action (here: the test, which
	// works with the port of first.test).
	h.setText(e.old.imapPort, strconv.Itoa(demo.IMAPPort))
	h.ui(func() { e.old.host.TypedKey(key(fyne.KeyReturn)) })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("enable: %v (%s %s)", err, e.status.Text, e.prob.words.Text)
		}
	case <-time.After(time.Minute):
		t.Fatal("Enter did not run the test")
	}
	if dom, err := h.core.Domain(t.Context(), "second.test"); err != nil || !dom.Migrating {
		t.Fatalf("second.test: %+v %v", dom, err)
	}
	if d.addDlg != nil {
		t.Error("after adding, the next Add-a-domain should start afresh")
	}
}

// Point 2/7: "Old server…" on a migrating domain edits its old server,
// titled so, and saves.
func TestOldServerDialogTitle(t *testing.T) {
	h := newHarness(t)
	s := core.OldServerSettings{Host: core.MustParseHost("[127.0.0.1]"), IMAPPort: 143, SMTPPort: 25}
	var e *enableDialog
	h.ui(func() { e = h.u.dash.enableDialog("first.test", &s, true) })
	if e.dlg == nil || e.enable.Text != "Save" || !e.domain.Disabled() {
		t.Fatalf("button %q, domain disabled %v", e.enable.Text, e.domain.Disabled())
	}
	h.ui(e.show)
	if got := e.title; got != "Old server of first.test" {
		t.Errorf("title %q", got)
	}
}
