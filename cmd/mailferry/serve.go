package main

import (
	"context"
	"errors"
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
	var listen listenFlags
	listen.register(fs)
	var o struct {
		hostname, cert, key, trusted string
		insecure                     bool
	}
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
	listen.apply(&cfg)
	override(&cfg.Hostname, o.hostname)
	override(&cfg.CertFile, o.cert)
	override(&cfg.KeyFile, o.key)
	if o.trusted != "" {
		cfg.TrustedNetworks = strings.Split(o.trusted, ",")
	}
	if o.insecure {
		cfg.AllowInsecureAuth = true
	}
	if err := cfg.Defaults().Validate(); err != nil {
		return usageError{err}
	}
	// The collector's setting for a server (serveGC); an admin's GOGC or
	// GOMEMLIMIT stands.
	defer tuneGC(serveGCPercent, serveHeapCeiling, os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"))()
	co, err := core.Open(cfg)
	if err != nil {
		return err
	}
	if err := co.Start(); err != nil {
		co.Close()
		return err
	}
	fmt.Fprintf(stderr, "mailferry: serving; data in %s%s. IMAP %s, SMTP %s. Ctrl-C stops.\n",
		co.Config().DataDir, storeNote(co.Config()), orOff(co.Addr("imap")), orOff(co.Addr("smtp")))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "mailferry: stopping")
		return co.Close()
	case <-co.Failed():
		// A service could not be restarted: stop everything and exit
		// non-zero, so that the admin (or systemd) sees it.
		return errors.Join(co.Err(), co.Close())
	}
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// storeNote says where the store's metadata is when it is not the SQLite
// file in the data directory: the database, its password hidden.
func storeNote(cfg core.Config) string {
	if cfg.DatabaseURL == "" {
		return ""
	}
	return ", metadata in " + core.RedactDatabaseURL(cfg.DatabaseURL)
}
