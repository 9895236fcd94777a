package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"mailferry/core"
)

// runDomainMigrate: mailferry domain migrate DOMAIN --old HOST [...] | --disable
func runDomainMigrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("domain migrate", stderr)
	var c common
	c.register(fs)
	var o struct {
		old, tls, smtpTLS, pop3TLS, pin, login, master, defaultDomain string
		imapPort, smtpPort, pop3Port, maxConns                        int
		disable, show, force                                          bool
	}
	fs.StringVar(&o.old, "old", "", "old server: host name or IP literal in brackets, e.g. mail.example.net or [192.0.2.7]")
	fs.IntVar(&o.imapPort, "imap-port", 143, "old server's IMAP port (993 by default with --tls tls)")
	fs.IntVar(&o.smtpPort, "smtp-port", 25, "old server's SMTP port, which must accept mail from Mailferry without AUTH (465 by default with --smtp-tls tls)")
	fs.StringVar(&o.tls, "tls", "starttls", "IMAP TLS: none, starttls or tls (implicit)")
	fs.StringVar(&o.smtpTLS, "smtp-tls", "", "SMTP TLS: none, starttls or tls (default: as the old server offers, starttls)")
	fs.IntVar(&o.pop3Port, "pop3-port", 0, "old server's POP3 port (110, or 995 with --pop3-tls tls): its UIDLs are kept for POP3 clients; 0: the old POP3 is not read")
	fs.StringVar(&o.pop3TLS, "pop3-tls", "starttls", "POP3 TLS: none, starttls (STLS) or tls (implicit)")
	fs.StringVar(&o.pin, "pin", "", "SHA-256 fingerprint of the old server's certificate, for a self-signed one")
	fs.StringVar(&o.login, "login", "auto", "how the old server wants the login name: full, local or auto")
	fs.StringVar(&o.defaultDomain, "default-domain", "", "the domain the old server gives bare user names (Dovecot's auth_default_realm); with --login auto, bare names are tried only for it")
	fs.StringVar(&o.master, "master-user", "", "the old server's master user (Dovecot user*master), for bulk migration")
	fs.IntVar(&o.maxConns, "max-connections", 0, fmt.Sprintf("most IMAP connections to the old server at once, shared by every account's copy (0: %d; Courier allows 4 per address by default, Dovecot 10 per user and address)", core.DefaultMaxOldConnections))
	fs.BoolVar(&o.disable, "disable", false, "turn automatic migration off (the settings are kept)")
	fs.BoolVar(&o.show, "show", false, "print the domain's migration settings and exit")
	fs.BoolVar(&o.force, "force", false, "with --disable: turn migration off although the readiness check does not say ready (the facts are printed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("domain migrate takes one domain, e.g. 'mailferry domain migrate example.test --old [192.0.2.7]'")
	}
	domain := fs.Arg(0)
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var settings *core.OldServerSettings
	if !o.disable && !o.show {
		if o.old == "" {
			return usagef("domain migrate: --old HOST is required to turn migration on (or use --disable)")
		}
		h, err := core.ParseHost(o.old)
		if err != nil {
			return usageError{err}
		}
		s := core.DefaultOldServer(h)
		s.IMAPTLS = core.TLSMode(o.tls)
		if o.smtpTLS != "" {
			s.SMTPTLS = core.TLSMode(o.smtpTLS)
		}
		for _, p := range []struct {
			flag string
			port int
			dst  *int
		}{{"imap-port", o.imapPort, &s.IMAPPort}, {"smtp-port", o.smtpPort, &s.SMTPPort}} {
			if !given[p.flag] {
				*p.dst = 0 // WithDefaults picks the port of the TLS mode
				continue
			}
			if p.port < 1 || p.port > 65535 {
				return usagef("--%s %d: a port is a number from 1 to 65535", p.flag, p.port)
			}
			*p.dst = p.port
		}
		if o.pop3Port < 0 || o.pop3Port > 65535 {
			return usagef("--pop3-port %d: a port is a number from 1 to 65535 (0: none)", o.pop3Port)
		}
		if o.pop3Port != 0 {
			s.POP3Port, s.POP3TLS = o.pop3Port, core.TLSMode(o.pop3TLS)
		}
		s.PinnedSHA256 = o.pin
		s.LoginForm = core.LoginForm(o.login)
		s.DefaultDomain = o.defaultDomain
		s.MasterUser = o.master
		s.MaxConnections = o.maxConns
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			return usageError{err}
		}
		settings = &s
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	if o.show {
		s, on, err := co.MigrationSettings(ctx, domain)
		if err != nil {
			return storeErr(err)
		}
		facts, err := co.OldServerFacts(ctx, domain)
		if err != nil {
			return storeErr(err)
		}
		out := map[string]any{"domain": domain, "migrating": on, "old_server": s, "learnt": facts}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if o.force && !o.disable {
		return usagef("domain migrate: --force goes with --disable")
	}
	if o.disable {
		r, err := co.DisableMigration(ctx, domain, o.force)
		if errors.Is(err, core.ErrNotReady) {
			fmt.Fprintln(stderr, r.Text())
			return fmt.Errorf("migration of %s stays on: it is not ready (see above; 'mailferry domain readiness %s'); --force turns it off anyway", r.Domain, r.Domain)
		} else if err != nil {
			return storeErr(err)
		}
		if !r.Ready() {
			fmt.Fprintf(stderr, "turned off although not ready (--force):\n%s\n", strings.Join(r.Facts(), "\n"))
		}
	} else if err := co.SetMigration(ctx, domain, settings, true); err != nil {
		return storeErr(err)
	}
	if o.disable {
		fmt.Fprintf(stdout, "automatic migration of %s is off\n", domain)
	} else {
		fmt.Fprintf(stdout, "automatic migration of %s is on: old server %s, IMAP %d (%s), SMTP %d",
			domain, settings.Host, settings.IMAPPort, settings.IMAPTLS, settings.SMTPPort)
		if settings.POP3Port != 0 {
			fmt.Fprintf(stdout, ", POP3 %d (%s): its UIDLs are kept", settings.POP3Port, settings.POP3TLS)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// runMigrate: mailferry migrate --domain D --users users.csv [--master-user U] [--json]
func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	var c common
	c.register(fs)
	var o struct {
		domain, users, master, masterPwFile string
		asJSON                              bool
	}
	fs.StringVar(&o.domain, "domain", "", "the migrating domain whose users to copy (required)")
	fs.StringVar(&o.users, "users", "", "CSV file, one 'user[,password]' a line ('-' for standard input; required)")
	fs.StringVar(&o.master, "master-user", "", "log in to the old server as this master user for every user (Dovecot user*master); its password is asked for, or read from --master-password-file")
	fs.StringVar(&o.masterPwFile, "master-password-file", "", "file holding the master user's password (first line)")
	fs.BoolVar(&o.asJSON, "json", false, "print progress events and the results as JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.domain == "" || o.users == "" || fs.NArg() > 0 {
		return usagef("migrate needs --domain and --users, e.g. 'mailferry migrate --domain example.test --users users.csv'")
	}
	var in io.Reader = stdin
	if o.users != "-" {
		f, err := os.Open(o.users)
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		in = f
	}
	users, err := core.ReadUsersCSV(in)
	if err != nil {
		return usageError{err}
	}
	if len(users) == 0 {
		return usagef("%s lists no users", o.users)
	}
	var masterPw string
	if o.master != "" {
		if o.masterPwFile != "" {
			b, err := os.ReadFile(o.masterPwFile)
			if err != nil {
				return usageError{err}
			}
			masterPw = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
		} else if masterPw, err = readPassword(stdin, stderr, "Password of master user "+o.master); err != nil {
			return err
		}
		for i := range users {
			users[i].MasterUser, users[i].MasterPassword = o.master, masterPw
		}
	} else {
		for _, u := range users {
			if u.Password == "" {
				return usagef("user %s has no password in %s, and no --master-user is given", u.Address, o.users)
			}
		}
	}
	if n := migrateProcs(len(users), migrateCPUs(os.Getenv("GOMAXPROCS")), os.Getenv("GOMAXPROCS")); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n) // (set only when it changes: a set value no longer follows the CPU limit)
	}
	co, err := c.openWith(stderr, migrateConfig)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bar := newProgressBar(stdout, len(users), o.asJSON)
	results, err := co.MigrateUsers(ctx, o.domain, users, bar.event)
	bar.finish()
	if errors.Is(err, core.ErrNotMigrating) {
		return usageError{fmt.Errorf("%w (turn it on with 'mailferry domain migrate %s --old HOST')", err, o.domain)}
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.Encode(map[string]any{"results": results, "failed": failed})
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, r := range results {
			st := "ok"
			if !r.OK {
				st = "FAILED: " + r.Error
				if r.Problem != nil && r.Problem.Kind != core.ProblemOther {
					st = "FAILED: " + r.Problem.String() + " (" + r.Error + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\n", r.Address, st)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d of %d users migrated\n", len(results)-failed, len(results))
	}
	if err != nil {
		return fmt.Errorf("interrupted: %w (run the same command again to resume)", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d users failed", failed)
	}
	return nil
}

// migrateWriterCacheKiB is the page cache of `mailferry migrate`'s
// SQLite writer connection, in KiB (SQLite's own default; every other
// connection, and serve's writer, keep 16,000). The writer's cache grew
// with the database through a copy (about 5 MB of the peak RSS at 964 MB,
// and up to 16 MB at a few GB: issue 17's bound of 64 MB whatever the
// mailbox size); measured without a CPU cost told apart (README,
// "mailferry migrate, the whole process").
const migrateWriterCacheKiB = 2000

// migrateConfig tunes the configuration for `mailferry migrate`.
func migrateConfig(cfg *core.Config) {
	cfg.WriterCacheKiB = migrateWriterCacheKiB
}

// migrateProcs is how many goroutines `mailferry migrate` runs at once
// (GOMAXPROCS) for a list of users accounts, where procs is the runtime's
// own choice and env the GOMAXPROCS the admin set, if any (which stands):
// one per account, since the accounts are copied side by side, never
// more than procs. One account's copy (its connections' readers and
// stagers, the committer) hands every message from goroutine to
// goroutine; with a second P idle the runtime wakes a thread for each
// hand-off, which mostly finds nothing to do and sleeps again. On one P
// the hand-offs are plain goroutine switches: the 964 MB benchmark
// mailbox took 12-17% less CPU (futex calls -65%, context switches -40%)
// in the same wall time, the old server on the same two cores. One core
// hashes, writes and summarizes about 330 MB/s, more than one old server
// sends one account.
//
// On one CPU (a machine or container of one core, a process pinned to
// one with taskset, or a cgroup allowing one CPU: migrateCPUs) it is
// singleCPUProcs instead. There the one P was
// held by every goroutine blocked in a system call or a cgo call (the
// stagers' direct pack writes waiting for the disk, the committer's
// SQLite COMMIT and fsync) until the runtime's monitor took it back (20
// µs to 10 ms later), while the connection's reader, ready to run, waited
// with the core idle: the network and the disk were waited for one after
// the other instead of side by side. A second P runs the reader while
// the first waits in the kernel; a thread blocked in I/O does not use the
// core.
func migrateProcs(users, procs int, env string) int {
	if env != "" {
		return procs
	}
	if procs == 1 {
		return singleCPUProcs
	}
	return max(1, min(users, procs))
}

// singleCPUProcs is migrateProcs' GOMAXPROCS for a process that may use
// one CPU only.
const singleCPUProcs = 2

// progressBar shows bulk progress: a redrawn line on a terminal, JSON
// lines with --json, a line per finished account otherwise.
type progressBar struct {
	w        io.Writer
	total    int
	asJSON   bool
	tty      bool
	accounts map[string]core.AccountProgress
	last     time.Time
	enc      *json.Encoder
}

func newProgressBar(w io.Writer, total int, asJSON bool) *progressBar {
	b := &progressBar{w: w, total: total, asJSON: asJSON, accounts: map[string]core.AccountProgress{}, enc: json.NewEncoder(w)}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.tty = true
	}
	return b
}

func (b *progressBar) event(ev core.MigrationEvent) {
	if b.asJSON {
		b.enc.Encode(ev)
		return
	}
	prev := b.accounts[ev.Account.Address]
	b.accounts[ev.Account.Address] = ev.Account
	finished := ev.Account.State == core.MigDone || ev.Account.State == core.MigFailed
	if !b.tty {
		if finished && prev.State != ev.Account.State {
			fmt.Fprintf(b.w, "%s: %s, %d messages, %s\n", ev.Account.Address, ev.Account.State, ev.Account.MessagesDone, mb(ev.Account.BytesDone))
		}
		return
	}
	if time.Since(b.last) < 200*time.Millisecond && !finished {
		return
	}
	b.last = time.Now()
	fmt.Fprintf(b.w, "\r%s   ", b.line())
}

// line is the terminal's progress line: users and messages done, bytes
// copied, the current rate (of the accounts being copied) and, once every
// user's copy has started (so the total is known), the time left.
func (b *progressBar) line() string {
	var done int
	var msgs, msgsTotal, bytes, bytesTotal int64
	var rate float64
	for _, a := range b.accounts {
		if a.State == core.MigDone || a.State == core.MigFailed {
			done++
		} else {
			rate += a.BytesRate
		}
		msgs += a.MessagesDone
		msgsTotal += a.MessagesTotal
		bytes += a.BytesDone
		bytesTotal += max(a.BytesTotal, a.BytesDone)
	}
	const width = 30
	frac := 0.0
	if msgsTotal > 0 {
		frac = min(float64(msgs)/float64(msgsTotal), 1)
	}
	n := int(frac * width)
	s := fmt.Sprintf("[%s%s] %d/%d users, %d/%d messages, %s, %s/s",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), done, b.total, msgs, msgsTotal, mb(bytes), mb(int64(rate)))
	if len(b.accounts) >= b.total && done < b.total && rate > 0 && bytesTotal > bytes {
		left := time.Duration(float64(bytesTotal-bytes) / rate * float64(time.Second))
		s += ", about " + left.Round(time.Second).String() + " left"
	}
	return s
}

func (b *progressBar) finish() {
	if b.tty && !b.asJSON {
		fmt.Fprintln(b.w)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// runVerify: mailferry verify ADDRESS [--master-user U] [--json]
func runVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	var c common
	c.register(fs)
	var master string
	var asJSON bool
	fs.StringVar(&master, "master-user", "", "log in to the old server as this master user (its password is read instead of the user's)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("verify takes one address")
	}
	addr := fs.Arg(0)
	if _, _, err := core.SplitAddress(addr); err != nil {
		return usageError{err}
	}
	cred := core.Credentials{Address: addr}
	var err error
	if master != "" {
		cred.MasterUser = master
		cred.MasterPassword, err = readPassword(stdin, stderr, "Password of master user "+master)
	} else {
		cred.Password, err = readPassword(stdin, stderr, "Old-server password of "+addr)
	}
	if err != nil {
		return err
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	rep, err := co.Verify(context.Background(), addr, cred)
	if err != nil {
		return storeErr(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FOLDER\tOLD\tPRESENT\tMISSING\tDIFFERENT\tEXTRA")
		for _, f := range rep.Folders {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", f.OldName, f.Messages, f.Present, len(f.Missing), len(f.Different), len(f.Extra))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%s: %d of %d messages present with the same size, sha256, flags and date; %d missing, %d different\n",
			addr, rep.Present, rep.Messages, rep.Missing, rep.Different)
	}
	if !rep.OK {
		return fmt.Errorf("%s differs from the old server", addr)
	}
	return nil
}
