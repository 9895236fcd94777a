package core

// The assistant's API: what the desktop assistant (package ui) asks of a
// Core beyond the services themselves. Everything here is protocol work done
// off the UI goroutine by the caller; nothing here knows about Fyne.
//
// The test migration (issue 6) runs, in order: ProbeOldServer (without,
// then with the test account), PrepareTestDomain, SendSamples, WaitForSamples,
// EnableMigration, MigrateTestAccount and CheckTestAccount. The last two
// talk to Mailferry's own IMAP front end with go-imap's client, exactly as
// a user's mail client would (RFC 9051 LOGIN after STARTTLS, RFC 3207-style
// upgrade with Mailferry's own certificate pinned).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets (RFC 2047, Content-Type charset) in the viewer
	"github.com/emersion/go-message/mail"

	"mailferry/core/demo"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/relay"
	"mailferry/core/store"
)

// ErrTestAccountExists is returned by PrepareTestDomain when the test
// account already exists on Mailferry (from an earlier test run): a test
// migration needs a fresh account. RemoveTestAccount deletes it.
var ErrTestAccountExists = errors.New("the test account already exists on Mailferry")

// StartDemo starts the embedded demo old server (core/demo) on loopback with
// its seed mail. The caller owns it and must Close it.
func (c *Core) StartDemo(ctx context.Context) (*demo.Server, error) {
	return demo.Start(ctx, &demo.Options{Seed: true, Logger: c.log.With("service", "demo")})
}

// SampleLanguages lists the languages the native-language samples come in.
func SampleLanguages() []demo.Language { return demo.Languages() }

// CheckDomainName returns the canonical form of a mail domain typed by an
// admin, or an error saying what is wrong with it.
func CheckDomainName(name string) (string, error) {
	return store.NormalizeDomain(strings.TrimSpace(name))
}

// ProbeOldServer connects to the old server and reports in plain words what
// it offers (oldserver.Probe). With user and password it also logs in.
func (c *Core) ProbeOldServer(ctx context.Context, s oldserver.Settings, user, password string) (*oldserver.ProbeResult, error) {
	return oldserver.Probe(ctx, s, user, password)
}

// PrepareTestDomain makes sure domain exists on Mailferry with s recorded as
// its old server, migration still off, and that address (of domain) has no
// account yet. It changes nothing when address is not in domain, s is
// invalid, or the account exists (ErrTestAccountExists).
func (c *Core) PrepareTestDomain(ctx context.Context, domain, address string, s oldserver.Settings) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	_, d, err := store.SplitAddress(address)
	if err != nil {
		return err
	}
	if !strings.EqualFold(d, domain) {
		return fmt.Errorf("the test account %s is not in the test domain %s", address, domain)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := c.store.Account(ctx, address); err == nil {
		return fmt.Errorf("%w: %s", ErrTestAccountExists, address)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	migrating := false
	if d, err := c.store.Domain(ctx, domain); err == nil {
		migrating = d.Migrating // a domain already migrating stays so
	}
	return c.setDomain(ctx, domain, &s, migrating)
}

// RemoveTestAccount deletes the account address from Mailferry (not from the
// old server), so a test migration can run again.
func (c *Core) RemoveTestAccount(ctx context.Context, address string) error {
	return c.store.DeleteAccount(ctx, address)
}

// setDomain creates domain if needed and records its old server (s, or the
// settings already recorded when s is nil) and migration switch, as
// migrate.SetDomain does; invalid settings change nothing.
func (c *Core) setDomain(ctx context.Context, domain string, s *oldserver.Settings, migrating bool) error {
	return c.mig.SetDomain(ctx, domain, s, migrating)
}

// EnableMigration turns automatic migration from the old server s on for
// domain, creating the domain if needed. Invalid settings change nothing.
func (c *Core) EnableMigration(ctx context.Context, domain string, s oldserver.Settings) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	return c.setDomain(ctx, domain, &s, true)
}

// DisableMigration turns automatic migration off for domain, keeping its
// old-server settings. See Readiness for what to check first.
func (c *Core) DisableMigration(ctx context.Context, domain string) error {
	return c.setDomain(ctx, domain, nil, false)
}

// AddDomain creates a domain without migration.
func (c *Core) AddDomain(ctx context.Context, domain string) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	_, err = c.store.CreateDomain(ctx, domain)
	return err
}

// OldServerOf returns the old-server settings recorded for domain, or nil.
func (c *Core) OldServerOf(ctx context.Context, domain string) (*oldserver.Settings, error) {
	d, err := c.store.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return parseOldServer(d.OldServer)
}

func parseOldServer(js string) (*oldserver.Settings, error) {
	if js == "" {
		return nil, nil
	}
	var s oldserver.Settings
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return nil, fmt.Errorf("old server settings: %w", err)
	}
	return &s, nil
}

// SampleCopy is where a sample message landed on a server, and what that
// server served for it.
type SampleCopy struct {
	// Name is the demo.Sample name ("plain", "html", "lang-de", ...).
	Name         string
	UID          uint32
	UIDValidity  uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
	// SHA256 is the hex digest of the exact bytes served (BODY.PEEK[]).
	SHA256 string
	// Raw is the message as served.
	Raw []byte
}

// SendSamples builds the sample messages (one plain, one HTML, one per
// language code) from and to address and sends them through the old
// server's SMTP without authentication (RFC 5321), one transaction each.
// It returns the samples sent; on error, the ones sent before it.
func (c *Core) SendSamples(ctx context.Context, s oldserver.Settings, address string, languages []string) ([]demo.Sample, error) {
	samples := demo.Samples(address, address, languages, time.Now())
	cl, err := oldserver.DialSMTP(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	var sent []demo.Sample
	for _, sm := range samples {
		if err := cl.SendMail(address, []string{address}, bytes.NewReader(sm.Raw)); err != nil {
			if ctx.Err() != nil {
				return sent, ctx.Err()
			}
			return sent, fmt.Errorf("sending the %s sample through the old server's SMTP: %w", sm.Name, err)
		}
		sent = append(sent, sm)
	}
	_ = cl.Quit()
	return sent, nil
}

// WaitForSamples logs in to the old server's IMAP as address and polls its
// INBOX (read-only, EXAMINE) until every sample is there, found by its
// Message-ID; progress (if not nil) is called with the count found. It
// returns what the old server serves for each sample, in the order of
// samples. ctx bounds the wait.
func (c *Core) WaitForSamples(ctx context.Context, s oldserver.Settings, address, password string, samples []demo.Sample, progress func(found, total int)) ([]SampleCopy, error) {
	cl, done, err := loginOld(ctx, s, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	found := make([]*SampleCopy, len(samples))
	n := 0
	for {
		sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, ctxErr(ctx, fmt.Errorf("old server: EXAMINE INBOX: %w", err))
		}
		for i, sm := range samples {
			if found[i] != nil {
				continue
			}
			cp, err := fetchSample(cl, sm)
			if err != nil {
				return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
			}
			if cp != nil {
				cp.UIDValidity = sel.UIDValidity
				found[i] = cp
				n++
			}
		}
		if progress != nil {
			progress(n, len(samples))
		}
		if n == len(samples) {
			break
		}
		if err := cl.Unselect().Wait(); err != nil {
			return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d samples arrived on the old server: %w", n, len(samples), ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	_ = cl.Logout().Wait()
	out := make([]SampleCopy, len(found))
	for i, f := range found {
		out[i] = *f
	}
	return out, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// fetchSample finds sm in the selected mailbox by Message-ID and fetches it;
// nil when it is not there. More than one copy is an error.
func fetchSample(cl *imapclient.Client, sm demo.Sample) (*SampleCopy, error) {
	data, err := cl.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: sm.MessageID}},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("UID SEARCH for the %s sample: %w", sm.Name, err)
	}
	uids := data.AllUIDs()
	switch len(uids) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("the %s sample is there %d times", sm.Name, len(uids))
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := cl.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH of the %s sample: %w", sm.Name, err)
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("UID FETCH of the %s sample returned %d messages", sm.Name, len(msgs))
	}
	m := msgs[0]
	raw := m.FindBodySection(body)
	sum := sha256.Sum256(raw)
	flags := oldserver.MessageFlags(m.Flags)
	sort.Strings(flags)
	return &SampleCopy{
		Name: sm.Name, UID: uint32(m.UID), Flags: flags, InternalDate: m.InternalDate,
		Size: m.RFC822Size, SHA256: hex.EncodeToString(sum[:]), Raw: raw,
	}, nil
}

// dialFront connects to Mailferry's own IMAP front end like a mail client:
// STARTTLS with Mailferry's certificate pinned, then LOGIN. The connection
// closes when ctx ends or done is called.
func (c *Core) dialFront(ctx context.Context, address, password string) (cl *imapclient.Client, done func(), err error) {
	addr := c.Addr("imap")
	if addr == "" {
		return nil, nil, errors.New("Mailferry's IMAP front end is not listening (see the error shown at start)")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to Mailferry's IMAP at %s: %w", addr, err)
	}
	// The greeting and STARTTLS are bounded by a deadline and by ctx.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	stopSetup := context.AfterFunc(ctx, func() { conn.Close() })
	if tc := c.clientTLS(addr); tc != nil {
		cl, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: tc})
	} else {
		cl = imapclient.New(conn, nil)
		err = cl.WaitGreeting()
	}
	stopSetup()
	if err != nil {
		conn.Close()
		return nil, nil, ctxErr(ctx, fmt.Errorf("connecting to Mailferry's IMAP at %s: %w", addr, err))
	}
	conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	done = func() { stop(); cl.Close() }
	if err := cl.Login(address, password).Wait(); err != nil {
		done()
		return nil, nil, ctxErr(ctx, fmt.Errorf("logging in to Mailferry's IMAP as %s: %w", address, err))
	}
	return cl, done, nil
}

// clientTLS returns a client TLS config that trusts exactly Mailferry's own
// certificate, or nil when Mailferry has none.
func (c *Core) clientTLS(addr string) *tls.Config {
	want := c.certDER()
	if want == nil {
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	return &tls.Config{
		ServerName: host,
		MinVersion: tls.VersionTLS12,
		// Standard verification would need the self-signed certificate in
		// a root pool and matching names; pinning the exact certificate is
		// stricter and is done in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("Mailferry's IMAP presented a certificate other than its own")
			}
			return nil
		},
	}
}

// CertFingerprint returns the SHA-256 fingerprint (colon hex) of the
// certificate Mailferry's IMAP and SMTP listeners present, or "".
func (c *Core) CertFingerprint() string {
	der := c.certDER()
	if der == nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return oldserver.FormatFingerprint(sum[:])
}

// certDER returns the DER bytes of the certificate Mailferry's listeners
// present, or nil when it has none.
func (c *Core) certDER() []byte {
	if c.tls == nil || len(c.tls.Certificates) == 0 || len(c.tls.Certificates[0].Certificate) == 0 {
		return nil
	}
	return c.tls.Certificates[0].Certificate[0]
}

// TestProgress is the progress of a test account's migration as a mail
// client sees it on Mailferry's IMAP, against the old server's counts.
type TestProgress struct {
	// State is the account's migration state (store.MigPending, ...), or ""
	// before the account exists.
	State         string
	FoldersTotal  int // folders on the old server
	FoldersSeen   int // of those, how many Mailferry's IMAP lists
	FoldersDone   int // of those, how many have all their messages
	MessagesTotal int64
	Messages      int64
	// Folder is a folder still being copied, if any.
	Folder string
	// Folders are the old account's folders with how many of their
	// messages Mailferry's IMAP shows.
	Folders []FolderProgress
	// Error is the migration's error, if it failed.
	Error   string
	Elapsed time.Duration
}

// Done reports whether every folder has all its messages and the engine
// reports the account done.
func (p TestProgress) Done() bool {
	return p.State == store.MigDone && p.FoldersDone == p.FoldersTotal
}

// String is the progress in plain words.
func (p TestProgress) String() string {
	if p.State == "" {
		return "Logging in to Mailferry…"
	}
	s := fmt.Sprintf("Folders %d of %d, messages %d of %d", p.FoldersDone, p.FoldersTotal, p.Messages, p.MessagesTotal)
	if p.Folder != "" && !p.Done() {
		s += " — copying " + p.Folder
	}
	if p.Elapsed > time.Second && p.Messages > 0 {
		s += fmt.Sprintf(" (%.0f messages/s)", float64(p.Messages)/p.Elapsed.Seconds())
	}
	return s
}

// FolderProgress is one folder of a TestProgress.
type FolderProgress struct {
	Name string
	// Seen reports whether Mailferry's IMAP lists the folder yet.
	Seen            bool
	Messages, Total int64
}

// loginOld connects and logs in to the old server's IMAP; the connection
// closes when ctx ends or done is called.
func loginOld(ctx context.Context, s oldserver.Settings, address, password string) (cl *imapclient.Client, done func(), err error) {
	cl, err = oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	done = func() { stop(); cl.Close() }
	if _, err := oldserver.Login(ctx, cl, s, address, password); err != nil {
		done()
		return nil, nil, err
	}
	return cl, done, nil
}

type folderCount struct {
	name     string
	messages int64
}

// oldFolders lists the old account's selectable folders with their message
// counts (STATUS MESSAGES), mapped to Mailferry's names: a personal
// namespace prefix such as "INBOX." is dropped as the migration engine does.
func oldFolders(ctx context.Context, s oldserver.Settings, address, password string) ([]folderCount, error) {
	cl, done, err := loginOld(ctx, s, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	list, err := cl.List("", "*", nil).Collect()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("old server: LIST: %w", err))
	}
	prefix := ""
	if ns, err := cl.Namespace().Wait(); err == nil && ns != nil && len(ns.Personal) > 0 {
		if p := ns.Personal[0].Prefix; strings.EqualFold(p, "INBOX"+string(ns.Personal[0].Delim)) {
			prefix = p
		}
	}
	out, err := statusCounts(cl, list, prefix)
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
	}
	_ = cl.Logout().Wait()
	return out, nil
}

// statusCounts returns the selectable mailboxes of list with their message
// counts (STATUS MESSAGES), named without prefix (matched
// case-insensitively) and with INBOX spelled "INBOX".
func statusCounts(cl *imapclient.Client, list []*imap.ListData, prefix string) ([]folderCount, error) {
	var out []folderCount
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		st, err := cl.Status(l.Mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("STATUS %s: %w", l.Mailbox, err)
		}
		name := l.Mailbox
		if prefix != "" && len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			name = name[len(prefix):]
		}
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		var n int64
		if st.NumMessages != nil {
			n = int64(*st.NumMessages)
		}
		out = append(out, folderCount{name, n})
	}
	return out, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// frontFolders lists the account's folders on Mailferry's IMAP with their
// message counts.
func frontFolders(cl *imapclient.Client) (map[string]int64, error) {
	list, err := cl.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("Mailferry IMAP: LIST: %w", err)
	}
	counts, err := statusCounts(cl, list, "")
	if err != nil {
		return nil, fmt.Errorf("Mailferry IMAP: %w", err)
	}
	out := map[string]int64{}
	for _, f := range counts {
		out[f.name] = f.messages
	}
	return out, nil
}

// MigrateTestAccount logs in to Mailferry's IMAP front end as address, as a
// mail client would: for a migrating domain this first login checks the
// password at the old server, creates the account and starts copying. It
// then watches, through the same IMAP session, until every folder of the old
// account has all its messages on Mailferry and the engine reports the
// account done, calling progress (if not nil) about three times a second.
// The domain's migration must be on (EnableMigration).
func (c *Core) MigrateTestAccount(ctx context.Context, s oldserver.Settings, address, password string, progress func(TestProgress)) (TestProgress, error) {
	var p TestProgress
	report := func() {
		if progress != nil {
			progress(p)
		}
	}
	report()
	start := time.Now()
	old, err := oldFolders(ctx, s, address, password)
	if err != nil {
		return p, fmt.Errorf("reading the folders on the old server: %w", err)
	}
	p.FoldersTotal = len(old)
	for _, f := range old {
		p.MessagesTotal += f.messages
	}
	cl, done, err := c.dialFront(ctx, address, password)
	if err != nil {
		return p, err
	}
	defer done()
	for {
		p.Elapsed = time.Since(start)
		acct, err := c.store.Account(ctx, address)
		if err != nil {
			return p, fmt.Errorf("account %s: %w", address, err)
		}
		p.State, p.Error = acct.Migration, acct.MigrationError
		if p.State == "" {
			p.State = store.MigDone // an account that never needed migrating
		}
		have, err := frontFolders(cl)
		if err != nil {
			return p, ctxErr(ctx, err)
		}
		p.FoldersSeen, p.FoldersDone, p.Messages, p.Folder = 0, 0, 0, ""
		p.Folders = p.Folders[:0:0]
		for _, f := range old {
			n, ok := have[f.name]
			n = min(n, f.messages)
			p.Folders = append(p.Folders, FolderProgress{Name: f.name, Seen: ok, Messages: n, Total: f.messages})
			if ok {
				p.FoldersSeen++
			}
			p.Messages += n
			if ok && n >= f.messages {
				p.FoldersDone++
			} else if p.Folder == "" {
				p.Folder = f.name
			}
		}
		report()
		if p.State == store.MigFailed {
			return p, fmt.Errorf("the migration of %s failed: %s", address, p.Error)
		}
		if p.Done() {
			_ = cl.Logout().Wait()
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Check is one automated check of the test migration.
type Check struct {
	// Sample is the sample's name, or "" for an account-wide check.
	Sample string
	Name   string
	OK     bool
	// Detail says what was compared, or what differs.
	Detail string
}

// ViewMessage is a message decoded for the built-in viewer.
type ViewMessage struct {
	Subject, From, To string
	Date              time.Time
	// Text is the text/plain part (CRLF turned into LF); HTML the text/html
	// part, if any.
	Text, HTML string
	// Attachments names the other parts.
	Attachments []string
}

// ClientSettings are what an admin types into any IMAP client to look at
// the migrated test account on Mailferry.
type ClientSettings struct {
	Host     string
	Port     int
	Security string // "STARTTLS" or "none"
	// TLSPort is the implicit-TLS (IMAPS) port, 0 if off.
	TLSPort int
	User    string
	// Fingerprint is Mailferry's certificate fingerprint, for clients that
	// ask whether to trust a self-signed certificate.
	Fingerprint string
}

// TestReport is the result of CheckTestAccount.
type TestReport struct {
	Address string
	Time    time.Time
	Checks  []Check
	// Samples are the samples as Mailferry's IMAP served them, decoded, in
	// the order of the samples checked; a missing one has a zero value.
	Samples []SampleView
	Client  ClientSettings
}

// SampleView is one sample for the viewer.
type SampleView struct {
	Name    string
	Found   bool
	Message ViewMessage
	Raw     []byte
}

// OK reports whether every check passed.
func (r *TestReport) OK() bool {
	return len(r.Checks) > 0 && r.Failed() == 0
}

// Failed counts the checks that failed.
func (r *TestReport) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Text is the report as plain text, to save or send.
func (r *TestReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Mailferry test migration report\n")
	fmt.Fprintf(&b, "Account: %s\nChecked: %s\n", r.Address, r.Time.Format(time.RFC1123Z))
	if r.OK() {
		fmt.Fprintf(&b, "Result: all %d checks passed\n\n", len(r.Checks))
	} else {
		fmt.Fprintf(&b, "Result: %d of %d checks FAILED\n\n", r.Failed(), len(r.Checks))
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		name := c.Name
		if c.Sample != "" {
			name = c.Sample + ": " + name
		}
		fmt.Fprintf(&b, "[%s] %s — %s\n", mark, name, c.Detail)
	}
	cs := r.Client
	fmt.Fprintf(&b, "\nLook at the account in any IMAP client:\n  Server: %s\n  Port: %d (%s)\n", cs.Host, cs.Port, cs.Security)
	if cs.TLSPort != 0 {
		fmt.Fprintf(&b, "  or port %d (SSL/TLS)\n", cs.TLSPort)
	}
	fmt.Fprintf(&b, "  User name: %s\n  Password: the account's password on the old server\n", cs.User)
	if cs.Fingerprint != "" {
		fmt.Fprintf(&b, "  Certificate SHA-256: %s\n", cs.Fingerprint)
	}
	return b.String()
}

// ClientSettingsFor returns the IMAP client settings for address.
func (c *Core) ClientSettingsFor(address string) ClientSettings {
	cs := ClientSettings{User: address, Security: "none", Fingerprint: c.CertFingerprint()}
	if h, p, err := net.SplitHostPort(c.Addr("imap")); err == nil {
		cs.Host = h
		cs.Port, _ = strconv.Atoi(p)
		if c.tls != nil {
			cs.Security = "STARTTLS"
		}
	}
	if _, p, err := net.SplitHostPort(c.Addr("imaps")); err == nil {
		cs.TLSPort, _ = strconv.Atoi(p)
	}
	return cs
}

// CheckTestAccount logs in to Mailferry's IMAP as address and checks every
// sample against what the old server served (old): present exactly once,
// same UID, the same bytes (size and SHA-256), flags and INTERNALDATE
// (instant and zone), and its Subject and body decoding to the text that
// was sent. It also compares every folder's message count with the old
// server (s). progress (if not nil) gets the number of samples checked.
func (c *Core) CheckTestAccount(ctx context.Context, s oldserver.Settings, address, password string, samples []demo.Sample, old []SampleCopy, progress func(done, total int)) (*TestReport, error) {
	if len(old) != len(samples) {
		return nil, fmt.Errorf("%d samples but %d old copies", len(samples), len(old))
	}
	r := &TestReport{Address: address, Time: time.Now(), Client: c.ClientSettingsFor(address)}
	cl, done, err := c.dialFront(ctx, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("Mailferry IMAP: EXAMINE INBOX: %w", err))
	}
	add := func(sample, name string, ok bool, format string, args ...any) {
		r.Checks = append(r.Checks, Check{Sample: sample, Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	for i, sm := range samples {
		o := old[i]
		cp, err := fetchSample(cl, sm)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			add(sm.Name, "present", false, "%v", err)
			r.Samples = append(r.Samples, SampleView{Name: sm.Name})
			continue
		}
		if cp == nil {
			add(sm.Name, "present", false, "not found in INBOX on Mailferry (Message-ID <%s>)", sm.MessageID)
			r.Samples = append(r.Samples, SampleView{Name: sm.Name})
			continue
		}
		add(sm.Name, "present", true, "found once in INBOX, UID %d", cp.UID)
		add(sm.Name, "same UID", cp.UID == o.UID && sel.UIDValidity == o.UIDValidity,
			"old UID %d (UIDVALIDITY %d), Mailferry UID %d (UIDVALIDITY %d)", o.UID, o.UIDValidity, cp.UID, sel.UIDValidity)
		add(sm.Name, "identical bytes", cp.Size == o.Size && cp.SHA256 == o.SHA256 && int64(len(cp.Raw)) == o.Size,
			"old %d bytes sha256 %s…, Mailferry %d bytes sha256 %s…", o.Size, short(o.SHA256), cp.Size, short(cp.SHA256))
		add(sm.Name, "same flags", strings.Join(cp.Flags, " ") == strings.Join(o.Flags, " "),
			"old [%s], Mailferry [%s]", strings.Join(o.Flags, " "), strings.Join(cp.Flags, " "))
		_, oz := o.InternalDate.Zone()
		_, nz := cp.InternalDate.Zone()
		add(sm.Name, "same date", o.InternalDate.Equal(cp.InternalDate) && oz == nz,
			"old %s, Mailferry %s", o.InternalDate.Format(time.RFC1123Z), cp.InternalDate.Format(time.RFC1123Z))
		v, perr := ParseMessage(cp.Raw)
		if perr != nil {
			add(sm.Name, "decodes", false, "%v", perr)
		} else {
			add(sm.Name, "subject decodes", v.Subject == sm.Subject, "%q", v.Subject)
			want := strings.ReplaceAll(sm.Text, "\r\n", "\n")
			add(sm.Name, "text decodes", v.Text == want, "%d characters%s", len([]rune(v.Text)), diffNote(v.Text, want))
			if sm.HTML != "" {
				wantH := strings.ReplaceAll(sm.HTML, "\r\n", "\n")
				add(sm.Name, "HTML decodes", v.HTML == wantH, "%d characters%s", len([]rune(v.HTML)), diffNote(v.HTML, wantH))
			}
		}
		r.Samples = append(r.Samples, SampleView{Name: sm.Name, Found: true, Message: v, Raw: cp.Raw})
		if progress != nil {
			progress(i+1, len(samples))
		}
	}
	// Account-wide: every folder has as many messages as on the old server.
	of, err := oldFolders(ctx, s, address, password)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		add("", "folders", false, "could not read the old server's folders: %v", err)
	} else {
		have, err := frontFolders(cl)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		var bad []string
		var total int64
		for _, f := range of {
			total += f.messages
			if n, ok := have[f.name]; !ok {
				bad = append(bad, f.name+" missing")
			} else if n != f.messages {
				bad = append(bad, fmt.Sprintf("%s has %d of %d", f.name, n, f.messages))
			}
		}
		if len(bad) == 0 {
			add("", "all folders", true, "%d folders, %d messages, as on the old server", len(of), total)
		} else {
			add("", "all folders", false, "%s", strings.Join(bad, "; "))
		}
	}
	_ = cl.Logout().Wait()
	return r, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func diffNote(got, want string) string {
	if got == want {
		return ", as sent"
	}
	g, w := []rune(got), []rune(want)
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	return fmt.Sprintf(", differs from what was sent at character %d", i)
}

// ParseMessage decodes a message for the viewer: the Subject, From, To and
// Date headers (RFC 5322, RFC 2047 encoded words) and the first text/plain
// and text/html parts, transfer-decoded (RFC 2045) and converted to UTF-8.
func ParseMessage(raw []byte) (ViewMessage, error) {
	var v ViewMessage
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if mr == nil {
		if err == nil {
			err = errors.New("no message")
		}
		return v, fmt.Errorf("the message cannot be parsed: %w", err)
	}
	defer mr.Close()
	h := mr.Header
	v.Subject, _ = h.Subject()
	if l, err := h.AddressList("From"); err == nil {
		v.From = addrList(l)
	} else {
		v.From = h.Get("From")
	}
	if l, err := h.AddressList("To"); err == nil {
		v.To = addrList(l)
	} else {
		v.To = h.Get("To")
	}
	v.Date, _ = h.Date()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return v, fmt.Errorf("the message cannot be decoded: %w", err)
		}
		if p == nil {
			break
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			b, rerr := io.ReadAll(p.Body)
			if rerr != nil {
				return v, fmt.Errorf("the message body cannot be decoded: %w", rerr)
			}
			text := strings.ReplaceAll(string(b), "\r\n", "\n")
			switch {
			case ct == "text/plain" && v.Text == "":
				v.Text = text
			case ct == "text/html" && v.HTML == "":
				v.HTML = text
			default:
				v.Attachments = append(v.Attachments, ct)
			}
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			if name == "" {
				name, _, _ = mime.ParseMediaType(ph.Get("Content-Type"))
			}
			v.Attachments = append(v.Attachments, name)
		}
	}
	return v, nil
}

func addrList(l []*mail.Address) string {
	var s []string
	for _, a := range l {
		if a.Name != "" {
			s = append(s, a.Name+" <"+a.Address+">")
		} else {
			s = append(s, a.Address)
		}
	}
	return strings.Join(s, ", ")
}

// ---- Domains and dashboard ----

// DomainStatus is one domain on the dashboard.
type DomainStatus struct {
	Name      string
	Migrating bool
	// OldServer is nil when no old server is recorded.
	OldServer *oldserver.Settings
	Accounts  int
	// Migrated counts accounts whose copy is done (or never needed one).
	Migrated int
}

// UserStatus is one account's migration on the dashboard.
type UserStatus struct {
	Address string
	Domain  string
	// State is the account's migration state ("" never migrated, pending,
	// running, done, failed).
	State string
	// Folders and Messages are what the account holds on Mailferry now;
	// Bytes their size.
	Folders  int
	Messages int64
	Bytes    int64
	// FoldersTotal, MessagesTotal and BytesTotal are the old account's
	// totals as the running (or last) copy found them; 0 when unknown.
	FoldersTotal  int
	MessagesTotal int64
	BytesTotal    int64
	// Folder is the folder being copied, if any.
	Folder string
	// Rate is messages per second since the migration started (0 when
	// unknown).
	Rate      float64
	Errors    int
	LastError string
	Updated   time.Time
}

// Dashboard is a snapshot of everything the dashboard shows.
type Dashboard struct {
	Time    time.Time
	Domains []DomainStatus
	Users   []UserStatus
	// Totals over Users.
	TotalMessages int64
	TotalBytes    int64
	Running       int
	Failed        int
	// Queue is the relay queue (mail waiting for an old server).
	Queue []*store.QueueItem
	// Relay counts the SMTP relay's work since start (zero before Start).
	Relay relay.Stats
	// Listen maps each service to its address ("" when not listening).
	Listen map[string]string
}

// Dashboard returns a snapshot for the dashboard. It reads only the store.
func (c *Core) Dashboard(ctx context.Context) (*Dashboard, error) {
	d := &Dashboard{Time: time.Now(), Listen: map[string]string{}}
	for _, svc := range []string{"imap", "imaps", "smtp", "submission", "submissions"} {
		d.Listen[svc] = c.Addr(svc)
	}
	domains, err := c.store.Domains(ctx)
	if err != nil {
		return nil, err
	}
	prog := map[int64]migrate.AccountProgress{}
	for _, p := range c.mig.Progress() {
		prog[p.AccountID] = p
	}
	// One query for what every account holds, not one per mailbox: the
	// dashboard asks every second.
	usage, err := c.store.Usages(ctx)
	if err != nil {
		return nil, err
	}
	for _, dom := range domains {
		ds := DomainStatus{Name: dom.Name, Migrating: dom.Migrating}
		ds.OldServer, _ = parseOldServer(dom.OldServer)
		accts, err := c.store.Accounts(ctx, dom.Name)
		if err != nil {
			return nil, err
		}
		for _, a := range accts {
			ds.Accounts++
			us := UserStatus{Address: a.Address, Domain: dom.Name, State: a.Migration, LastError: a.MigrationError, Updated: a.MigrationTime}
			if a.MigrationError != "" {
				us.Errors = 1
			}
			switch a.Migration {
			case store.MigDone, "":
				ds.Migrated++
			case store.MigRunning, store.MigPending:
				d.Running++
			case store.MigFailed:
				d.Failed++
			}
			u := usage[a.ID]
			us.Folders, us.Messages, us.Bytes = u.Folders, u.Messages, u.Bytes
			if a.Migration == store.MigRunning && !a.Created.IsZero() {
				if el := time.Since(a.Created).Seconds(); el > 0 {
					us.Rate = float64(us.Messages) / el
				}
			}
			if p, ok := prog[a.ID]; ok {
				us.FoldersTotal, us.MessagesTotal, us.BytesTotal = p.FoldersTotal, p.MessagesTotal, p.BytesTotal
				us.Folder = p.Folder
				if p.MessagesRate > 0 {
					us.Rate = p.MessagesRate
				}
				if len(p.Errors) > 0 {
					us.Errors = len(p.Errors)
					us.LastError = p.Errors[len(p.Errors)-1]
				}
				if !p.Updated.IsZero() {
					us.Updated = p.Updated
				}
			}
			d.TotalMessages += us.Messages
			d.TotalBytes += us.Bytes
			d.Users = append(d.Users, us)
		}
		d.Domains = append(d.Domains, ds)
	}
	d.Queue, err = c.store.Queue(ctx)
	if err != nil {
		return nil, err
	}
	if r := c.Relay(); r != nil {
		d.Relay = r.Stats()
	}
	return d, nil
}

// PreMigrate copies the given users of a migrating domain now, in bulk, so
// users who never log in still get their mail. A user with a password logs
// in to the old server with it; the others through the master user
// (Dovecot "user*master" or SASL PLAIN with an authorization identity, RFC
// 4616). progress (if not nil) gets the number of users finished. Failures
// of single users are in the results; the error is non-nil only for
// missing credentials, or when ctx ended or the engine stopped.
func (c *Core) PreMigrate(ctx context.Context, domain string, users []migrate.Credentials, masterUser, masterPassword string, progress func(done, total int)) ([]migrate.UserResult, error) {
	creds := make([]migrate.Credentials, len(users))
	for i, u := range users {
		creds[i] = u
		if u.Password == "" {
			if masterUser == "" || masterPassword == "" {
				return nil, fmt.Errorf("%s has no password: give the old server's master user and its password, or a password for each user (address,password)", u.Address)
			}
			creds[i].MasterUser, creds[i].MasterPassword = masterUser, masterPassword
		}
	}
	var mu sync.Mutex
	done := map[string]bool{} // addresses finished
	res, err := c.mig.MigrateUsers(ctx, domain, creds, func(ev migrate.Event) {
		if progress == nil || (ev.Account.State != store.MigDone && ev.Account.State != store.MigFailed) {
			return
		}
		addr := strings.ToLower(ev.Account.Address)
		mu.Lock()
		first := !done[addr]
		done[addr] = true
		n := len(done)
		mu.Unlock()
		if first {
			progress(n, len(users))
		}
	})
	if progress != nil {
		progress(len(users), len(users))
	}
	return res, err
}

// Readiness says whether a domain's migration can be turned off: when every
// user has moved and nothing is left in flight.
type Readiness struct {
	Domain string
	// NeverLoggedIn are expected users (from the list the admin gave) that
	// have no account on Mailferry yet.
	NeverLoggedIn []string
	// Running are accounts whose copy is pending or running; Failed those
	// whose copy failed.
	Running []string
	Failed  []string
	// Queued counts queued messages with a recipient in the domain (mail
	// still to be relayed to the old server).
	Queued int
}

// Ready reports whether nothing stands in the way.
func (r *Readiness) Ready() bool {
	return len(r.NeverLoggedIn) == 0 && len(r.Running) == 0 && len(r.Failed) == 0 && r.Queued == 0
}

// Text says in plain words what stands in the way.
func (r *Readiness) Text() string {
	if r.Ready() {
		return "Every known user has moved, no copy is running and no mail is waiting for the old server: migration can be turned off."
	}
	var b strings.Builder
	list := func(title string, l []string) {
		if len(l) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d): %s\n", title, len(l), strings.Join(l, ", "))
	}
	list("Users who never logged in to Mailferry", r.NeverLoggedIn)
	list("Migrations still running", r.Running)
	list("Migrations that failed", r.Failed)
	if r.Queued > 0 {
		fmt.Fprintf(&b, "Queued mail for this domain: %d message(s) still waiting to be relayed to the old server\n", r.Queued)
	}
	return strings.TrimSpace(b.String())
}

// Readiness checks domain before its migration is turned off. expected are
// the addresses the admin knows live on the old server (may be empty).
func (c *Core) Readiness(ctx context.Context, domain string, expected []string) (*Readiness, error) {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return nil, err
	}
	r := &Readiness{Domain: domain}
	accts, err := c.store.Accounts(ctx, domain)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, a := range accts {
		have[strings.ToLower(a.Address)] = true
		switch a.Migration {
		case store.MigPending, store.MigRunning:
			r.Running = append(r.Running, a.Address)
		case store.MigFailed:
			r.Failed = append(r.Failed, a.Address)
		}
	}
	seen := map[string]bool{}
	for _, e := range expected {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		if !have[e] {
			r.NeverLoggedIn = append(r.NeverLoggedIn, e)
		}
	}
	q, err := c.store.Queue(ctx)
	if err != nil {
		return nil, err
	}
	for _, it := range q {
		for _, rc := range it.Rcpts {
			if _, d, err := store.SplitAddress(rc); err == nil && strings.EqualFold(d, domain) {
				r.Queued++
				break
			}
		}
	}
	return r, nil
}

// ParseUserList reads the users an admin pastes: one a line, "address"
// or "address,password" (migrate.ReadUsersCSV; a local part without "@"
// is taken as one of domain). Every address must be of domain.
func ParseUserList(text, domain string) ([]migrate.Credentials, error) {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return nil, err
	}
	creds, err := migrate.ReadUsersCSV(strings.NewReader(text))
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "migrate: users file "))
	}
	var bad []string
	for i := range creds {
		a := strings.ToLower(creds[i].Address)
		if !strings.Contains(a, "@") {
			a += "@" + domain
		}
		if _, d, err := store.SplitAddress(a); err != nil || d != domain {
			bad = append(bad, creds[i].Address)
		}
		creds[i].Address = a
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not addresses of %s: %s", domain, strings.Join(bad, ", "))
	}
	return creds, nil
}

// Addresses returns the addresses of creds.
func Addresses(creds []migrate.Credentials) []string {
	out := make([]string, len(creds))
	for i, c := range creds {
		out[i] = c.Address
	}
	return out
}
