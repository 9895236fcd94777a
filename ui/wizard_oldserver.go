package ui

import (
	"context"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// oldServerStep asks where the old server is and probes it.
type oldServerStep struct {
	w *wizard

	old      *oldForm
	probeBtn *widget.Button
	probeOut *widget.Label
	trustBtn *widget.Button
	trustFP  string
	probed   string // settings (JSON-ish key) last probed successfully
	// oldSettings are the settings the probe reached, for the next steps.
	oldSettings core.OldServerSettings
}

func (pg *oldServerStep) shown()            {}
func (pg *oldServerStep) nextLabel() string { return "Next" }

func (pg *oldServerStep) page() fyne.CanvasObject {
	pg.old = newOldForm()
	pg.old.onChange = func() {
		pg.probed = ""
		pg.w.relayout()
	}
	pg.probeOut = widget.NewLabel("")
	pg.probeOut.Wrapping = fyne.TextWrapWord
	pg.probeOut.Selectable = true
	pg.probeBtn = widget.NewButton("Test connection", pg.testConnection)
	pg.trustBtn = widget.NewButton("Trust this certificate", func() {
		pg.old.pin.SetText(pg.trustFP)
		pg.trustBtn.Hide()
		pg.testConnection()
	})
	pg.trustBtn.Hide()
	intro := widget.NewLabel("Where is the old mail server? Mailferry copies mail from its IMAP server and, while users move, hands mail for users who have not moved yet to its SMTP server.")
	intro.Wrapping = fyne.TextWrapWord
	return container.NewVScroll(container.NewVBox(intro, pg.old.form,
		container.NewHBox(pg.probeBtn, pg.trustBtn), pg.probeOut))
}

// testConnection probes the old server and shows what it found.
func (pg *oldServerStep) testConnection() { pg.probe(nil) }

// probe validates the form, runs the probe and, when it reached both IMAP
// and SMTP, calls then (if not nil).
func (pg *oldServerStep) probe(then func()) {
	s, err := pg.old.settings()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
		return
	}
	pg.probeOut.SetText("")
	pg.trustBtn.Hide()
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
		pg.probeOut.SetText(res.Text() + learntText(res.Facts(s, "")))
		if fp := untrustedFingerprint(res); fp != "" {
			pg.trustFP = fp
			pg.trustBtn.SetText("Trust this certificate (SHA-256 " + shortFP(fp) + ")")
			pg.trustBtn.Show()
		}
		if !res.IMAP.Reached || !res.SMTP.Reached {
			var what []string
			if !res.IMAP.Reached {
				what = append(what, "IMAP: "+firstNonEmpty(res.IMAP.Error, res.IMAP.Summary))
			}
			if !res.SMTP.Reached {
				what = append(what, "SMTP: "+firstNonEmpty(res.SMTP.Error, res.SMTP.Summary))
			}
			pg.w.setStatus("The old server could not be reached. "+strings.Join(what, " "), true)
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

func (pg *oldServerStep) next() {
	s, err := pg.old.settings()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
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

// untrustedFingerprint returns the fingerprint of a certificate the probe
// saw but did not trust, or "".
func untrustedFingerprint(r *core.ProbeResult) string {
	for _, t := range []*core.TLSInfo{r.IMAP.TLS, r.SMTP.TLS} {
		if t != nil && !t.Trusted && t.SHA256 != "" {
			return t.SHA256
		}
	}
	return ""
}

func shortFP(fp string) string {
	if len(fp) > 23 {
		return fp[:23] + "…"
	}
	return fp
}
