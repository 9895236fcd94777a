// Package oldtest starts a real "old mail server" — Dovecot (IMAP, RFC 9051 /
// RFC 3501) and optionally Postfix (SMTP, RFC 5321) — on 127.0.0.1 for tests,
// and seeds and inspects its mailboxes over IMAP.
//
// The daemons are run directly (no systemd) by the scripts in the module's
// testdata/oldserver directory, with all configuration and mail under a fresh
// state directory in /tmp, and are stopped by the PIDs in their own pid files.
//
// Invariants:
//   - Everything listens on 127.0.0.1 only, on ports picked at random per
//     server, so test processes of different packages can run in parallel.
//   - Each [Start] gets its own state directory and its own daemons; [Shared]
//     gives one server per distinct [Options] per test process.
//   - A server never outlives its test process: [Start] stops it in
//     t.Cleanup, and a watchdog started with the daemons stops them (and
//     deletes the state directory) once the test process is gone, even after
//     a crash or a timeout kill.
//   - Without root or without the Dovecot/Postfix binaries, [Start] and
//     [Shared] skip the test, unless MAILFERRY_REQUIRE_OLDSERVER=1 is set in
//     the environment, then they fail it. [StartProcess] returns an error
//     wrapping [ErrUnavailable].
//
// Mail domain: every user is in [Domain]. Postfix delivers mail for
// [Domain] over LMTP into Dovecot and rewrites any other recipient to
// catchall+<local>=<domain>@example.test, so nothing leaves the machine.
// The server offers STARTTLS on IMAPAddr, implicit TLS on IMAPSAddr, a
// self-signed certificate (CN=localhost, SAN 127.0.0.1, see CertSHA256),
// SPECIAL-USE (RFC 6154) Sent, Drafts, Trash, Junk and Archive, a Dovecot
// master user, and LOGIN with either the full address or the local part.
//
// Usage:
//
//	func TestCopy(t *testing.T) {
//		srv := oldtest.Start(t, &oldtest.Options{Separator: '.', WithSMTP: true})
//		uid := srv.Append(t, "alice", "Archive.2019", []string{`\Seen`}, date, raw)
//		srv.CreateMailbox(t, "alice", "Empty.Unsubscribed", false)
//		// ... point the code under test at srv.IMAPAddr (STARTTLS; pin
//		// srv.CertSHA256) with user "alice@example.test" and
//		// srv.Users["alice@example.test"], or log in as any user with
//		// srv.MasterLogin("alice") / srv.MasterPassword ...
//		got := srv.Messages(t, "alice", "INBOX")
//	}
//
// Tests that can share one server per test binary use Shared instead of
// Start (and call StopShared from TestMain). Dovecot's "auth penalty" is off
// and failed logins are answered after about half a second, so tests may
// try wrong passwords freely.
//
// Debian packages needed: dovecot-imapd dovecot-lmtpd postfix openssl, and
// dovecot-pop3d for POP3Addr.
// The tests must run as root (the daemons drop privileges themselves).
//
// Three kinds of old server ([Kind]): [Dovecot] above; [Cyrus], Cyrus IMAP
// 3.6 from Debian 12 in Dovecot's place beside the same Postfix (unpacked,
// not installed, by `make test-deps`; see cyrus.go for how it differs from
// the wire); and [InProcess],
// core/demo's in-memory IMAP and SMTP server run inside the test process,
// made to look like the Dovecot fixture from the wire (same users,
// separators, special-use folders, master user, login forms; see
// [StartInProcessServer] for what it does not do). It needs neither root nor
// any package. A test written against the fixture's IMAP methods runs against
// all three with [Each] and [StartKind]: under `make test` all run; as a
// non-root user without Dovecot, `go test ./...` still runs the in-process
// third (the Dovecot and Cyrus ones skip). TestInProcessSameAsDovecot keeps the two alike.
package oldtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/demo"
)

// Domain is the mail domain of every fixture user.
const Domain = "example.test"

// Default master user of a fixture (Dovecot master passdb, RFC 4616 authcid).
const (
	DefaultMasterUser     = "migrator"
	DefaultMasterPassword = "MigratorSecret1"
)

// RequireEnv is the environment variable that turns "skip when Dovecot or
// Postfix is missing" into a test failure (make test sets it to 1).
const RequireEnv = "MAILFERRY_REQUIRE_OLDSERVER"

// ScriptsEnv, when set, is the directory holding start.sh and stop.sh
// (default: testdata/oldserver of the module this package is in).
const ScriptsEnv = "MAILFERRY_OLDSERVER_SCRIPTS"

// ErrUnavailable is wrapped by [StartProcess] errors that mean "this machine
// cannot run the fixture" (not root, Dovecot or Postfix not installed),
// as opposed to a fixture that was tried and failed.
var ErrUnavailable = errors.New("oldtest: old-server fixture unavailable")

// DefaultUsers returns the users a fixture gets when Options.Users is nil:
// alice, bob, carol and catchall @example.test.
func DefaultUsers() map[string]string {
	return map[string]string{
		"alice@example.test":    "AliceSecret1",
		"bob@example.test":      "BobSecret1",
		"carol@example.test":    "CarolSecret1",
		"catchall@example.test": "CatchallSecret1",
	}
}

// Options configures a fixture. A nil *Options means all defaults.
type Options struct {
	// Separator is the IMAP hierarchy separator: '/' (default when 0) or '.'.
	Separator rune
	// Users maps address to password. Addresses without '@' get
	// "@example.test"; other domains are rejected. Nil means DefaultUsers.
	// A "catchall@example.test" user is added when WithSMTP is set and it is
	// missing, since Postfix rewrites foreign recipients to it.
	Users map[string]string
	// MasterUser and MasterPassword of the Dovecot master passdb; empty means
	// DefaultMasterUser / DefaultMasterPassword.
	MasterUser, MasterPassword string
	// WithSMTP also starts Postfix (SMTPAddr and SMTPSAddr).
	WithSMTP bool
	// Fsync is Dovecot's mail_fsync: "optimized", "always" or "never";
	// empty means "never" (fast; a test server needs no durability).
	Fsync string
	// MaxUserIPConnections is Dovecot's mail_max_userip_connections (IMAP
	// sessions of one user from one address); 0 means 200. The
	// in-process server ignores it (core/demo's MaxConnsPerIP caps
	// connections instead).
	MaxUserIPConnections int
	// InboxNamespace puts the personal folders under INBOX, as Cyrus's
	// traditional layout (altnamespace: no) and Courier do: "INBOX.Sent",
	// NAMESPACE (("INBOX." ".")). Cyrus only, with Separator '.'.
	InboxNamespace bool
}

// Server is a running fixture. Its exported fields are read-only.
type Server struct {
	// Kind says which old server this is: Dovecot, or InProcess (see
	// StartInProcessServer for how it differs).
	Kind Kind
	// IMAPAddr is host:port of IMAP with STARTTLS offered (RFC 9051 §6.2.1);
	// LOGIN and AUTHENTICATE PLAIN work also without TLS.
	IMAPAddr string
	// IMAPSAddr is host:port of IMAP over implicit TLS (RFC 8314); empty
	// for InProcess.
	IMAPSAddr string
	// POP3Addr is host:port of the POP3 (RFC 1939; USER/PASS also
	// without TLS, Dovecot's default UIDLs), same users and INBOX as IMAP:
	// Dovecot's (STLS offered; empty when dovecot-pop3d is not installed,
	// see RequirePOP3), or core/demo's read-only one for InProcess.
	POP3Addr string
	// SMTPAddr is host:port of Postfix SMTP (STARTTLS offered, no AUTH needed
	// from 127.0.0.0/8); empty without Options.WithSMTP.
	SMTPAddr string
	// SMTPSAddr is host:port of Postfix SMTP over implicit TLS; empty without
	// Options.WithSMTP, and for InProcess.
	SMTPSAddr string
	// Separator is the IMAP hierarchy separator of the personal namespace.
	Separator rune
	// Prefix is the personal namespace's prefix: "INBOX." with
	// Options.InboxNamespace, else "". Mailbox names of the fixture's
	// methods carry it ("INBOX.Archive").
	Prefix string
	// Users maps each full address to its password.
	Users map[string]string
	// MasterUser and MasterPassword log in as any user: LOGIN
	// "user@example.test*MasterUser" or AUTHENTICATE PLAIN with
	// authzid=user, authcid=MasterUser.
	MasterUser, MasterPassword string
	// StateDir holds config, mail, logs (StateDir/log) and the TLS
	// certificate (StateDir/tls/cert.pem); empty for InProcess.
	StateDir string
	// CertPEM is the server's self-signed certificate.
	CertPEM []byte
	// CertSHA256 is the lowercase hex SHA-256 of the certificate's DER bytes.
	CertSHA256 string

	scripts string
	env     []string

	mem     *demo.Server // InProcess only
	memLogs *tailBuffer

	mu      sync.Mutex
	stopped bool
	conns   map[string]*imapclient.Client // cached logged-in seeding sessions
}

// Start starts a fresh Dovecot fixture for one test and stops it (deleting
// its state) in t.Cleanup. It skips the test when the machine cannot run the
// fixture (see the package doc) and fails it when the fixture does not come
// up.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	return startKindScripted(t, Dovecot, opts)
}

func startKindScripted(t testing.TB, kind Kind, opts *Options) *Server {
	t.Helper()
	srv, err := startScripted(kind, opts)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			srv.logTail(t)
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("oldtest: stop: %v", err)
		}
	})
	return srv
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) && os.Getenv(RequireEnv) != "1" {
		t.Skipf("%v (set %s=1 to fail instead of skipping)", err, RequireEnv)
	}
	t.Fatalf("%v", err)
}

func normalize(opts *Options) (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch o.Separator {
	case 0:
		o.Separator = '/'
	case '/', '.':
	default:
		return o, fmt.Errorf("oldtest: separator %q: want '/' or '.'", o.Separator)
	}
	if o.MaxUserIPConnections <= 0 {
		o.MaxUserIPConnections = 200
	}
	src := o.Users
	if src == nil {
		src = DefaultUsers()
	}
	o.Users = make(map[string]string, len(src)+1)
	for u, p := range src {
		u = fullAddress(u)
		if !strings.HasSuffix(u, "@"+Domain) {
			return o, fmt.Errorf("oldtest: user %q is not in %s", u, Domain)
		}
		if strings.Trim(strings.TrimSuffix(u, "@"+Domain), "abcdefghijklmnopqrstuvwxyz0123456789._+-") != "" ||
			strings.HasPrefix(u, "@") || strings.Contains(u, "..") {
			return o, fmt.Errorf("oldtest: user %q: only a-z 0-9 . _ + - are supported in the local part", u)
		}
		if p == "" || strings.ContainsAny(p, "\r\n:") {
			return o, fmt.Errorf("oldtest: user %q: password must be non-empty without ':' or line breaks", u)
		}
		o.Users[u] = p
	}
	if o.WithSMTP {
		if _, ok := o.Users["catchall@"+Domain]; !ok {
			o.Users["catchall@"+Domain] = "CatchallSecret1"
		}
	}
	if o.MasterUser == "" {
		o.MasterUser = DefaultMasterUser
	}
	if o.MasterPassword == "" {
		o.MasterPassword = DefaultMasterPassword
	}
	if strings.ContainsAny(o.MasterUser, "@*:\r\n ") || strings.ContainsAny(o.MasterPassword, ":\r\n") {
		return o, errors.New("oldtest: master user may not contain @ * : or spaces, nor its password ':'")
	}
	switch o.Fsync {
	case "":
		o.Fsync = "never"
	case "never", "optimized", "always":
	default:
		return o, fmt.Errorf("oldtest: fsync %q: want optimized, always or never", o.Fsync)
	}
	return o, nil
}

// StartProcess starts a Dovecot fixture without a testing.TB (benchmarks
// harnesses, TestMain, tools). The caller must call Stop. Errors wrapping
// ErrUnavailable mean the machine cannot run it.
func StartProcess(opts *Options) (*Server, error) {
	return startScripted(Dovecot, opts)
}

// startScripted starts a Dovecot or Cyrus fixture with start.sh.
func startScripted(kind Kind, opts *Options) (*Server, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: must run as root (%s and Postfix are started as root and drop privileges)", ErrUnavailable, kind)
	}
	if o.InboxNamespace && (kind != Cyrus || o.Separator != '.') {
		return nil, fmt.Errorf("oldtest: InboxNamespace is for the Cyrus fixture with separator '.'")
	}
	bins := []string{"bash", "dovecot", "doveadm", "openssl"}
	if kind == Cyrus {
		if err := cyrusAvailable(); err != nil {
			return nil, err
		}
		bins = []string{"bash", "openssl", "saslpasswd2"}
	}
	if o.WithSMTP {
		bins = append(bins, "postfix", "postconf")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%w: %s not found (apt-get install dovecot-imapd dovecot-lmtpd postfix openssl)", ErrUnavailable, b)
		}
	}
	if o.WithSMTP {
		if _, err := os.Stat("/usr/lib/postfix/sbin/master"); err != nil {
			return nil, fmt.Errorf("%w: /usr/lib/postfix/sbin/master not found (apt-get install postfix)", ErrUnavailable)
		}
	}
	scripts, err := scriptsDir()
	if err != nil {
		return nil, err
	}

	// Short path (unix sockets < 108 bytes) that the vmail, dovecot and
	// postfix users can traverse.
	state, err := os.MkdirTemp("/tmp", "mfo-")
	if err != nil {
		return nil, fmt.Errorf("oldtest: %w", err)
	}
	if err := os.Chmod(state, 0o755); err != nil {
		os.RemoveAll(state)
		return nil, fmt.Errorf("oldtest: %w", err)
	}
	srv := &Server{
		Kind:           kind,
		Separator:      o.Separator,
		Prefix:         map[bool]string{true: "INBOX."}[o.InboxNamespace],
		Users:          o.Users,
		MasterUser:     o.MasterUser,
		MasterPassword: o.MasterPassword,
		StateDir:       state,
		scripts:        scripts,
		conns:          make(map[string]*imapclient.Client),
	}
	if err := srv.writeInputs(o); err != nil {
		os.RemoveAll(state)
		return nil, err
	}

	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		n := 3
		if o.WithSMTP {
			n = 5
		}
		ports, err := pickPorts(n)
		if err != nil {
			lastErr = err
			continue
		}
		srv.IMAPAddr = hostPort(ports[0])
		srv.IMAPSAddr = hostPort(ports[1])
		srv.SMTPAddr, srv.SMTPSAddr = "", ""
		srv.env = []string{
			"IMAP_PORT=" + strconv.Itoa(ports[0]),
			"IMAPS_PORT=" + strconv.Itoa(ports[1]),
			"USERS_FILE=" + filepath.Join(state, "input", "users.txt"),
			"MASTER_USERS_FILE=" + filepath.Join(state, "input", "master-users.txt"),
			"DOVECOT_SEP=" + string(o.Separator),
			"MAIL_FSYNC=" + o.Fsync,
			"MAX_USERIP=" + strconv.Itoa(o.MaxUserIPConnections),
			"WATCH_PID=" + strconv.Itoa(os.Getpid()),
			"WATCH_PURGE=1",
			"IMAP_SERVER=" + string(kind),
			"CYRUS_ROOT=" + cyrusRoot(),
			"CYRUS_ALTNAMESPACE=" + map[bool]string{true: "no", false: "yes"}[o.InboxNamespace],
		}
		srv.POP3Addr = ""
		if kind == Dovecot && pop3Installed() { // Cyrus runs without Dovecot
			srv.POP3Addr = hostPort(ports[n-1])
			srv.env = append(srv.env, "POP3_PORT="+strconv.Itoa(ports[n-1]))
		}
		if o.WithSMTP {
			srv.SMTPAddr = hostPort(ports[2])
			srv.SMTPSAddr = hostPort(ports[3])
			srv.env = append(srv.env, "SMTP_PORT="+strconv.Itoa(ports[2]), "SMTPS_PORT="+strconv.Itoa(ports[3]))
		}
		if lastErr = srv.runStart(); lastErr == nil {
			break
		}
		// maybe a port was taken between freePorts and the bind: stop what
		// did start and try other ports
		_ = srv.runScript(30*time.Second, "stop.sh", state)
	}
	if lastErr != nil {
		_ = srv.runScript(30*time.Second, "stop.sh", "--purge", state)
		os.RemoveAll(state)
		return nil, lastErr
	}
	if err := srv.readCert(); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

// pop3Installed reports whether Dovecot's POP3 (Debian dovecot-pop3d) is.
func pop3Installed() bool {
	_, err := os.Stat("/usr/lib/dovecot/pop3")
	return err == nil
}

// RequirePOP3 skips the test when the fixture has no POP3 (dovecot-pop3d
// missing), or fails it when MAILFERRY_REQUIRE_OLDSERVER=1.
func (s *Server) RequirePOP3(t testing.TB) {
	t.Helper()
	if s.POP3Addr != "" {
		return
	}
	if s.Kind == Dovecot && os.Getenv(RequireEnv) == "1" {
		t.Fatal("oldtest: Dovecot's POP3 is missing (apt-get install dovecot-pop3d)")
	}
	t.Skipf("oldtest: this old server has no POP3 (%v; Dovecot needs dovecot-pop3d)", s.Kind)
}

func (s *Server) writeInputs(o Options) error {
	dir := filepath.Join(s.StateDir, "input")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("oldtest: %w", err)
	}
	var users bytes.Buffer
	names := make([]string, 0, len(o.Users))
	for u := range o.Users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		fmt.Fprintf(&users, "%s:%s\n", u, o.Users[u])
	}
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), users.Bytes(), 0o600); err != nil {
		return fmt.Errorf("oldtest: %w", err)
	}
	master := fmt.Sprintf("%s:%s\n", o.MasterUser, o.MasterPassword)
	if err := os.WriteFile(filepath.Join(dir, "master-users.txt"), []byte(master), 0o600); err != nil {
		return fmt.Errorf("oldtest: %w", err)
	}
	return nil
}

func (s *Server) runStart() error {
	return s.runScript(90*time.Second, "start.sh", s.StateDir)
}

func (s *Server) readCert() error {
	b, err := os.ReadFile(filepath.Join(s.StateDir, "tls", "cert.pem"))
	if err != nil {
		return fmt.Errorf("oldtest: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return errors.New("oldtest: tls/cert.pem holds no PEM block")
	}
	sum := sha256.Sum256(blk.Bytes)
	s.CertPEM = b
	s.CertSHA256 = hex.EncodeToString(sum[:])
	return nil
}

// Stop stops the daemons and deletes the state directory. It is safe to call
// more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.closeConnsLocked()
	if s.mem != nil {
		return s.mem.Close()
	}
	err := s.runScript(60*time.Second, "stop.sh", "--purge", s.StateDir)
	if rmErr := os.RemoveAll(s.StateDir); err == nil && rmErr != nil {
		err = fmt.Errorf("oldtest: %w", rmErr)
	}
	return err
}

// Restart stops the daemons and starts them again on the same ports with
// the same mail (e.g. to test a client's reconnect). Connections are cut.
// Dovecot and Cyrus only.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("oldtest: restart of a stopped server")
	}
	if s.Kind == InProcess {
		return fmt.Errorf("%w: Restart", errNeedDovecot)
	}
	s.closeConnsLocked()
	if err := s.runScript(60*time.Second, "stop.sh", s.StateDir); err != nil {
		return err
	}
	return s.runStart()
}

// CloseSessions logs out the sessions the fixture keeps open for seeding
// and reading (Append, Messages...), so that a test of a connection limit
// starts with none; the next such call opens one again.
func (s *Server) CloseSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConnsLocked()
}

func (s *Server) closeConnsLocked() {
	for u, c := range s.conns {
		c.Close()
		delete(s.conns, u)
	}
}

// logTail writes the end of the daemons' logs to t, for failed tests.
func (s *Server) logTail(t testing.TB) {
	if s.memLogs != nil {
		t.Logf("oldtest: last lines of the in-process server's log:\n%s", s.memLogs.lastLines(30))
		return
	}
	for _, name := range []string{"dovecot.log", "cyrus-stderr.log", "postfix.log"} {
		b, err := os.ReadFile(filepath.Join(s.StateDir, "log", name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		t.Logf("oldtest: last lines of %s:\n%s", name, strings.Join(lines, "\n"))
	}
}
