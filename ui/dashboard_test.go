package ui

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"mailferry/core"
)

// TestEnableDomain adds a domain with its old server from the dashboard:
// bad input is marked inline and changes nothing, a good form enables
// migration and the dashboard lists the domain.
func TestEnableDomain(t *testing.T) {
	h := newHarness(t)
	srv, err := h.core.StartDemo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d := h.u.dash
	var e *enableDialog
	done := make(chan error, 4)
	h.ui(func() {
		e = d.enableDialog("", nil, false)
		e.onDone = func(err error) { done <- err }
		e.show()
	})
	wait := func(what string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatalf("%s: no result", what)
			return nil
		}
	}
	// Bad input: nothing is probed, nothing changes.
	h.setText(e.domain, "not a domain")
	h.setText(e.old.host, "[300.1.2.3]")
	h.setText(e.old.imapPort, "0")
	h.tap(e.enable)
	if err := wait("bad input"); err == nil {
		t.Fatal("bad input accepted")
	}
	for _, f := range []*field{e.fDom, e.old.fHost, e.old.fIMAP} {
		if !f.hasError() {
			t.Errorf("field %s shows no error", f.label)
		}
	}
	if doms, _ := h.core.Domains(t.Context()); len(doms) != 0 {
		t.Fatalf("bad input created %d domains", len(doms))
	}
	// An old server that does not answer: refused, nothing changes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, deadPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	h.setText(e.domain, "new.test")
	h.ui(func() { e.old.set(core.DemoSettings(srv)) })
	h.setText(e.old.imapPort, deadPort)
	h.tap(e.enable)
	if err := wait("dead old server"); err == nil || !strings.Contains(e.prob.words.Text, "Nothing listens on the IMAP port") {
		t.Fatalf("dead old server: err %v, says %q", err, e.prob.words.Text)
	}
	if doms, _ := h.core.Domains(t.Context()); len(doms) != 0 {
		t.Fatalf("an unreachable old server created %d domains", len(doms))
	}
	// Good input.
	refreshed := make(chan struct{}, 4)
	h.ui(func() {
		e.old.set(core.DemoSettings(srv))
		d.onRefresh = func() { refreshed <- struct{}{} }
	})
	h.tap(e.enable)
	if err := wait("enable"); err != nil {
		t.Fatalf("enable: %v (%s)", err, e.status.Text)
	}
	select {
	case <-refreshed:
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not refresh")
	}
	dom, err := h.core.Domain(t.Context(), "new.test")
	if err != nil || !dom.Migrating {
		t.Fatalf("new.test: %+v, %v", dom, err)
	}
	h.ui(func() {
		if len(d.snap.Domains) != 1 || d.snap.Domains[0].Name != "new.test" || d.snap.Domains[0].OldServer == nil {
			t.Errorf("dashboard domains = %+v", d.snap.Domains)
		}
		if !strings.Contains(d.domainsSig, "new.test|true") {
			t.Errorf("domain rows = %q", d.domainsSig)
		}
	})
}

// TestStartError: when Mailferry's services cannot start (a port is
// taken) the assistant still opens and says why.
func TestStartError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := core.Config{
		DataDir: t.TempDir(), Hostname: "mailferry.test",
		IMAPListen: ln.Addr().String(), IMAPSListen: core.Off, SMTPListen: core.Off,
		SubmissionListen: core.Off, SubmissionTLSListen: core.Off, POP3Listen: core.Off, POP3SListen: core.Off,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	co, err := core.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	startErr := co.Start()
	if startErr == nil {
		t.Fatal("Start succeeded on a taken port")
	}
	a := test.NewApp()
	defer a.Quit()
	u := newUI(a, co, &Options{StartErr: startErr}, false)
	defer u.Close()
	if !u.banner.Visible() || !strings.Contains(u.banner.Text, "could not start") || !strings.Contains(u.banner.Text, ln.Addr().String()) {
		t.Fatalf("banner = %q (visible %v)", u.banner.Text, u.banner.Visible())
	}
	if !strings.Contains(u.wizard.migration.migrateText(), "not listening") {
		t.Errorf("migrate text = %q", u.wizard.migration.migrateText())
	}
	srv, err := co.StartDemo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	user := srv.Users()[0]
	_, err = co.MigrateTestAccount(t.Context(), core.DemoSettings(srv), user.Address, user.Password, nil)
	if err == nil || !strings.Contains(err.Error(), "not listening") {
		t.Fatalf("migration without an IMAP front end: %v", err)
	}
}

// TestTrustCertificate: an old server with a self-signed certificate is
// refused until the admin trusts (pins) the certificate the probe saw.
func TestTrustCertificate(t *testing.T) {
	h := newHarness(t)
	w := h.w
	srv, err := h.core.StartDemo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := core.DemoSettings(srv)
	s.PinnedSHA256 = ""
	h.tap(w.next)
	h.ui(func() { w.oldServer.old.set(s) })
	if err := h.tapTask(w.oldServer.probeBtn, "probe", time.Minute); err != nil {
		t.Fatal(err)
	}
	if w.oldServer.probed != "" {
		t.Fatalf("an untrusted certificate was accepted: %q", h.said())
	}
	// Said once, in words: reached, but the certificate is not trusted.
	said := h.said()
	if !strings.Contains(said, "not trusted") || strings.Contains(said, "could not be reached") || strings.Contains(said, "cannot be reached") {
		t.Errorf("the wizard says %q", said)
	}
	if strings.Contains(w.oldServer.probeOut.Text, "not trusted by this computer") {
		t.Errorf("the failure is said twice: findings %q", w.oldServer.probeOut.Text)
	}
	if w.problem.detail.Visible() || w.problem.detail.Text == "" || !w.problem.toggle.Visible() {
		t.Error("the technical detail is not one click away")
	}
	h.tap(w.problem.toggle)
	if !w.problem.detail.Visible() {
		t.Error("Technical detail does not open")
	}
	// The certificate: subject, dates, a selectable fingerprint, Copy.
	cp := w.oldServer.cert
	if !cp.box.Visible() || cp.cert == nil {
		t.Fatal("no offer to trust the certificate")
	}
	fp := cp.cert.SHA256
	if !cp.fp.Selectable || cp.fp.Text != fp || !strings.Contains(cp.info.Text, "Subject: ") || !strings.Contains(cp.info.Text, "Valid from ") {
		t.Errorf("certificate shown as %q / %q (selectable %v)", cp.info.Text, cp.fp.Text, cp.fp.Selectable)
	}
	h.tap(cp.copyBtn)
	if got := h.u.app.Clipboard().Content(); got != fp {
		t.Errorf("clipboard = %q, want the fingerprint %q", got, fp)
	}
	h.screenshot("02c-old-server-trust")
	if err := h.tapTask(cp.trust, "probe with pin", time.Minute); err != nil {
		t.Fatal(err)
	}
	if w.oldServer.probed == "" || w.oldServer.old.pin.Text != fp {
		t.Fatalf("pinned probe failed: %q", h.said())
	}
	if cp.box.Visible() || w.problem.box.Visible() {
		t.Error("the untrusted-certificate offer stays after trusting it")
	}
	h.tap(w.next)
	h.noTask()
	h.mustStep(stepAccount)
}

// The dashboard says which store engine keeps the metadata, and where
// (here the embedded SQLite), where message bytes go (packs), and which
// nodes serve it (this one).
func TestDashboardShowsStore(t *testing.T) {
	newHarness(t).waitListenText("Store: SQLite, ", "mailferry.db; packs in ", "Nodes: 1 live: ", " (this one)")
}

// The dashboard says which certificate the listeners serve and until when
// (here the self-signed default).
func TestDashboardShowsCertificate(t *testing.T) {
	newHarness(t).waitListenText("Certificate: self-signed for ", "valid until ")
}

// waitListenText refreshes the dashboard until its listener text holds
// every one of parts (at most 30 seconds).
func (h *harness) waitListenText(parts ...string) {
	h.t.Helper()
	d := h.u.dash
	deadline := time.Now().Add(30 * time.Second)
	for {
		var txt string
		h.ui(func() { txt = d.listen.Text })
		missing := false
		for _, p := range parts {
			missing = missing || !strings.Contains(txt, p)
		}
		if !missing {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the dashboard says %q, want %q", txt, parts)
		}
		d.refresh()
		time.Sleep(100 * time.Millisecond)
	}
}
