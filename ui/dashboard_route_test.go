package ui

import (
	"strings"
	"testing"
	"time"

	"mailferry/core"
)

// TestOutboundRouteDialog chooses a domain's outbound route from the
// dashboard: a smarthost without a usable host is marked inline and not
// saved; a good one is saved with its login, and the password field is
// emptied; direct delivery is then one click.
func TestOutboundRouteDialog(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	if _, err := h.core.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	var r *routeDialog
	h.ui(func() {
		r = h.u.dash.routeDialog("example.test")
		r.onDone = func(err error) { done <- err }
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
	if err := wait("load"); err != nil {
		t.Fatal(err)
	}
	h.ui(func() {
		if r.host.Disabled() == false {
			t.Error("smarthost fields enabled for the default route")
		}
		r.choice.SetSelected(routeChoices[3].label) // smarthost
	})
	h.setText(r.host, "bad host:xx")
	h.tap(r.save)
	if err := wait("bad host"); err == nil || !r.fHost.hasError() {
		t.Fatalf("bad smarthost accepted (%v)", err)
	}
	h.setText(r.host, "smtp.provider.test:2587")
	h.setText(r.user, "relay-user")
	h.setText(r.pwd, "Dialog-Secret-3")
	h.tap(r.save)
	if err := wait("save (and reload)"); err != nil {
		t.Fatal(err)
	}
	info, err := h.core.OutboundRouteOf(ctx, "example.test")
	if err != nil || info.Route.Kind != core.RouteSmarthost || info.Route.Host != "smtp.provider.test" ||
		info.Route.Port != 2587 || info.Route.Username != "relay-user" || info.Route.Password != "Dialog-Secret-3" {
		t.Fatalf("saved %+v (%v)", info.Route, err)
	}
	h.ui(func() {
		if r.pwd.Text != "" {
			t.Error("the password stays in the dialog after saving")
		}
	})
	// Saved again with the password field empty: the password is kept.
	h.setText(r.host, "smtp.provider.test:2588")
	h.tap(r.save)
	if err := wait("save again"); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.core.OutboundRouteOf(ctx, "example.test"); info.Route.Port != 2588 || info.Route.Password != "Dialog-Secret-3" {
		t.Fatalf("saved again %+v", info.Route)
	}
	// A certificate pin: a wrong one is marked on its field and not saved;
	// a right one is saved and shown again.
	h.setText(r.pin, "12:34")
	h.tap(r.save)
	if err := wait("bad pin"); err == nil || !r.fPin.hasError() {
		t.Fatalf("bad pin accepted (%v)", err)
	}
	if info, _ := h.core.OutboundRouteOf(ctx, "example.test"); info.Route.Pin != "" {
		t.Fatalf("a bad pin was saved: %+v", info.Route)
	}
	pin := strings.Repeat("ab:", 31) + "ab"
	h.setText(r.pin, pin)
	h.tap(r.save)
	if err := wait("save with a pin"); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.core.OutboundRouteOf(ctx, "example.test"); info.Route.Pin != pin || r.pin.Text != pin || r.fPin.hasError() {
		t.Fatalf("saved with a pin: %+v, field %q", info.Route, r.pin.Text)
	}
	h.ui(func() { r.choice.SetSelected(routeChoices[2].label) }) // direct
	h.tap(r.save)
	if err := wait("save direct"); err != nil {
		t.Fatal(err)
	}
	if info, _ := h.core.OutboundRouteOf(ctx, "example.test"); info.Effective != core.RouteMX || info.Route.Kind != core.RouteMX {
		t.Fatalf("after direct: %+v", info)
	}
}
