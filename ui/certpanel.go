package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// certPanel shows a certificate this computer does not trust: subject,
// issuer, validity and the SHA-256 fingerprint (selectable, with a Copy
// button), and a "Trust this certificate" button that pins it.
type certPanel struct {
	info    *widget.Label
	fp      *widget.Label
	copyBtn *widget.Button
	trust   *widget.Button
	box     *fyne.Container
	cert    *core.TLSInfo
}

// newCertPanel builds the panel: Copy puts the fingerprint on clip;
// onTrust gets the fingerprint to pin.
func newCertPanel(clip fyne.Clipboard, onTrust func(fp string)) *certPanel {
	c := &certPanel{}
	c.info = widget.NewLabel("")
	c.info.Wrapping = fyne.TextWrapWord
	c.fp = widget.NewLabel("")
	c.fp.Selectable = true
	c.fp.Wrapping = fyne.TextWrapBreak
	c.fp.TextStyle = fyne.TextStyle{Monospace: true}
	c.copyBtn = widget.NewButton("Copy fingerprint", func() {
		if c.cert != nil {
			clip.SetContent(c.cert.SHA256)
		}
	})
	c.trust = widget.NewButton("Trust this certificate", func() {
		if c.cert != nil {
			onTrust(c.cert.SHA256)
		}
	})
	c.trust.Importance = widget.HighImportance
	title := widget.NewLabelWithStyle("A certificate this computer does not trust", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	hint := widget.NewLabel("Compare the fingerprint with the one on the old server (e.g. openssl x509 -noout -fingerprint -sha256 -in its certificate). " +
		"If they are the same, trust it: Mailferry then accepts this certificate, and only this one, for the old server.")
	hint.Wrapping = fyne.TextWrapWord
	c.box = container.NewVBox(title, c.info, widget.NewLabel("SHA-256 fingerprint:"), c.fp, hint,
		container.NewHBox(c.copyBtn, c.trust))
	c.box.Hide()
	return c
}

func (c *certPanel) content() fyne.CanvasObject { return c.box }

// set shows the untrusted certificate of res, or hides the panel.
func (c *certPanel) set(res *core.ProbeResult) {
	c.cert = nil
	if res != nil {
		c.cert = untrustedCert(res)
	}
	if c.cert == nil {
		c.box.Hide()
		return
	}
	t := c.cert
	c.info.SetText(fmt.Sprintf("Subject: %s\nIssued by: %s%s\nValid from %s until %s",
		t.Subject, t.Issuer, selfSignedNote(t), t.NotBefore.Format(time.DateOnly), t.NotAfter.Format(time.DateOnly)))
	c.fp.SetText(t.SHA256)
	c.box.Show()
}

func selfSignedNote(t *core.TLSInfo) string {
	if t.SelfSigned {
		return " (self-signed)"
	}
	return ""
}

// untrustedCert returns the certificate the probe saw but did not trust,
// or nil.
func untrustedCert(r *core.ProbeResult) *core.TLSInfo {
	for _, t := range []*core.TLSInfo{r.IMAP.TLS, r.SMTP.TLS} {
		if t != nil && !t.Trusted && t.SHA256 != "" {
			return t
		}
	}
	return nil
}
