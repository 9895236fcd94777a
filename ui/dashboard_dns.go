package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// dnsDialog shows what a domain needs published in DNS once Mailferry is
// its mail server — the MX record, the DKIM keys, SPF and DMARC, each with
// what DNS serves now and a Copy button — and the certificate the
// listeners serve, with its names and expiry.
type dnsDialog struct {
	d      *dashboard
	domain string
	dlg    *dialog.CustomDialog

	rows   *fyne.Container
	cert   *widget.Label
	status *widget.Label
	// values are the records' texts by row, as copied.
	values []string
	copies []*widget.Button
	// onDone, if set (tests), runs on the UI goroutine after a load.
	onDone func(err error)
}

// dnsDialog builds the dialog for domain and loads it; the caller shows
// it.
func (d *dashboard) dnsDialog(domain string) *dnsDialog {
	g := &dnsDialog{d: d, domain: domain}
	g.rows = container.NewVBox()
	g.cert = widget.NewLabel("")
	g.cert.Wrapping = fyne.TextWrapWord
	g.status = widget.NewLabel("Asking DNS…")
	g.status.Wrapping = fyne.TextWrapWord
	intro := widget.NewLabel("Publish these records at your DNS provider (copy each value into a new record of the type shown). " +
		"Mail keeps flowing after the old server only once they are in place.")
	intro.Wrapping = fyne.TextWrapWord
	certTitle := widget.NewLabelWithStyle("Certificate", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	body := container.NewVBox(intro, g.status, g.rows, certTitle, g.cert)
	g.dlg = dialog.NewCustom("DNS and certificate for "+domain, "Close", container.NewVScroll(body), d.u.win)
	g.dlg.Resize(fyne.NewSize(760, 560))
	g.load()
	return g
}

// dnsRow is one record to publish.
type dnsRow struct {
	name, typ, value, purpose, state, note string
}

func (g *dnsDialog) load() {
	var rows []dnsRow
	var cert core.CertificateInfo
	g.d.u.goSafe("DNS records", func() error {
		ctx, cancel := context.WithTimeout(g.d.u.ctx, 20*time.Second)
		defer cancel()
		host := strings.TrimSuffix(g.d.u.core.Config().Hostname, ".")
		rows = append(rows, dnsRow{name: g.domain, typ: "MX", value: "10 " + host + ".", purpose: "MX: where mail for " + g.domain + " is delivered"})
		sts, err := g.d.u.core.CheckDKIMRecords(ctx, g.domain, core.SPFPolicy{})
		if err != nil {
			return err
		}
		for _, s := range sts {
			r := dnsRow{name: s.Record.Name, typ: s.Record.Type, value: s.Record.Value, purpose: s.Record.Purpose, note: s.Record.Note}
			switch s.Status {
			case core.DKIMPublished:
				r.state = "✓ published"
			case core.DKIMMissing:
				r.state = "✗ not in DNS yet"
			case core.DKIMDifferent:
				r.state = "✗ DNS serves another value: " + strings.Join(s.Found, " | ")
			default:
				r.state = "? DNS did not answer"
			}
			rows = append(rows, r)
		}
		cert = g.d.u.core.Certificate()
		return nil
	}, func(err error) {
		if err != nil {
			g.status.SetText("The records could not be made: " + err.Error())
		} else {
			g.status.SetText("")
			g.show(rows, cert)
		}
		if g.onDone != nil {
			g.onDone(err)
		}
	})
}

func (g *dnsDialog) show(rows []dnsRow, cert core.CertificateInfo) {
	g.rows.Objects = nil
	g.values, g.copies = nil, nil
	for _, r := range rows {
		title := widget.NewLabelWithStyle(r.purpose, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		where := widget.NewLabel(fmt.Sprintf("%s  %s  %s", r.name, r.typ, r.state))
		where.Wrapping = fyne.TextWrapWord
		value := r.value
		// A read-only field: selectable, and put back if typed into.
		e := widget.NewMultiLineEntry()
		e.Wrapping = fyne.TextWrapBreak
		e.SetText(value)
		e.OnChanged = func(s string) {
			if s != value {
				e.SetText(value)
			}
		}
		cp := widget.NewButton("Copy", func() { g.d.u.app.Clipboard().SetContent(value) })
		g.values = append(g.values, value)
		g.copies = append(g.copies, cp)
		items := []fyne.CanvasObject{title, where, container.NewBorder(nil, nil, nil, cp, e)}
		if r.note != "" {
			n := widget.NewLabel(r.note)
			n.Wrapping = fyne.TextWrapWord
			items = append(items, n)
		}
		g.rows.Add(container.NewVBox(items...))
	}
	g.cert.SetText(certText(cert))
	g.rows.Refresh()
}

// certText describes the certificate in use for the admin.
func certText(in core.CertificateInfo) string {
	if in.Leaf == nil {
		return "No certificate yet: " + in.Problem
	}
	var b strings.Builder
	src := map[string]string{core.CertACME: "from ACME (renewed by itself)", core.CertFile: "from cert_file", core.CertSelfSigned: "self-signed (mail programs will warn)"}[in.Source]
	fmt.Fprintf(&b, "In use: %s, %s, issued by %s, for %s.\n", firstNonEmpty(in.Subject, "(no subject)"), src, in.Issuer, strings.Join(in.Names, ", "))
	left := time.Until(in.NotAfter)
	switch {
	case left < 0:
		fmt.Fprintf(&b, "Expired on %s.", in.NotAfter.Local().Format("2006-01-02"))
	default:
		fmt.Fprintf(&b, "Expires on %s (in %d days).", in.NotAfter.Local().Format("2006-01-02"), int(left.Hours()/24))
	}
	if !in.RenewAt.IsZero() {
		fmt.Fprintf(&b, " Renewal on %s.", in.RenewAt.Local().Format("2006-01-02"))
	}
	if in.Problem != "" {
		b.WriteString("\nProblem: " + in.Problem)
	}
	return b.String()
}
