package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"mailferry/core"
)

// runDomainUsers: mailferry domain users DOMAIN [--import FILE|-]. It
// imports the list of the old server's users (one address a line, CSV,
// `doveadm user '*'` output, a passwd-file or LDIF from an LDAP search),
// replacing the list imported before, and prints what Mailferry knows.
func runDomainUsers(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("domain users", stderr)
	var c common
	c.register(fs)
	var file string
	fs.StringVar(&file, "import", "", "read the old server's users from FILE ('-': standard input) and make them the domain's list")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("domain users takes one domain, e.g. 'mailferry domain users example.test --import users.txt'")
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	domain := fs.Arg(0)
	if file != "" {
		in := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return usageError{err}
			}
			defer f.Close()
			in = f
		}
		l, err := co.ImportKnownUsers(ctx, domain, in)
		if err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "imported %s (%s)", core.Plural(len(l.Addresses), "user", "users"), l.Format)
		if l.Skipped > 0 {
			fmt.Fprintf(stdout, "; %d of other domains left out, e.g. %s", l.Skipped, l.SkippedSample[0])
		}
		fmt.Fprintln(stdout)
	}
	k, err := co.KnownUsersOf(ctx, domain)
	if err != nil {
		return storeErr(err)
	}
	if len(k.Listed) == 0 {
		fmt.Fprintln(stdout, "no list of the old server's users: import one with --import FILE")
	} else {
		fmt.Fprintf(stdout, "listed (%s): %d\n", k.ListedAt.Local().Format(time.DateTime), len(k.Listed))
	}
	fmt.Fprintf(stdout, "seen by the relay, not listed: %d\n", len(k.Seen))
	accts, err := co.Accounts(ctx, domain)
	if err != nil {
		return storeErr(err)
	}
	have := map[string]bool{}
	for _, a := range accts {
		have[a.Address] = true
	}
	for _, a := range k.All() {
		state := "not moved"
		if have[a] {
			state = "has an account"
		}
		fmt.Fprintf(stdout, "  %s\t%s\n", a, state)
	}
	return nil
}

// runDomainTestSend: mailferry domain test-send DOMAIN --to ADDRESS. It
// sends a test message through the route the domain's mail takes after
// migration and records the proof the readiness check asks for.
func runDomainTestSend(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("domain test-send", stderr)
	var c common
	c.register(fs)
	var to string
	fs.StringVar(&to, "to", "", "an address at another domain that you read (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || to == "" {
		return usagef("domain test-send takes one domain and --to, e.g. 'mailferry domain test-send example.test --to you@gmail.com'")
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := co.SendTestMessage(ctx, fs.Arg(0), to)
	var de *core.DeliveryError
	if errors.As(err, &de) {
		return fmt.Errorf("the test message was not delivered: %w", err)
	} else if err != nil {
		return storeErr(err)
	}
	fmt.Fprintf(stdout, "delivered: %s accepted the test message to %s (%s) at %s, by %s\n",
		p.Remote, p.Rcpt, p.Reply, p.At.Local().Format(time.DateTime), p.Route)
	return nil
}

// runDomainReadiness: mailferry domain readiness DOMAIN [--json]. It
// prints whether the domain can stop migrating; exit 1 unless ready.
func runDomainReadiness(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("domain readiness", stderr)
	var c common
	c.register(fs)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("domain readiness takes one domain, e.g. 'mailferry domain readiness example.test'")
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := co.Readiness(ctx, fs.Arg(0))
	if err != nil {
		return storeErr(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := struct {
			*core.Readiness
			Verdict core.Verdict `json:"verdict"`
		}{r, r.Verdict()}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, r.Text())
	}
	if !r.Ready() {
		return fmt.Errorf("%s: %s", r.Domain, r.Verdict())
	}
	return nil
}
