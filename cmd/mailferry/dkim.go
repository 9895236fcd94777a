package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"mailferry/core"
)

// runDomainDKIM: mailferry domain dkim DOMAIN [--rotate | --activate
// [--force]] [--spf-ip LIST] [--spf-include LIST]. It prints the DNS
// records to publish for the domain: its DKIM keys, SPF and DMARC.
func runDomainDKIM(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("domain dkim", stderr)
	var c common
	c.register(fs)
	var o struct {
		rotate, activate, force bool
		ips, includes           string
	}
	fs.BoolVar(&o.rotate, "rotate", false, "make new keys (pending): publish their records, then --activate")
	fs.BoolVar(&o.activate, "activate", false, "sign with the pending keys from now on (checks DNS first)")
	fs.BoolVar(&o.force, "force", false, "with --activate: do not check that DNS serves the new keys")
	fs.StringVar(&o.ips, "spf-ip", "", "comma-separated addresses or prefixes mail leaves from, for the SPF record")
	fs.StringVar(&o.includes, "spf-include", "", "comma-separated domains whose SPF to include (a smarthost provider's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (o.rotate && o.activate) {
		return usagef("domain dkim takes one domain and at most one of --rotate and --activate, e.g. 'mailferry domain dkim example.test'")
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	domain := fs.Arg(0)
	switch {
	case o.rotate:
		if _, err := co.RotateDKIM(ctx, domain); err != nil {
			return storeErr(err)
		}
		fmt.Fprintln(stdout, "new keys made (pending): publish their records below, then run with --activate")
	case o.activate:
		if _, err := co.ActivateDKIM(ctx, domain, o.force); err != nil {
			return storeErr(err)
		}
		fmt.Fprintln(stdout, "mail is signed with the new keys from now on")
	}
	spf := core.SPFPolicy{IPs: splitList(o.ips), Includes: splitList(o.includes)}
	recs, err := co.DKIMRecords(ctx, domain, spf)
	if err != nil {
		return storeErr(err)
	}
	for _, r := range recs {
		fmt.Fprintf(stdout, "; %s", r.Purpose)
		if r.Note != "" {
			fmt.Fprintf(stdout, " (%s)", r.Note)
		}
		fmt.Fprintf(stdout, "\n%s\n", r.String())
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
