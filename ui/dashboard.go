package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// refreshInterval is how often the dashboard reloads its snapshot.
const refreshInterval = time.Second

// dashboard shows the domains, each user's migration, totals and the relay
// queue, refreshed every second off the UI goroutine.
type dashboard struct {
	u *UI

	snap       *core.Status
	rows       []core.UserStatus // snap's users, in the table's order
	listen     *widget.Label
	domainsBox *fyne.Container
	domainsSig string
	table      *usersTable
	totals     *widget.Label
	queue      *widget.Label
	errLabel   *widget.Label
	root       *fyne.Container

	// addDlg is the Add-a-domain dialog while it keeps what was typed.
	addDlg *enableDialog

	// source reads a snapshot (Core.Status; tests give their own).
	source func(ctx context.Context) (*core.Status, error)

	loading atomic.Bool
	// onRefresh, if set (tests), runs on the UI goroutine after a snapshot
	// was applied.
	onRefresh func()
}

func newDashboard(u *UI) *dashboard {
	d := &dashboard{u: u}
	d.listen = widget.NewLabel("")
	d.listen.Truncation = fyne.TextTruncateEllipsis
	d.domainsBox = container.NewVBox()
	d.totals = widget.NewLabel("")
	d.totals.TextStyle = fyne.TextStyle{Bold: true}
	d.queue = widget.NewLabel("")
	d.queue.Wrapping = fyne.TextWrapWord
	d.errLabel = widget.NewLabel("")
	d.errLabel.Importance = widget.DangerImportance
	d.errLabel.Hide()
	d.table = newUsersTable(d)
	d.source = func(ctx context.Context) (*core.Status, error) { return u.core.Status(ctx, nil) }
	return d
}

// content lays the dashboard out to fit any window from 800x600 up: the
// addresses on one line, then the domains (scrolled), the users table and
// the relay queue (scrolled) in splits the admin can drag.
func (d *dashboard) content() fyne.CanvasObject {
	addBtn := widget.NewButton("Add a domain…", d.addDomain)
	domains := container.NewBorder(
		container.NewBorder(nil, nil, widget.NewLabelWithStyle("Domains", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), addBtn,
			widget.NewLabel("Each domain can move off its old server on its own.")),
		nil, nil, nil, container.NewVScroll(d.domainsBox))
	queue := container.NewBorder(widget.NewLabelWithStyle("Relay queue — mail for users who have not moved yet, waiting to be handed to the old server",
		fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), nil, nil, nil, container.NewVScroll(d.queue))
	lower := container.NewVSplit(d.table.content(), queue)
	lower.Offset = 0.75
	all := container.NewVSplit(domains, lower)
	all.Offset = 0.25
	d.root = container.NewBorder(container.NewVBox(d.errLabel, d.listen), nil, nil, nil, all)
	return d.root
}

// cell is the text of a users table cell (row: of d.rows).
func (d *dashboard) cell(row, col int) string {
	if row < 0 || row >= len(d.rows) {
		return ""
	}
	u := d.rows[row]
	switch col {
	case 0:
		return u.Address
	case 1:
		s := stateText(u.State)
		if n := len(u.Problems); n > 0 {
			s = fmt.Sprintf("%s, %d not copied", s, n)
		}
		if !u.RetryAt.IsZero() {
			s += " (" + u.RetryAt.Format("15:04:05") + ")"
		}
		return s
	case 2:
		if u.FoldersTotal > 0 {
			return fmt.Sprintf("%d / %d", u.FolderCount, u.FoldersTotal)
		}
		return fmt.Sprint(u.FolderCount)
	case 3:
		if u.MessagesTotal > 0 {
			return fmt.Sprintf("%d / %d", u.Messages, u.MessagesTotal)
		}
		return fmt.Sprint(u.Messages)
	case 4:
		return humanBytes(u.Bytes)
	case 5:
		if u.Rate > 0 && u.State == "running" {
			return fmt.Sprintf("%.1f msg/s", u.Rate)
		}
		return "—"
	case 6:
		switch {
		case len(u.Problems) > 0:
			p := u.Problems[0]
			return fmt.Sprintf("%s UID %d: %s", p.Mailbox, p.OldUID, p.Words)
		case u.Errors > 0:
			return fmt.Sprintf("%d: %s", u.Errors, u.LastError)
		case u.LastError != "":
			return u.LastError // recorded, but not counted by this process
		}
		return "none"
	}
	return ""
}

func stateText(s string) string {
	switch s {
	case "":
		return "local"
	case "pending":
		return "waiting"
	case "running":
		return "copying"
	case "done":
		return "moved"
	case "failed":
		return "FAILED"
	case "interrupted":
		return "interrupted"
	case "retrying":
		return "retrying soon"
	case "disk-full":
		return "DISK FULL"
	case "waiting-login":
		return "waiting for login"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// start begins the periodic refresh; it ends when the UI closes.
func (d *dashboard) start() {
	d.u.goSafe("dashboard refresh", func() error {
		t := time.NewTicker(refreshInterval)
		defer t.Stop()
		for {
			select {
			case <-d.u.ctx.Done():
				return nil
			case <-t.C:
				d.load()
			}
		}
	}, nil)
}

// refresh loads a snapshot now (from the UI goroutine).
func (d *dashboard) refresh() {
	d.u.goSafe("dashboard load", func() error { d.load(); return nil }, nil)
}

// load reads a snapshot (off the UI goroutine) and applies it.
func (d *dashboard) load() {
	if !d.loading.CompareAndSwap(false, true) {
		return
	}
	defer d.loading.Store(false)
	ctx, cancel := context.WithTimeout(d.u.ctx, 10*time.Second)
	defer cancel()
	snap, err := d.source(ctx)
	if d.u.ctx.Err() != nil {
		return
	}
	d.u.do(func() { d.apply(snap, err) })
}

func (d *dashboard) apply(snap *core.Status, err error) {
	if err != nil {
		d.errLabel.SetText("The dashboard could not be read: " + err.Error())
		d.errLabel.Show()
		return
	}
	d.errLabel.Hide()
	d.snap = snap
	var ls []string
	for _, k := range []string{"imap", "imaps", "pop3", "pop3s", "smtp", "submission", "submissions"} {
		if a := snap.Listen[k]; a != "" {
			ls = append(ls, strings.ToUpper(k)+" "+a)
		}
	}
	if len(ls) == 0 {
		d.listen.SetText("Mailferry's mail services are not running (see the error at the top).")
	} else {
		d.listen.SetText("Mailferry listens on: " + strings.Join(ls, " · ") +
			"\nCertificate: " + snap.Certificate.Summary())
	}
	d.applyDomains(snap.Domains)
	d.table.set(snap.Users())
	d.totals.SetText(totalsText(snap))
	st := snap.Relay
	relayLine := fmt.Sprintf("Since start: %s accepted, %d delivered here, %s relayed to old servers, %d deferred, %d bounced.",
		plural(int(st.Accepted), "message", "messages"), st.Delivered, plural(int(st.Relayed), "recipient", "recipients"), st.Deferred, st.Bounced)
	if len(snap.Queue.Items) == 0 {
		d.queue.SetText("The queue is empty.\n" + relayLine)
	} else {
		var b strings.Builder
		b.WriteString(relayLine + "\n")
		for _, q := range snap.Queue.Items {
			fmt.Fprintf(&b, "#%d %s → %s, %s, %s, next %s", q.ID, q.From, strings.Join(q.Rcpts, ", "),
				humanBytes(q.Size), plural(q.Attempts, "attempt", "attempts"), q.NextAttempt.Local().Format("15:04:05"))
			if q.LastError != "" {
				fmt.Fprintf(&b, " — %s", q.LastError)
			}
			b.WriteByte('\n')
		}
		d.queue.SetText(b.String())
	}
	if d.onRefresh != nil {
		d.onRefresh()
	}
}

// totalsText sums the users up: the accounts moved, copying, failed and
// native (made on Mailferry, never migrated) as the store counts them.
func totalsText(snap *core.Status) string {
	var users, moved, native int
	for _, ds := range snap.Domains {
		users += len(ds.Accounts)
		moved += ds.Moved
		native += ds.Native
	}
	s := fmt.Sprintf("%s: %d moved, %d copying, %d waiting, %d failed", plural(users, "user", "users"), moved, snap.Running, snap.Waiting, snap.Failed)
	if native > 0 {
		s += fmt.Sprintf(", %d native", native)
	}
	return s + fmt.Sprintf(" — %s, %s on Mailferry", plural(int(snap.TotalMessages), "message", "messages"), humanBytes(snap.TotalBytes))
}

// movedText says how many of a domain's migrated users have moved; a
// native account (never migrated) is counted apart, not as moved.
func movedText(ds core.DomainStatus) string {
	s := fmt.Sprintf("%d of %s moved", ds.Moved, plural(len(ds.Accounts)-ds.Native, "user", "users"))
	if ds.Native > 0 {
		s += fmt.Sprintf(", %d native", ds.Native)
	}
	return s
}

// applyDomains rebuilds the domain rows when they changed.
func (d *dashboard) applyDomains(list []core.DomainStatus) {
	var sig strings.Builder
	for _, ds := range list {
		fmt.Fprintf(&sig, "%s|%v|%d|%d|%d|", ds.Name, ds.Migrating, len(ds.Accounts), ds.Moved, ds.Native)
		if ds.OldServer != nil {
			sig.WriteString(settingsKey(*ds.OldServer))
		}
		sig.WriteByte('\n')
	}
	if sig.String() == d.domainsSig {
		return
	}
	d.domainsSig = sig.String()
	var rows []fyne.CanvasObject
	if len(list) == 0 {
		rows = append(rows, widget.NewLabel("No domains yet. Run the test migration, or add a domain."))
	}
	for _, ds := range list {
		ds := ds
		name := widget.NewLabelWithStyle(ds.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		state := "not migrating"
		if ds.Migrating {
			state = "automatic migration ON"
		}
		old := "no old server set"
		if ds.OldServer != nil {
			old = fmt.Sprintf("old server %s (IMAP %d %s, SMTP %d %s", ds.OldServer.Host, ds.OldServer.IMAPPort,
				choiceFromTLS(ds.OldServer.IMAPTLS), ds.OldServer.SMTPPort, choiceFromTLS(ds.OldServer.SMTPTLS))
			if ds.OldServer.POP3Port != 0 {
				old += fmt.Sprintf(", POP3 %d %s: UIDLs kept", ds.OldServer.POP3Port, choiceFromTLS(ds.OldServer.POP3TLS))
			}
			old += ")"
		}
		info := widget.NewLabel(fmt.Sprintf("%s · %s · %s", state, old, movedText(ds)))
		info.Truncation = fyne.TextTruncateEllipsis
		var btn fyne.CanvasObject
		route := widget.NewButton("Outbound mail…", func() { d.u.showDialog(d.routeDialog(ds.Name).dlg, nil, nil, nil) })
		if ds.Migrating {
			btn = container.NewHBox(route,
				widget.NewButton("Old server…", func() { d.showEnable(ds.Name, ds.OldServer, true) }),
				widget.NewButton("Disable migration…", func() { d.disableDialog(ds) }))
		} else {
			b := widget.NewButton("Enable automatic migration…", func() { d.showEnable(ds.Name, ds.OldServer, false) })
			b.Importance = widget.HighImportance
			btn = container.NewHBox(route, b)
		}
		rows = append(rows, container.NewBorder(nil, nil, name, btn, info))
	}
	d.domainsBox.Objects = rows
	d.domainsBox.Refresh()
	if d.root != nil {
		d.root.Refresh() // the rows' height changed: lay the page out again
	}
}

// readinessDialog checks whether a domain's migration can be turned off,
// pre-migrates the users who have not moved yet, and turns it off.
type readinessDialog struct {
	d      *dashboard
	domain string
	dlg    *dialog.CustomDialog

	users                         *credentialsEntry // passwords masked
	master, masterPw              *widget.Entry
	fUsers, fMaster, fMasterPw    *field
	result                        *widget.Label
	bar                           *widget.ProgressBar
	check, pre, disable, closeBtn *widget.Button
	body                          *fyne.Container

	ready *core.Readiness
	busy  context.CancelFunc
	// onDone, if set (tests), runs on the UI goroutine when a check, a
	// pre-migration or the switch-off ends.
	onDone func(what string, err error)
}

// disableDialog opens the readiness dialog for ds and runs a first check.
func (d *dashboard) disableDialog(ds core.DomainStatus) *readinessDialog {
	r := d.newReadinessDialog(ds)
	d.u.showDialog(r.dlg, r.closeBtn.OnTapped, nil, r.users) // Escape is Close; the list has the focus
	r.runCheck()
	return r
}

// newReadinessDialog builds the readiness dialog for ds, not shown yet.
func (d *dashboard) newReadinessDialog(ds core.DomainStatus) *readinessDialog {
	r := &readinessDialog{d: d, domain: ds.Name}
	r.users = newCredentialsEntry()
	r.users.SetPlaceHolder("users on the old server, one a line: address, or address,password")
	r.users.SetMinRowsVisible(4)
	r.fUsers = newField("Users", r.users)
	r.master = widget.NewEntry()
	r.master.SetPlaceHolder("master user on the old server, e.g. migrator")
	r.masterPw = widget.NewPasswordEntry()
	r.fMaster = newField("Master user", r.master)
	r.fMasterPw = newField("Master password", r.masterPw)
	r.result = widget.NewLabel("Press “Check readiness” to see what still depends on the old server.")
	r.result.Wrapping = fyne.TextWrapWord
	r.bar = widget.NewProgressBar()
	r.bar.Hide()
	form := widget.NewForm(r.fUsers.formItem(), r.fMaster.formItem(), r.fMasterPw.formItem())
	form.Items[0].HintText = "to find users who never logged in; with passwords (or a master user) they can be pre-migrated"
	form.Items[1].HintText = "for users listed without a password (never stored)"
	intro := widget.NewLabel("Before the old server goes away, make sure every user has moved.")
	r.body = container.NewVBox(intro, form, r.bar, r.result)
	r.dlg = dialog.NewCustomWithoutButtons("Disable migration for "+ds.Name, r.body, d.u.win)
	r.check = widget.NewButton("Check readiness", r.runCheck)
	r.pre = widget.NewButton("Pre-migrate the rest", r.runPreMigrate)
	r.disable = widget.NewButton("Disable migration", r.runDisable)
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

// list parses the users field, marking it when it is wrong.
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

func (r *readinessDialog) runCheck() {
	creds, ok := r.list()
	if !ok {
		r.done("check", errors.New("bad user list"))
		return
	}
	r.check.Disable()
	var res *core.Readiness
	r.d.u.goSafe("readiness", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 30*time.Second)
		defer cancel()
		var err error
		res, err = r.d.u.core.Readiness(ctx, r.domain, core.Addresses(creds))
		return err
	}, func(err error) {
		r.check.Enable()
		if err != nil {
			r.result.SetText("The check failed: " + err.Error())
		} else {
			r.ready = res
			r.result.SetText(res.Text())
			if res.Ready() {
				r.disable.SetText("Disable migration")
			} else {
				r.disable.SetText("Disable anyway")
			}
		}
		r.done("check", err)
	})
}

func (r *readinessDialog) runPreMigrate() {
	creds, ok := r.list()
	if !ok {
		r.done("pre-migrate", errors.New("bad user list"))
		return
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
	r.result.SetText(fmt.Sprintf("Pre-migrating %d users…", len(creds)))
	refreshTree(r.body)
	mu, mpw := strings.TrimSpace(r.master.Text), r.masterPw.Text
	var failed []string
	r.d.u.goSafe("pre-migrate", func() error {
		defer cancel()
		res, err := r.d.u.core.PreMigrate(ctx, r.domain, creds, mu, mpw, func(done, total int) {
			r.d.u.do(func() {
				r.bar.SetValue(float64(done) / float64(total))
				r.result.SetText(fmt.Sprintf("Pre-migrated %d of %d users…", done, total))
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
			r.result.SetText(fmt.Sprintf("%d users could not be pre-migrated:\n%s", len(failed), strings.Join(failed, "\n")))
			err = fmt.Errorf("%d users failed", len(failed))
		default:
			r.result.SetText(fmt.Sprintf("All %d users were pre-migrated. Press “Check readiness” again.", len(creds)))
		}
		r.d.refresh()
		r.done("pre-migrate", err)
	})
}

func (r *readinessDialog) runDisable() {
	do := func() {
		r.disable.Disable()
		r.d.u.goSafe("disable migration", func() error {
			ctx, cancel := context.WithTimeout(r.d.u.ctx, 30*time.Second)
			defer cancel()
			return r.d.u.core.DisableMigration(ctx, r.domain)
		}, func(err error) {
			r.disable.Enable()
			if err != nil {
				r.result.SetText("Migration could not be turned off: " + err.Error())
			} else {
				r.dlg.Hide()
				r.d.refresh()
			}
			r.done("disable", err)
		})
	}
	if r.ready != nil && r.ready.Ready() {
		do()
		return
	}
	dialog.ShowConfirm("Disable migration anyway?", "Not everything has moved (or readiness was not checked). "+
		"Users who have not moved can no longer log in to Mailferry with their old password, and mail for them is no longer relayed to the old server. Disable anyway?",
		func(ok bool) {
			if ok {
				do()
			}
		}, r.d.u.win)
}
