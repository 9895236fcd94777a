package ui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// TLS mode choices as the form shows them.
var tlsChoices = []string{"STARTTLS", "SSL/TLS", "None (plaintext)"}

func tlsFromChoice(s string) core.TLSMode {
	switch s {
	case "SSL/TLS":
		return core.TLSImplicit
	case "None (plaintext)":
		return core.TLSNone
	}
	return core.TLSStartTLS
}

func choiceFromTLS(m core.TLSMode) string {
	switch m {
	case core.TLSImplicit:
		return "SSL/TLS"
	case core.TLSNone:
		return "None (plaintext)"
	}
	return "STARTTLS"
}

// field is an input with its inline error line. The line is always
// there (empty when the input is fine), so the fields below never move
// when an error appears or goes.
type field struct {
	label string
	input fyne.CanvasObject
	err   *widget.Label
}

func newField(label string, input fyne.CanvasObject) *field {
	e := widget.NewLabel("")
	e.Importance = widget.DangerImportance
	e.Wrapping = fyne.TextWrapWord
	return &field{label: label, input: input, err: e}
}

// setError shows msg under the field, or empties the line for "".
func (f *field) setError(msg string) {
	if f.err.Text != msg {
		f.err.SetText(msg)
	}
}

// hasError reports whether the field shows an error.
func (f *field) hasError() bool { return f.err.Text != "" }

// countErrors is how many of fs show an error.
func countErrors(fs ...*field) int {
	n := 0
	for _, f := range fs {
		if f.hasError() {
			n++
		}
	}
	return n
}

func (f *field) formItem() *widget.FormItem {
	return widget.NewFormItem(f.label, container.NewVBox(f.input, f.err))
}

// oldForm edits an old server's settings: host, IMAP and SMTP ports and TLS
// modes, and an optional pinned certificate fingerprint.
type oldForm struct {
	host, imapPort, smtpPort, pin *keyEntry
	imapTLS, smtpTLS              *widget.Select
	fHost, fIMAP, fSMTP, fPin     *field
	form                          *widget.Form
	// pop3 is the POP3 of the settings last set (no field of its own: the
	// probe finds it); kept while the host stays the same.
	pop3Host string
	pop3Port int
	pop3TLS  core.TLSMode
	// onChange, if set, is called after any edit.
	onChange func()
}

func newOldForm() *oldForm {
	f := &oldForm{
		host:     newKeyEntry(),
		imapPort: newKeyEntry(),
		smtpPort: newKeyEntry(),
		pin:      newKeyEntry(),
	}
	f.host.SetPlaceHolder("mail.example.org or [192.0.2.7]")
	f.pin.SetPlaceHolder("only for a self-signed certificate: its SHA-256 fingerprint")
	f.imapPort.SetText("143")
	f.smtpPort.SetText("25")
	changed := func(string) {
		if f.onChange != nil {
			f.onChange()
		}
	}
	clearing := func(fl **field) func(string) {
		return func(s string) {
			if *fl != nil {
				(*fl).setError("")
			}
			changed(s)
		}
	}
	f.host.OnChanged = clearing(&f.fHost)
	f.imapPort.OnChanged = clearing(&f.fIMAP)
	f.smtpPort.OnChanged = clearing(&f.fSMTP)
	f.pin.OnChanged = clearing(&f.fPin)
	// Switching the TLS mode moves a default port along (143/993, 25/465).
	f.imapTLS = widget.NewSelect(tlsChoices, func(s string) {
		swapPort(f.imapPort, tlsFromChoice(s), "143", "993")
		changed(s)
	})
	f.smtpTLS = widget.NewSelect(tlsChoices, func(s string) {
		swapPort(f.smtpPort, tlsFromChoice(s), "25", "465")
		changed(s)
	})
	f.imapTLS.SetSelected("STARTTLS")
	f.smtpTLS.SetSelected("STARTTLS")
	f.fHost = newField("Host", f.host)
	f.fIMAP = newField("IMAP", container.NewBorder(nil, nil, nil, f.imapTLS, f.imapPort))
	f.fSMTP = newField("SMTP", container.NewBorder(nil, nil, nil, f.smtpTLS, f.smtpPort))
	f.fPin = newField("Certificate", f.pin)
	f.form = widget.NewForm(f.fHost.formItem(), f.fIMAP.formItem(), f.fSMTP.formItem(), f.fPin.formItem())
	f.form.Items[0].HintText = "host name, or an address literal such as [192.0.2.7] or [IPv6:2001:db8::1]"
	f.form.Items[1].HintText = "port and security of the old IMAP server"
	f.form.Items[2].HintText = "port and security of the old SMTP server (mail is sent to it without a password)"
	return f
}

// entries are the form's text inputs, first to last.
func (f *oldForm) entries() []*keyEntry {
	return []*keyEntry{f.host, f.imapPort, f.smtpPort, f.pin}
}

// keys makes Enter in any field run submit and Escape run escape (nil:
// nothing).
func (f *oldForm) keys(submit, escape func()) {
	for _, e := range f.entries() {
		e.OnSubmitted = func(string) { submit() }
		e.onEscape = escape
	}
}

// errors is how many fields show an error.
func (f *oldForm) errors() int { return countErrors(f.fHost, f.fIMAP, f.fSMTP, f.fPin) }

func swapPort(e *keyEntry, m core.TLSMode, plain, implicit string) {
	switch {
	case m == core.TLSImplicit && e.Text == plain:
		e.SetText(implicit)
	case m != core.TLSImplicit && e.Text == implicit:
		e.SetText(plain)
	}
}

// set fills the form from s.
func (f *oldForm) set(s core.OldServerSettings) {
	f.host.SetText(s.Host.String())
	f.imapTLS.SetSelected(choiceFromTLS(s.IMAPTLS))
	f.smtpTLS.SetSelected(choiceFromTLS(s.SMTPTLS))
	f.imapPort.SetText(strconv.Itoa(s.IMAPPort))
	f.smtpPort.SetText(strconv.Itoa(s.SMTPPort))
	f.pin.SetText(s.PinnedSHA256)
	f.pop3Host, f.pop3Port, f.pop3TLS = s.Host.String(), s.POP3Port, s.POP3TLS
}

// parsePort checks a port typed by an admin.
func parsePort(what, s string) (int, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "Give the " + what + " port (1 to 65535)."
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Sprintf("%q is not a port number: a port is a number from 1 to 65535.", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Sprintf("Port %d is out of range: a port is a number from 1 to 65535.", n)
	}
	return n, ""
}

// settings validates every field, shows each problem under its field, and
// returns the settings or an error saying how many fields need attention.
func (f *oldForm) settings() (core.OldServerSettings, error) {
	s := core.OldServerSettings{LoginForm: core.LoginAuto}
	bad := 0
	mark := func(fl *field, msg string) {
		fl.setError(msg)
		if msg != "" {
			bad++
		}
	}
	hostText := strings.TrimSpace(f.host.Text)
	if hostText == "" {
		mark(f.fHost, "Give the old server's host name or address, e.g. mail.example.org or [192.0.2.7].")
	} else if h, err := core.ParseHost(hostText); err != nil {
		var he *core.HostError
		if errors.As(err, &he) {
			mark(f.fHost, upperFirst(he.Problem)+".")
		} else {
			mark(f.fHost, err.Error())
		}
	} else {
		s.Host = h
		mark(f.fHost, "")
	}
	var msg string
	s.IMAPPort, msg = parsePort("IMAP", f.imapPort.Text)
	mark(f.fIMAP, msg)
	s.SMTPPort, msg = parsePort("SMTP", f.smtpPort.Text)
	mark(f.fSMTP, msg)
	s.IMAPTLS = tlsFromChoice(f.imapTLS.Selected)
	s.SMTPTLS = tlsFromChoice(f.smtpTLS.Selected)
	s.PinnedSHA256 = strings.TrimSpace(f.pin.Text)
	if f.pop3Port != 0 && s.Host.String() == f.pop3Host {
		s.POP3Port, s.POP3TLS = f.pop3Port, f.pop3TLS
	}
	if s.PinnedSHA256 != "" {
		if _, err := core.ParseFingerprint(s.PinnedSHA256); err != nil {
			mark(f.fPin, upperFirst(err.Error())+".")
		} else {
			mark(f.fPin, "")
		}
	} else {
		mark(f.fPin, "")
	}
	if bad > 0 {
		return s, errors.New(fieldsNeedAttention(bad))
	}
	if err := s.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	if r[0] >= 'a' && r[0] <= 'z' {
		r[0] -= 'a' - 'A'
	}
	return string(r)
}
