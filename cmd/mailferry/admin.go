package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"mailferry/core"
)

// storeErr turns store errors about the caller's input into usage errors.
func storeErr(err error) error {
	if errors.Is(err, core.ErrInvalid) || errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrExists) {
		return usageError{err}
	}
	return err
}

func runDomain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("domain: want add, list, delete, migrate, route, dkim, users, test-send or readiness")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "migrate":
		return runDomainMigrate(args, stdout, stderr)
	case "route":
		return runDomainRoute(args, stdin, stdout, stderr)
	case "dkim":
		return runDomainDKIM(args, stdout, stderr)
	case "users":
		return runDomainUsers(args, stdin, stdout, stderr)
	case "test-send":
		return runDomainTestSend(args, stdout, stderr)
	case "readiness":
		return runDomainReadiness(args, stdout, stderr)
	}
	fs := newFlags("domain "+sub, stderr)
	var c common
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkArgs(fs, "domain", sub, map[string]int{"add": 1, "delete": 1, "list": 0}, "add, list, delete, migrate, route, dkim, users, test-send or readiness"); err != nil {
		return err
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	switch sub {
	case "add":
		d, err := co.AddDomain(ctx, fs.Arg(0))
		if err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "domain %s added\n", d.Name)
	case "delete":
		if err := co.DeleteDomain(ctx, fs.Arg(0)); err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "domain %s deleted\n", fs.Arg(0))
	case "list":
		ds, err := co.Domains(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tMIGRATION\tACCOUNTS\tOUTBOUND")
		for _, d := range ds {
			as, err := co.Accounts(ctx, d.Name)
			if err != nil {
				return err
			}
			mig := "off"
			if d.Migrating {
				mig = "on"
			}
			out := "?"
			if info, err := co.OutboundRouteOf(ctx, d.Name); err == nil {
				out = string(info.Effective)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.Name, mig, len(as), out)
		}
		tw.Flush()
	}
	return nil
}

func runAccount(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("account: want add, list, passwd or delete")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("account "+sub, stderr)
	var c common
	c.register(fs)
	domain := ""
	if sub == "list" {
		fs.StringVar(&domain, "domain", "", "only this domain's accounts")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkArgs(fs, "account", sub, map[string]int{"add": 1, "passwd": 1, "delete": 1, "list": 0}, "add, list, passwd or delete"); err != nil {
		return err
	}
	var password string
	if sub == "add" || sub == "passwd" {
		if _, _, err := core.SplitAddress(fs.Arg(0)); err != nil {
			return usageError{err}
		}
		var err error
		if password, err = readPassword(stdin, stderr, "Password for "+fs.Arg(0)); err != nil {
			return err
		}
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	switch sub {
	case "add":
		a, err := co.AddAccount(ctx, fs.Arg(0), password)
		if err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "account %s added\n", a.Address)
	case "passwd":
		if err := co.SetPassword(ctx, fs.Arg(0), password); err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "password of %s changed\n", fs.Arg(0))
	case "delete":
		if err := co.DeleteAccount(ctx, fs.Arg(0)); err != nil {
			return storeErr(err)
		}
		fmt.Fprintf(stdout, "account %s deleted with all its mail\n", fs.Arg(0))
	case "list":
		as, err := co.Accounts(ctx, domain)
		if err != nil {
			return storeErr(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tMIGRATION\tCREATED")
		for _, a := range as {
			mig := a.Migration
			if mig == "" {
				mig = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Address, mig, a.Created.Format("2006-01-02 15:04"))
		}
		tw.Flush()
	}
	return nil
}

// checkArgs checks that sub is a known subcommand of cmd and got as many
// arguments as nargs says.
func checkArgs(fs *flag.FlagSet, cmd, sub string, nargs map[string]int, known string) error {
	n, ok := nargs[sub]
	if !ok {
		return usagef("%s: unknown subcommand %q (want %s)", cmd, sub, known)
	}
	if fs.NArg() != n {
		return usagef("%s %s takes %d argument(s), got %d", cmd, sub, n, fs.NArg())
	}
	return nil
}

// readPassword asks on the terminal (twice, without echo) or reads the
// first line of a non-terminal stdin, so scripts can pipe it in. Passwords
// never come from flags: they would show in ps and shell history.
func readPassword(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt+": ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", usagef("the passwords differ")
		}
		if len(p1) == 0 {
			return "", usagef("empty password")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", usagef("%s: give it on standard input", prompt)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("empty password")
	}
	return line, nil
}
