package ui

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

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

// Point 4: "N fields need attention" is recounted as fields are fixed; a
// failure goes when the settings change; an error line appearing or going
// moves no field.
func TestNoStaleNoJump(t *testing.T) {
	h := newHarness(t)
	w, pg := h.w, h.w.oldServer
	h.tap(w.next)
	h.mustStep(stepOldServer)
	formHeight := func() float32 {
		var y float32
		h.ui(func() { y = pg.old.form.MinSize().Height })
		return y
	}
	clean := formHeight()
	h.setText(pg.old.host, "")
	h.setText(pg.old.imapPort, "0")
	h.tap(w.next)
	h.noTask()
	if w.status.Text != "2 fields need attention (see above)." {
		t.Errorf("status %q", w.status.Text)
	}
	if got := formHeight(); got != clean {
		t.Errorf("the form grew from %v to %v when errors appeared: the fields below jump", clean, got)
	}
	h.setText(pg.old.imapPort, "143")
	if w.status.Text != "One field needs attention (see above)." {
		t.Errorf("after fixing one field the status says %q", w.status.Text)
	}
	h.setText(pg.old.host, "[127.0.0.1]")
	if w.status.Text != "" || pg.old.errors() != 0 {
		t.Errorf("after fixing both the status says %q (%d errors)", w.status.Text, pg.old.errors())
	}
	if got := formHeight(); got != clean {
		t.Errorf("the form is %v high after the errors went, %v before", got, clean)
	}

	// A failed test, then another port: the failure and findings go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	h.setText(pg.old.imapPort, strconv.Itoa(dead))
	h.setText(pg.old.smtpPort, strconv.Itoa(dead))
	if err := h.tapTask(pg.probeBtn, "probe", time.Minute); err != nil {
		t.Fatal(err)
	}
	said := h.said()
	if strings.Count(said, "Nothing listens") != 1 || !strings.Contains(said, "IMAP and SMTP") {
		t.Fatalf("the failure in words: %q", said)
	}
	if strings.Contains(said, "tagged") || strings.Contains(pg.probeOut.Text, "Nothing listens") {
		t.Errorf("said twice or in protocol words: %q / %q", said, pg.probeOut.Text)
	}
	h.setText(pg.old.imapPort, "143")
	if h.said() != "" || pg.probeOut.Text != "" {
		t.Errorf("stale after the settings changed: %q / %q", h.said(), pg.probeOut.Text)
	}
}

// Point 6: the first field has the focus; Enter in a password field runs
// Next, Enter on a focused button presses it, Enter with nothing focused
// runs Next; Escape closes a dialog; a destructive dialog's default is
// Cancel.
func TestKeyboard(t *testing.T) {
	h := newHarness(t)
	w := h.w
	c := h.u.win.Canvas()
	h.ui(func() { h.u.typedKey(key(fyne.KeyReturn)) }) // nothing focused: Next
	h.mustStep(stepOldServer)
	if c.Focused() != w.oldServer.old.host {
		t.Errorf("focused %T, want the host field", c.Focused())
	}
	h.ui(func() {
		w.oldServer.old.set(core.OldServerSettings{Host: core.MustParseHost("[127.0.0.1]"), IMAPPort: 143, SMTPPort: 25})
	})
	h.ui(func() { w.show(stepAccount) })
	if c.Focused() != w.account.domain {
		t.Errorf("focused %T, want the test domain field", c.Focused())
	}
	h.setText(w.account.password, "")
	h.ui(func() { w.account.password.TypedKey(key(fyne.KeyReturn)) })
	h.noTask()
	if !w.account.fPass.hasError() {
		t.Error("Enter in the password field did not run Next")
	}
	h.ui(func() {
		c.Focus(w.back)
		w.back.TypedKey(key(fyne.KeyEnter))
	})
	h.mustStep(stepOldServer)

	// Escape closes the Start over dialog, nothing else happens.
	h.tap(w.stop)
	if h.topDialog() == nil {
		t.Fatal("Start over opened no dialog")
	}
	h.ui(func() { h.u.typedKey(key(fyne.KeyEscape)) })
	if h.topDialog() != nil {
		t.Error("Escape did not close the dialog")
	}
	h.mustStep(stepOldServer)

	// A destructive question: Cancel is focused; Enter and Escape cancel.
	done := 0
	for _, k := range []fyne.KeyName{fyne.KeyReturn, fyne.KeyEscape} {
		var cancel fyne.Focusable
		h.ui(func() {
			h.u.confirmDestructive("Remove?", "It goes.", "Remove", func() { done++ })
			cancel = c.Focused()
		})
		b, ok := cancel.(*keyButton)
		if !ok || b.Text != "Cancel" {
			t.Fatalf("focused %v, want Cancel", cancel)
		}
		h.ui(func() { b.TypedKey(key(k)) })
		if h.topDialog() != nil || done != 0 {
			t.Errorf("%s: dialog open %v, confirmed %d times", k, h.topDialog() != nil, done)
		}
	}
}

// Point 7: steps numbered alike; plurals; the samples step waits (see
// TestWizardDemo); no widget touched after the UI closed.
func TestFlowWords(t *testing.T) {
	if got := stepHeader(stepWelcome); got != "Welcome" {
		t.Errorf("welcome header %q", got)
	}
	if got := stepHeader(stepOldServer); got != "Step 1 of 5: Old server" {
		t.Errorf("old-server header %q", got)
	}
	if got := stepHeader(stepCheck); got != "Step 5 of 5: Check" {
		t.Errorf("check header %q", got)
	}
	for n, want := range map[int]string{0: "0 users", 1: "1 user", 3: "3 users"} {
		if got := plural(n, "user", "users"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
	if got := fieldsNeedAttention(3); got != "3 fields need attention (see above)." {
		t.Errorf("%q", got)
	}
	snap := synthetic(1)
	if got := totalsText(snap); !strings.HasPrefix(got, "1 user: ") || !strings.Contains(got, "0 messages") {
		t.Errorf("totals %q", got)
	}
	if got := movedText(snap.Domains[0]); got != "1 of 1 user moved" {
		t.Errorf("moved %q", got)
	}

	h := newHarness(t)
	h.u.Close()
	ran := false
	h.u.do(func() { ran = true })
	if ran {
		t.Error("after Close the UI still runs callbacks (Fyne warns \"Error in Fyne call thread\" for each at quit)")
	}
}

// Point 7: passwords pasted or typed into a user list never show in
// clear, and the list keeps them for the work.
func TestCredentialsMasked(t *testing.T) {
	h := newHarness(t)
	var e *credentialsEntry
	h.ui(func() { e = newCredentialsEntry() })
	h.ui(func() { e.SetText("bob@example.test,s3cret pass\ncarol@example.test\n dave@example.test , x,y") })
	if strings.Contains(e.Text, "s3cret") || strings.Contains(e.Text, "x,y") {
		t.Fatalf("a password shows: %q", e.Text)
	}
	want := "bob@example.test,s3cret pass\ncarol@example.test\n dave@example.test , x,y"
	if got := e.secretText(); got != want {
		t.Fatalf("secretText = %q, want %q", got, want)
	}
	h.ui(func() { test.Type(e, "z") }) // typed on at the end of a masked line
	if strings.Contains(e.Text, "z") || !(strings.Contains(e.secretText(), "passz") || strings.HasSuffix(e.secretText(), "x,yz")) {
		t.Errorf("typing on: shown %q, kept %q", e.Text, e.secretText())
	}
	// The readiness dialog's list is one.
	var r *readinessDialog
	h.ui(func() { r = h.u.dash.newReadinessDialog(core.DomainStatus{Name: "example.test"}) })
	h.setText(r.users, "bob@example.test,hunter2")
	if strings.Contains(r.users.Text, "hunter2") {
		t.Errorf("the Users box shows %q", r.users.Text)
	}
	var creds []core.Credentials
	h.ui(func() { creds, _ = r.list() })
	if len(creds) != 1 || creds[0].Password != "hunter2" {
		t.Errorf("list = %+v", creds)
	}
}
