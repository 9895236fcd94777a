package ui

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// oldServerStep asks where the old server is and probes it.
type oldServerStep struct {
	w *wizard

	old      *oldForm
	probeBtn *keyButton
	probeOut *widget.Label
	cert     *certPanel
	scroll   *container.Scroll
	probed   string // settings (JSON-ish key) last probed successfully
	// oldSettings are the settings the probe reached, for the next steps.
	oldSettings core.OldServerSettings
}

func (pg *oldServerStep) shown()            { pg.w.u.win.Canvas().Focus(pg.old.host) }
func (pg *oldServerStep) nextLabel() string { return "Next" }

func (pg *oldServerStep) page() fyne.CanvasObject {
	pg.old = newOldForm()
	pg.old.onChange = func() {
		// What the last test said is about other settings now.
		pg.probed = ""
		pg.probeOut.SetText("")
		pg.cert.set(nil)
		pg.w.inputChanged(pg.old.errors())
		pg.w.relayout()
	}
	pg.old.keys(pg.w.goNext, nil)
	pg.probeOut = widget.NewLabel("")
	pg.probeOut.Wrapping = fyne.TextWrapWord
	pg.probeOut.Selectable = true
	pg.probeBtn = newKeyButton("Test connection", pg.testConnection)
	pg.cert = newCertPanel(pg.w.u.app.Clipboard(), func(fp string) {
		pg.old.pin.SetText(fp)
		pg.w.u.win.Canvas().Unfocus() // the button goes; Enter is Next
		pg.testConnection()
	})
	intro := widget.NewLabel("Where is the old mail server? Mailferry copies mail from its IMAP server and, while users move, hands mail for users who have not moved yet to its SMTP server.")
	intro.Wrapping = fyne.TextWrapWord
	pg.scroll = container.NewVScroll(container.NewVBox(intro, pg.old.form,
		container.NewHBox(pg.probeBtn), pg.cert.content(), pg.probeOut))
	return pg.scroll
}

// testConnection probes the old server and shows what it found.
func (pg *oldServerStep) testConnection() { pg.probe(nil) }

// probe validates the form, runs the probe and, when it reached both IMAP
// and SMTP, calls then (if not nil). A failure is said once, in words
// (the wizard's problem line, with the technical detail a click away);
// the findings below list what worked.
func (pg *oldServerStep) probe(then func()) {
	s, err := pg.old.settings()
	if err != nil {
		pg.failed(err)
		return
	}
	pg.probeOut.SetText("")
	pg.cert.set(nil)
	var res *core.ProbeResult
	pg.w.runTask("Testing the connection to "+s.Host.String(), probeTimeout, func(ctx context.Context, t task) error {
		var perr error
		res, perr = pg.w.u.core.ProbeOldServer(ctx, s, "", "")
		if res == nil {
			return perr
		}
		return ctx.Err()
	}, func(err error) {
		if err != nil {
			return
		}
		pg.probeOut.SetText(findingsText(res) + learntText(res.Facts(s, "")))
		pg.cert.set(res)
		if p := probeProblem(res, false); p.Kind != "" {
			pg.w.showProblem(p)
			if pg.cert.box.Visible() { // bring the certificate into view
				pg.scroll.ScrollToOffset(fyne.NewPos(0, pg.cert.box.Position().Y))
			}
			return
		}
		pg.probed = settingsKey(s)
		status := "The old server answers on IMAP and SMTP."
		if res.POP3.Reached {
			// Its POP3 clients' UIDLs are kept (core/migrate reads them).
			s.POP3Port, s.POP3TLS = res.POP3.Port, res.POP3.TLS
			status = fmt.Sprintf("The old server answers on IMAP, SMTP and POP3 (port %d): POP3 users keep their UIDLs.", res.POP3.Port)
		}
		pg.oldSettings = s
		pg.w.setStatus(status, false)
		if then != nil {
			then()
		}
	})
}

// failed shows the form's validation error (how many fields need
// attention, recounted as they are fixed).
func (pg *oldServerStep) failed(err error) {
	if n := pg.old.errors(); n > 0 {
		pg.w.setFieldsStatus(n)
		return
	}
	pg.w.setStatus(err.Error(), true)
}

func (pg *oldServerStep) next() {
	s, err := pg.old.settings()
	if err != nil {
		pg.failed(err)
		return
	}
	if pg.probed == settingsKey(s) {
		s.POP3Port, s.POP3TLS = pg.oldSettings.POP3Port, pg.oldSettings.POP3TLS // found by the probe
		pg.oldSettings = s
		pg.w.show(stepAccount)
		return
	}
	pg.probe(func() { pg.w.show(stepAccount) })
}

func settingsKey(s core.OldServerSettings) string {
	return fmt.Sprintf("%s|%d|%s|%d|%s|%s", s.Host, s.IMAPPort, s.IMAPTLS, s.SMTPPort, s.SMTPTLS, s.PinnedSHA256)
}
