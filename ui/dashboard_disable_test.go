package ui

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
	"github.com/emersion/go-smtp"

	"mailferry/core"
	"mailferry/core/testkit"
)

// disableOverriding drives "Disable migration" while the domain is not
// ready: the confirmation lists the facts (sending would break), Cancel
// has the focus and changes nothing, "Disable anyway" stays off until the
// override is ticked, and then turns migration off.
func disableOverriding(t *testing.T, h *harness, r *readinessDialog, wait func(string) error) {
	t.Helper()
	h.tap(r.disable)
	if err := wait("confirm"); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	c := r.confirm
	if c == nil || c.override == nil {
		t.Fatalf("no confirmation with an override while not ready: %+v", c)
	}
	if !strings.Contains(c.facts.Text, "Sending would break") || !strings.Contains(c.facts.Text, "Outbound route") {
		t.Errorf("the confirmation does not say sending would break: %q", c.facts.Text)
	}
	if !c.ok.Disabled() {
		t.Error("Disable anyway is enabled before the override is ticked")
	}
	if f := h.u.win.Canvas().Focused(); f != c.cancel {
		t.Errorf("focused: %v, want Cancel", f)
	}
	h.tap(c.ok) // disabled: nothing happens
	h.tap(c.cancel)
	if err := wait("cancel"); !errors.Is(err, errCanceled) {
		t.Fatalf("cancel: %v", err)
	}
	if dom, err := h.core.Domain(t.Context(), r.domain); err != nil || !dom.Migrating {
		t.Fatalf("after Cancel: %+v, %v", dom, err)
	}
	h.tap(r.disable)
	if err := wait("confirm again"); err != nil {
		t.Fatal(err)
	}
	c = r.confirm
	h.ui(func() { c.override.SetChecked(true) })
	if c.ok.Disabled() {
		t.Fatal("Disable anyway is still off after the override")
	}
	h.tap(c.ok)
	if err := wait("disable"); err != nil {
		t.Fatalf("disable: %v", err)
	}
}

// smartSink is a smarthost on 127.0.0.1 that takes every message.
type smartSink struct {
	mu  sync.Mutex
	got []string
}

func (s *smartSink) NewSession(*smtp.Conn) (smtp.Session, error) { return s, nil }
func (s *smartSink) Reset()                                      {}
func (s *smartSink) Logout() error                               { return nil }
func (s *smartSink) Mail(string, *smtp.MailOptions) error        { return nil }
func (s *smartSink) Rcpt(string, *smtp.RcptOptions) error        { return nil }
func (s *smartSink) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, string(b))
	return err
}

// TestDisableFlow drives the "Disable migration" dialog of a domain whose
// DNS, certificate and smarthost are in order: while no outbound route is
// proven, Disable asks for an override with the facts; a test message
// through the smarthost proves it; without a user list the answer is
// "unknown" (never "can be turned off") and Disable still wants the
// override; with the list, every user moved, it is ready, and Disable
// still asks — Cancel focused — before it turns migration off.
func TestDisableFlow(t *testing.T) {
	d := testkit.StartZone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &smartSink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "smarthost.test"
	go srv.Serve(ln)
	defer srv.Close()
	ca := testkit.NewCA(t, "Test CA")
	certFile, keyFile := ca.Files(t, 90, "mailferry.test")
	h := newHarness(t, func(c *core.Config) {
		c.DNSResolver = d.Addr
		c.CertFile, c.KeyFile, c.CertRoots = certFile, keyFile, ca.Pool
	})
	ctx := t.Context()
	const domain = "example.test"
	if err := h.core.EnableMigration(ctx, domain, core.DefaultOldServer(core.MustParseHost("[192.0.2.7]")).WithDefaults()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.core.AddAccount(ctx, "alice@"+domain, "Alice-Secret-1"); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	if err := h.core.SetOutboundRoute(ctx, domain, core.OutboundRoute{Kind: core.RouteSmarthost, Host: "smart.test", Port: p, TLS: core.SmarthostNone}); err != nil {
		t.Fatal(err)
	}
	recs, err := h.core.DKIMRecords(ctx, domain, core.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	d.Add(t, "example.test. 60 IN MX 10 mailferry.test.", "smart.test. 60 IN A 127.0.0.1")
	for _, r := range recs {
		d.Add(t, r.Zone())
	}

	ds := core.DomainStatus{Name: domain, Migrating: true}
	done := make(chan error, 4)
	var r *readinessDialog
	h.ui(func() {
		r = h.u.dash.newReadinessDialog(ds)
		r.onDone = func(what string, err error) { done <- err }
		r.dlg.Show()
	})
	wait := func(what string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatalf("%s: no result", what)
			return nil
		}
	}
	h.tap(r.check)
	if err := wait("check"); err != nil {
		t.Fatal(err)
	}
	if r.ready.Verdict() != core.VerdictNotReady || !r.ready.SendingBreaks() {
		t.Fatalf("before a test message: %s", r.result.Text)
	}
	for _, c := range r.ready.Checks {
		if c.Name != core.CheckRoute && c.State != core.CheckOK {
			t.Errorf("check %s: %s: %s", c.Name, c.State, c.Text)
		}
	}
	// Disable asks for the override with the facts; Cancel changes nothing.
	h.tap(r.disable)
	if err := wait("confirm"); err != nil {
		t.Fatal(err)
	}
	if r.confirm == nil || r.confirm.override == nil || !r.confirm.ok.Disabled() || !strings.Contains(r.confirm.facts.Text, "Sending would break") {
		t.Fatalf("confirmation while the route is not proven: %+v", r.confirm)
	}
	h.tap(r.confirm.cancel)
	if err := wait("cancel"); !errors.Is(err, errCanceled) {
		t.Fatal(err)
	}

	// A test message to an address of the domain itself is refused.
	h.setText(r.testTo, "bob@"+domain)
	h.tap(r.send)
	if err := wait("test message to ourselves"); !errors.Is(err, core.ErrInvalid) || !r.fTo.hasError() {
		t.Fatalf("test message to a local address: %v", err)
	}
	h.setText(r.testTo, "friend@gmail.test")
	h.tap(r.send)
	if err := wait("test message"); err != nil {
		t.Fatalf("test message: %v (%s)", err, r.testResult.Text)
	}
	if err := wait("check after the test message"); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	n := len(sink.got)
	signed := n == 1 && strings.Contains(sink.got[0], "DKIM-Signature:")
	sink.mu.Unlock()
	if !signed || !strings.Contains(r.testResult.Text, "Delivered") {
		t.Fatalf("the smarthost got %d messages (signed %v); dialog says %q", n, signed, r.testResult.Text)
	}
	// No user list: unknown, never "can be turned off".
	if v := r.ready.Verdict(); v != core.VerdictUnknown || r.ready.SendingBreaks() {
		t.Fatalf("no list, route proven: %s: %s", v, r.result.Text)
	}
	if strings.Contains(r.result.Text, "can be turned off") || !strings.Contains(r.result.Text, "Unknown") {
		t.Errorf("no list: %q", r.result.Text)
	}
	h.tap(r.disable)
	if err := wait("confirm without a list"); err != nil {
		t.Fatal(err)
	}
	if r.confirm.override == nil || strings.Contains(r.confirm.facts.Text, "Sending would break") {
		t.Fatalf("confirmation without a list: %q", r.confirm.facts.Text)
	}
	h.tap(r.confirm.cancel)
	if err := wait("cancel"); !errors.Is(err, errCanceled) {
		t.Fatal(err)
	}

	// The list (doveadm user '*' output): everyone has an account.
	h.setText(r.users, "alice\n")
	h.tap(r.check)
	if err := wait("check with a list"); err != nil {
		t.Fatal(err)
	}
	if !r.ready.Ready() || !strings.Contains(r.result.Text, "can be turned off") {
		t.Fatalf("ready: %s", r.result.Text)
	}
	h.tap(r.disable)
	if err := wait("confirm when ready"); err != nil {
		t.Fatal(err)
	}
	c := r.confirm
	if c == nil || c.override != nil || c.ok.Disabled() {
		t.Fatalf("confirmation when ready: %+v", c)
	}
	if f := h.u.win.Canvas().Focused(); f != c.cancel {
		t.Errorf("focused: %v, want Cancel", f)
	}
	if dom, _ := h.core.Domain(ctx, domain); !dom.Migrating {
		t.Fatal("migration turned off before the confirmation")
	}
	h.tap(c.ok)
	if err := wait("disable"); err != nil {
		t.Fatal(err)
	}
	if dom, err := h.core.Domain(ctx, domain); err != nil || dom.Migrating {
		t.Fatalf("after Disable: %+v, %v", dom, err)
	}
}

// TestDNSDialog shows the records to publish with what DNS serves (the
// MX and SPF published, the DKIM keys not yet), copies a record's exact
// value, and shows the certificate in use with its expiry.
func TestDNSDialog(t *testing.T) {
	d := testkit.StartZone(t)
	ca := testkit.NewCA(t, "Test CA")
	certFile, keyFile := ca.Files(t, 90, "mailferry.test")
	h := newHarness(t, func(c *core.Config) {
		c.DNSResolver = d.Addr
		c.CertFile, c.KeyFile, c.CertRoots = certFile, keyFile, ca.Pool
	})
	ctx := t.Context()
	if _, err := h.core.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	recs, err := h.core.DKIMRecords(ctx, "example.test", core.SPFPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	d.Add(t, "example.test. 60 IN MX 10 mailferry.test.")
	for _, r := range recs {
		if r.Name == "example.test" {
			d.Add(t, r.Zone()) // SPF only
		}
	}
	done := make(chan error, 2)
	var g *dnsDialog
	h.ui(func() {
		g = h.u.dash.dnsDialog("example.test")
		g.onDone = func(err error) { done <- err }
		g.dlg.Show()
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no records")
	}
	if len(g.values) != len(recs)+1 || g.values[0] != "10 mailferry.test." {
		t.Fatalf("values %q", g.values)
	}
	var text []string
	for _, o := range g.rows.Objects {
		for _, x := range o.(*fyne.Container).Objects {
			if l, ok := x.(*widget.Label); ok {
				text = append(text, l.Text)
			}
		}
	}
	all := strings.Join(text, "\n")
	if !strings.Contains(all, "example.test  TXT  ✓ published") || !strings.Contains(all, "._domainkey.example.test  TXT  ✗ not in DNS yet") {
		t.Errorf("record states:\n%s", all)
	}
	h.tap(g.copies[1])
	if got := h.u.app.Clipboard().Content(); got != g.values[1] || !strings.HasPrefix(got, "v=DKIM1;") {
		t.Errorf("clipboard %q, want %q", got, g.values[1])
	}
	if !strings.Contains(g.cert.Text, "Expires on") || !strings.Contains(g.cert.Text, "mailferry.test") || !strings.Contains(g.cert.Text, "cert_file") {
		t.Errorf("certificate: %q", g.cert.Text)
	}
}
