package ui

import (
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
	"mailferry/core/oldserver/oldtest"
)

// ScreenshotsEnv names a directory; when set, the wizard tests save a PNG
// of every step there (rendered by Fyne's software painter).
const screenshotsEnv = "MAILFERRY_SCREENSHOTS"

// harness is a Core on loopback ports and the assistant driven through
// Fyne's test driver.
type harness struct {
	t    *testing.T
	core *core.Core
	u    *UI
	w    *wizard
	idle chan error
	// shots names the screenshots directory ("" for none).
	shots string
}

func newHarness(t *testing.T, opts ...func(*core.Config)) *harness {
	t.Helper()
	cfg := core.Config{
		DataDir:             t.TempDir(),
		Hostname:            "mailferry.test",
		IMAPListen:          "127.0.0.1:0",
		IMAPSListen:         "127.0.0.1:0",
		SMTPListen:          "127.0.0.1:0",
		SubmissionListen:    "127.0.0.1:0",
		SubmissionTLSListen: "127.0.0.1:0",
		POP3Listen:          "127.0.0.1:0",
		POP3SListen:         "127.0.0.1:0",
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, o := range opts {
		o(&cfg)
	}
	co, err := core.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	a := test.NewApp()
	u := newUI(a, co, nil, false)
	u.win.Resize(fyne.NewSize(1024, 720))
	h := &harness{t: t, core: co, u: u, w: u.wizard, idle: make(chan error, 16)}
	h.w.onIdle = func(err error) { h.idle <- err }
	t.Cleanup(func() {
		u.Close()
		if err := co.Close(); err != nil {
			t.Errorf("core close: %v", err)
		}
		a.Quit()
	})
	return h
}

// wait waits for the running task to end and returns its error.
func (h *harness) wait(what string, timeout time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.idle:
		return err
	case <-time.After(timeout):
		h.t.Fatalf("%s: no result after %s (status %q)", what, timeout, h.w.status.Text)
		return nil
	}
}

// tapTask taps b, which starts a task, and waits for it.
func (h *harness) tapTask(b fyne.Tappable, what string, timeout time.Duration) error {
	h.t.Helper()
	h.tap(b)
	return h.wait(what, timeout)
}

// ui runs fn holding the UI lock, as the UI goroutine would.
func (h *harness) ui(fn func()) {
	h.u.mu.Lock()
	defer h.u.mu.Unlock()
	fn()
}

// tap taps b as the UI goroutine would.
func (h *harness) tap(b fyne.Tappable) { h.ui(func() { test.Tap(b) }) }

// said is what the wizard says below the page: the status line and the
// problem line.
func (h *harness) said() string {
	return strings.TrimSpace(h.w.status.Text + " " + h.w.problem.words.Text)
}

// mustStep fails unless the wizard shows step s.
func (h *harness) mustStep(s int) {
	h.t.Helper()
	if h.w.step != s {
		h.t.Fatalf("wizard is on step %q, want %q (status: %q)", stepTitles[h.w.step], stepTitles[s], h.w.status.Text)
	}
}

// noTask fails if a task is running (validation must stop before any work).
func (h *harness) noTask() {
	h.t.Helper()
	select {
	case err := <-h.idle:
		h.t.Fatalf("a task ran on invalid input (err %v)", err)
	default:
	}
	if h.w.cancel != nil {
		h.t.Fatal("a task is running on invalid input")
	}
}

// textInput is an Entry or one of ours (keyEntry).
type textInput interface {
	fyne.Focusable
	SetText(string)
}

func (h *harness) setText(e textInput, s string) {
	h.ui(func() {
		e.SetText("")
		if s != "" {
			test.Type(e, s)
		}
	})
}

// screenshot saves the window as name.png under $MAILFERRY_SCREENSHOTS.
func (h *harness) screenshot(name string) {
	h.t.Helper()
	dir := h.shots
	if dir == "" {
		return
	}
	img := h.u.win.Canvas().Capture()
	f, err := os.Create(filepath.Join(dir, name+".png"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		h.t.Fatal(err)
	}
}

// oldServerValidation checks the inline errors of the old-server step and
// leaves the form with settings s.
func (h *harness) oldServerValidation(s core.OldServerSettings) {
	t, w := h.t, h.w
	cases := []struct {
		name       string
		host, imap string
		smtp       string
		field      *field
		want       string
	}{
		{"empty host", "", "143", "25", w.oldServer.old.fHost, "Give the old server's host"},
		{"bad IPv4 literal", "[300.1.2.3]", "143", "25", w.oldServer.old.fHost, "not an IPv4 address"},
		{"host with port", "mail.example.org:143", "143", "25", w.oldServer.old.fHost, "port field"},
		{"IMAP port 0", "mail.example.org", "0", "25", w.oldServer.old.fIMAP, "Port 0 is out of range"},
		{"IMAP port 70000", "mail.example.org", "70000", "25", w.oldServer.old.fIMAP, "Port 70000 is out of range"},
		{"empty IMAP port", "mail.example.org", "", "25", w.oldServer.old.fIMAP, "Give the IMAP port"},
		{"SMTP port 70000", "mail.example.org", "143", "70000", w.oldServer.old.fSMTP, "Port 70000 is out of range"},
		{"SMTP port not a number", "mail.example.org", "143", "smtp", w.oldServer.old.fSMTP, "not a port number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.setText(w.oldServer.old.host, c.host)
			h.setText(w.oldServer.old.imapPort, c.imap)
			h.setText(w.oldServer.old.smtpPort, c.smtp)
			h.tap(w.next)
			h.noTask()
			h.mustStep(stepOldServer)
			if !c.field.hasError() || !strings.Contains(c.field.err.Text, c.want) {
				t.Errorf("field %s error = %q (visible %v), want it to contain %q", c.field.label, c.field.err.Text, c.field.hasError(), c.want)
			}
			if w.status.Importance != widget.DangerImportance || w.status.Text == "" {
				t.Errorf("status = %q, want an error", w.status.Text)
			}
			if c.name == "bad IPv4 literal" {
				h.screenshot("02b-old-server-invalid")
			}
		})
	}
	h.ui(func() { w.oldServer.old.set(s) })
	if _, err := w.oldServer.old.settings(); err != nil {
		t.Fatalf("valid settings rejected: %v", err)
	}
	for _, f := range []*field{w.oldServer.old.fHost, w.oldServer.old.fIMAP, w.oldServer.old.fSMTP, w.oldServer.old.fPin} {
		if f.hasError() {
			t.Errorf("field %s still shows %q for valid input", f.label, f.err.Text)
		}
	}
}

// accountValidation checks the inline errors of the account step, then a
// wrong password, and leaves the form with the right values.
func (h *harness) accountValidation(domain, address, password string) {
	t, w := h.t, h.w
	cases := []struct {
		name               string
		domain, addr, pass string
		field              *field
		want               string
	}{
		{"empty domain", "", address, password, w.account.fDomain, "Give the test domain"},
		{"empty account", domain, "", password, w.account.fAddress, "Give the test account"},
		{"account in another domain", domain, "someone@elsewhere.test", password, w.account.fAddress, "must be in the test domain"},
		{"empty password", domain, address, "", w.account.fPass, "Give the test account's password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.setText(w.account.domain, c.domain)
			h.setText(w.account.address, c.addr)
			h.setText(w.account.password, c.pass)
			h.tap(w.next)
			h.noTask()
			h.mustStep(stepAccount)
			if !c.field.hasError() || !strings.Contains(c.field.err.Text, c.want) {
				t.Errorf("field %s error = %q, want it to contain %q", c.field.label, c.field.err.Text, c.want)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		h.setText(w.account.domain, domain)
		h.setText(w.account.address, address)
		h.setText(w.account.password, password+"-wrong")
		err := h.tapTask(w.next, "login with a wrong password", time.Minute)
		if err == nil || !strings.Contains(err.Error(), "refused the password") {
			t.Fatalf("err = %v, want the old server refusing the password", err)
		}
		h.mustStep(stepAccount)
		if !w.account.fPass.hasError() || !strings.Contains(h.said(), "refused the password") {
			t.Errorf("password error %q, status %q", w.account.fPass.err.Text, h.said())
		}
		if _, err := h.core.Domain(t.Context(), domain); err == nil {
			t.Errorf("a wrong password created the domain %s on Mailferry", domain)
		}
	})
	h.setText(w.account.domain, domain)
	h.setText(w.account.address, address)
	h.setText(w.account.password, password)
}

// runWizard drives the wizard from the old-server step to the checks with
// the old server s and the test account, and checks every step.
func (h *harness) runWizard(s core.OldServerSettings, domain, address, password string) {
	t, w := h.t, h.w
	h.mustStep(stepOldServer)
	h.oldServerValidation(s)

	// Test connection: the probe's findings in plain words.
	if err := h.tapTask(w.oldServer.probeBtn, "test connection", time.Minute); err != nil {
		t.Fatalf("test connection: %v", err)
	}
	if !strings.Contains(w.oldServer.probeOut.Text, "IMAP: ") || !strings.Contains(w.oldServer.probeOut.Text, "SMTP: ") {
		t.Fatalf("probe output = %q", w.oldServer.probeOut.Text)
	}
	h.screenshot("02-old-server")
	h.tap(w.next) // probed already: no second probe
	h.noTask()
	h.mustStep(stepAccount)

	h.accountValidation(domain, address, password)
	h.screenshot("03-account")
	if err := h.tapTask(w.next, "account", time.Minute); err != nil {
		t.Fatalf("account step: %v", err)
	}
	h.mustStep(stepSamples) // one Next: the check passed, the wizard moved on
	for _, want := range []string{"logged in", "separator", "accepted", "what mailferry learnt about the old server", "user names", "connections at once"} {
		if !strings.Contains(strings.ToLower(w.account.accountOut.Text), want) {
			t.Errorf("account findings lack %q:\n%s", want, w.account.accountOut.Text)
		}
	}
	if facts, err := h.core.OldServerFacts(t.Context(), domain); err != nil || len(facts) == 0 {
		t.Errorf("what the connection test learnt was not kept for %s: %v, %v", domain, facts, err)
	}
	if !strings.Contains(w.status.Text, "accepted "+address) {
		t.Errorf("status after the account check: %q", w.status.Text)
	}
	if _, err := h.core.Domain(t.Context(), domain); err != nil {
		t.Fatalf("the test domain was not created: %v", err)
	}

	// Samples: at least one language.
	h.ui(func() { w.sampling.langs.SetSelected(nil) })
	h.tap(w.next)
	h.noTask()
	h.mustStep(stepSamples)
	if !w.sampling.fLangs.hasError() {
		t.Error("no error for an empty language choice")
	}
	var picked []string
	for label, code := range w.sampling.langCodes {
		if code == "de" || code == "ru" || code == "ja" || code == "el" || code == "zh" {
			picked = append(picked, label)
		}
	}
	h.ui(func() { w.sampling.langs.SetSelected(picked) })
	h.screenshot("04-samples")
	if err := h.tapTask(w.next, "samples", 3*time.Minute); err != nil {
		t.Fatalf("samples step: %v", err)
	}
	// The step stays so the admin sees that all arrived; Next moves on
	// without sending again.
	h.mustStep(stepSamples)
	if want := fmt.Sprintf("All %d sample messages arrived", 2+len(picked)); !strings.Contains(w.sampling.samplesOut.Text, want) || !strings.Contains(w.status.Text, "Press Next") {
		t.Errorf("samples result %q, status %q", w.sampling.samplesOut.Text, w.status.Text)
	}
	h.screenshot("04b-samples-arrived")
	h.tap(w.next)
	h.noTask()
	h.mustStep(stepMigrate)
	if got, want := len(w.sampling.oldCopies), 2+len(picked); got != want {
		t.Fatalf("%d samples on the old server, want %d", got, want)
	}

	// Migrate, then the checks start by themselves.
	h.screenshot("05-migrate")
	shot := false
	w.onProgress = func(frac float64) {
		if !shot && w.step == stepMigrate && frac > 0 {
			shot = true
			h.screenshot("05b-migrate-progress")
		}
	}
	if err := h.tapTask(w.next, "migrate", 5*time.Minute); err != nil {
		t.Fatalf("migrate step: %v", err)
	}
	h.mustStep(stepMigrate)
	if !strings.Contains(w.migration.migrateOut.Text, "Done: ") || !strings.Contains(w.migration.migrateOut.Text, "INBOX") {
		t.Errorf("migrate result = %q", w.migration.migrateOut.Text)
	}
	h.screenshot("05c-migrate-done")
	h.tap(w.next)
	h.mustStep(stepCheck)
	if err := h.wait("checks", 3*time.Minute); err != nil {
		t.Fatalf("checks: %v", err)
	}
	r := w.checking.report
	if r == nil {
		t.Fatal("no report")
	}
	if !r.OK() {
		t.Fatalf("checks failed:\n%s", r.Text())
	}
	for _, sm := range w.sampling.samples {
		for _, name := range []string{"present", "same UID", "identical bytes", "same flags", "same date", "subject decodes", "text decodes"} {
			found := false
			for _, c := range r.Checks {
				if c.Sample == sm.Name && c.Name == name {
					found = c.OK
				}
			}
			if !found {
				t.Errorf("sample %s: check %q missing or failed", sm.Name, name)
			}
		}
	}
	if !strings.Contains(w.checking.summary.Text, "All") || !strings.Contains(w.checking.summary.Text, "checks passed") {
		t.Errorf("summary = %q", w.checking.summary.Text)
	}
	if cs := r.Client; cs.Host != "127.0.0.1" || cs.Port == 0 || cs.User != address {
		t.Errorf("client settings = %+v", cs)
	}
	// The viewer shows the first sample as a user would see it.
	if w.checking.viewer.subject.Text != w.sampling.samples[0].Subject || !strings.Contains(w.checking.viewer.body.Text, "plain text test message") {
		t.Errorf("viewer shows %q / %q", w.checking.viewer.subject.Text, w.checking.viewer.body.Text)
	}
	h.screenshot("06-check")
	for _, sm := range w.sampling.samples {
		if sm.Name == "html" {
			h.ui(func() { w.checking.viewer.pick.SetSelected(w.checking.viewer.label(r.Samples[1])) })
			h.ui(func() { w.checking.viewer.mode.SetSelected(viewHTMLText) })
			if w.checking.viewer.subject.Text != sm.Subject || strings.Contains(w.checking.viewer.body.Text, "<") {
				t.Errorf("HTML as text: %q", w.checking.viewer.body.Text)
			}
			h.ui(func() { w.checking.viewer.mode.SetSelected(viewHTMLRich) })
			h.screenshot("06b-viewer-html")
			h.ui(func() { w.checking.viewer.mode.SetSelected(viewText) })
		}
		if sm.Language == "ja" {
			for i, sv := range r.Samples {
				if sv.Name == sm.Name {
					h.ui(func() { w.checking.viewer.pick.SetSelected(w.checking.viewer.label(r.Samples[i])) })
				}
			}
			if w.checking.viewer.subject.Text != sm.Subject {
				t.Errorf("Japanese subject = %q, want %q", w.checking.viewer.subject.Text, sm.Subject)
			}
			h.screenshot("06c-viewer-japanese")
		}
	}
	if txt := r.Text(); !strings.Contains(txt, "all ") || !strings.Contains(txt, address) {
		t.Errorf("report text:\n%s", txt)
	}

	// Finish: the dashboard shows the domain migrating and the user moved.
	done := make(chan struct{}, 4)
	h.ui(func() { h.u.dash.onRefresh = func() { done <- struct{}{} } })
	h.tap(w.next)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard did not refresh")
	}
	d := h.u.dash
	if d.snap == nil || len(d.snap.Domains) == 0 || !d.snap.Domains[0].Migrating || d.snap.Domains[0].Name != domain {
		t.Fatalf("dashboard domains = %+v", d.snap)
	}
	var user *core.UserStatus
	for i := range d.rows {
		if d.rows[i].Address == address {
			user = &d.rows[i]
		}
	}
	if user == nil || user.State != "done" || user.Messages == 0 {
		t.Fatalf("dashboard user = %+v", user)
	}
	// The counts agree between the wizard and the dashboard.
	if !strings.Contains(w.migration.migrateOut.Text, fmt.Sprintf("Done: %d folders", user.FolderCount)) ||
		!strings.Contains(w.migration.migrateOut.Text, fmt.Sprintf(" %d messages", user.Messages)) ||
		(user.FoldersTotal > 0 && user.FoldersTotal != user.FolderCount) {
		t.Errorf("wizard says %q, dashboard %d/%d folders, %d messages", strings.SplitN(w.migration.migrateOut.Text, "\n", 2)[0], user.FolderCount, user.FoldersTotal, user.Messages)
	}
	if got := d.cell(0, 0); got != address {
		t.Errorf("users table row 1 = %q", got)
	}
	h.screenshot("07-dashboard")
}

// TestWizardDemo drives the whole wizard against the embedded demo old
// server, started from the welcome page.
func TestWizardDemo(t *testing.T) {
	h := newHarness(t)
	h.shots = os.Getenv(screenshotsEnv)
	w := h.w
	h.mustStep(stepWelcome)
	h.screenshot("01-welcome")
	if err := h.tapTask(w.welcome.demoBtn, "start demo", 30*time.Second); err != nil {
		t.Fatalf("start demo: %v", err)
	}
	if w.welcome.demo == nil || w.welcome.demoBtn.Disabled() == false {
		t.Fatal("demo server not started")
	}
	if w.account.address.Text == "" || w.account.password.Text == "" || w.oldServer.old.host.Text != "[127.0.0.1]" {
		t.Fatalf("demo did not fill the wizard: %q %q %q", w.account.address.Text, w.account.password.Text, w.oldServer.old.host.Text)
	}
	h.screenshot("01b-welcome-demo")
	h.tap(w.next)
	s := core.DemoSettings(w.welcome.demo)
	h.runWizard(s, w.welcome.demo.Domain(), w.account.address.Text, w.account.password.Text)
	h.readiness(w.welcome.demo.Domain(), "bob@example.test", "bob-demo-pw", "", "")
}

// readiness drives the "Disable migration" dialog: the readiness check
// finds users who never logged in, a user without a password cannot be
// pre-migrated without a master user, pre-migrating with a password
// works, and then migration can be turned off.
// With a master user (master != ""), user is listed without a password and
// pre-migrated through the master user instead.
func (h *harness) readiness(domain, user, password, master, masterPw string) {
	t := h.t
	d := h.u.dash
	var ds core.DomainStatus
	for _, x := range d.snap.Domains {
		if x.Name == domain {
			ds = x
		}
	}
	done := make(chan error, 4)
	r := d.newReadinessDialog(ds)
	r.onDone = func(what string, err error) { done <- err }
	r.dlg.Show()
	wait := func(what string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: no result", what)
			return nil
		}
	}
	h.setText(r.users, user+","+password+"\ncarol")
	h.tap(r.check)
	if err := wait("check"); err != nil {
		t.Fatalf("check: %v", err)
	}
	if r.ready == nil || r.ready.Ready() || len(r.ready.NeverLoggedIn) != 2 || !strings.Contains(r.result.Text, "have not moved") {
		t.Fatalf("readiness = %+v, text %q", r.ready, r.result.Text)
	}
	if r.disable.Text != "Disable anyway…" {
		t.Errorf("disable button says %q", r.disable.Text)
	}
	h.screenshot("08-readiness")
	// carol has no password and there is no master user.
	h.tap(r.pre)
	if err := wait("pre-migrate without credentials"); err == nil {
		t.Fatal("pre-migrate ran without credentials")
	}
	if !r.fMaster.hasError() {
		t.Error("no error on the master user field")
	}
	if master != "" {
		// The list as an LDAP search prints it: checked (saved), then the
		// user who has not moved is pre-migrated through the master user.
		h.setText(r.users, "dn: uid=x,dc=example,dc=test\nmail: "+user+"\n")
		h.tap(r.check)
		if err := wait("check with an LDIF list"); err != nil || len(r.ready.NeverLoggedIn) != 1 || r.ready.NeverLoggedIn[0] != user {
			t.Fatalf("LDIF list: %v, %+v", err, r.ready)
		}
		h.setText(r.master, master)
		h.setText(r.masterPw, masterPw)
	} else {
		h.setText(r.users, user+","+password)
	}
	h.tap(r.pre)
	if err := wait("pre-migrate"); err != nil {
		t.Fatalf("pre-migrate: %v (%s)", err, r.result.Text)
	}
	h.tap(r.check)
	if err := wait("check again"); err != nil {
		t.Fatalf("check: %v", err)
	}
	// Every listed user has moved, but no outbound route is proven (and
	// the test has no DNS for the domain): sending would break.
	if len(r.ready.NeverLoggedIn) != 0 || r.ready.Ready() || !r.ready.SendingBreaks() {
		t.Fatalf("after pre-migrating: %+v: %s", r.ready, r.result.Text)
	}
	if a, err := h.core.Account(t.Context(), user); err != nil || a.Migration != "done" {
		t.Fatalf("%s after pre-migration: %+v, %v", user, a, err)
	}
	disableOverriding(t, h, r, wait)
	dom, err := h.core.Domain(t.Context(), domain)
	if err != nil || dom.Migrating {
		t.Fatalf("domain after disable: %+v, %v", dom, err)
	}
}

// TestWizardOldServer drives the wizard against the old-server fixture with
// a master user: the real Dovecot + Postfix (skipped where they are not
// installed, unless MAILFERRY_REQUIRE_OLDSERVER=1) and the in-process one.
func TestWizardOldServer(t *testing.T) {
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		srv := oldtest.StartKind(t, kind, &oldtest.Options{WithSMTP: true})
		h := newHarness(t)
		ih, ip, _ := net.SplitHostPort(srv.IMAPAddr)
		_, sp, _ := net.SplitHostPort(srv.SMTPAddr)
		s := core.OldServerSettings{
			Host: core.MustParseHost("[" + ih + "]"), IMAPTLS: core.TLSStartTLS, SMTPTLS: core.TLSStartTLS,
			PinnedSHA256: srv.CertSHA256, LoginForm: core.LoginAuto,
		}
		s.IMAPPort, _ = strconv.Atoi(ip)
		s.SMTPPort, _ = strconv.Atoi(sp)
		// Some mail already there, in a folder too.
		addr, pw := srv.Address(t, "alice")
		srv.CreateMailbox(t, "alice", "Archive/2024", true)
		srv.Append(t, "alice", "Archive/2024", []string{`\Seen`, "$Important"}, time.Date(2024, 3, 1, 9, 30, 0, 0, time.FixedZone("", 2*3600)),
			[]byte("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: Old mail\r\nDate: Fri, 1 Mar 2024 09:30:00 +0200\r\nMessage-ID: <old1@example.test>\r\n\r\nAn old message.\r\n"))
		h.tap(h.w.next)
		h.runWizard(s, oldtest.Domain, addr, pw)
		bob, bobPw := srv.Address(t, "bob")
		h.readiness(oldtest.Domain, bob, bobPw, srv.MasterUser, srv.MasterPassword)
	})
}

// TestCancel cancels a long step and checks the wizard can go on.
func TestCancel(t *testing.T) {
	h := newHarness(t)
	w := h.w
	// An address that accepts connections but never greets: the probe
	// hangs until canceled.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	h.tap(w.next)
	h.mustStep(stepOldServer)
	h.setText(w.oldServer.old.host, "[127.0.0.1]")
	h.setText(w.oldServer.old.imapPort, port)
	h.setText(w.oldServer.old.smtpPort, port)
	h.tap(w.oldServer.probeBtn)
	if w.cancel == nil || !w.next.Disabled() || w.stop.Disabled() {
		t.Fatal("no task running, or Next enabled / Cancel disabled while it runs")
	}
	time.Sleep(200 * time.Millisecond)
	h.tap(w.stop)
	err = h.wait("canceled probe", 10*time.Second)
	if err == nil || !strings.Contains(w.status.Text, "Canceled") {
		t.Fatalf("err %v, status %q", err, w.status.Text)
	}
	if w.cancel != nil || w.next.Disabled() {
		t.Fatal("the wizard stays busy after cancel")
	}
	h.mustStep(stepOldServer)
}

func TestHTMLToText(t *testing.T) {
	for _, c := range []struct{ in, text, md string }{
		{"<p>Hello <b>world</b></p><p>Second</p>", "Hello world\n\nSecond", "Hello **world**\n\nSecond"},
		{"<ul><li>one</li><li>two</li></ul>", "• one\n• two", "• one\n• two"},
		{`<a href="https://example.org/">link</a>`, "link <https://example.org/>", "[link](https://example.org/)"},
		{"<head><title>T</title><style>p{}</style></head><body>x&amp;y</body>", "x&y", "x&y"},
		{"a<br>b", "a\nb", "a\n\nb"},
		{"<h1>Title</h1>text *star*", "Title\n\ntext *star*", "# Title\n\ntext \\*star\\*"},
	} {
		if got := htmlToText(c.in); got != c.text {
			t.Errorf("htmlToText(%q) = %q, want %q", c.in, got, c.text)
		}
		if got := htmlToMarkdown(c.in); got != c.md {
			t.Errorf("htmlToMarkdown(%q) = %q, want %q", c.in, got, c.md)
		}
	}
}

func TestIconMatchesAssets(t *testing.T) {
	b, err := os.ReadFile("../assets/icon.png")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(iconPNG) {
		t.Fatal("ui/icon.png differs from assets/icon.png: copy it again")
	}
}

func FuzzHTMLToText(f *testing.F) {
	f.Add("<p>Hello <b>world</b></p>")
	f.Add("<a href=x>y")
	f.Add("<<<>>>&&;")
	f.Fuzz(func(t *testing.T, s string) {
		_ = htmlToText(s)
		_ = htmlToMarkdown(s)
	})
}
