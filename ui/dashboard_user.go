package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// maxNotCopiedShown bounds the messages not copied listed in words (the
// rest are counted; the CSV export and `status --json` list them all).
const maxNotCopiedShown = 50

// errorsText is the users table's Errors cell: words, never the protocol
// text (that is in the user's dialog, a click away).
func errorsText(u core.UserStatus) string {
	switch {
	case len(u.Problems) > 0:
		return plural(len(u.Problems), "message", "messages") + " not copied: the old server could not serve " +
			map[bool]string{true: "it", false: "them"}[len(u.Problems) == 1]
	case u.Problem.Kind != "":
		return u.Problem.Headline
	case u.LastError != "":
		return "An error (select the user)" // a Status without words: cannot happen with core.Status
	}
	return "none"
}

// notCopiedText lists the messages not copied in words, at most
// maxNotCopiedShown of them.
func notCopiedText(ps []core.CopyProblem) string {
	if len(ps) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s not copied (the rest was): the old server could not serve %s.\n", plural(len(ps), "message was", "messages were"),
		map[bool]string{true: "it", false: "them"}[len(ps) == 1])
	for i, p := range ps {
		if i == maxNotCopiedShown {
			fmt.Fprintf(&b, "… and %d more (Export CSV on the dashboard lists them all).\n", len(ps)-i)
			break
		}
		what := fmt.Sprintf("folder %q, message %d on the old server", p.Mailbox, p.OldUID)
		if p.OldUID == 0 {
			what = fmt.Sprintf("folder %q, all of it (the old server would not open it)", p.Mailbox)
		}
		fmt.Fprintf(&b, "• %s: %s (%s, last %s)\n", what,
			p.Words, plural(p.Tries, "try", "tries"), p.LastSeen.Local().Format("2006-01-02 15:04"))
	}
	b.WriteString("What to do: " + core.NotCopiedAdvice)
	return b.String()
}

// userDialog shows one user of the dashboard: the state, the latest error
// in words with its technical detail (selectable, and copied with one
// button), the messages not copied and what to do, and Try again.
type userDialog struct {
	d     *dashboard
	user  core.UserStatus
	dlg   *dialog.CustomDialog
	words *widget.Label
	// notCopied lists the messages not copied, in words.
	notCopied *widget.Label
	detail    *widget.Label
	retry     *widget.Button
	copyBtn   *widget.Button
	status    *widget.Label
	body      *fyne.Container
	// onDone, if set (tests), runs on the UI goroutine after Try again.
	onDone func(err error)
}

// showUser opens the dialog of u.
func (d *dashboard) showUser(u core.UserStatus) {
	ud := d.userDialog(u)
	d.lastUser = ud
	d.u.showDialog(ud.dlg, nil, nil, nil)
}

// userDialog builds the dialog of u; the caller shows it.
func (d *dashboard) userDialog(u core.UserStatus) *userDialog {
	ud := &userDialog{d: d, user: u}
	state := widget.NewLabel(userStateLine(u))
	state.TextStyle = fyne.TextStyle{Bold: true}
	state.Wrapping = fyne.TextWrapWord
	ud.words = widget.NewLabel(u.Problem.String())
	ud.words.Wrapping = fyne.TextWrapWord
	ud.words.Importance = widget.DangerImportance
	if u.Problem.Kind == "" {
		ud.words.Hide()
	}
	ud.notCopied = widget.NewLabel(notCopiedText(u.Problems))
	ud.notCopied.Wrapping = fyne.TextWrapWord
	if len(u.Problems) == 0 {
		ud.notCopied.Hide()
	}
	ud.detail = widget.NewLabel(technicalDetail(u))
	ud.detail.Wrapping = fyne.TextWrapBreak
	ud.detail.Selectable = true
	ud.copyBtn = widget.NewButton("Copy the technical detail", func() {
		d.u.app.Clipboard().SetContent(ud.detail.Text)
		ud.status.SetText("The technical detail is on the clipboard.")
	})
	ud.status = widget.NewLabel("")
	ud.status.Wrapping = fyne.TextWrapWord
	body := container.NewVBox(state, ud.words, ud.notCopied)
	if ud.detail.Text != "" {
		body.Add(widget.NewLabelWithStyle("Technical detail", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
		body.Add(ud.detail)
		body.Add(container.NewHBox(ud.copyBtn))
	}
	body.Add(ud.status)
	ud.body = body
	ud.dlg = dialog.NewCustomWithoutButtons(u.Address, container.NewVScroll(body), d.u.win)
	ud.retry = widget.NewButton("Try again now", ud.tryAgain)
	ud.retry.Importance = widget.HighImportance
	buttons := []fyne.CanvasObject{widget.NewButton("Close", ud.dlg.Hide)}
	if u.State != "" && (len(u.Problems) > 0 || u.Problem.Kind != "" || u.State == core.MigFailed) {
		buttons = append(buttons, ud.retry)
	}
	ud.dlg.SetButtons(buttons)
	ud.dlg.Resize(fyne.NewSize(720, 480))
	return ud
}

// userStateLine is the user's state in a sentence.
func userStateLine(u core.UserStatus) string {
	s := "State: " + stateText(u.State)
	if n := len(u.Problems); n > 0 {
		s += fmt.Sprintf(", %s not copied", plural(n, "message", "messages"))
	}
	if !u.RetryAt.IsZero() {
		s += ", next try at " + u.RetryAt.Local().Format("15:04:05")
	}
	return s + fmt.Sprintf(" · %s, %s on Mailferry", plural(int(u.Messages), "message", "messages"), humanBytes(u.Bytes))
}

// technicalDetail is the protocol text behind the words: the latest error
// and each message's refusal as the old server said it.
func technicalDetail(u core.UserStatus) string {
	var b strings.Builder
	if u.LastError != "" {
		b.WriteString(u.LastError + "\n")
	}
	for i, p := range u.Problems {
		if i == maxNotCopiedShown {
			break
		}
		fmt.Fprintf(&b, "%s UID %d: %s\n", p.Mailbox, p.OldUID, p.Words)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// tryAgain runs the user's copy again now (core.RetryCopy).
func (ud *userDialog) tryAgain() {
	ud.retry.Disable()
	ud.status.SetText("Starting the copy again…")
	addr := ud.user.Address
	ud.d.u.goSafe("retry "+addr, func() error {
		ctx, cancel := context.WithTimeout(ud.d.u.ctx, 30*time.Second)
		defer cancel()
		return ud.d.u.core.RetryCopy(ctx, addr)
	}, func(err error) {
		ud.retry.Enable()
		switch {
		case err == nil:
			ud.status.SetText("The copy runs again now; the dashboard shows how it goes.")
			ud.d.refresh()
		case errors.Is(err, core.ErrNoCredentials):
			ud.status.SetText("Mailferry has no password for this user in memory (it keeps none on disk): the copy runs again at the user's next login, " +
				"or pre-migrate the user (Disable migration…) with their password or a master user.")
		case errors.Is(err, core.ErrNotMigrating):
			ud.status.SetText("The domain no longer migrates: nothing is copied from the old server any more.")
		default:
			ud.status.SetText("The copy could not be started: " + core.Explain(err).String())
		}
		if ud.onDone != nil {
			ud.onDone(err)
		}
	})
}
