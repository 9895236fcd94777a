package ui

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// usersTable is the dashboard's users: a virtual table (only the visible
// cells exist, so 10,000 users cost what 20 do) sorted by a column (tap
// its header), filtered by state and by text, exported as CSV.
type usersTable struct {
	d *dashboard

	all     []core.UserStatus // the snapshot's users
	sortCol int
	desc    bool
	state   *widget.Select // "All states" or a state's text
	search  *keyEntry
	count   *widget.Label
	export  *widget.Button
	table   *widget.Table
}

// allStates is the filter choice that shows every user.
const allStates = "All states"

var userColumns = []string{"User", "State", "Folders", "Messages", "Size", "Rate", "Errors"}

func newUsersTable(d *dashboard) *usersTable {
	t := &usersTable{d: d}
	t.table = widget.NewTable(
		func() (int, int) { return len(d.rows), len(userColumns) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.TableCellID, o fyne.CanvasObject) {
			o.(*widget.Label).SetText(d.cell(id.Row, id.Col))
		},
	)
	// A row selected opens the user: the error in words, its technical
	// detail to copy, the messages not copied, Try again.
	t.table.OnSelected = func(id widget.TableCellID) {
		t.table.UnselectAll()
		if id.Row >= 0 && id.Row < len(d.rows) {
			d.showUser(d.rows[id.Row])
		}
	}
	t.table.ShowHeaderRow = true
	t.table.CreateHeader = func() fyne.CanvasObject {
		b := widget.NewButton("", nil)
		b.Alignment = widget.ButtonAlignLeading
		b.Importance = widget.LowImportance
		return b
	}
	t.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		b := o.(*widget.Button)
		if id.Col < 0 || id.Col >= len(userColumns) {
			b.SetText("")
			return
		}
		text := userColumns[id.Col]
		if id.Col == t.sortCol {
			text += map[bool]string{false: " ▲", true: " ▼"}[t.desc]
		}
		b.SetText(text)
		col := id.Col
		b.OnTapped = func() { t.sortBy(col) }
	}
	for i, w := range []float32{220, 110, 80, 110, 80, 80, 360} {
		t.table.SetColumnWidth(i, w)
	}
	states := []string{allStates}
	for _, s := range []string{core.MigPending, core.MigRunning, core.MigDone, core.MigFailed, ""} {
		states = append(states, stateText(s))
	}
	t.search = newKeyEntry()
	t.search.SetPlaceHolder("filter by address")
	t.count = widget.NewLabel("")
	t.export = widget.NewButton("Export CSV…", t.saveCSV)
	t.state = widget.NewSelect(states, func(string) { t.apply() })
	t.state.SetSelected(allStates)
	t.search.OnChanged = func(string) { t.apply() }
	return t
}

func (t *usersTable) content() fyne.CanvasObject {
	bar := container.NewBorder(nil, nil, container.NewHBox(widget.NewLabelWithStyle("Users", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), t.state),
		container.NewHBox(t.count, t.export), t.search)
	return container.NewBorder(bar, t.d.totals, nil, nil, t.table)
}

// set takes a snapshot's users.
func (t *usersTable) set(users []core.UserStatus) {
	t.all = users
	t.apply()
}

// sortBy sorts by column col (again: the other way).
func (t *usersTable) sortBy(col int) {
	if t.sortCol == col {
		t.desc = !t.desc
	} else {
		t.sortCol, t.desc = col, false
	}
	t.apply()
}

// apply filters and sorts the users into d.rows and shows them.
func (t *usersTable) apply() {
	want := t.state.Selected
	q := strings.ToLower(strings.TrimSpace(t.search.Text))
	rows := t.d.rows[:0:0]
	for _, u := range t.all {
		if want != "" && want != allStates && stateText(u.State) != want {
			continue
		}
		if q != "" && !strings.Contains(u.Address, q) {
			continue
		}
		rows = append(rows, u)
	}
	slices.SortStableFunc(rows, func(a, b core.UserStatus) int {
		c := compareUsers(a, b, t.sortCol)
		if c == 0 {
			c = strings.Compare(a.Address, b.Address)
		}
		if t.desc {
			return -c
		}
		return c
	})
	t.d.rows = rows
	if len(rows) == len(t.all) {
		t.count.SetText(plural(len(rows), "user", "users"))
	} else {
		t.count.SetText(fmt.Sprintf("%d of %s", len(rows), plural(len(t.all), "user", "users")))
	}
	t.table.Refresh()
}

func compareUsers(a, b core.UserStatus, col int) int {
	switch col {
	case 1:
		return strings.Compare(stateText(a.State), stateText(b.State))
	case 2:
		return cmp.Compare(a.FolderCount, b.FolderCount)
	case 3:
		return cmp.Compare(a.Messages, b.Messages)
	case 4:
		return cmp.Compare(a.Bytes, b.Bytes)
	case 5:
		return cmp.Compare(a.Rate, b.Rate)
	case 6:
		return cmp.Compare(a.Errors, b.Errors)
	}
	return strings.Compare(a.Address, b.Address)
}

// writeCSV writes the users shown (filtered and sorted) as CSV: a header
// line, then one line a user with the table's columns as numbers.
func (t *usersTable) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "state", "folders", "folders_total", "messages", "messages_total", "bytes", "errors", "last_error", "problem", "not_copied"})
	for _, u := range t.d.rows {
		var nc []string
		for _, p := range u.Problems {
			nc = append(nc, fmt.Sprintf("%s UID %d: %s", p.Mailbox, p.OldUID, p.Words))
		}
		cw.Write([]string{csvSafe(u.Address), stateText(u.State), fmt.Sprint(u.FolderCount), fmt.Sprint(u.FoldersTotal),
			fmt.Sprint(u.Messages), fmt.Sprint(u.MessagesTotal), fmt.Sprint(u.Bytes), fmt.Sprint(u.Errors),
			csvSafe(u.LastError), csvSafe(u.Problem.String()), csvSafe(strings.Join(nc, "; "))})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from reading text as a formula (CSV
// injection): a cell that starts with = + - @ gets a leading quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (t *usersTable) saveCSV() {
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(err, t.d.u.win)
			return
		}
		if wc == nil {
			return
		}
		werr := t.writeCSV(wc)
		if cerr := wc.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			dialog.ShowError(fmt.Errorf("the users were not exported: %w", werr), t.d.u.win)
		}
	}, t.d.u.win)
	d.SetFileName("mailferry-users.csv")
	t.d.u.showDialog(d, nil, nil, nil)
}
