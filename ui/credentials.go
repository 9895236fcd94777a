package ui

import (
	"strings"

	"fyne.io/fyne/v2"
)

// passwordMask is what a password pasted into a user list shows as.
const passwordMask = "••••••••"

// credentialsEntry is a multi-line list of users, one a line, as
// "address" or "address,password": a password typed or pasted is kept in
// memory and the line shows passwordMask instead, so a password is never
// shown in clear (nor left on the screen for a screenshot). secretText is
// the list with the passwords.
type credentialsEntry struct {
	keyEntry
	secrets map[string]string // address (as typed) -> password
	// onChanged, if set, runs after every edit.
	onChanged func()
}

func newCredentialsEntry() *credentialsEntry {
	e := &credentialsEntry{secrets: map[string]string{}}
	e.MultiLine = true
	e.Wrapping = fyne.TextWrapOff
	e.ExtendBaseWidget(e)
	e.OnChanged = func(string) { e.mask() }
	return e
}

// mask moves every clear password into secrets and shows the mask.
func (e *credentialsEntry) mask() {
	lines := strings.Split(e.Text, "\n")
	changed := false
	for i, l := range lines {
		addr, pw, ok := strings.Cut(l, ",")
		if !ok || pw == "" || pw == passwordMask {
			continue
		}
		key := strings.TrimSpace(addr)
		switch mask := []rune(passwordMask); {
		case strings.HasPrefix(pw, passwordMask): // typed on after the mask
			e.secrets[key] += strings.TrimPrefix(pw, passwordMask)
		case strings.Trim(pw, "•") == "" && len([]rune(pw)) < len(mask): // erased from the mask
			sec := []rune(e.secrets[key])
			e.secrets[key] = string(sec[:max(0, len(sec)-(len(mask)-len([]rune(pw))))])
		default:
			e.secrets[key] = strings.TrimSuffix(pw, "\r")
		}
		lines[i] = addr + ","
		if e.secrets[key] != "" {
			lines[i] += passwordMask
		}
		changed = true
	}
	if changed {
		row := e.CursorRow
		e.SetText(strings.Join(lines, "\n")) // runs mask again: nothing left to hide
		e.CursorRow = row
		e.CursorColumn = len([]rune(lines[min(row, len(lines)-1)]))
		e.Refresh()
	}
	if e.onChanged != nil {
		e.onChanged()
	}
}

// secretText is the list as typed, with the passwords.
func (e *credentialsEntry) secretText() string {
	lines := strings.Split(e.Text, "\n")
	for i, l := range lines {
		addr, pw, ok := strings.Cut(l, ",")
		if ok && pw == passwordMask {
			lines[i] = addr + "," + e.secrets[strings.TrimSpace(addr)]
		}
	}
	return strings.Join(lines, "\n")
}
