package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// anotherServer is the choice of a server not defined yet.
const anotherServer = "Another old server"

// knownServer is an old server defined before (by the test migration or a
// domain), offered for every later domain.
type knownServer struct {
	label string
	s     core.OldServerSettings
}

// knownServers lists the old servers of the domains and of the test
// migration, each once, in the order first seen.
func (d *dashboard) knownServers() []knownServer {
	var out []knownServer
	seen := map[string]bool{}
	add := func(s core.OldServerSettings, from string) {
		k := fmt.Sprintf("%s|%d|%s|%d|%s|%s", s.Host, s.IMAPPort, s.IMAPTLS, s.SMTPPort, s.SMTPTLS, s.PinnedSHA256)
		if s.Host.String() == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, knownServer{
			label: fmt.Sprintf("%s (IMAP %d, SMTP %d), as for %s", s.Host, s.IMAPPort, s.SMTPPort, from),
			s:     s,
		})
	}
	if d.snap != nil {
		for _, ds := range d.snap.Domains {
			if ds.OldServer != nil {
				add(*ds.OldServer, ds.Name)
			}
		}
	}
	if w := d.u.wizard; w != nil && w.oldServer.probed != "" {
		add(w.oldServer.oldSettings, "the test migration")
	}
	return out
}

// enableDialog edits a domain's old server and turns its migration on (or,
// for a domain that migrates already, changes its old server).
type enableDialog struct {
	d      *dashboard
	dlg    *dialog.CustomDialog
	domain *keyEntry
	fDom   *field
	pick   *widget.Select
	known  []knownServer
	old    *oldForm
	status *widget.Label
	bar    *widget.ProgressBarInfinite
	prob   *problemView
	cert   *certPanel
	body   *fyne.Container
	title  string
	enable *keyButton
	cancel *keyButton
	busy   context.CancelFunc // of the running test, nil when idle
	// onDone, if set (tests), runs on the UI goroutine after an attempt.
	onDone func(err error)
}

// addDomain asks for a new domain's name and its old server. The dialog
// keeps what was typed when it is closed without adding the domain.
func (d *dashboard) addDomain() {
	if d.addDlg == nil {
		d.addDlg = d.enableDialog("", nil, false)
	}
	d.addDlg.show()
}

// showEnable opens the dialog for domain name with its settings s;
// change: the domain migrates already and only its old server changes.
func (d *dashboard) showEnable(name string, s *core.OldServerSettings, change bool) {
	d.enableDialog(name, s, change).show()
}

// enableDialog builds the dialog for domain name (empty: the admin types
// it) with settings s (nil: the first old server known, if any); the
// caller shows it.
func (d *dashboard) enableDialog(name string, s *core.OldServerSettings, change bool) *enableDialog {
	e := &enableDialog{d: d, old: newOldForm()}
	e.domain = newKeyEntry()
	e.domain.SetText(name)
	e.domain.SetPlaceHolder("example.org")
	e.fDom = newField("Domain", e.domain)
	if name != "" {
		e.domain.Disable()
	}
	e.status = widget.NewLabel("Mailferry checks that the old server answers, then turns automatic migration on: " +
		"from then on a user of this domain who logs in to Mailferry is moved at once.")
	e.status.Wrapping = fyne.TextWrapWord
	e.bar = widget.NewProgressBarInfinite()
	e.bar.Stop()
	e.bar.Hide()
	e.prob = newProblemView()
	e.cert = newCertPanel(d.u.app.Clipboard(), func(fp string) {
		e.old.pin.SetText(fp)
		e.run()
	})
	items := []*widget.FormItem{e.fDom.formItem()}
	if s == nil {
		e.known = d.knownServers()
		if len(e.known) > 0 {
			var labels []string
			for _, k := range e.known {
				labels = append(labels, k.label)
			}
			labels = append(labels, anotherServer)
			e.pick = widget.NewSelect(labels, e.picked)
			items = append(items, widget.NewFormItem("Old server", e.pick))
		}
	} else {
		e.old.set(*s)
	}
	items = append(items, e.old.form.Items...)
	scroll := container.NewVScroll(container.NewVBox(widget.NewForm(items...), e.cert.content()))
	e.body = container.NewBorder(nil, container.NewVBox(e.bar, e.prob.content(), e.status), nil, nil, scroll)
	e.old.onChange = func() {
		// The last test was of other settings.
		e.prob.clear()
		e.cert.set(nil)
		refreshTree(e.body)
	}
	e.old.keys(e.run, e.close)
	e.domain.OnSubmitted = func(string) { e.run() }
	e.domain.onEscape = e.close
	e.domain.OnChanged = func(string) { e.fDom.setError("") }
	title, action := "Add a domain", "Enable migration"
	switch {
	case change:
		title, action = "Old server of "+name, "Save"
		e.status.SetText("Mailferry checks that the old server answers, then uses it for " + name + ".")
	case name != "":
		title = "Enable automatic migration for " + name
	}
	e.title = title
	e.dlg = dialog.NewCustomWithoutButtons(title, e.body, d.u.win)
	e.enable = newKeyButton(action, e.run)
	e.enable.Importance = widget.HighImportance
	e.enable.onEscape = e.close
	e.cancel = newKeyButton("Cancel", e.close)
	e.cancel.onEscape = e.close
	e.dlg.SetButtons([]fyne.CanvasObject{e.cancel, e.enable})
	if e.pick != nil {
		e.pick.SetSelectedIndex(0) // the server defined before
	}
	return e
}

// show shows the dialog, sized to the window, with the first empty field
// focused.
func (e *enableDialog) show() {
	ws := e.d.u.win.Canvas().Size()
	e.dlg.Resize(fyne.NewSize(min(720, ws.Width-24), min(560, ws.Height-24)))
	var first fyne.Focusable = e.old.host
	if !e.domain.Disabled() {
		first = e.domain
	}
	e.d.u.showDialog(e.dlg, e.close, e.run, first)
}

// picked fills the form with the old server chosen.
func (e *enableDialog) picked(label string) {
	for _, k := range e.known {
		if k.label == label {
			e.old.set(k.s)
			return
		}
	}
}

// close is Cancel: it stops a running test (the dialog stays, with what
// was typed), or closes the dialog.
func (e *enableDialog) close() {
	if e.busy != nil {
		e.busy()
		return
	}
	e.dlg.Hide()
}

func (e *enableDialog) finish(err error) {
	refreshTree(e.body)
	if e.onDone != nil {
		e.onDone(err)
	}
}

// run validates the form, probes the old server and enables migration.
func (e *enableDialog) run() {
	if e.busy != nil {
		return
	}
	dom, derr := core.CheckDomainName(e.domain.Text)
	switch {
	case strings.TrimSpace(e.domain.Text) == "":
		e.fDom.setError("Give the domain, e.g. example.org.")
	case derr != nil:
		e.fDom.setError(plainStoreErr(derr))
	default:
		e.fDom.setError("")
	}
	e.prob.clear()
	e.cert.set(nil)
	set, err := e.old.settings()
	if derr != nil || err != nil {
		e.status.SetText(fieldsNeedAttention(countErrors(e.fDom) + e.old.errors()))
		e.status.Importance = widget.DangerImportance
		e.finish(errors.New("invalid input"))
		return
	}
	ctx, cancel := context.WithTimeout(e.d.u.ctx, probeTimeout)
	e.busy = cancel
	e.enable.Disable()
	e.bar.Show()
	e.bar.Start()
	e.status.Importance = widget.MediumImportance
	e.status.SetText("Testing the connection to the old server… (Cancel stops the test; what you typed stays.)")
	refreshTree(e.body)
	var res *core.ProbeResult
	e.d.u.goSafe("enable migration", func() error {
		defer cancel()
		var perr error
		res, perr = e.d.u.core.ProbeOldServer(ctx, set, "", "")
		if res == nil {
			return perr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p := probeProblem(res, false); p.Kind != "" && (res.IMAP.Err != nil || !res.IMAP.Reached) {
			return &probeFailure{p}
		}
		return e.d.u.core.EnableMigration(ctx, dom, set)
	}, func(err error) {
		e.busy = nil
		e.enable.Enable()
		e.bar.Stop()
		e.bar.Hide()
		var pf *probeFailure
		switch {
		case err == nil:
			e.dlg.Hide()
			if e.d.addDlg == e {
				e.d.addDlg = nil // added: the next Add starts afresh
			}
			e.d.refresh()
		case errors.Is(err, context.Canceled):
			e.status.Importance = widget.MediumImportance
			e.status.SetText("Test canceled; nothing was changed.")
		case errors.As(err, &pf):
			e.status.SetText("")
			e.prob.set(pf.p)
			e.cert.set(res)
		default:
			if p := core.Explain(err); p.Kind != core.ProblemOther {
				e.status.SetText("")
				e.prob.set(p)
			} else {
				e.status.Importance = widget.DangerImportance
				e.status.SetText("Migration could not be turned on: " + err.Error())
			}
		}
		e.finish(err)
	})
}

// probeFailure is a connection test that found the old server unusable.
type probeFailure struct{ p core.Problem }

func (f *probeFailure) Error() string { return f.p.String() }
