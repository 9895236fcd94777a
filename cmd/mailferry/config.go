package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"mailferry/core"
)

func defaultConfigFile() string { return core.DefaultConfigFile() }
func defaultDataDir() string    { return core.DefaultDataDir() }

// common are the options every command takes.
type common struct {
	config      string
	data        string
	databaseURL string
	logLevel    string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "configuration file (JSON; default "+defaultConfigFile()+" if it exists)")
	fs.StringVar(&c.data, "data", "", "data directory (default "+defaultDataDir()+")")
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL database for the store's metadata, postgres://user:password@host/db (default: SQLite in the data directory; a password is better in the configuration file)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// listenFlags are the listen addresses that serve and the assistant take.
type listenFlags struct{ imap, imaps, pop3, pop3s, smtp, sub, subs string }

func (l *listenFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.imap, "imap", "", "IMAP listen address host:port, or off (default 127.0.0.1:143 as root, else 127.0.0.1:1143)")
	fs.StringVar(&l.imaps, "imaps", "", "IMAP over TLS listen address, or off (default port 993 / 1993)")
	fs.StringVar(&l.pop3, "pop3", "", "POP3 listen address, or off (default port 110 / 1110)")
	fs.StringVar(&l.pop3s, "pop3s", "", "POP3 over TLS listen address, or off (default port 995 / 1995)")
	fs.StringVar(&l.smtp, "smtp", "", "SMTP listen address, or off (default port 25 / 2525)")
	fs.StringVar(&l.sub, "submission", "", "submission (STARTTLS) listen address, or off (default port 587 / 1587)")
	fs.StringVar(&l.subs, "submissions", "", "submission over TLS listen address, or off (default port 465 / 1465)")
}

// apply puts the addresses given on the command line into cfg.
func (l *listenFlags) apply(cfg *core.Config) {
	override(&cfg.IMAPListen, l.imap)
	override(&cfg.IMAPSListen, l.imaps)
	override(&cfg.POP3Listen, l.pop3)
	override(&cfg.POP3SListen, l.pop3s)
	override(&cfg.SMTPListen, l.smtp)
	override(&cfg.SubmissionListen, l.sub)
	override(&cfg.SubmissionTLSListen, l.subs)
}

// override sets *dst to v unless v is empty (not given).
func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// newFlags returns a FlagSet whose errors go to stderr and are returned.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mailferry "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, turning flag errors into usage errors. Flags may
// stand before, between or after the arguments ("domain add x.test --data
// D"); after "--" everything is an argument.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return err
			}
			return usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Leave the arguments in fs.Args(), behind a "--" so none is taken
	// for a flag.
	return fs.Parse(append([]string{"--"}, pos...))
}

// load reads the configuration file and applies the common flags.
func (c *common) load(stderr io.Writer) (core.Config, error) {
	path, optional := c.config, false
	if path == "" {
		path, optional = defaultConfigFile(), true
	}
	cfg, err := core.LoadConfig(path, optional)
	if err != nil {
		return cfg, usageError{err}
	}
	override(&cfg.DataDir, c.data)
	override(&cfg.DatabaseURL, c.databaseURL)
	cfg.Version = version
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return cfg, usagef("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return cfg, nil
}

// open opens the core for an admin command (no listeners).
func (c *common) open(stderr io.Writer) (*core.Core, error) {
	return c.openWith(stderr, nil)
}

// openWith is open with the configuration changed by tune (if not nil)
// once it is loaded.
func (c *common) openWith(stderr io.Writer, tune func(*core.Config)) (*core.Core, error) {
	cfg, err := c.load(stderr)
	if err != nil {
		return nil, err
	}
	if tune != nil {
		tune(&cfg)
	}
	// A bad configuration is the caller's to fix (exit 2); anything else
	// core.Open meets is a failure (exit 1).
	if err := cfg.Defaults().Validate(); err != nil {
		return nil, usageError{err}
	}
	co, err := core.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open data in %s: %w", cfg.Defaults().DataDir, err)
	}
	return co, nil
}
