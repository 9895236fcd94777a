package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"
)

// The keyboard: Enter activates the default action (a focused button, or
// the page's or dialog's default), Escape closes the top dialog (its
// Cancel), a dialog opens with its first field focused, and a destructive
// action is never the default.

// keyEntry is an Entry that hands Escape to the window (Fyne's Entry
// swallows it); Enter runs OnSubmitted as in any Entry.
type keyEntry struct {
	widget.Entry
	onEscape func()
}

func newKeyEntry() *keyEntry {
	e := &keyEntry{}
	e.ExtendBaseWidget(e)
	return e
}

func newKeyPasswordEntry() *keyEntry {
	e := &keyEntry{}
	e.Password = true // the renderer adds the reveal button
	e.Wrapping = fyne.TextWrap(fyne.TextTruncateClip)
	e.ExtendBaseWidget(e)
	return e
}

// TypedKey implements fyne.Focusable.
func (e *keyEntry) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name == fyne.KeyEscape && e.onEscape != nil {
		e.onEscape()
		return
	}
	e.Entry.TypedKey(ev)
}

// keyButton is a Button that Enter (and Return) activates when focused,
// like Space does in Fyne's Button, and that hands Escape to the window.
type keyButton struct {
	widget.Button
	onEscape func()
}

func newKeyButton(label string, tapped func()) *keyButton {
	b := &keyButton{}
	b.Text, b.OnTapped = label, tapped
	b.ExtendBaseWidget(b)
	return b
}

// TypedKey implements fyne.Focusable.
func (b *keyButton) TypedKey(ev *fyne.KeyEvent) {
	switch ev.Name {
	case fyne.KeyReturn, fyne.KeyEnter:
		if !b.Disabled() && b.OnTapped != nil {
			b.OnTapped()
		}
	case fyne.KeyEscape:
		if b.onEscape != nil {
			b.onEscape()
		}
	default:
		b.Button.TypedKey(ev)
	}
}

// openDialog is a dialog the keyboard reaches: Escape runs cancel, Enter
// (with nothing focused) runs enter.
type openDialog struct {
	d      dialog.Dialog
	cancel func()
	enter  func()
}

// showDialog shows d and makes it the keyboard's: Escape runs cancel (nil:
// d.Hide), Enter with nothing focused runs enter (nil: nothing), and first,
// if not nil, gets the focus.
func (u *UI) showDialog(d dialog.Dialog, cancel, enter func(), first fyne.Focusable) {
	if cancel == nil {
		cancel = d.Hide
	}
	od := &openDialog{d: d, cancel: cancel, enter: enter}
	u.dialogs = append(u.dialogs, od)
	d.SetOnClosed(func() {
		for i, x := range u.dialogs {
			if x == od {
				u.dialogs = append(u.dialogs[:i], u.dialogs[i+1:]...)
				break
			}
		}
	})
	d.Show()
	if first != nil {
		u.win.Canvas().Focus(first)
	}
}

// escape closes the top dialog (as its Cancel would).
func (u *UI) escape() {
	if n := len(u.dialogs); n > 0 {
		u.dialogs[n-1].cancel()
	}
}

// typedKey handles keys when nothing is focused: Escape closes the top
// dialog; Enter runs the top dialog's default, or the wizard's Next.
func (u *UI) typedKey(ev *fyne.KeyEvent) {
	switch ev.Name {
	case fyne.KeyEscape:
		u.escape()
	case fyne.KeyReturn, fyne.KeyEnter:
		if n := len(u.dialogs); n > 0 {
			if e := u.dialogs[n-1].enter; e != nil {
				e()
			}
			return
		}
		if u.tabs.SelectedIndex() == 0 && !u.wizard.next.Disabled() {
			u.wizard.goNext()
		}
	}
}

// confirmDestructive asks before a destructive action: the message says
// what will happen; Cancel is the default (focused, what Enter and Escape
// do) and the destructive button, labeled confirm, is never preselected.
func (u *UI) confirmDestructive(title, message, confirm string, onConfirm func()) *dialog.CustomDialog {
	msg := widget.NewLabel(message)
	msg.Wrapping = fyne.TextWrapWord
	d := dialog.NewCustomWithoutButtons(title, msg, u.win)
	cancel := newKeyButton("Cancel", d.Hide)
	cancel.onEscape = d.Hide
	do := newKeyButton(confirm, func() {
		d.Hide()
		onConfirm()
	})
	do.Importance = widget.DangerImportance
	do.onEscape = d.Hide
	d.SetButtons([]fyne.CanvasObject{cancel, do})
	d.Resize(fyne.NewSize(min(520, u.win.Canvas().Size().Width-40), 0))
	u.showDialog(d, d.Hide, d.Hide, cancel)
	return d
}
