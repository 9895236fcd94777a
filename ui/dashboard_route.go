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

// Choices of the outbound route dialog, in the order shown.
var routeChoices = []struct {
	label string
	kind  core.OutboundRouteKind
}{
	{"Default (old server while migrating, direct after)", core.RouteDefault},
	{"Through the old server", core.RouteOldServer},
	{"Directly (MX, STARTTLS, MTA-STS)", core.RouteMX},
	{"Through a smarthost", core.RouteSmarthost},
}

// routeDialog chooses how a domain's mail to other domains leaves
// (core.SetOutboundRoute): one dialog, its state and its work.
type routeDialog struct {
	d      *dashboard
	domain string
	dlg    *dialog.CustomDialog

	choice               *widget.RadioGroup
	host, user, pwd, pin *widget.Entry
	tls                  *widget.Select
	fHost, fPin          *field
	status               *widget.Label
	save                 *widget.Button
	body                 *fyne.Container
	current              core.OutboundRoute // as loaded: its password is kept when the field is left empty
	// onDone, if set (tests), runs on the UI goroutine after a load or a save.
	onDone func(err error)
}

// routeDialog builds the dialog for domain and loads its route; the caller
// shows it.
func (d *dashboard) routeDialog(domain string) *routeDialog {
	r := &routeDialog{d: d, domain: domain}
	var labels []string
	for _, c := range routeChoices {
		labels = append(labels, c.label)
	}
	r.choice = widget.NewRadioGroup(labels, func(string) { r.showSmarthost() })
	r.host = widget.NewEntry()
	r.host.SetPlaceHolder("smtp.provider.example:587")
	r.fHost = newField("Smarthost", r.host)
	r.tls = widget.NewSelect([]string{string(core.SmarthostStartTLS), string(core.SmarthostImplicitTLS), string(core.SmarthostNone)}, nil)
	r.tls.SetSelected(string(core.SmarthostStartTLS))
	r.user = widget.NewEntry()
	r.user.SetPlaceHolder("optional")
	r.pwd = widget.NewPasswordEntry()
	r.pin = widget.NewEntry()
	r.pin.SetPlaceHolder("optional: SHA-256 of the smarthost's own certificate")
	r.fPin = newField("Certificate pin", r.pin)
	r.status = widget.NewLabel("Loading…")
	r.status.Wrapping = fyne.TextWrapWord
	form := widget.NewForm(r.fHost.formItem(), widget.NewFormItem("TLS", r.tls),
		widget.NewFormItem("User", r.user), widget.NewFormItem("Password", r.pwd), r.fPin.formItem())
	r.body = container.NewVBox(r.choice, form, r.status)
	r.dlg = dialog.NewCustomWithoutButtons("Outbound mail of "+domain, r.body, d.u.win)
	r.save = widget.NewButton("Save", r.run)
	r.save.Importance = widget.HighImportance
	r.dlg.SetButtons([]fyne.CanvasObject{widget.NewButton("Close", r.dlg.Hide), r.save})
	r.dlg.Resize(fyne.NewSize(640, 440))
	r.load()
	return r
}

func (r *routeDialog) finish(err error) {
	refreshTree(r.body)
	if r.onDone != nil {
		r.onDone(err)
	}
}

// showSmarthost enables the smarthost fields only for that choice.
func (r *routeDialog) showSmarthost() {
	for _, w := range []fyne.Disableable{r.host, r.tls, r.user, r.pwd, r.pin} {
		if r.kind() == core.RouteSmarthost {
			w.Enable()
		} else {
			w.Disable()
		}
	}
}

func (r *routeDialog) kind() core.OutboundRouteKind {
	for _, c := range routeChoices {
		if c.label == r.choice.Selected {
			return c.kind
		}
	}
	return core.RouteDefault
}

// load shows the domain's route.
func (r *routeDialog) load() {
	var info core.OutboundRouteInfo
	r.d.u.goSafe("load outbound route", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 10*time.Second)
		defer cancel()
		var err error
		info, err = r.d.u.core.OutboundRouteOf(ctx, r.domain)
		return err
	}, func(err error) {
		if err != nil {
			r.status.SetText("The route could not be read: " + err.Error())
			r.finish(err)
			return
		}
		for _, c := range routeChoices {
			if c.kind == info.Route.Kind {
				r.choice.SetSelected(c.label)
			}
		}
		r.current = info.Route
		if info.Route.Kind == core.RouteSmarthost {
			rt := info.Route.WithDefaults()
			if rt.Password != "" {
				r.pwd.SetPlaceHolder("unchanged")
			}
			r.host.SetText(fmt.Sprintf("%s:%d", rt.Host, rt.Port))
			r.tls.SetSelected(string(rt.TLS))
			r.user.SetText(rt.Username)
			r.pin.SetText(rt.Pin)
		}
		r.showSmarthost()
		r.status.SetText(routeStatus(info))
		r.finish(nil)
	})
}

// routeStatus says where the domain's mail goes now.
func routeStatus(info core.OutboundRouteInfo) string {
	s := "Mail to other domains now leaves " + map[core.OutboundRouteKind]string{
		core.RouteOldServer: "through the old server.",
		core.RouteMX:        "directly, to each recipient domain's mail servers.",
		core.RouteSmarthost: "through the smarthost.",
	}[info.Effective]
	if info.FromConfig {
		s += " It is set in the configuration file, which wins over this dialog."
	}
	return s
}

// run saves the chosen route.
func (r *routeDialog) run() {
	rt := core.OutboundRoute{Kind: r.kind()}
	r.fHost.setError("")
	r.fPin.setError("")
	if rt.Kind == core.RouteSmarthost {
		h, p, err := core.ParseSmarthost(r.host.Text)
		if err != nil || h == "" {
			r.fHost.setError("Give the smarthost as host or host:port, e.g. smtp.provider.example:587.")
			r.finish(errors.New("invalid input"))
			return
		}
		rt.Host, rt.Port, rt.TLS = h, p, core.SmarthostTLS(r.tls.Selected)
		rt.Username, rt.Password = r.user.Text, core.Secret(r.pwd.Text)
		if rt.Password == "" && rt.Username != "" && r.current.Username == rt.Username {
			rt.Password = r.current.Password
		}
		rt.Pin = strings.TrimSpace(r.pin.Text)
		if rt.Pin != "" && rt.TLS == core.SmarthostNone {
			r.fPin.setError("A certificate pin needs TLS: choose starttls or tls.")
			r.finish(errors.New("invalid input"))
			return
		}
		if _, err := core.ParseFingerprint(rt.Pin); rt.Pin != "" && err != nil {
			r.fPin.setError(upperFirst(err.Error()) + ", e.g. as `openssl x509 -noout -fingerprint -sha256` prints it.")
			r.finish(errors.New("invalid input"))
			return
		}
	}
	if err := rt.Validate(); err != nil {
		r.status.SetText(err.Error())
		r.status.Importance = widget.DangerImportance
		r.finish(err)
		return
	}
	r.save.Disable()
	r.d.u.goSafe("set outbound route", func() error {
		ctx, cancel := context.WithTimeout(r.d.u.ctx, 10*time.Second)
		defer cancel()
		return r.d.u.core.SetOutboundRoute(ctx, r.domain, rt)
	}, func(err error) {
		r.save.Enable()
		r.pwd.SetText("")
		if err != nil {
			r.status.Importance = widget.DangerImportance
			r.status.SetText("The route was not saved: " + err.Error())
			r.finish(err)
			return
		}
		r.status.Importance = widget.MediumImportance
		r.load()
	})
}
