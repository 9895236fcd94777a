package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// RouteKind is how mail from a local domain to other domains leaves.
type RouteKind string

// Route kinds.
const (
	// RouteDefault is no choice recorded: RouteOldServer while the domain
	// migrates, RouteMX once it does not.
	RouteDefault RouteKind = ""
	// RouteOldServer hands the mail to the domain's old server, which
	// delivers it.
	RouteOldServer RouteKind = "oldserver"
	// RouteMX delivers directly to each recipient domain's mail exchangers
	// (RFC 5321 section 5), with opportunistic STARTTLS and MTA-STS
	// (RFC 8461) where published.
	RouteMX RouteKind = "mx"
	// RouteSmarthost hands the mail to one server the admin names (the
	// provider's or the company's relay), with AUTH if asked.
	RouteSmarthost RouteKind = "smarthost"
)

// SmarthostTLS is the TLS mode of a smarthost session.
type SmarthostTLS string

// Smarthost TLS modes.
const (
	// SmarthostStartTLS requires STARTTLS (RFC 3207) with a certificate
	// that verifies for Host; the default.
	SmarthostStartTLS SmarthostTLS = "starttls"
	// SmarthostImplicitTLS connects over TLS at once (RFC 8314), verified.
	SmarthostImplicitTLS SmarthostTLS = "tls"
	// SmarthostNone speaks plain SMTP: only for a relay on a network the
	// admin trusts (AUTH is then refused: a password never crosses in
	// clear text).
	SmarthostNone SmarthostTLS = "none"
)

// Secret is a password kept out of logs: it prints, formats and logs as
// "[redacted]"; only JSON (the stored route) holds its value.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `"[redacted]"` }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Route is a local domain's outbound route, as the store keeps it (JSON)
// and the config and CLI set it.
type Route struct {
	// Kind is the route; RouteDefault (empty) lets the domain's state
	// decide.
	Kind RouteKind `json:"route"`
	// Host and Port name the smarthost (RouteSmarthost only); Port 0 means
	// 587 with starttls, 465 with tls and 25 with none.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// TLS is the smarthost's TLS mode; empty means SmarthostStartTLS.
	TLS SmarthostTLS `json:"tls,omitempty"`
	// Username and Password, when Username is set, are sent with AUTH PLAIN
	// (RFC 4954, RFC 4616) — only under TLS.
	Username string `json:"username,omitempty"`
	Password Secret `json:"password,omitempty"`
	// Pin, when set, is the SHA-256 fingerprint of the smarthost's
	// certificate (hex, colons allowed): that certificate is accepted —
	// and only it — instead of one a CA vouches for (a relay on the
	// company network with a certificate of its own). Not with TLS none.
	Pin string `json:"pin,omitempty"`
}

// ErrRoute is wrapped by the errors of Route.Validate and ParseRoute.
var ErrRoute = errors.New("relay: invalid outbound route")

// WithDefaults returns r with the smarthost's TLS mode and port filled in.
func (r Route) WithDefaults() Route {
	if r.Kind != RouteSmarthost {
		return r
	}
	if r.TLS == "" {
		r.TLS = SmarthostStartTLS
	}
	if r.Port == 0 {
		switch r.TLS {
		case SmarthostImplicitTLS:
			r.Port = 465
		case SmarthostNone:
			r.Port = 25
		default:
			r.Port = 587
		}
	}
	return r
}

// Validate reports what is wrong with r, wrapping ErrRoute.
func (r Route) Validate() error {
	r = r.WithDefaults()
	switch r.Kind {
	case RouteDefault, RouteOldServer, RouteMX:
		if r.Host != "" || r.Username != "" || r.Password != "" || r.Pin != "" {
			return fmt.Errorf("%w: host, login and pin belong to a smarthost route only", ErrRoute)
		}
		return nil
	case RouteSmarthost:
	default:
		return fmt.Errorf("%w: route %q: want %s, %s or %s", ErrRoute, r.Kind, RouteOldServer, RouteMX, RouteSmarthost)
	}
	if r.Host == "" {
		return fmt.Errorf("%w: a smarthost needs a host", ErrRoute)
	}
	if _, err := oldserver.ParseHost(r.Host); err != nil {
		return fmt.Errorf("%w: smarthost %q: %w", ErrRoute, r.Host, err)
	}
	if r.Port < 1 || r.Port > 65535 {
		return fmt.Errorf("%w: smarthost port %d: want 1 to 65535", ErrRoute, r.Port)
	}
	switch r.TLS {
	case SmarthostStartTLS, SmarthostImplicitTLS:
	case SmarthostNone:
		if r.Username != "" {
			return fmt.Errorf("%w: AUTH needs TLS (starttls or tls): a password never crosses in clear text", ErrRoute)
		}
		if r.Pin != "" {
			return fmt.Errorf("%w: a certificate pin needs TLS (starttls or tls)", ErrRoute)
		}
	default:
		return fmt.Errorf("%w: TLS mode %q: want %s, %s or %s", ErrRoute, r.TLS, SmarthostStartTLS, SmarthostImplicitTLS, SmarthostNone)
	}
	if r.Pin != "" {
		if _, err := oldserver.ParseFingerprint(r.Pin); err != nil {
			return fmt.Errorf("%w: smarthost pin: %w", ErrRoute, err)
		}
	}
	if r.Username == "" && r.Password != "" {
		return fmt.Errorf("%w: a password without a user name", ErrRoute)
	}
	if r.Username != "" && r.Password == "" {
		return fmt.Errorf("%w: user %q has no password", ErrRoute, r.Username)
	}
	return nil
}

// String describes r for people and logs, never with its password.
func (r Route) String() string {
	r = r.WithDefaults()
	switch r.Kind {
	case RouteDefault:
		return "default"
	case RouteSmarthost:
		s := fmt.Sprintf("smarthost %s (TLS %s)", net.JoinHostPort(r.Host, strconv.Itoa(r.Port)), r.TLS)
		if r.Username != "" {
			s += ", AUTH as " + r.Username
		}
		if pin, err := oldserver.ParseFingerprint(r.Pin); err == nil {
			s += ", certificate pinned " + oldserver.FormatFingerprint(pin)
		}
		return s
	}
	return string(r.Kind)
}

// LogValue implements slog.LogValuer: the route without its password.
func (r Route) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Effective is the route mail takes: Kind, or for RouteDefault the old
// server while the domain migrates and direct delivery once it does not.
func (r Route) Effective(migrating bool) RouteKind {
	switch {
	case r.Kind != RouteDefault:
		return r.Kind
	case migrating:
		return RouteOldServer
	}
	return RouteMX
}

// ParseSmarthost splits "host:port" (or a bare host) for a smarthost
// route.
func ParseSmarthost(s string) (host string, port int, err error) {
	s = strings.TrimSpace(s)
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		if _, err2 := oldserver.ParseHost(s); err2 != nil {
			return "", 0, fmt.Errorf("%w: smarthost %q: want host or host:port", ErrRoute, s)
		}
		return s, 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("%w: smarthost %q: port must be a number from 1 to 65535", ErrRoute, s)
	}
	return h, n, nil
}

// ParseRoute reads a route as the store keeps it; "" is the default route.
func ParseRoute(js string) (Route, error) {
	var r Route
	if js == "" {
		return r, nil
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrRoute, err)
	}
	return r, r.Validate()
}

// RouteFunc returns the outbound route recorded (or configured) for a local
// domain; a zero Route (RouteDefault) lets the domain's state decide.
type RouteFunc func(ctx context.Context, domain string) (Route, error)

// StoreRoute returns the RouteFunc that reads the routes recorded in st
// (Store.OutboundRoute); it is the default of Options.Routes.
func StoreRoute(st *store.Store) RouteFunc {
	return func(ctx context.Context, domain string) (Route, error) {
		js, err := st.OutboundRoute(ctx, domain)
		if err != nil {
			return Route{}, err
		}
		rt, err := ParseRoute(js)
		if err != nil {
			return Route{}, fmt.Errorf("relay: outbound route of %s: %w", domain, err)
		}
		return rt, nil
	}
}

// SetRoute validates rt and records it as domain's outbound route in st;
// RouteDefault removes the recorded route.
func SetRoute(ctx context.Context, st *store.Store, domain string, rt Route) error {
	if err := rt.Validate(); err != nil {
		return err
	}
	if rt.Kind == RouteDefault {
		return st.SetOutboundRoute(ctx, domain, "")
	}
	b, err := json.Marshal(rt)
	if err != nil {
		return err
	}
	return st.SetOutboundRoute(ctx, domain, string(b))
}

// errNoRoute: the domain has no outbound route (not local, or migrating
// without an old server, or routed to an old server it does not have).
var errNoRoute = errors.New("relay: no outbound route")

// route is a domain's outbound route as resolved for one use.
type route struct {
	kind  RouteKind
	old   *oldserver.Settings // RouteOldServer
	smart Route               // RouteSmarthost, with defaults
}

// routeOf resolves the outbound route of a local domain: the recorded
// route if any, else the old server while the domain migrates and direct
// delivery (RouteMX) once it does not. It wraps errNoRoute when there is
// none.
func (r *Relay) routeOf(ctx context.Context, domain string) (route, error) {
	if _, err := r.st.Domain(ctx, domain); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return route{}, fmt.Errorf("%w: %s is not a local domain", errNoRoute, domain)
	} else if err != nil {
		return route{}, err
	}
	rt, err := r.opts.Routes(ctx, domain)
	if err != nil {
		return route{}, err
	}
	switch rt.Kind {
	case RouteMX:
		return route{kind: RouteMX}, nil
	case RouteSmarthost:
		return route{kind: RouteSmarthost, smart: rt.WithDefaults()}, nil
	}
	old, migrating, err := r.opts.OldServer(ctx, domain)
	if err != nil {
		return route{}, err
	}
	if rt.Effective(migrating) == RouteMX {
		return route{kind: RouteMX}, nil
	}
	if old == nil {
		return route{}, fmt.Errorf("%w: %s has no old server", errNoRoute, domain)
	}
	return route{kind: RouteOldServer, old: old}, nil
}
