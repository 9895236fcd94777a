package ui

import (
	"testing"

	"fyne.io/fyne/v2/test"
)

// TestMarkup compares pages that do not depend on ports or times with
// golden markup under testdata/markup (Fyne's test renderer). To accept a
// deliberate change, copy testdata/failed/markup/*.xml over them.
func TestMarkup(t *testing.T) {
	h := newHarness(t)
	w := h.w
	h.ui(func() { test.AssertRendersToMarkup(t, "markup/welcome.xml", h.u.win.Canvas()) })

	// The old-server page with invalid input, errors shown inline.
	h.tap(w.next)
	h.setText(w.oldServer.old.host, "[300.1.2.3]")
	h.setText(w.oldServer.old.imapPort, "0")
	h.setText(w.oldServer.old.smtpPort, "70000")
	h.tap(w.next)
	h.noTask()
	h.ui(func() { test.AssertRendersToMarkup(t, "markup/old-server-invalid.xml", h.u.win.Canvas()) })

	// The account page with empty fields.
	h.ui(func() { w.show(stepAccount) })
	h.setText(w.account.domain, "")
	h.tap(w.next)
	h.noTask()
	h.ui(func() { test.AssertRendersToMarkup(t, "markup/account-empty.xml", h.u.win.Canvas()) })
}
