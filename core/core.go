// Package core runs Mailferry: it opens the store and starts the IMAP and
// POP3 front ends, the migration engine and the SMTP relay from one Config, and is the
// one API the desktop assistant (ui) and the command line (cmd) use.
//
// Invariants:
//   - Core owns every service it starts; Close stops them all, waits for
//     their goroutines and closes the store last.
//   - A service that panics or stops is logged and restarted with backoff;
//     one that cannot be restarted fails the Core (Failed, Err): none is
//     left dead while the process runs on (see supervise.go).
//   - Nothing here imports a GUI toolkit.
//   - A Core that failed to start holds nothing open.
package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"mailferry/core/auth"
	"mailferry/core/certs"
	"mailferry/core/dkim"
	"mailferry/core/imapfront"
	"mailferry/core/migrate"
	"mailferry/core/pop3front"
	"mailferry/core/relay"
	"mailferry/core/store"
	"mailferry/core/trial"
)

// Core is a running Mailferry.
type Core struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	imap  *imapfront.Server
	pop3  *pop3front.Server
	mig   *migrate.Engine
	auth  *auth.Policy
	relay *relay.Relay
	tls   *tls.Config
	certs *certs.Manager // set by Start, under mu
	trial *trial.Trial
	dkim  *dkim.Keyring // see dkim.go

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sup    *supervisor

	mu        sync.Mutex
	listeners map[string]net.Listener // by config key, once started
	started   time.Time               // when Start began serving (node.go); zero before
}

// Open opens the store and builds the services from cfg (after Defaults),
// without listening yet: the command line uses an opened Core for admin
// work, Start makes it serve.
func Open(cfg Config) (*Core, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Core{cfg: cfg, log: cfg.Logger, listeners: map[string]net.Listener{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sup = newSupervisor(c.ctx, c.log, &c.wg, cfg.ServiceHook)
	objects, err := cfg.objectStorage()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "mailferry.db"), &store.Options{
		Logger:      cfg.Logger,
		Summarize:   imapfront.Summarize,
		MaxHashes:   cfg.MaxPasswordHashes,
		LoginCache:  time.Duration(cfg.LoginCacheSeconds) * time.Second,
		DatabaseURL: cfg.DatabaseURL,
		Objects:     objects,
		// (SQLite only.)
		WriterCacheKiB: cfg.WriterCacheKiB,
	})
	if err != nil {
		return nil, err
	}
	if from, started, underway, err := st.CopyUnderway(c.ctx); err != nil || underway {
		st.Close()
		if err == nil {
			err = fmt.Errorf("%w: this store is being filled by `mailferry store copy` from %s (started %s); run that copy again to finish it before using this store", ErrTargetNotEmpty, from, started.Format(time.RFC3339))
		}
		return nil, err
	}
	c.store = st
	c.trial = trial.New(st, c.front)
	c.dkim = dkim.NewKeyring(filepath.Join(cfg.DataDir, "dkim"), nil)
	c.mig, err = migrate.New(migrate.Options{
		Store:           st,
		Logger:          cfg.Logger,
		Accounts:        cfg.MigrateAccounts,
		ConnsPerAccount: cfg.MigrateConnections,
		Node:            cfg.NodeName,
		LeaseTTL:        time.Duration(cfg.CopyLeaseSeconds) * time.Second,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	c.auth, err = auth.New(auth.Options{
		Store:             st,
		Migrator:          c.mig,
		Logger:            cfg.Logger.With("service", "auth"),
		MaxFirstLogins:    cfg.MaxFirstLogins,
		MaxConnsPerSource: cfg.MaxConnsPerSource,
	})
	if err != nil {
		c.mig.Close()
		st.Close()
		return nil, err
	}
	return c, nil
}

// Config returns the configuration in force (with defaults filled in).
func (c *Core) Config() Config { return c.cfg }

// Logger is the core's logger.
func (c *Core) Logger() *slog.Logger { return c.log }

// Start opens the listeners and starts serving. On error nothing is left
// listening.
func (c *Core) Start() error {
	if err := c.masterPasswords(); err != nil {
		return err
	}
	var err error
	if c.tls, err = c.startCertificates(); err != nil {
		return err
	}
	c.imap, err = imapfront.New(&imapfront.Options{
		Store:             c.store,
		Auth:              c.auth,
		Logger:            c.log.With("service", "imap"),
		TLSConfig:         c.tls,
		AllowInsecureAuth: c.cfg.AllowInsecureAuth,
	})
	if err != nil {
		return err
	}
	c.pop3, err = pop3front.New(&pop3front.Options{
		Store:             c.store,
		Auth:              c.auth,
		Logger:            c.log.With("service", "pop3"),
		TLSConfig:         c.tls,
		AllowInsecureAuth: c.cfg.AllowInsecureAuth,
	})
	if err != nil {
		return err
	}
	opts, err := c.relayOptions()
	if err != nil {
		return err
	}
	c.relay, err = relay.New(opts)
	if err != nil {
		return err
	}
	type svc struct {
		key, addr string
		serve     func(net.Listener) error
	}
	svcs := []svc{
		{"imap", c.cfg.IMAPListen, c.imap.Serve},
		{"imaps", c.cfg.IMAPSListen, c.imap.ServeTLS},
		{"pop3", c.cfg.POP3Listen, c.pop3.Serve},
		{"pop3s", c.cfg.POP3SListen, c.pop3.ServeTLS},
		{"smtp", c.cfg.SMTPListen, c.relay.ServeSMTP},
		{"submission", c.cfg.SubmissionListen, c.relay.ServeSubmission},
		{"submissions", c.cfg.SubmissionTLSListen, c.relay.ServeSubmissionTLS},
		{"acme-http", c.cfg.ACMEHTTPListen, c.certs.ServeHTTP01},
		{"acme-tls", c.cfg.ACMETLSListen, c.certs.ServeTLSALPN01},
	}
	var opened []net.Listener
	for _, s := range svcs {
		if s.addr == Off {
			continue
		}
		ln, lerr := net.Listen("tcp", s.addr)
		if lerr != nil {
			for _, l := range opened {
				l.Close()
			}
			return fmt.Errorf("%s: cannot listen on %s: %w", s.key, s.addr, lerr)
		}
		opened = append(opened, ln)
		c.mu.Lock()
		c.listeners[s.key] = ln
		c.mu.Unlock()
	}
	for _, s := range svcs {
		c.mu.Lock()
		ln := c.listeners[s.key]
		c.mu.Unlock()
		if ln == nil {
			continue
		}
		c.sup.start(c.listenerService(s.key, s.serve))
		c.log.Info("listening", "service", s.key, "addr", ln.Addr().String())
	}
	// Copies a stopped or dead process left unfinished go on by themselves
	// (those that need a password in memory wait for the user's login).
	// Other nodes' copies whose node died are taken over the same way,
	// once their lease expires (KeepResuming looks every third of it).
	c.mig.KeepResuming()
	c.sup.start(service{name: "relay queue", run: c.relay.Run})
	c.sup.start(service{name: "node", run: c.nodeBeat})
	c.sup.start(service{name: "compact", run: c.compactLoop})
	// A failed fsync of the store's log stops the store (store.ErrStopped):
	// the process stops too, and recovers from the log when started again.
	go func() {
		select {
		case <-c.store.Stopped():
			c.sup.fail(c.store.StoppedErr())
		case <-c.sup.ctx.Done():
		}
	}()
	if c.certs.ACME() {
		c.sup.start(service{name: "certificates", run: c.certs.Run})
	}
	return nil
}

// relayOptions are the SMTP relay's options from the configuration; the
// listeners' TLS configuration is set once Start made it.
func (c *Core) relayOptions() (relay.Options, error) {
	var trusted []netip.Prefix
	for _, n := range c.cfg.TrustedNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return relay.Options{}, fmt.Errorf("trusted_networks: %w", err)
		}
		trusted = append(trusted, p)
	}
	routes, err := c.routes()
	if err != nil {
		return relay.Options{}, err
	}
	resolver, err := c.dnsResolver()
	if err != nil {
		return relay.Options{}, err
	}
	return relay.Options{
		Store:           c.store,
		Logger:          c.log.With("service", "smtp"),
		Hostname:        c.cfg.Hostname,
		TLSConfig:       c.tls,
		TrustedNetworks: trusted,
		Auth:            c.auth,
		AuthResults:     c.authResults(),
		Sign:            c.sign,
		Routes:          routes,
		Resolver:        resolver,
	}, nil
}

// dnsResolver is the resolver dns_resolver names, nil for the system's.
func (c *Core) dnsResolver() (*net.Resolver, error) {
	if c.cfg.DNSResolver == "" {
		return nil, nil
	}
	return relay.NewResolver(c.cfg.DNSResolver)
}

// listenerService is the service that serves on the listener of key;
// a restart reopens the listener on the address it was bound to.
func (c *Core) listenerService(key string, serve func(net.Listener) error) service {
	current := func() net.Listener {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.listeners[key]
	}
	return service{
		name: key,
		restart: func() error {
			c.mu.Lock()
			defer c.mu.Unlock()
			old := c.listeners[key]
			old.Close()
			if err := c.ctx.Err(); err != nil {
				return err // Close is under way and closes what is listed
			}
			ln, err := net.Listen("tcp", old.Addr().String())
			if err != nil {
				return fmt.Errorf("%s: cannot listen on %s again: %w", key, old.Addr(), err)
			}
			c.listeners[key] = ln
			return nil
		},
		run: func(context.Context) error {
			err := serve(current())
			if err == nil || errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%s: stopped serving", key)
			}
			return err
		},
	}
}

// Failed is closed when a service failed for good (it could not be
// restarted); Err then says why. A running server stops on it.
func (c *Core) Failed() <-chan struct{} { return c.sup.failed }

// Err is why a service failed for good, after Failed is closed; nil before.
func (c *Core) Err() error {
	select {
	case <-c.sup.failed:
		return c.sup.err
	default:
		return nil
	}
}

// CompactInterval is how often the store gives back the disk space of
// deleted messages (and once at start).
const CompactInterval = time.Hour

func (c *Core) compactLoop(ctx context.Context) error {
	for {
		res, err := c.store.Compact(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Error("store compaction failed", "err", err)
		case res.PacksRemoved > 0 || res.ObjectsRemoved > 0:
			c.log.Info("store compacted", "packs_removed", res.PacksRemoved, "blobs_moved", res.BlobsMoved,
				"objects_removed", res.ObjectsRemoved, "bytes_freed", res.BytesFreed)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(CompactInterval):
		}
	}
}

// Addr returns the address a service ("imap", "imaps", "pop3", "pop3s",
// "smtp", "submission", "submissions", and the ACME challenge listeners
// "acme-http" and "acme-tls") listens on, or "" when it does not.
func (c *Core) Addr(service string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ln := c.listeners[service]; ln != nil {
		return ln.Addr().String()
	}
	return ""
}

// Close stops every service, waits for them and closes the store.
func (c *Core) Close() error {
	c.cancel()
	var errs []error
	if c.imap != nil {
		errs = append(errs, c.imap.Close())
	}
	if c.pop3 != nil {
		errs = append(errs, c.pop3.Close())
	}
	if c.relay != nil {
		errs = append(errs, c.relay.Close())
	}
	c.mu.Lock()
	for _, ln := range c.listeners {
		ln.Close()
	}
	c.mu.Unlock()
	errs = append(errs, c.mig.Close())
	c.wg.Wait()
	c.nodeGone()
	errs = append(errs, c.store.Close())
	return errors.Join(errs...)
}

// masterPasswords gives the engine the master-user passwords of
// Config.MasterPasswordFiles (in memory only).
func (c *Core) masterPasswords() error {
	for domain, file := range c.cfg.MasterPasswordFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("master_password_files: %s: %w", domain, err)
		}
		pw := strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
		if pw == "" {
			return fmt.Errorf("master_password_files: %s: %s holds no password", domain, file)
		}
		if err := c.mig.SetMasterCredentials(domain, "", pw); err != nil {
			return fmt.Errorf("master_password_files: %w", err)
		}
	}
	return nil
}
