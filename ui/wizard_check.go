package ui

import (
	"context"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// checkStep checks every sample on Mailferry, shows them in the viewer and
// saves the report.
type checkStep struct {
	w *wizard

	report    *core.TestReport // nil until the checks ran
	summary   *widget.Label
	checkList *widget.Label
	viewer    *viewer
	clientBox *widget.Label
	// checkBox holds checkList and clientBox in checkScroll; both are laid
	// out again when their text changes.
	checkBox    *fyne.Container
	checkScroll *container.Scroll
	saveBtn     *widget.Button
	rerunBtn    *widget.Button
	// notCopied says which messages were not copied, why and what to do;
	// retryBtn copies them again (both hidden when all were copied).
	notCopied *widget.Label
	retryBtn  *widget.Button
}

func (pg *checkStep) shown() {
	if pg.report == nil && pg.w.migration.migrated {
		pg.runChecks()
	}
}

func (pg *checkStep) nextLabel() string { return "Finish" }
func (pg *checkStep) next()             { pg.w.u.ShowDashboard() }

// busy enables the rerun button only when no task runs.
func (pg *checkStep) busy(b bool) {
	if b {
		pg.rerunBtn.Disable()
	} else {
		pg.rerunBtn.Enable()
	}
}

// reset forgets the report.
func (pg *checkStep) reset() {
	pg.report = nil
	pg.summary.SetText("")
	pg.checkList.SetText("")
	pg.viewer.set(nil)
	pg.saveBtn.Disable()
}

func (pg *checkStep) page() fyne.CanvasObject {
	pg.summary = widget.NewLabel("")
	pg.summary.TextStyle = fyne.TextStyle{Bold: true}
	// Short lines without wrapping: wrapped labels in a scrolled VBox
	// overlap when their text changes after layout.
	pg.checkList = widget.NewLabel("")
	pg.checkList.Selectable = true
	pg.viewer = newViewer()
	pg.clientBox = widget.NewLabel("Shown when the checks have run.")
	pg.clientBox.Selectable = true
	pg.saveBtn = widget.NewButton("Save report…", pg.saveReport)
	pg.saveBtn.Disable()
	pg.rerunBtn = widget.NewButton("Run the checks again", pg.runChecks)
	pg.notCopied = widget.NewLabel("")
	pg.notCopied.Wrapping = fyne.TextWrapWord
	pg.notCopied.Importance = widget.WarningImportance
	pg.notCopied.Hide()
	pg.retryBtn = widget.NewButton("Try again", pg.retryCopy)
	pg.retryBtn.Hide()
	pg.checkBox = container.NewVBox(pg.notCopied, container.NewHBox(pg.retryBtn), pg.checkList, widget.NewSeparator(), widget.NewLabelWithStyle("Look at the account in any IMAP client", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), pg.clientBox)
	pg.checkScroll = container.NewScroll(pg.checkBox) // both ways: long lines must not widen the window
	left := container.NewBorder(
		container.NewVBox(pg.summary, container.NewHBox(pg.saveBtn, pg.rerunBtn)), nil, nil, nil,
		pg.checkScroll)
	split := container.NewHSplit(left, pg.viewer.content())
	split.Offset = 0.5
	return split
}

// runChecks runs the automated checks against Mailferry's IMAP.
func (pg *checkStep) runChecks() {
	_, address, password, err := pg.w.account.accountInput()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
		return
	}
	if !pg.w.migration.migrated || len(pg.w.sampling.samples) == 0 {
		pg.w.setStatus("Migrate the test account first (go Back).", true)
		return
	}
	s, samples, old := pg.w.oldServer.oldSettings, pg.w.sampling.samples, pg.w.sampling.oldCopies
	var rep *core.TestReport
	pg.summary.SetText("Checking…")
	pg.w.runTask("Checking the migrated messages", checkTimeout, func(ctx context.Context, t task) error {
		var err error
		rep, err = pg.w.u.core.CheckTestAccount(ctx, s, address, password, samples, old, func(done, total int) {
			t.progress(float64(done)/float64(total), fmt.Sprintf("Checked %d of %d samples…", done, total))
		})
		return err
	}, func(err error) {
		if err != nil {
			pg.summary.SetText("The checks could not run: " + err.Error())
			return
		}
		pg.showReport(rep)
	})
}

func (pg *checkStep) showReport(r *core.TestReport) {
	pg.report = r
	if r.OK() {
		pg.summary.SetText(fmt.Sprintf("✔ All %d checks passed", len(r.Checks)))
		pg.summary.Importance = widget.SuccessImportance
	} else {
		pg.summary.SetText(fmt.Sprintf("✘ %d of %d checks failed", r.Failed(), len(r.Checks)))
		pg.summary.Importance = widget.DangerImportance
	}
	if n := len(r.NotCopied); n > 0 {
		pg.summary.SetText(pg.summary.Text + fmt.Sprintf(" · copy done with %s", plural(n, "problem", "problems")))
		pg.summary.Importance = widget.WarningImportance
		if !r.OK() {
			pg.summary.Importance = widget.DangerImportance
		}
		pg.notCopied.SetText(notCopiedText(r.NotCopied))
		pg.notCopied.Show()
		pg.retryBtn.Show()
	} else {
		pg.notCopied.Hide()
		pg.retryBtn.Hide()
	}
	pg.summary.Refresh()
	pg.checkList.SetText(checksText(r))
	pg.viewer.set(r.Samples)
	cs := r.Client
	port := fmt.Sprintf("%d (STARTTLS)", cs.Port)
	if cs.Security != "STARTTLS" {
		port = fmt.Sprintf("%d (no encryption)", cs.Port)
	}
	if cs.TLSPort != 0 {
		port += fmt.Sprintf(" or %d (SSL/TLS)", cs.TLSPort)
	}
	text := fmt.Sprintf("Server: %s\nPort: %s\nUser name: %s\nPassword: the account's password on the old server", cs.Host, port, cs.User)
	if fp := cs.Fingerprint; fp != "" {
		if len(fp) > 48 {
			fp = fp[:48] + "\n        " + fp[48:]
		}
		text += "\nCertificate (self-signed), SHA-256:\n        " + fp
	}
	pg.clientBox.SetText(text)
	pg.checkBox.Refresh()
	pg.checkScroll.Refresh()
	pg.saveBtn.Enable()
}

// retryCopy copies the messages not copied again (core.RetryCopy), waits
// for the copy and runs the checks again.
func (pg *checkStep) retryCopy() {
	_, address, _, err := pg.w.account.accountInput()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
		return
	}
	pg.w.runTask("Copying the messages not copied again", checkTimeout, func(ctx context.Context, t task) error {
		if err := pg.w.u.core.RetryCopy(ctx, address); err != nil {
			return err
		}
		return pg.w.u.core.WaitCopy(ctx, address)
	}, func(err error) {
		if err != nil {
			return // the wizard says it, in words
		}
		pg.runChecks()
	})
}

func (pg *checkStep) saveReport() {
	if pg.report == nil {
		return
	}
	text := pg.report.Text()
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(err, pg.w.u.win)
			return
		}
		if wc == nil {
			return
		}
		_, werr := wc.Write([]byte(text))
		cerr := wc.Close()
		if werr == nil {
			werr = cerr
		}
		if werr != nil {
			dialog.ShowError(fmt.Errorf("the report was not saved: %w", werr), pg.w.u.win)
			return
		}
		pg.w.setStatus("Report saved to "+wc.URI().Path(), false)
	}, pg.w.u.win)
	d.SetFileName("mailferry-test-report.txt")
	pg.w.u.showDialog(d, nil, nil, nil)
}

// checksText sums the checks up per sample: one line for a sample whose
// checks all passed, each failed check in full otherwise.
func checksText(r *core.TestReport) string {
	var b strings.Builder
	if r.OK() {
		b.WriteString("Every sample arrived byte for byte identical,\nwith the same UID, flags and date, and decodes\nto the text that was sent.\n\n")
	}
	var order []string
	bySample := map[string][]core.Check{}
	for _, c := range r.Checks {
		if _, ok := bySample[c.Sample]; !ok {
			order = append(order, c.Sample)
		}
		bySample[c.Sample] = append(bySample[c.Sample], c)
	}
	for _, name := range order {
		checks := bySample[name]
		var failed []core.Check
		for _, c := range checks {
			if !c.OK {
				failed = append(failed, c)
			}
		}
		title := name
		if title == "" {
			title = "account"
		}
		if len(failed) == 0 {
			if name == "" {
				for _, c := range checks {
					fmt.Fprintf(&b, "✔ %s: %s\n", c.Name, c.Detail)
				}
			} else {
				fmt.Fprintf(&b, "✔ %s: all %d checks passed\n", title, len(checks))
			}
			continue
		}
		for _, c := range failed {
			fmt.Fprintf(&b, "✘ %s: %s — %s\n", title, c.Name, c.Detail)
		}
	}
	b.WriteString("\nSave the report for every detail\n(the checks, sizes, SHA-256 digests, dates).")
	return b.String()
}
