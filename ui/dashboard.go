package ui

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
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
	// lastUser is the user's dialog opened last (tests).
	lastUser *userDialog

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
		return errorsText(u)
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
			"\nCertificate: " + snap.Certificate.Summary() +
			"\nStore: " + snap.StoreSummary() + "\nNodes: " + snap.NodesSummary())
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
		dnsBtn := widget.NewButton("DNS & certificate…", func() { d.u.showDialog(d.dnsDialog(ds.Name).dlg, nil, nil, nil) })
		if ds.Migrating {
			btn = container.NewHBox(route, dnsBtn,
				widget.NewButton("Old server…", func() { d.showEnable(ds.Name, ds.OldServer, true) }),
				widget.NewButton("Disable migration…", func() { d.disableDialog(ds) }))
		} else {
			b := widget.NewButton("Enable automatic migration…", func() { d.showEnable(ds.Name, ds.OldServer, false) })
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
