package core

// The pre-purchase test migration, as the assistant's wizard runs it:
// ProbeOldServer (without, then with the test account), PrepareTestDomain,
// SendSamples, WaitForSamples, EnableMigration, MigrateTestAccount and
// CheckTestAccount. The work is core/trial's; Core adds what only it knows
// (its IMAP front end's address and certificate, its store).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"mailferry/core/demo"
	"mailferry/core/oldserver"
	"mailferry/core/trial"
)

// ErrTestAccountExists is returned by PrepareTestDomain when the test
// account already exists on Mailferry (from an earlier test run): a test
// migration needs a fresh account. RemoveTestAccount deletes it.
var ErrTestAccountExists = errors.New("the test account already exists on Mailferry")

// StartDemo starts the embedded demo old server (core/demo) on loopback with
// its seed mail. The caller owns it and must Close it.
func (c *Core) StartDemo(ctx context.Context) (*DemoServer, error) {
	return demo.Start(ctx, &demo.Options{Seed: true, Logger: c.log.With("service", "demo")})
}

// DemoSettings are the old-server settings of the demo server srv.
func DemoSettings(srv *DemoServer) OldServerSettings {
	host, imapPort, _ := net.SplitHostPort(srv.IMAPAddr())
	_, smtpPort, _ := net.SplitHostPort(srv.SMTPAddr())
	s := oldserver.Settings{
		Host: oldserver.MustParseHost("[" + host + "]"), IMAPTLS: oldserver.TLSStartTLS, SMTPTLS: oldserver.TLSStartTLS,
		PinnedSHA256: srv.CertFingerprint(), LoginForm: oldserver.LoginAuto,
	}
	s.IMAPPort, _ = strconv.Atoi(imapPort)
	s.SMTPPort, _ = strconv.Atoi(smtpPort)
	// The demo's POP3 (plain, loopback): its UIDLs are kept like a real
	// server's.
	_, pop3Port, _ := net.SplitHostPort(srv.POP3Addr())
	s.POP3Port, _ = strconv.Atoi(pop3Port)
	s.POP3TLS = oldserver.TLSNone
	if !srv.TLSEnabled() {
		s.IMAPTLS, s.SMTPTLS = oldserver.TLSNone, oldserver.TLSNone
	}
	return s
}

// SampleLanguages lists the languages the native-language samples come in.
func SampleLanguages() []Language { return demo.Languages() }

// ProbeOldServer connects to the old server and reports in plain words what
// it offers (oldserver.Probe). With user and password it also logs in.
func (c *Core) ProbeOldServer(ctx context.Context, s OldServerSettings, user, password string) (*ProbeResult, error) {
	return oldserver.Probe(ctx, s, user, password)
}

// PrepareTestDomain makes sure domain exists on Mailferry with s recorded as
// its old server, migration still off, and that address (of domain) has no
// account yet. It changes nothing when address is not in domain, s is
// invalid, or the account exists (ErrTestAccountExists).
func (c *Core) PrepareTestDomain(ctx context.Context, domain, address string, s OldServerSettings) error {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return err
	}
	_, d, err := SplitAddress(address)
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
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	migrating := false
	if d, err := c.store.Domain(ctx, domain); err == nil {
		migrating = d.Migrating // a domain already migrating stays so
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return c.SetMigration(ctx, domain, &s, migrating)
}

// RemoveTestAccount deletes the account address from Mailferry (not from the
// old server), so a test migration can run again.
func (c *Core) RemoveTestAccount(ctx context.Context, address string) error {
	return c.store.DeleteAccount(ctx, address)
}

// SendSamples builds the sample messages (one plain, one HTML, one per
// language code) from and to address and sends them through the old
// server's SMTP (trial.SendSamples).
func (c *Core) SendSamples(ctx context.Context, s OldServerSettings, address string, languages []string) ([]Sample, error) {
	return trial.SendSamples(ctx, s, address, languages)
}

// WaitForSamples waits until every sample is in the old account's INBOX
// and returns what the old server serves for each (trial.WaitForSamples).
func (c *Core) WaitForSamples(ctx context.Context, s OldServerSettings, address, password string, samples []Sample, progress func(found, total int)) ([]SampleCopy, error) {
	return trial.WaitForSamples(ctx, s, address, password, samples, progress)
}

// MigrateTestAccount logs in to Mailferry's IMAP as address, as a mail
// client would, and watches the account's migration until every folder
// the engine copies has all its messages and the engine reports it done
// (trial.Trial.Watch). The domain's migration must be on.
func (c *Core) MigrateTestAccount(ctx context.Context, s OldServerSettings, address, password string, progress func(TestProgress)) (TestProgress, error) {
	return c.trial.Watch(ctx, s, address, password, progress)
}

// CheckTestAccount checks every sample on Mailferry's IMAP against what the
// old server served (old), and every folder's count (trial.Trial.Check).
func (c *Core) CheckTestAccount(ctx context.Context, s OldServerSettings, address, password string, samples []Sample, old []SampleCopy, progress func(done, total int)) (*TestReport, error) {
	rep, err := c.trial.Check(ctx, s, address, password, samples, old, c.ClientSettingsFor(address), progress)
	if err != nil {
		return rep, err
	}
	if rep.NotCopied, err = c.copyProblems(ctx, address); err != nil {
		return rep, err
	}
	return rep, nil
}

// copyProblems lists the messages of address the old server could not
// serve.
func (c *Core) copyProblems(ctx context.Context, address string) ([]CopyProblem, error) {
	a, err := c.store.Account(ctx, address)
	if err != nil {
		return nil, fmt.Errorf("core: messages not copied of %s: %w", address, err)
	}
	return c.store.CopyProblems(ctx, a.ID)
}

// front is how a mail client reaches Mailferry's IMAP front end now.
func (c *Core) front() trial.Front {
	return trial.Front{Addr: c.Addr("imap"), Cert: c.certDER()}
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
// present now (it changes on renewal), or nil when they do not serve.
func (c *Core) certDER() []byte {
	c.mu.Lock()
	m := c.certs
	c.mu.Unlock()
	if m == nil {
		return nil
	}
	if leaf := m.Info().Leaf; leaf != nil {
		return leaf.Raw
	}
	return nil
}
