package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"mailferry/core"
)

func runServe(args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var c common
	c.register(fs)
	var o struct {
		imap, imaps, smtp, sub, subs, hostname, cert, key, trusted string
		insecure                                                   bool
	}
	fs.StringVar(&o.imap, "imap", "", "IMAP listen address host:port, or off (default 127.0.0.1:143 as root, else 127.0.0.1:1143)")
	fs.StringVar(&o.imaps, "imaps", "", "IMAP over TLS listen address, or off (default port 993 / 1993)")
	fs.StringVar(&o.smtp, "smtp", "", "SMTP listen address, or off (default port 25 / 2525)")
	fs.StringVar(&o.sub, "submission", "", "submission (STARTTLS) listen address, or off (default port 587 / 1587)")
	fs.StringVar(&o.subs, "submissions", "", "submission over TLS listen address, or off (default port 465 / 1465)")
	fs.StringVar(&o.hostname, "hostname", "", "host name for greetings and Received headers (default: this machine's)")
	fs.StringVar(&o.cert, "cert", "", "TLS certificate PEM file (default: self-signed, made on first start)")
	fs.StringVar(&o.key, "key", "", "TLS key PEM file")
	fs.StringVar(&o.trusted, "trusted", "", "comma-separated CIDRs that may relay through SMTP without AUTH")
	fs.BoolVar(&o.insecure, "allow-insecure-auth", false, "let IMAP clients log in without TLS (default: only after STARTTLS or on the implicit-TLS port)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	cfg, err := c.load(stderr)
	if err != nil {
		return err
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&cfg.IMAPListen, o.imap)
	over(&cfg.IMAPSListen, o.imaps)
	over(&cfg.SMTPListen, o.smtp)
	over(&cfg.SubmissionListen, o.sub)
	over(&cfg.SubmissionTLSListen, o.subs)
	over(&cfg.Hostname, o.hostname)
	over(&cfg.CertFile, o.cert)
	over(&cfg.KeyFile, o.key)
	if o.trusted != "" {
		cfg.TrustedNetworks = strings.Split(o.trusted, ",")
	}
	if o.insecure {
		cfg.AllowInsecureAuth = true
	}
	if err := cfg.Defaults().Validate(); err != nil {
		return usageError{err}
	}
	co, err := core.Open(cfg)
	if err != nil {
		return err
	}
	if err := co.Start(); err != nil {
		co.Close()
		return err
	}
	fmt.Fprintf(stderr, "mailferry: serving; data in %s. IMAP %s, SMTP %s. Ctrl-C stops.\n",
		co.Config().DataDir, orOff(co.Addr("imap")), orOff(co.Addr("smtp")))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(stderr, "mailferry: stopping")
	return co.Close()
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
