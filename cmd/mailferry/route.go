package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mailferry/core"
)

// runDomainRoute: mailferry domain route DOMAIN [--mx | --oldserver |
// --default | --smarthost HOST[:PORT] [--tls MODE] [--user U
// [--password-file F]]]. Without a choice it prints the route.
func runDomainRoute(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("domain route", stderr)
	var c common
	c.register(fs)
	var o struct {
		mx, old, def               bool
		smart, tls, user, pwf, pin string
	}
	fs.BoolVar(&o.mx, "mx", false, "deliver directly to the recipients' mail exchangers (MX, STARTTLS, MTA-STS)")
	fs.BoolVar(&o.old, "oldserver", false, "hand outbound mail to the domain's old server (the default while it migrates)")
	fs.BoolVar(&o.def, "default", false, "forget the choice: the old server while migrating, direct delivery after")
	fs.StringVar(&o.smart, "smarthost", "", "hand outbound mail to this relay, host or host:port (e.g. smtp.provider.example:587)")
	fs.StringVar(&o.tls, "tls", "starttls", "smarthost TLS: starttls, tls (implicit) or none")
	fs.StringVar(&o.user, "user", "", "smarthost AUTH user name (the password is read from standard input or --password-file)")
	fs.StringVar(&o.pwf, "password-file", "", "file whose first line is the smarthost password")
	fs.StringVar(&o.pin, "pin", "", "SHA-256 fingerprint of the smarthost's own certificate, accepted instead of one a CA vouches for")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("domain route takes one domain, e.g. 'mailferry domain route example.test --mx'")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	n := 0
	for _, b := range []bool{o.mx, o.old, o.def, o.smart != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return usagef("domain route: choose one of --mx, --oldserver, --smarthost or --default")
	}
	if o.smart == "" && (given["tls"] || given["user"] || given["password-file"] || given["pin"]) {
		return usagef("domain route: --tls, --user, --password-file and --pin go with --smarthost")
	}
	if o.pwf != "" && o.user == "" {
		return usagef("domain route: --password-file needs --user")
	}
	var rt core.OutboundRoute
	switch {
	case o.mx:
		rt.Kind = core.RouteMX
	case o.old:
		rt.Kind = core.RouteOldServer
	case o.smart != "":
		h, p, err := core.ParseSmarthost(o.smart)
		if err != nil {
			return usageError{err}
		}
		rt = core.OutboundRoute{Kind: core.RouteSmarthost, Host: h, Port: p, TLS: core.SmarthostTLS(o.tls), Username: o.user, Pin: o.pin}
		if o.user != "" {
			pw, err := smarthostPassword(stdin, stderr, o.pwf, o.user)
			if err != nil {
				return err
			}
			rt.Password = core.Secret(pw)
		}
		if err := rt.Validate(); err != nil {
			return usageError{err}
		}
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	domain := fs.Arg(0)
	if n == 1 {
		if err := co.SetOutboundRoute(ctx, domain, rt); err != nil {
			return storeErr(err)
		}
	}
	info, err := co.OutboundRouteOf(ctx, domain)
	if err != nil {
		return storeErr(err)
	}
	set := info.Route.String()
	if info.FromConfig {
		set += " (from the configuration file, which wins over 'domain route')"
	}
	fmt.Fprintf(stdout, "domain %s: outbound route %s; mail leaves by: %s\n", domain, set, describeRoute(info.Effective))
	if info.FromConfig && n == 1 {
		fmt.Fprintln(stderr, "note: outbound_routes in the configuration file names this domain; the route recorded now applies once it is removed there")
	}
	return nil
}

// describeRoute says in words where mail goes.
func describeRoute(k core.OutboundRouteKind) string {
	switch k {
	case core.RouteMX:
		return "direct delivery to the recipients' mail exchangers"
	case core.RouteSmarthost:
		return "the smarthost"
	case core.RouteOldServer:
		return "the old server"
	}
	return string(k)
}

// smarthostPassword reads the password from file, else from standard input
// (a terminal is asked without echo), never from a flag.
func smarthostPassword(stdin io.Reader, stderr io.Writer, file, user string) (string, error) {
	if file == "" {
		return readPassword(stdin, stderr, "Smarthost password for "+user)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageError{fmt.Errorf("--password-file: %w", err)}
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", usageError{errors.New("--password-file: the first line is empty")}
	}
	return pw, nil
}
