package core

// Outbound routes: how a local domain's mail to other domains leaves —
// through the old server, directly by MX, or through a smarthost — set by
// `mailferry domain route`, the configuration (outbound_routes) and the
// assistant.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"mailferry/core/relay"
)

// route turns a configured route into a relay.Route; the password file is
// read only when withPassword is set (Validate checks the rest).
func (rc OutboundRouteConfig) route(withPassword bool) (relay.Route, error) {
	rt := relay.Route{Kind: relay.RouteKind(strings.TrimSpace(rc.Route)), TLS: relay.SmarthostTLS(rc.TLS), Username: rc.Username, Pin: rc.Pin}
	if rt.Kind == relay.RouteDefault {
		return rt, fmt.Errorf("%w: route is empty: want %s, %s or %s", relay.ErrRoute, relay.RouteOldServer, relay.RouteMX, relay.RouteSmarthost)
	}
	if rc.Smarthost != "" {
		h, p, err := relay.ParseSmarthost(rc.Smarthost)
		if err != nil {
			return rt, err
		}
		rt.Host, rt.Port = h, p
	}
	if (rc.Username == "") != (rc.PasswordFile == "") {
		return rt, fmt.Errorf("%w: username and password_file go together", relay.ErrRoute)
	}
	if rc.PasswordFile != "" {
		rt.Password = "unread" // checked for its presence by Validate
		if withPassword {
			b, err := os.ReadFile(rc.PasswordFile)
			if err != nil {
				return rt, fmt.Errorf("smarthost password: %w", err)
			}
			pw, _, _ := strings.Cut(string(b), "\n")
			rt.Password = relay.Secret(strings.TrimRight(pw, "\r"))
		}
	}
	return rt, rt.Validate()
}

// configRoutes reads the configured routes (with their password files), by
// canonical domain name.
func (c Config) configRoutes() (map[string]relay.Route, error) {
	m := map[string]relay.Route{}
	for d, rc := range c.OutboundRoutes {
		name, err := CheckDomainName(d)
		if err != nil {
			return nil, err
		}
		rt, err := rc.route(true)
		if err != nil {
			return nil, fmt.Errorf("outbound_routes %s: %w", d, err)
		}
		m[name] = rt
	}
	return m, nil
}

// routeConfig returns the configured route of the domain named (in
// canonical form); the configuration may spell the domain otherwise.
func (c Config) routeConfig(name string) (OutboundRouteConfig, bool) {
	for d, rc := range c.OutboundRoutes {
		if n, err := CheckDomainName(d); err == nil && n == name {
			return rc, true
		}
	}
	return OutboundRouteConfig{}, false
}

// routes is the relay's RouteFunc: the configured route, else the one
// recorded in the store.
func (c *Core) routes() (relay.RouteFunc, error) {
	conf, err := c.cfg.configRoutes()
	if err != nil {
		return nil, err
	}
	stored := relay.StoreRoute(c.store)
	return func(ctx context.Context, domain string) (relay.Route, error) {
		if name, err := CheckDomainName(domain); err == nil {
			if rt, ok := conf[name]; ok {
				return rt, nil
			}
		}
		return stored(ctx, domain)
	}, nil
}

// OutboundRouteInfo is a domain's outbound route as the admin sees it.
type OutboundRouteInfo struct {
	// Route is the route set for the domain (zero: none set). Its
	// password prints as "[redacted]".
	Route OutboundRoute
	// Effective is the route mail takes now: Route's kind, or the default
	// for the domain's state (the old server while migrating, direct
	// delivery after).
	Effective OutboundRouteKind
	// FromConfig says Route comes from the configuration file
	// (outbound_routes), which wins over a route recorded with
	// SetOutboundRoute.
	FromConfig bool
}

// SetOutboundRoute records domain's outbound route (OutboundRoute with
// Kind RouteDefault removes it). The smarthost password is kept in the
// store (private to Mailferry's user), never logged. A route set in the
// configuration file still wins; the running relay reads the route at each
// delivery.
func (c *Core) SetOutboundRoute(ctx context.Context, domain string, rt OutboundRoute) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	if err := relay.SetRoute(ctx, c.store, domain, rt); err != nil {
		if errors.Is(err, relay.ErrRoute) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	c.log.Info("outbound route set", "domain", domain, "route", rt)
	return nil
}

// OutboundRouteOf returns domain's outbound route: the one set (in the
// configuration or recorded) and the one mail takes.
func (c *Core) OutboundRouteOf(ctx context.Context, domain string) (OutboundRouteInfo, error) {
	var info OutboundRouteInfo
	d, err := c.store.Domain(ctx, domain)
	if err != nil {
		return info, err
	}
	if rc, ok := c.cfg.routeConfig(d.Name); ok {
		info.Route, err = rc.route(false)
		info.Route.Password = ""
		info.FromConfig = true
	} else {
		info.Route, err = relay.StoreRoute(c.store)(ctx, d.Name)
	}
	if err != nil {
		return info, err
	}
	info.Effective = info.Route.Effective(d.Migrating)
	return info, nil
}
