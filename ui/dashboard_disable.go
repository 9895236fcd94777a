package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// readinessDialog is the "Disable migration" page of a domain: it tells
// whether the domain can stop migrating (core.Readiness: the old server's
// users, copies, the queue, and the cutover checks), takes the old
// server's user list (pasted or loaded from a file), sends a test message
// through the post-migration route, pre-migrates the users who have not
// moved, and turns migration off — always after a confirmation that shows
// the facts, never with the destructive choice as the default.
type readinessDialog struct {
	d      *dashboard
	domain string
	dlg    *dialog.CustomDialog

	users                           *credentialsEntry // passwords masked
	master, masterPw, testTo        *widget.Entry
	fUsers, fMaster, fMasterPw, fTo *field
	known, result, testResult       *widget.Label
	bar                             *widget.ProgressBar
	load, send                      *widget.Button
	check, pre, disable, closeBtn   *widget.Button
	body                            *fyne.Container
	confirm                         *disableConfirm // the open confirmation, if any
	ready                           *core.Readiness
	busy                            context.CancelFunc
	// onDone, if set (tests), runs on the UI goroutine when a check, a
	// pre-migration, a test message or the switch-off ends.
	onDone func(what string, err error)
}

// disableDialog opens the readiness dialog for ds and runs a first check.
func (d *dashboard) disableDialog(ds core.DomainStatus) *readinessDialog {
	r := d.newReadinessDialog(ds)
	d.u.showDialog(r.dlg, nil, nil, nil)
	r.runCheck()
	return r
}

// newReadinessDialog builds the readiness dialog for ds, not shown yet.
func (d *dashboard) newReadinessDialog(ds core.DomainStatus) *readinessDialog {
	r := &readinessDialog{d: d, domain: ds.Name}
	r.users = newCredentialsEntry()
	r.users.SetPlaceHolder("the old server's users, one a line; or a CSV file, `doveadm user '*'` output, a passwd-file, LDAP search output")
	r.users.SetMinRowsVisible(4)
	r.fUsers = newField("Users", r.users)
	r.master = widget.NewEntry()
	r.master.SetPlaceHolder("master user on the old server, e.g. migrator")
	r.masterPw = widget.NewPasswordEntry()
	r.fMaster = newField("Master user", r.master)
	r.fMasterPw = newField("Master password", r.masterPw)
	r.testTo = widget.NewEntry()
	r.testTo.SetPlaceHolder("an address you read elsewhere, e.g. you@gmail.com")
	r.fTo = newField("Test message to", r.testTo)
	r.known = widget.NewLabel("")
	r.known.Wrapping = fyne.TextWrapWord
	r.result = widget.NewLabel("Press “Check readiness” to see what still depends on the old server.")
	r.result.Wrapping = fyne.TextWrapWord
	r.testResult = widget.NewLabel("")
	r.testResult.Wrapping = fyne.TextWrapWord
	r.bar = widget.NewProgressBar()
	r.bar.Hide()
	r.load = widget.NewButton("Load a file…", r.loadFile)
	r.send = widget.NewButton("Send a test message", r.runTestSend)
	form := widget.NewForm(r.fUsers.formItem(), r.fMaster.formItem(), r.fMasterPw.formItem(), r.fTo.formItem())
	// Hints do not wrap: short, so the dialog fits an 800x600 window; the
	// rest is said in the wrapped intro.
	form.Items[0].HintText = "one a line, or address,password; kept when you check"
	form.Items[1].HintText = "for users listed without a password (never stored)"
	form.Items[3].HintText = "sent now by the route mail takes after migration"
	intro := widget.NewLabel("Before the old server goes away, make sure every user has moved and mail keeps flowing without it. " +
		"The users you list are kept as the old server's users; those who have not moved can be pre-migrated with their passwords " +
		"(address,password) or a master user. A test message delivered proves the route mail takes after migration.")
	intro.Wrapping = fyne.TextWrapWord
	r.body = container.NewVBox(intro, r.known, form, container.NewHBox(r.load, r.send), r.testResult, r.bar, r.result)
	r.dlg = dialog.NewCustomWithoutButtons("Disable migration for "+ds.Name, container.NewVScroll(r.body), d.u.win)
	r.check = widget.NewButton("Check readiness", r.runCheck)
	r.pre = widget.NewButton("Pre-migrate the rest", r.runPreMigrate)
	r.disable = widget.NewButton("Disable migration…", r.runDisable)
	r.disable.Importance = widget.DangerImportance
	r.closeBtn = widget.NewButton("Close", func() {
		if r.busy != nil {
			r.busy()
		}
		r.dlg.Hide()
	})
	r.dlg.SetButtons([]fyne.CanvasObject{r.closeBtn, r.check, r.pre, r.disable})
	r.dlg.Resize(fyne.NewSize(760, 560))
	return r
}

func (r *readinessDialog) done(what string, err error) {
	refreshTree(r.body)
	if r.onDone != nil {
		r.onDone(what, err)
	}
}

// loadFile reads a user list the admin picks into the users field.
func (r *readinessDialog) loadFile() {
	fd := dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil || rc == nil {
			return
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, core.MaxUserListBytes+1))
		if err != nil || len(b) > core.MaxUserListBytes {
			r.fUsers.setError(fmt.Sprintf("That file cannot be read as a user list (at most %d MiB).", core.MaxUserListBytes>>20))
			refreshTree(r.body)
			return
		}
		r.users.SetText(string(b))
		r.fUsers.setError("")
		refreshTree(r.body)
	}, r.d.u.win)
	fd.Show()
}

// list parses the users field for pre-migration, marking it when it is
// wrong.
func (r *readinessDialog) list() ([]core.Credentials, bool) {
	l, err := core.ParseUserList(r.users.secretText(), r.domain)
	if err != nil {
		r.fUsers.setError(upperFirst(err.Error()) + ".")
		refreshTree(r.body)
		return nil, false
	}
	r.fUsers.setError("")
	return l, true
}

// parses reports whether the users field reads as "address[,password]"
// lines.
func (r *readinessDialog) parses() bool {
	_, err := core.ParseUserList(r.users.secretText(), r.domain)
	return err == nil
}

// showKnown says what Mailferry knows of the domain's users.
func (r *readinessDialog) showKnown(res *core.Readiness) {
	switch {
	case res.UsersListed:
		r.known.SetText(fmt.Sprintf("Known users: %s from the list saved on %s, %d more seen by the relay. Paste or load a new list to replace it.",
			core.Plural(res.Listed, "user", "users"), res.ListedAt.Local().Format("2006-01-02 15:04"), res.Seen))
		r.known.Importance = widget.MediumImportance
	default:
		r.known.SetText(fmt.Sprintf("Mailferry has no list of the old server's users (the relay has seen %d), so it cannot tell whether everyone has moved. Paste or load the list below.", res.Seen))
		r.known.Importance = widget.WarningImportance
	}
	r.known.Refresh()
}

func (r *readinessDialog) runCheck() {
	text := r.users.secretText()
	r.check.Disable()
	var res *core.Readiness
	var imported *core.UserList
	r.d.u.goSafe("readiness", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 30*time.Second)
		defer cancel()
		var err error
		if strings.TrimSpace(text) != "" {
			if imported, err = r.d.u.core.ImportKnownUsers(ctx, r.domain, strings.NewReader(text)); err != nil {
				return fmt.Errorf("%w: %w", errUserList, err)
			}
		}
		res, err = r.d.u.core.Readiness(ctx, r.domain)
		return err
	}, func(err error) {
		r.check.Enable()
		r.fUsers.setError("")
		switch {
		case errors.Is(err, errUserList):
			r.fUsers.setError(upperFirst(strings.TrimPrefix(err.Error(), errUserList.Error()+": ")) + ".")
			r.result.SetText("The user list was not saved: fix it, or empty the field to check with the list saved before.")
		case err != nil:
			r.result.SetText("The check failed: " + err.Error())
		default:
			r.ready = res
			r.showKnown(res)
			t := res.Text()
			if imported != nil {
				t = fmt.Sprintf("Saved %s (%s)", core.Plural(len(imported.Addresses), "user", "users"), imported.Format) + skippedNote(imported) + ".\n\n" + t
			}
			r.result.SetText(t)
			if res.Ready() {
				r.disable.SetText("Disable migration…")
			} else {
				r.disable.SetText("Disable anyway…")
			}
		}
		r.done("check", err)
	})
}

// errUserList marks a user list the core refused.
var errUserList = errors.New("user list")

func skippedNote(l *core.UserList) string {
	if l.Skipped == 0 {
		return ""
	}
	return fmt.Sprintf("; %s of other domains left out, e.g. %s", core.Plural(l.Skipped, "user", "users"), l.SkippedSample[0])
}

func (r *readinessDialog) runTestSend() {
	to := strings.TrimSpace(r.testTo.Text)
	if to == "" || !strings.Contains(to, "@") {
		r.fTo.setError("Give an address at another domain that you can read, e.g. you@gmail.com.")
		refreshTree(r.body)
		r.done("test message", errors.New("no address"))
		return
	}
	r.fTo.setError("")
	r.send.Disable()
	r.testResult.SetText("Sending a test message to " + to + "…")
	r.testResult.Importance = widget.MediumImportance
	var proof *core.RouteProof
	r.d.u.goSafe("test message", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 3*time.Minute)
		defer cancel()
		var err error
		proof, err = r.d.u.core.SendTestMessage(ctx, r.domain, to)
		return err
	}, func(err error) {
		r.send.Enable()
		var de *core.DeliveryError
		switch {
		case errors.As(err, &de) && de.Permanent:
			r.testResult.SetText("Not delivered: " + firstNonEmpty(de.Remote, "the remote server") + " refused it for good: " + de.Detail)
			r.testResult.Importance = widget.DangerImportance
		case errors.As(err, &de):
			r.testResult.SetText("Not delivered for now: " + de.Detail + ". Check the route and try again.")
			r.testResult.Importance = widget.DangerImportance
		case errors.Is(err, core.ErrInvalid):
			r.fTo.setError(upperFirst(err.Error()) + ".")
			r.testResult.SetText("")
		case err != nil:
			r.testResult.SetText("The test message could not be sent: " + err.Error())
			r.testResult.Importance = widget.DangerImportance
		default:
			r.testResult.SetText(fmt.Sprintf("Delivered: %s accepted the test message (%s) at %s, by %s. Check that it arrived.",
				proof.Remote, proof.Reply, proof.At.Local().Format("15:04:05"), proof.Route))
			r.testResult.Importance = widget.SuccessImportance
		}
		r.testResult.Refresh()
		r.done("test message", err)
		if err == nil {
			r.runCheck()
		}
	})
}

func (r *readinessDialog) runPreMigrate() {
	var creds []core.Credentials
	if r.ready != nil && len(r.ready.NeverLoggedIn) > 0 && strings.TrimSpace(r.master.Text) != "" &&
		(strings.TrimSpace(r.users.secretText()) == "" || !r.parses()) {
		// The users who have not moved, through the master user: the
		// field is empty, or holds a list in another form (doveadm, LDIF).
		for _, a := range r.ready.NeverLoggedIn {
			creds = append(creds, core.Credentials{Address: a})
		}
	} else {
		var ok bool
		if creds, ok = r.list(); !ok {
			r.done("pre-migrate", errors.New("bad user list"))
			return
		}
	}
	if r.ready != nil && len(r.ready.NeverLoggedIn) > 0 {
		// Only those who have not moved yet.
		missing := map[string]bool{}
		for _, a := range r.ready.NeverLoggedIn {
			missing[a] = true
		}
		var rest []core.Credentials
		for _, c := range creds {
			if missing[c.Address] {
				rest = append(rest, c)
			}
		}
		creds = rest
	}
	needMaster := false
	for _, c := range creds {
		if c.Password == "" {
			needMaster = true
		}
	}
	bad := false
	r.fMaster.setError("")
	r.fMasterPw.setError("")
	if len(creds) == 0 {
		r.fUsers.setError("List the users to pre-migrate, one a line (address,password, or address with a master user below).")
		bad = true
	} else if needMaster && strings.TrimSpace(r.master.Text) == "" {
		r.fMaster.setError("Give the old server's master user, or a password for each user (address,password).")
		bad = true
	} else if needMaster && r.masterPw.Text == "" {
		r.fMasterPw.setError("Give the master user's password.")
		bad = true
	}
	if bad {
		refreshTree(r.body)
		r.done("pre-migrate", errors.New("bad input"))
		return
	}
	ctx, cancel := context.WithTimeout(r.d.u.ctx, 6*time.Hour)
	r.busy = cancel
	r.pre.Disable()
	r.bar.SetValue(0)
	r.bar.Show()
	r.result.SetText(fmt.Sprintf("Pre-migrating %s…", core.Plural(len(creds), "user", "users")))
	refreshTree(r.body)
	mu, mpw := strings.TrimSpace(r.master.Text), r.masterPw.Text
	var failed []string
	r.d.u.goSafe("pre-migrate", func() error {
		defer cancel()
		res, err := r.d.u.core.PreMigrate(ctx, r.domain, creds, mu, mpw, func(done, total int) {
			r.d.u.do(func() {
				r.bar.SetValue(float64(done) / float64(total))
				r.result.SetText(fmt.Sprintf("Pre-migrated %d of %s…", done, core.Plural(total, "user", "users")))
			})
		})
		for _, x := range res {
			if !x.OK && x.Error != "" {
				failed = append(failed, x.Address+": "+x.Error)
			}
		}
		return err
	}, func(err error) {
		r.busy = nil
		r.pre.Enable()
		r.bar.Hide()
		switch {
		case errors.Is(err, context.Canceled):
			r.result.SetText("Pre-migration canceled; the accounts copied so far stay.")
		case err != nil:
			r.result.SetText("Pre-migration stopped: " + err.Error())
		case len(failed) > 0:
			r.result.SetText(fmt.Sprintf("%s could not be pre-migrated:\n%s", core.Plural(len(failed), "user", "users"), strings.Join(failed, "\n")))
			err = fmt.Errorf("%s failed", core.Plural(len(failed), "user", "users"))
		default:
			r.result.SetText(fmt.Sprintf("Pre-migrated: %s. Press “Check readiness” again.", core.Plural(len(creds), "user", "users")))
		}
		r.d.refresh()
		r.done("pre-migrate", err)
	})
}

// runDisable checks readiness afresh and asks for confirmation with the
// facts; only the confirmation turns migration off.
func (r *readinessDialog) runDisable() {
	r.disable.Disable()
	var res *core.Readiness
	r.d.u.goSafe("readiness", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 30*time.Second)
		defer cancel()
		var err error
		res, err = r.d.u.core.Readiness(ctx, r.domain)
		return err
	}, func(err error) {
		r.disable.Enable()
		if err != nil {
			r.result.SetText("The check failed: " + err.Error())
			r.done("confirm", err)
			return
		}
		r.ready = res
		r.result.SetText(res.Text())
		r.confirm = r.newDisableConfirm(res)
		r.confirm.dlg.Show()
		r.d.u.win.Canvas().Focus(r.confirm.cancel)
		r.done("confirm", nil)
	})
}

// disableConfirm is the confirmation before migration is turned off. Its
// default (focused) choice is Cancel. When the domain is not ready, the
// facts are listed and "Disable anyway" stays off until the admin ticks
// that they override them.
type disableConfirm struct {
	dlg      *dialog.CustomDialog
	facts    *widget.Label
	override *widget.Check // nil when ready
	cancel   *widget.Button
	ok       *widget.Button
}

func (r *readinessDialog) newDisableConfirm(res *core.Readiness) *disableConfirm {
	c := &disableConfirm{}
	var text, title, okText string
	if res.Ready() {
		title, okText = "Turn migration off for "+r.domain+"?", "Disable migration"
		text = res.Text() + "\n\nUsers who log in from now on are checked by Mailferry only; the old server is no longer asked."
	} else {
		title, okText = "Not ready: turn migration off for "+r.domain+" anyway?", "Disable anyway"
		var b strings.Builder
		if res.SendingBreaks() {
			b.WriteString("Sending would break: once migration is off, mail from this domain no longer goes through the old server, and the route it takes instead is not proven.\n\n")
		}
		b.WriteString("What stands in the way:\n")
		for _, f := range res.Facts() {
			b.WriteString("• " + f + "\n")
		}
		b.WriteString("\nUsers who have not moved can no longer log in with their old password, and mail for them is no longer relayed to the old server.")
		text = b.String()
	}
	c.facts = widget.NewLabel(text)
	c.facts.Wrapping = fyne.TextWrapWord
	content := container.NewVBox(c.facts)
	c.cancel = widget.NewButton("Cancel", nil)
	c.ok = widget.NewButton(okText, nil)
	c.ok.Importance = widget.DangerImportance
	if !res.Ready() {
		c.override = widget.NewCheck("I have read the above and want to turn migration off anyway", func(on bool) {
			if on {
				c.ok.Enable()
			} else {
				c.ok.Disable()
			}
		})
		c.ok.Disable()
		content.Add(c.override)
	}
	c.dlg = dialog.NewCustomWithoutButtons(title, container.NewVScroll(content), r.d.u.win)
	c.cancel.OnTapped = func() {
		c.dlg.Hide()
		r.confirm = nil
		r.done("disable", errCanceled)
	}
	force := !res.Ready()
	c.ok.OnTapped = func() {
		c.dlg.Hide()
		r.confirm = nil
		r.doDisable(force)
	}
	c.dlg.SetButtons([]fyne.CanvasObject{c.cancel, c.ok})
	c.dlg.Resize(fyne.NewSize(640, 420))
	return c
}

// errCanceled: the admin said no.
var errCanceled = errors.New("canceled")

func (r *readinessDialog) doDisable(force bool) {
	r.disable.Disable()
	var res *core.Readiness
	r.d.u.goSafe("disable migration", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 30*time.Second)
		defer cancel()
		var err error
		res, err = r.d.u.core.DisableMigration(ctx, r.domain, force)
		return err
	}, func(err error) {
		r.disable.Enable()
		switch {
		case errors.Is(err, core.ErrNotReady):
			// Something changed since the confirmation: say what.
			r.ready = res
			r.result.SetText("Migration was not turned off: things changed since you confirmed.\n\n" + res.Text())
		case err != nil:
			r.result.SetText("Migration could not be turned off: " + err.Error())
		default:
			r.dlg.Hide()
			r.d.refresh()
		}
		r.done("disable", err)
	})
}
