package core

// The vocabulary of the door: the types, constants and errors of the rooms
// behind Core that the assistant (ui) and the command line (cmd) need, so
// that they import core alone. Aliases keep one type per idea: a
// core.OldServerSettings is an oldserver.Settings.

import (
	"io"

	"mailferry/core/demo"
	"mailferry/core/dkim"
	"mailferry/core/migrate"
	"mailferry/core/oldserver"
	"mailferry/core/relay"
	"mailferry/core/store"
	"mailferry/core/trial"
)

// Errors of the rooms, for errors.Is.
var (
	// ErrNotFound: no such domain, account or queue item.
	ErrNotFound = store.ErrNotFound
	// ErrExists: the domain or account exists already.
	ErrExists = store.ErrExists
	// ErrInvalid: the input is not valid (a bad domain or address, ...).
	ErrInvalid = store.ErrInvalid
	// ErrNotMigrating: the domain's migration is off.
	ErrNotMigrating = migrate.ErrNotMigrating
	// ErrOldAuthFailed: the old server refused the user name or password.
	ErrOldAuthFailed = oldserver.ErrAuthFailed
	// ErrNotMigrated: the test account is a native account (Core.MigrateTestAccount).
	ErrNotMigrated = trial.ErrNotMigrated
)

// Migration states of an account (UserStatus.State, AccountProgress.State):
// "" for a native account that was never migrated.
const (
	MigPending = store.MigPending
	MigRunning = store.MigRunning
	MigDone    = store.MigDone
	MigFailed  = store.MigFailed
	// MigInterrupted, MigRetrying, MigDiskFull and MigWaitingLogin are what
	// the status says instead of the store's state when that is truer:
	// the copy's process was stopped or died; a failed copy runs again at
	// UserStatus.RetryAt; the disk is full (tried again at RetryAt); the
	// copy waits for the user's next login (see migrate/resume.go).
	MigInterrupted  = migrate.StateInterrupted
	MigRetrying     = migrate.StateRetrying
	MigDiskFull     = migrate.StateDiskFull
	MigWaitingLogin = migrate.StateWaitingLogin
)

// Relay queue item states (QueueItem.State).
const (
	QueueQueued = store.QueueQueued
	QueueHeld   = store.QueueHeld
)

type (
	// Domain is a mail domain on Mailferry.
	Domain = store.Domain
	// Account is an account on Mailferry.
	Account = store.Account
	// QueueItem is a message in the relay queue.
	QueueItem = store.QueueItem
	// CopyProblem is a message the old server could not serve to the
	// migration (its mailbox, old UID and the server's words); a later
	// catch-up tries it again.
	CopyProblem = store.CopyProblem
	// RelayStats counts the SMTP relay's work since start.
	RelayStats = relay.Stats
)

// Outbound routes (Core.SetOutboundRoute): how a domain's mail to other
// domains leaves.
type (
	// OutboundRoute is a domain's outbound route: kind, and for a
	// smarthost its host, port, TLS mode and login.
	OutboundRoute = relay.Route
	// OutboundRouteKind is oldserver, mx or smarthost (or the default).
	OutboundRouteKind = relay.RouteKind
	// SmarthostTLS is the TLS mode of a smarthost.
	SmarthostTLS = relay.SmarthostTLS
	// Secret is a password that prints as "[redacted]".
	Secret = relay.Secret
)

// Route kinds and smarthost TLS modes.
const (
	RouteDefault         = relay.RouteDefault
	RouteOldServer       = relay.RouteOldServer
	RouteMX              = relay.RouteMX
	RouteSmarthost       = relay.RouteSmarthost
	SmarthostStartTLS    = relay.SmarthostStartTLS
	SmarthostImplicitTLS = relay.SmarthostImplicitTLS
	SmarthostNone        = relay.SmarthostNone
)

// ParseSmarthost splits a smarthost's "host:port" (or bare host; port 0
// then means the TLS mode's default).
func ParseSmarthost(s string) (host string, port int, err error) { return relay.ParseSmarthost(s) }

// The old server.
type (
	// OldServerSettings say where the old server is and how to talk to it.
	OldServerSettings = oldserver.Settings
	// OldHost is the old server's host name or IP address.
	OldHost = oldserver.Host
	// HostError says what is wrong with a host typed by an admin.
	HostError = oldserver.HostError
	// TLSMode is how a connection to the old server is secured.
	TLSMode = oldserver.TLSMode
	// LoginForm is the form of the user name sent to the old server.
	LoginForm = oldserver.LoginForm
	// ProbeResult is what ProbeOldServer found, in plain words.
	ProbeResult = oldserver.ProbeResult
	// OldServerFact is one thing learnt about an old server and the
	// workaround Mailferry applies (ProbeResult.Facts, OldServerFacts).
	OldServerFact = oldserver.Fact
	// TLSInfo is the TLS certificate a server presented.
	TLSInfo = oldserver.TLSInfo
	// Problem is a failure to use an old server in an admin's words
	// (Explain), with what to do next and the technical detail.
	Problem = oldserver.Problem
	// ProblemKind names the kind of a Problem.
	ProblemKind = oldserver.ProblemKind
	// ProtocolError: a port answered in another protocol than asked.
	ProtocolError = oldserver.ProtocolError
	// CertError: a certificate this computer does not trust.
	CertError = oldserver.CertError
)

// TLS modes and login forms of OldServerSettings.
const (
	TLSNone     = oldserver.TLSNone
	TLSStartTLS = oldserver.TLSStartTLS
	TLSImplicit = oldserver.TLSImplicit
	LoginFull   = oldserver.LoginFull
	LoginLocal  = oldserver.LoginLocal
	LoginAuto   = oldserver.LoginAuto
)

// DefaultMaxOldConnections is OldServerSettings.MaxConnections when it is 0:
// the most IMAP connections to one old server at once, shared by every
// account's copy.
const DefaultMaxOldConnections = oldserver.DefaultMaxConnections

// ParseHost parses an old server's host: a name or an IP literal in
// brackets.
func ParseHost(s string) (OldHost, error) { return oldserver.ParseHost(s) }

// MustParseHost is ParseHost that panics on error (for constants and tests).
func MustParseHost(s string) OldHost { return oldserver.MustParseHost(s) }

// Explain maps a failure of the connection test, a login or a migration
// to a Problem: the one error vocabulary of the assistant and the CLI.
func Explain(err error) Problem { return oldserver.Explain(err) }

// ExplainFor is Explain naming the server proto (e.g. "IMAP and SMTP").
func ExplainFor(err error, proto string) Problem { return oldserver.ExplainFor(err, proto) }

// Kinds of Problem (see oldserver.ProblemKind).
const (
	ProblemCanceled      = oldserver.ProblemCanceled
	ProblemWrongProtocol = oldserver.ProblemWrongProtocol
	ProblemTLSMismatch   = oldserver.ProblemTLSMismatch
	ProblemUntrusted     = oldserver.ProblemUntrusted
	ProblemPassword      = oldserver.ProblemPassword
	ProblemBusy          = oldserver.ProblemBusy
	ProblemTimeout       = oldserver.ProblemTimeout
	ProblemDNS           = oldserver.ProblemDNS
	ProblemRefused       = oldserver.ProblemRefused
	ProblemUnreachable   = oldserver.ProblemUnreachable
	ProblemClosed        = oldserver.ProblemClosed
	ProblemRelayRefused  = oldserver.ProblemRelayRefused
	ProblemOther         = oldserver.ProblemOther
)

// ParseFingerprint parses a SHA-256 certificate fingerprint (hex, colons
// optional).
func ParseFingerprint(s string) ([]byte, error) { return oldserver.ParseFingerprint(s) }

// DefaultOldServer returns the default settings for an old server at host.
func DefaultOldServer(host OldHost) OldServerSettings { return oldserver.DefaultSettings(host) }

// Migration.
type (
	// Credentials log in to the old server for one user.
	Credentials = migrate.Credentials
	// UserResult is one user's outcome of a bulk migration.
	UserResult = migrate.UserResult
	// MigrationEvent is one change in the migration engine.
	MigrationEvent = migrate.Event
	// AccountProgress is a snapshot of one account's migration.
	AccountProgress = migrate.AccountProgress
	// VerifyReport compares an account with the old server (Core.Verify).
	VerifyReport = migrate.Report
)

// ReadUsersCSV reads a users file: one "user[,password]" a line.
func ReadUsersCSV(r io.Reader) ([]Credentials, error) { return migrate.ReadUsersCSV(r) }

// The demo old server and the test migration.
type (
	// DemoServer is the embedded demo old server (Core.StartDemo).
	DemoServer = demo.Server
	// Sample is a sample message of the test migration.
	Sample = demo.Sample
	// Language is a language the native-language samples come in.
	Language = demo.Language
	// SampleCopy is where a sample landed on a server and what it served.
	SampleCopy = trial.SampleCopy
	// TestProgress is the progress of the test account's migration.
	TestProgress = trial.Progress
	// FolderProgress is one folder of a TestProgress.
	FolderProgress = trial.FolderProgress
	// TestReport is the result of CheckTestAccount.
	TestReport = trial.Report
	// Check is one automated check of the test migration.
	Check = trial.Check
	// SampleView is one sample as Mailferry served it, for the viewer.
	SampleView = trial.SampleView
	// ClientSettings are what an admin types into an IMAP client.
	ClientSettings = trial.ClientSettings
	// ViewMessage is a message decoded for the viewer (ParseMessage).
	ViewMessage = trial.Message
	// MigrationError: the engine reported the test account's migration
	// failed (errors.As).
	MigrationError = trial.MigrationError
)

// ParseMessage decodes a message for the viewer: the Subject, From, To and
// Date headers (RFC 5322, RFC 2047 encoded words) and the first text/plain
// and text/html parts, transfer-decoded (RFC 2045) and converted to UTF-8.
func ParseMessage(raw []byte) (ViewMessage, error) { return trial.ParseMessage(raw) }

// SplitAddress splits an address into its local part and its (canonical)
// domain, or says what is wrong with it.
func SplitAddress(address string) (local, domain string, err error) {
	return store.SplitAddress(address)
}

// DKIM (core/dkim): the records to publish and the SPF they include.
type (
	// DKIMRecord is a DNS record to publish: a DKIM key, SPF or DMARC.
	DKIMRecord = dkim.Record
	// SPFPolicy says what the SPF record names besides the MX hosts.
	SPFPolicy = dkim.SPFPolicy
)

// DKIMRecordStatus is a record to publish with what DNS serves for it
// (Core.CheckDKIMRecords).
type DKIMRecordStatus = dkim.RecordStatus

// What DNS serves for a record (DKIMRecordStatus.Status).
const (
	DKIMPublished = dkim.Published
	DKIMMissing   = dkim.Missing
	DKIMDifferent = dkim.Different
	DKIMUnknown   = dkim.Unknown
)

// Store engines (Status.Engine).
const (
	EngineSQLite   = store.EngineSQLite
	EnginePostgres = store.EnginePostgres
)

// RedactDatabaseURL returns a database URL (Config.DatabaseURL) fit to
// print: its password hidden.
func RedactDatabaseURL(u string) string { return store.RedactDatabaseURL(u) }
