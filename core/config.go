package core

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"mailferry/core/dkim"
	"mailferry/core/relay"
	"mailferry/core/store"
)

// Config is everything Core needs to run. The zero value of a field means
// its default (see Defaults); listen addresses set to "off" disable that
// listener.
type Config struct {
	// DataDir holds the store (mailferry.db) and the generated TLS
	// certificate; default DefaultDataDir().
	DataDir string `json:"data_dir,omitempty"`
	// DatabaseURL, when set (postgres://user:password@host:5432/database),
	// keeps the store's metadata in that PostgreSQL database instead of
	// the SQLite file in DataDir; message bytes stay in DataDir's packs.
	// Empty means the embedded SQLite. Never printed with its password.
	DatabaseURL string `json:"database_url,omitempty"`
	// Hostname is the name this server gives in greetings and Received
	// headers; default the machine's host name.
	Hostname string `json:"hostname,omitempty"`

	// IMAP front end: plain with STARTTLS, and implicit TLS (RFC 8314).
	IMAPListen  string `json:"imap_listen,omitempty"`
	IMAPSListen string `json:"imaps_listen,omitempty"`
	// SMTP: inbound (port 25), submission with STARTTLS (587) and with
	// implicit TLS (465).
	SMTPListen          string `json:"smtp_listen,omitempty"`
	SubmissionListen    string `json:"submission_listen,omitempty"`
	SubmissionTLSListen string `json:"submission_tls_listen,omitempty"`
	// POP3 front end (core/pop3front): plain with STLS (port 110), and
	// implicit TLS (995).
	POP3Listen  string `json:"pop3_listen,omitempty"`
	POP3SListen string `json:"pop3s_listen,omitempty"`

	// CertFile and KeyFile name a PEM certificate and key, reloaded when
	// the files change; when empty the certificate comes from ACME (below)
	// or is self-signed, made on first start under DataDir/tls.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ACME (RFC 8555): the certificate from Let's Encrypt or another ACME
	// CA, renewed without a restart; on when ACMEEmail is set and CertFile
	// is not. See certificates.go and README "Certificates".
	ACMEEmail       string   `json:"acme_email,omitempty"`
	ACMEDirectory   string   `json:"acme_directory,omitempty"`
	ACMEDirectoryCA string   `json:"acme_directory_ca,omitempty"`
	ACMENames       []string `json:"acme_names,omitempty"`
	ACMEHTTPListen  string   `json:"acme_http_listen,omitempty"`
	ACMETLSListen   string   `json:"acme_tls_listen,omitempty"`
	// AllowInsecureAuth lets IMAP and POP3 clients log in without TLS (STARTTLS or
	// implicit TLS). Off by default: passwords never cross the wire in
	// clear text.
	AllowInsecureAuth bool `json:"allow_insecure_auth,omitempty"`
	// TrustedNetworks (CIDRs) may relay through the SMTP listener without
	// authentication.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`

	// MigrateAccounts is how many accounts are copied at once (default:
	// as many as the old server takes connections, its max_connections
	// or the cap learnt);
	// MigrateConnections how many old-server connections each uses (default 2).
	MigrateAccounts    int `json:"migrate_accounts,omitempty"`
	MigrateConnections int `json:"migrate_connections,omitempty"`
	// WriterCacheKiB is store.Options.WriterCacheKiB (not read from the
	// file: `mailferry migrate` sets it).
	WriterCacheKiB int `json:"-"`
	// NodeName names this node among several `mailferry serve` on one
	// database (database_url): in `mailferry status`, the nodes table and
	// the copy leases it holds. Default the host name and the data
	// directory ("mail1:/var/lib/mailferry"). It must differ between
	// machines: a lease whose holder has this node's name and a process
	// that is gone is taken at once, any other only when it expires.
	NodeName string `json:"node_name,omitempty"`
	// CopyLeaseSeconds is how long an account's copy lease lasts unless
	// its node renews it (every third of it): how long, at most, a copy
	// whose node died waits before another node takes it over (default
	// 30).
	CopyLeaseSeconds int `json:"copy_lease_seconds,omitempty"`
	// MasterPasswordFiles name, by migrating domain, a file whose first
	// line is the password of the domain's master user (its settings'
	// master_user, `domain migrate --master-user`). With it `serve` resumes
	// interrupted and failed copies of that domain by itself, after a
	// restart too; without it a copy whose password was lost with the
	// process waits for the user's next login. The password is read into
	// memory only; keep the file readable by Mailferry only.
	MasterPasswordFiles map[string]string `json:"master_password_files,omitempty"`

	// MaxPasswordHashes bounds the password hashes (argon2id, 19 MiB of
	// memory each) computed at once; default the number of CPUs, at most 4.
	MaxPasswordHashes int `json:"max_password_hashes,omitempty"`
	// LoginCacheSeconds is how long a password verified at login is
	// remembered in memory (an HMAC under a random per-process key, never
	// on disk), so that the account's next logins with that same password
	// skip the argon2id hash (store.Options.LoginCache); default 300, a
	// negative value remembers none.
	LoginCacheSeconds int `json:"login_cache_seconds,omitempty"`
	// MaxFirstLogins bounds the first logins being checked at the old
	// server at once (default 64, auth.DefaultMaxFirstLogins).
	MaxFirstLogins int `json:"max_first_logins,omitempty"`
	// MaxConnsPerSource bounds the IMAP (and POP3) connections of one client address
	// (IPv4) or /64 (IPv6) (default 50: an office behind one NAT address shares it).
	MaxConnsPerSource int `json:"max_conns_per_source,omitempty"`

	// Object storage for message bytes (store.ObjectStorage): when
	// S3Endpoint is set, new message bytes go to this S3-compatible bucket
	// instead of pack files under DataDir (bytes already in packs stay
	// there). The secret key is the first line of S3SecretKeyFile, never
	// written in the configuration; S3TLS defaults to true.
	S3Endpoint      string `json:"s3_endpoint,omitempty"`
	S3Bucket        string `json:"s3_bucket,omitempty"`
	S3Region        string `json:"s3_region,omitempty"`
	S3AccessKey     string `json:"s3_access_key,omitempty"`
	S3SecretKeyFile string `json:"s3_secret_key_file,omitempty"`
	S3TLS           *bool  `json:"s3_tls,omitempty"`

	// AuthResolver answers the DNS questions of mail authentication (DKIM
	// keys, SPF, DMARC: see core/dkim); nil means the system's resolver.
	// Tests set their own.
	AuthResolver dkim.Resolver `json:"-"`
	// CertRoots are the roots the readiness check verifies the served
	// certificate's chain against, as mail programs do; nil means the
	// system's. Tests set their own.
	CertRoots *x509.CertPool `json:"-"`
	// DNSResolver is the DNS server (host:port, e.g. "127.0.0.1:53") asked
	// for the MX, address and TXT records of direct delivery and MTA-STS;
	// empty means the system's resolver.
	DNSResolver string `json:"dns_resolver,omitempty"`
	// OutboundRoutes set local domains' outbound routes here, by domain;
	// they win over routes recorded with `mailferry domain route` (see
	// OutboundRouteConfig). Domains not named use the recorded route or
	// the default: the old server while migrating, direct delivery after.
	OutboundRoutes map[string]OutboundRouteConfig `json:"outbound_routes,omitempty"`

	// Version is this program's version, shown beside the node in the
	// nodes table (mailferry status); set by the command.
	Version string `json:"-"`

	// Logger receives the core's logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`

	// ServiceHook, when set, is called in a service's goroutine each time
	// the service starts or restarts, before it serves, with the service's
	// name ("imap", "imaps", "smtp", "submission", "submissions", "pop3",
	// "pop3s", "relay queue", "compact", "node"). A panic in it is the service's panic; an
	// error means the service cannot start. It is the seam through which
	// tests make a service fail; leave it nil.
	ServiceHook func(service string) error `json:"-"`
}

// OutboundRouteConfig is a domain's outbound route in the configuration
// file, for example
//
//	"outbound_routes": {"example.org": {"route": "smarthost",
//	    "smarthost": "smtp.provider.example:587", "tls": "starttls",
//	    "username": "example.org", "password_file": "/etc/mailferry/smarthost.pass"}}
//
// The smarthost password is never written in the configuration: it is the
// first line of PasswordFile (keep that file readable by Mailferry only).
type OutboundRouteConfig struct {
	// Route is "oldserver", "mx" (direct delivery) or "smarthost".
	Route string `json:"route"`
	// Smarthost is host or host:port (default port 587 with starttls, 465
	// with tls, 25 with none).
	Smarthost string `json:"smarthost,omitempty"`
	// TLS is "starttls" (default), "tls" or "none".
	TLS string `json:"tls,omitempty"`
	// Username, if set, logs in with AUTH PLAIN (only over TLS).
	Username string `json:"username,omitempty"`
	// PasswordFile holds the password for Username.
	PasswordFile string `json:"password_file,omitempty"`
	// Pin is the SHA-256 fingerprint of the smarthost's own certificate,
	// accepted instead of one a CA vouches for.
	Pin string `json:"pin,omitempty"`
}

// Off is the listen address that disables a listener.
const Off = "off"

// DefaultDataDir is where Mailferry keeps its data unless told otherwise:
// $XDG_DATA_HOME/mailferry (~/.local/share/mailferry) on Linux,
// %LOCALAPPDATA%\Mailferry on Windows, ~/Library/Application Support/Mailferry
// on macOS.
func DefaultDataDir() string {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Mailferry")
		}
	case "darwin":
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, "Library", "Application Support", "Mailferry")
		}
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mailferry")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "mailferry")
	}
	return "mailferry-data"
}

// DefaultConfigFile is the configuration file read when none is named:
// mailferry/config.json under os.UserConfigDir.
func DefaultConfigFile() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return "mailferry.json"
	}
	return filepath.Join(d, "mailferry", "config.json")
}

// LoadConfig reads a JSON configuration file. A missing file is not an
// error when optional is set; unknown keys are.
func LoadConfig(path string, optional bool) (Config, error) {
	var c Config
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return c, nil
	} else if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Defaults returns c with every unset field given its default. Ports below
// 1024 are used only when running as root (143, 993, 25, 587, 465, 110,
// 995); else 1143, 1993, 2525, 1587, 1465, 1110 and 1995. Listeners bind to loopback unless an
// address says otherwise: serving real users is a deliberate setting.
func (c Config) Defaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	root := runtime.GOOS != "windows" && os.Geteuid() == 0
	port := func(privileged, user int) string {
		if root {
			return "127.0.0.1:" + strconv.Itoa(privileged)
		}
		return "127.0.0.1:" + strconv.Itoa(user)
	}
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set(&c.IMAPListen, port(143, 1143))
	set(&c.IMAPSListen, port(993, 1993))
	set(&c.SMTPListen, port(25, 2525))
	set(&c.SubmissionListen, port(587, 1587))
	set(&c.SubmissionTLSListen, port(465, 1465))
	set(&c.POP3Listen, port(110, 1110))
	set(&c.POP3SListen, port(995, 1995))
	c = c.acmeDefaults()
	if c.NodeName == "" {
		host, _ := os.Hostname()
		dir := c.DataDir
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		c.NodeName = host + ":" + dir
	}
	if c.MigrateAccounts < 0 {
		c.MigrateAccounts = 0 // the old server's connection cap (migrate.Options.Accounts)
	}
	if c.MigrateConnections <= 0 {
		c.MigrateConnections = 2
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first thing wrong with c, in words an admin can act on.
func (c Config) Validate() error {
	for _, l := range []struct{ name, addr string }{
		{"imap_listen", c.IMAPListen}, {"imaps_listen", c.IMAPSListen}, {"smtp_listen", c.SMTPListen},
		{"submission_listen", c.SubmissionListen}, {"submission_tls_listen", c.SubmissionTLSListen},
		{"pop3_listen", c.POP3Listen}, {"pop3s_listen", c.POP3SListen},
	} {
		if l.addr == "" || l.addr == Off {
			continue
		}
		_, p, err := net.SplitHostPort(l.addr)
		if err != nil {
			return fmt.Errorf("%s %q: want host:port, e.g. 0.0.0.0:143 (or %q)", l.name, l.addr, Off)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s %q: port must be a number from 1 to 65535", l.name, l.addr)
		}
	}
	if c.DatabaseURL != "" {
		if err := store.CheckDatabaseURL(c.DatabaseURL); err != nil {
			return fmt.Errorf("database_url: %w", err)
		}
	}
	if err := checkNodeName(c.NodeName); err != nil {
		return err
	}
	if c.CopyLeaseSeconds < 0 || c.CopyLeaseSeconds > 0 && (c.CopyLeaseSeconds < 3 || c.CopyLeaseSeconds > 3600) {
		return fmt.Errorf("copy_lease_seconds %d: want 3 to 3600 (default 30)", c.CopyLeaseSeconds)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert_file and key_file go together: set both or neither")
	}
	if err := c.validateACME(); err != nil {
		return err
	}
	if c.DNSResolver != "" {
		if _, err := relay.NewResolver(c.DNSResolver); err != nil {
			return fmt.Errorf("dns_resolver %q: want host:port, e.g. 127.0.0.1:53", c.DNSResolver)
		}
	}
	for d, rc := range c.OutboundRoutes {
		if _, err := CheckDomainName(d); err != nil {
			return fmt.Errorf("outbound_routes: %q: %w", d, err)
		}
		if _, err := rc.route(false); err != nil {
			return fmt.Errorf("outbound_routes %s: %w", d, err)
		}
	}
	if err := c.validateS3(); err != nil {
		return err
	}
	for _, n := range c.TrustedNetworks {
		// Parsed as relayOptions parses it.
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return fmt.Errorf("trusted_networks: %q is not a CIDR such as 192.0.2.0/24", n)
		}
		// Whoever is in a trusted network relays anywhere: one that takes
		// in the Internet, or a large part of it, is an open relay. The
		// widest private networks are 10.0.0.0/8 and fc00::/7.
		if min := minTrustedBits(p); p.Bits() < min {
			return fmt.Errorf("trusted_networks: %q takes in far more than a network of yours (at most a /%d): whoever is in a trusted network may relay mail through Mailferry to anywhere", n, min)
		}
	}
	return nil
}

// minTrustedBits is the shortest prefix a trusted network may have.
func minTrustedBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 8
	}
	return 7
}

// validateS3 checks the object storage keys without reading the secret.
func (c Config) validateS3() error {
	if c.S3Endpoint == "" {
		if c.S3Bucket != "" || c.S3AccessKey != "" || c.S3SecretKeyFile != "" || c.S3Region != "" || c.S3TLS != nil {
			return errors.New("s3_endpoint is missing: the other s3_ keys need it")
		}
		return nil
	}
	if _, p, err := net.SplitHostPort(c.S3Endpoint); err != nil || p == "" {
		return fmt.Errorf("s3_endpoint %q: want host:port, e.g. s3.example.net:443", c.S3Endpoint)
	}
	if c.S3Bucket == "" {
		return errors.New("s3_endpoint is set: s3_bucket must be too")
	}
	if (c.S3AccessKey == "") != (c.S3SecretKeyFile == "") {
		return errors.New("s3_access_key and s3_secret_key_file go together: set both or neither")
	}
	return nil
}

// objectStorage is the store's object storage from c, reading the secret
// key file; nil when c keeps message bytes in packs.
func (c Config) objectStorage() (*store.ObjectStorage, error) {
	if c.S3Endpoint == "" {
		return nil, nil
	}
	o := &store.ObjectStorage{
		Endpoint: c.S3Endpoint, Bucket: c.S3Bucket, Region: c.S3Region, AccessKey: c.S3AccessKey,
		PlainHTTP: c.S3TLS != nil && !*c.S3TLS,
	}
	if c.S3SecretKeyFile != "" {
		b, err := os.ReadFile(c.S3SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("s3_secret_key_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if o.SecretKey = strings.TrimRight(line, "\r"); o.SecretKey == "" {
			return nil, fmt.Errorf("s3_secret_key_file %s: its first line is empty", c.S3SecretKeyFile)
		}
	}
	return o, nil
}

// checkNodeName refuses a node_name that could not be shown or told apart
// in a lease holder: control or non-printable characters, " pid ", more
// than 200 bytes.
func checkNodeName(n string) error {
	if len(n) > 200 || strings.Contains(n, " pid ") || store.Printable(n, 0) != n {
		return fmt.Errorf("node_name %q: want at most 200 printable characters, without \" pid \"", store.Printable(n, 80))
	}
	return nil
}
