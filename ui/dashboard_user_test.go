package ui

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/emersion/go-imap/v2"

	"mailferry/core"
	"mailferry/core/demo"
)

// loadDashboard reads the real status now and applies it.
func loadDashboard(t *testing.T, h *harness) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); h.u.dash.loading.Load() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	snap, err := h.core.Status(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.ui(func() { h.u.dash.apply(snap, nil) })
}

// userRow returns the users table's row of address (-1 if none).
func userRow(h *harness, address string) int {
	row := -1
	h.ui(func() {
		for i, u := range h.u.dash.rows {
			if u.Address == address {
				row = i
			}
		}
	})
	return row
}

// openUser selects address's row as the admin would and returns the
// dialog it opened.
func openUser(t *testing.T, h *harness, address string) *userDialog {
	t.Helper()
	row := userRow(h, address)
	if row < 0 {
		t.Fatalf("%s is not in the users table", address)
	}
	var ud *userDialog
	d := h.u.dash
	h.ui(func() {
		n := len(h.u.dialogs)
		d.table.table.Select(widget.TableCellID{Row: row, Col: 6})
		if len(h.u.dialogs) != n+1 {
			t.Fatalf("selecting %s opened no dialog", address)
		}
		ud = d.lastUser
	})
	return ud
}

// Issue 16's Errors column and issue 14's messages not copied: a copy of
// the demo old server with one message it cannot serve ends "moved, 1 not
// copied"; the dashboard says so in words, the user's dialog names the
// folder, the message and the server's words, says what to do, and Try
// again copies it once the server serves it. Then the old server's IMAP
// port is pointed at its SMTP port: the copy fails with a protocol dump,
// and the Errors column says "That port speaks SMTP", the dump one click
// away (selectable and copied to the clipboard).
func TestDashboardErrorsInWords(t *testing.T) {
	h := newHarness(t)
	var broken atomic.Bool
	broken.Store(true)
	const user, pw = "alice@example.test", "alice-demo-pw"
	srv, err := demo.Start(t.Context(), &demo.Options{Seed: true, Unservable: func(address, mailbox string, uid imap.UID) bool {
		return broken.Load() && address == user && mailbox == "INBOX" && uid == 2
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := t.Context()
	s := core.DemoSettings(srv)
	if err := h.core.EnableMigration(ctx, srv.Domain(), s); err != nil {
		t.Fatal(err)
	}
	res, err := h.core.MigrateUsers(ctx, srv.Domain(), []core.Credentials{{Address: user, Password: pw}}, nil)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("migrate: %+v, %v", res, err)
	}
	h.ui(func() {
		h.u.tabs.SelectIndex(1)
		h.u.win.Resize(fyne.NewSize(1024, 720))
	})
	loadDashboard(t, h)
	row := userRow(h, user)
	var state, errs string
	h.ui(func() { state, errs = h.u.dash.cell(row, 1), h.u.dash.cell(row, 6) })
	if state != "moved, 1 not copied" || errs != "1 message not copied: the old server could not serve it" {
		t.Fatalf("the user's row says %q / %q", state, errs)
	}
	ud := openUser(t, h, user)
	for _, want := range []string{`1 message was not copied (the rest was)`, `folder "INBOX", message 2 on the old server`, "“Message file is damaged”", "What to do:", "Try again"} {
		if !strings.Contains(ud.notCopied.Text, want) {
			t.Errorf("the user's dialog lacks %q:\n%s", want, ud.notCopied.Text)
		}
	}
	if !ud.retry.Visible() || !strings.Contains(ud.detail.Text, "INBOX UID 2: the old server refused it") {
		t.Errorf("no Try again, or detail %q", ud.detail.Text)
	}
	h.ui(func() { ud.dlg.Hide() })

	// Try again while the server still cannot serve it: still recorded,
	// tried twice.
	retry := func(ud *userDialog) error {
		t.Helper()
		done := make(chan error, 1)
		h.ui(func() {
			ud.onDone = func(err error) { done <- err }
			test.Tap(ud.retry)
		})
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			t.Fatal("Try again: no result")
		}
		if werr := h.core.WaitCopy(ctx, user); werr != nil {
			t.Fatalf("the copy after Try again: %v", werr)
		}
		return err
	}
	if err := retry(ud); err != nil {
		t.Fatalf("Try again: %v (%s)", err, ud.status.Text)
	}
	loadDashboard(t, h)
	var u core.UserStatus
	row = userRow(h, user)
	h.ui(func() { u = h.u.dash.rows[row] })
	if len(u.Problems) != 1 || u.Problems[0].Tries != 2 {
		t.Fatalf("after a retry the server still refuses: problems %+v", u.Problems)
	}
	// The server serves it now: Try again copies it.
	broken.Store(false)
	ud = openUser(t, h, user)
	if err := retry(ud); err != nil {
		t.Fatal(err)
	}
	h.ui(func() { ud.dlg.Hide() })
	loadDashboard(t, h)
	row = userRow(h, user)
	h.ui(func() { state, errs = h.u.dash.cell(row, 1), h.u.dash.cell(row, 6) })
	if state != "moved" || errs != "none" {
		t.Fatalf("after the server served it: %q / %q", state, errs)
	}

	// A protocol dump: the IMAP port is the old server's SMTP port.
	bad := s
	bad.IMAPPort = bad.SMTPPort
	if err := h.core.SetMigration(ctx, srv.Domain(), &bad, true); err != nil {
		t.Fatal(err)
	}
	if err := h.core.RetryCopy(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := h.core.WaitCopy(ctx, user); err == nil {
		t.Fatal("a copy from an SMTP port did not fail")
	}
	loadDashboard(t, h)
	row = userRow(h, user)
	h.ui(func() { u = h.u.dash.rows[row]; errs = h.u.dash.cell(row, 6) })
	if !strings.Contains(u.LastError, `"220"`) && !strings.Contains(u.LastError, "220 ") {
		t.Logf("the engine's error is not the expected dump (the test still checks the words): %q", u.LastError)
	}
	if errs != "That port speaks SMTP, not IMAP." || u.Problem.Kind != core.ProblemWrongProtocol {
		t.Fatalf("the Errors column says %q for %q (%+v)", errs, u.LastError, u.Problem)
	}
	if strings.Contains(errs, u.LastError) {
		t.Fatalf("the Errors column shows the protocol text %q", u.LastError)
	}
	ud = openUser(t, h, user)
	if !strings.Contains(ud.words.Text, "Are the IMAP and SMTP ports swapped?") || ud.detail.Text != u.LastError || !ud.detail.Selectable {
		t.Fatalf("the user's dialog says %q, detail %q", ud.words.Text, ud.detail.Text)
	}
	h.ui(func() { test.Tap(ud.copyBtn) })
	if got := h.u.app.Clipboard().Content(); got != u.LastError {
		t.Fatalf("the clipboard holds %q, want the technical detail %q", got, u.LastError)
	}
	h.ui(func() { h.u.escape() })
	if len(h.u.dialogs) != 0 {
		t.Fatal("Escape did not close the user's dialog")
	}
	h.screenshot("07b-dashboard-error-words")
}

// The check step lists the messages not copied with what to do, the
// summary says "done with 1 problem" and the saved report lists them.
func TestCheckShowsNotCopied(t *testing.T) {
	h := newHarness(t)
	rep := &core.TestReport{Address: "alice@example.test", Time: time.Now(),
		Checks: []core.Check{{Name: "folders", OK: true, Detail: "INBOX: 3 = 3"}},
		NotCopied: []core.CopyProblem{{Mailbox: "Archive/2019", OldUID: 7, Words: "the old server refused it: “Message file is damaged” (NO SERVERBUG)", Tries: 1,
			FirstSeen: time.Now(), LastSeen: time.Now()}}}
	pg := h.w.checking
	h.ui(func() {
		h.w.show(stepCheck)
		pg.showReport(rep)
	})
	if !strings.Contains(pg.summary.Text, "copy done with 1 problem") || pg.summary.Importance != widget.WarningImportance {
		t.Errorf("summary %q (importance %v)", pg.summary.Text, pg.summary.Importance)
	}
	for _, want := range []string{`folder "Archive/2019", message 7 on the old server`, "Message file is damaged", "catch-up"} {
		if !strings.Contains(pg.notCopied.Text, want) {
			t.Errorf("the check page lacks %q:\n%s", want, pg.notCopied.Text)
		}
	}
	if !pg.notCopied.Visible() || !pg.retryBtn.Visible() {
		t.Error("the messages not copied or Try again are hidden")
	}
	if txt := rep.Text(); !strings.Contains(txt, "Not copied: 1 message the old server could not serve") || !strings.Contains(txt, `folder "Archive/2019", old UID 7`) {
		t.Errorf("report:\n%s", txt)
	}
	// A report without problems hides both.
	h.ui(func() { pg.showReport(&core.TestReport{Checks: rep.Checks}) })
	if pg.notCopied.Visible() || pg.retryBtn.Visible() || strings.Contains(pg.summary.Text, "problem") {
		t.Errorf("a clean copy still shows problems: %q", pg.summary.Text)
	}
}
