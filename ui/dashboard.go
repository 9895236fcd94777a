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
	users      *widget.Table
	totals     *widget.Label
	queue      *widget.Label
	errLabel   *widget.Label
	root       *fyne.Container

	loading atomic.Bool
	// onRefresh, if set (tests), runs on the UI goroutine after a snapshot
	// was applied.
	onRefresh func()
}

var userColumns = []string{"User", "State", "Folders", "Messages", "Size", "Rate", "Errors"}

func newDashboard(u *UI) *dashboard {
	d := &dashboard{u: u}
	d.listen = widget.NewLabel("")
	d.listen.Wrapping = fyne.TextWrapWord
	d.domainsBox = container.NewVBox()
	d.totals = widget.NewLabel("")
	d.totals.TextStyle = fyne.TextStyle{Bold: true}
	d.queue = widget.NewLabel("")
	d.queue.Wrapping = fyne.TextWrapWord
	d.errLabel = widget.NewLabel("")
	d.errLabel.Importance = widget.DangerImportance
	d.errLabel.Hide()
	d.users = widget.NewTable(
		func() (int, int) {
			return len(d.rows) + 1, len(userColumns)
		},
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.TableCellID, o fyne.CanvasObject) {
			l := o.(*widget.Label)
			l.SetText(d.cell(id.Row, id.Col))
			l.TextStyle = fyne.TextStyle{Bold: id.Row == 0}
		},
	)
	d.users.StickyRowCount = 1
	for i, w := range []float32{240, 90, 90, 130, 100, 100, 260} {
		d.users.SetColumnWidth(i, w)
	}
	return d
}

func (d *dashboard) content() fyne.CanvasObject {
	addBtn := widget.NewButton("Add a domain…", d.addDomain)
	domains := widget.NewCard("Domains", "Each domain can move off its old server on its own.",
		container.NewVBox(d.domainsBox, container.NewHBox(addBtn)))
	users := widget.NewCard("Users", "", container.NewBorder(nil, d.totals, nil, nil, d.users))
	queue := widget.NewCard("Relay queue", "Mail for users who have not moved yet, waiting to be handed to the old server.", container.NewVScroll(d.queue))
	top := container.NewVBox(d.errLabel, d.listen, domains)
	bottom := container.NewVSplit(users, queue)
	bottom.Offset = 0.7
	d.root = container.NewBorder(top, nil, nil, nil, bottom)
	return d.root
}

// cell is the text of a users table cell; row 0 is the header.
func (d *dashboard) cell(row, col int) string {
	if row == 0 {
		return userColumns[col]
	}
	if row-1 >= len(d.rows) {
		return ""
	}
	u := d.rows[row-1]
	switch col {
	case 0:
		return u.Address
	case 1:
		return stateText(u.State)
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
	snap, err := d.u.core.Status(ctx, nil)
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
	d.rows = snap.Users()
	var ls []string
	for _, k := range []string{"imap", "imaps", "smtp", "submission", "submissions"} {
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
	d.users.Refresh()
	d.totals.SetText(totalsText(snap))
	st := snap.Relay
	relayLine := fmt.Sprintf("Since start: %d messages accepted, %d delivered here, %d recipients relayed to old servers, %d deferred, %d bounced.",
		st.Accepted, st.Delivered, st.Relayed, st.Deferred, st.Bounced)
	if len(snap.Queue.Items) == 0 {
		d.queue.SetText("The queue is empty.\n" + relayLine)
	} else {
		var b strings.Builder
		b.WriteString(relayLine + "\n")
		for _, q := range snap.Queue.Items {
			fmt.Fprintf(&b, "#%d %s → %s, %s, %d attempt(s), next %s", q.ID, q.From, strings.Join(q.Rcpts, ", "),
				humanBytes(q.Size), q.Attempts, q.NextAttempt.Local().Format("15:04:05"))
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
	s := fmt.Sprintf("%d users: %d moved, %d copying, %d failed", users, moved, snap.Running, snap.Failed)
	if native > 0 {
		s += fmt.Sprintf(", %d native", native)
	}
	return s + fmt.Sprintf(" — %d messages, %s on Mailferry", snap.TotalMessages, humanBytes(snap.TotalBytes))
}

// movedText says how many of a domain's migrated users have moved; a
// native account (never migrated) is counted apart, not as moved.
func movedText(ds core.DomainStatus) string {
	s := fmt.Sprintf("%d of %d users moved", ds.Moved, len(ds.Accounts)-ds.Native)
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
			old = fmt.Sprintf("old server %s (IMAP %d %s, SMTP %d %s)", ds.OldServer.Host, ds.OldServer.IMAPPort,
				choiceFromTLS(ds.OldServer.IMAPTLS), ds.OldServer.SMTPPort, choiceFromTLS(ds.OldServer.SMTPTLS))
		}
		info := widget.NewLabel(fmt.Sprintf("%s · %s · %s", state, old, movedText(ds)))
		info.Truncation = fyne.TextTruncateEllipsis
		var btn fyne.CanvasObject
		route := widget.NewButton("Outbound mail…", func() { d.routeDialog(ds.Name).dlg.Show() })
		dnsBtn := widget.NewButton("DNS & certificate…", func() { d.dnsDialog(ds.Name).dlg.Show() })
		if ds.Migrating {
			btn = container.NewHBox(route, dnsBtn,
				widget.NewButton("Old server…", func() { d.enableDialog(ds.Name, ds.OldServer).dlg.Show() }),
				widget.NewButton("Disable migration…", func() { d.disableDialog(ds) }))
		} else {
			b := widget.NewButton("Enable automatic migration…", func() { d.enableDialog(ds.Name, ds.OldServer).dlg.Show() })
			b.Importance = widget.HighImportance
			btn = container.NewHBox(route, dnsBtn, b)
		}
		rows = append(rows, container.NewBorder(nil, nil, name, btn, info))
	}
	d.domainsBox.Objects = rows
	d.domainsBox.Refresh()
	if d.root != nil {
		d.root.Refresh() // the rows' height changed: lay the page out again
	}
}

// addDomain asks for a new domain's name and its old server.
func (d *dashboard) addDomain() { d.enableDialog("", nil).dlg.Show() }

// enableDialog edits a domain's old server and turns its migration on.
type enableDialog struct {
	d      *dashboard
	dlg    *dialog.CustomDialog
	domain *widget.Entry
	fDom   *field
	old    *oldForm
	status *widget.Label
	body   *fyne.Container
	enable *widget.Button
	// onDone, if set (tests), runs on the UI goroutine after an attempt.
	onDone func(err error)
}

// enableDialog builds the dialog for domain name (empty: the admin types
// it) with settings s (nil: empty form); the caller shows it.
func (d *dashboard) enableDialog(name string, s *core.OldServerSettings) *enableDialog {
	e := &enableDialog{d: d, old: newOldForm()}
	if s != nil {
		e.old.set(*s)
	}
	e.domain = widget.NewEntry()
	e.domain.SetText(name)
	e.domain.SetPlaceHolder("example.org")
	e.fDom = newField("Domain", e.domain)
	if name != "" {
		e.domain.Disable()
	}
	e.status = widget.NewLabel("Mailferry checks that the old server answers, then turns automatic migration on: " +
		"from then on a user of this domain who logs in to Mailferry is moved at once.")
	e.status.Wrapping = fyne.TextWrapWord
	items := append([]*widget.FormItem{e.fDom.formItem()}, e.old.form.Items...)
	e.body = container.NewVBox(widget.NewForm(items...), e.status)
	e.old.onChange = func() { refreshTree(e.body) }
	e.dlg = dialog.NewCustomWithoutButtons("Enable automatic migration", e.body, d.u.win)
	e.enable = widget.NewButton("Enable migration", e.run)
	e.enable.Importance = widget.HighImportance
	e.dlg.SetButtons([]fyne.CanvasObject{widget.NewButton("Cancel", e.dlg.Hide), e.enable})
	e.dlg.Resize(fyne.NewSize(720, 520))
	return e
}

func (e *enableDialog) finish(err error) {
	refreshTree(e.body)
	if e.onDone != nil {
		e.onDone(err)
	}
}

// run validates the form, probes the old server and enables migration.
func (e *enableDialog) run() {
	dom, derr := core.CheckDomainName(e.domain.Text)
	switch {
	case strings.TrimSpace(e.domain.Text) == "":
		e.fDom.setError("Give the domain, e.g. example.org.")
	case derr != nil:
		e.fDom.setError(plainStoreErr(derr))
	default:
		e.fDom.setError("")
	}
	set, err := e.old.settings()
	if derr != nil || err != nil {
		e.status.SetText("Fix the fields marked above.")
		e.status.Importance = widget.DangerImportance
		e.finish(errors.New("invalid input"))
		return
	}
	e.enable.Disable()
	e.status.Importance = widget.MediumImportance
	e.status.SetText("Testing the connection to the old server…")
	refreshTree(e.body)
	e.d.u.goSafe("enable migration", func() error {
		ctx, cancel := context.WithTimeout(e.d.u.ctx, probeTimeout)
		defer cancel()
		res, perr := e.d.u.core.ProbeOldServer(ctx, set, "", "")
		if res == nil {
			return perr
		}
		if !res.IMAP.Reached {
			return fmt.Errorf("The old server's IMAP cannot be reached: %s", firstNonEmpty(res.IMAP.Error, res.IMAP.Summary))
		}
		return e.d.u.core.EnableMigration(ctx, dom, set)
	}, func(err error) {
		e.enable.Enable()
		if err != nil {
			e.status.Importance = widget.DangerImportance
			e.status.SetText(err.Error())
		} else {
			e.dlg.Hide()
			e.d.refresh()
		}
		e.finish(err)
	})
}
