package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"mailferry/core/auth"
	"mailferry/core/store"
	"net"
	"net/netip"
	"time"
)

// Options configures a Relay. Zero fields mean the defaults above.
type Options struct {
	// Store is where mail is delivered and queued; required.
	Store *store.Store
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// Hostname is this server's name in greetings, Received headers and
	// bounces; empty means os.Hostname().
	Hostname string
	// TLSConfig enables STARTTLS and is required by the submission
	// listeners. AUTH is only possible under TLS.
	TLSConfig *tls.Config
	// TrustedNetworks may relay to foreign domains without AUTH (for example
	// an internal web server). Empty means none — not even loopback. Like
	// authenticated users, they are not held to the rules for senders from
	// outside (see the package doc): their mail for an old server is
	// queued, and bounced if it fails.
	TrustedNetworks []netip.Prefix
	// MaxMessageBytes is the SIZE limit (RFC 1870) of a message as received.
	// A connection is offered (and held to) the smaller of it and the
	// smallest SIZE that an old server announced to our sessions within the
	// last hour, less receivedHeadroom for the trace header we add; see the
	// package doc.
	MaxMessageBytes int64
	// MaxRecipients is the number of RCPT per transaction.
	MaxRecipients int
	// MaxDataInFlight bounds the memory of the messages being received
	// (DATA, BDAT) at once: as much as that many messages of
	// MaxMessageBytes take (each twice, until it is committed); a message
	// holds what it has read, at least 64 KiB, so that many more small or
	// slow ones fit. MaxDataPerSource bounds the messages being received
	// from one source (an IPv4 address, an IPv6 /64). A message over
	// either bound is answered 452 4.3.1 (try later). 0 means 16 and 4. A
	// message's transfer must end within ReadTimeout of its start, BDAT
	// chunks too (451 4.4.2).
	MaxDataInFlight, MaxDataPerSource int
	// ReadTimeout and WriteTimeout bound each read and write of the servers.
	ReadTimeout, WriteTimeout time.Duration
	// Auth is the login policy of AUTH (core/auth: rate limits per source
	// and per account and source, bounded hashing, a failure delay) and
	// bounds connections per source; nil means one made from Store with
	// MaxAuthFailures and AuthFailureWindow.
	Auth *auth.Policy
	// MaxConnsPerIP bounds the simultaneous connections from one source (an
	// IPv4 address, an IPv6 /64).
	MaxConnsPerIP int
	// MaxAuthFailures within AuthFailureWindow make further AUTH attempts
	// from a source fail until the window has passed, when Auth is nil.
	MaxAuthFailures   int
	AuthFailureWindow time.Duration

	// RetryBase is the delay after the first failed attempt; it doubles per
	// attempt up to RetryMax.
	RetryBase, RetryMax time.Duration
	// MaxAge is how long a message may wait in the queue before it is
	// bounced.
	MaxAge time.Duration
	// MaxAttempts, when positive, bounces a message after that many failed
	// attempts even before MaxAge.
	MaxAttempts int
	// Workers is the number of queue items delivered at once.
	Workers int
	// PollInterval is how often the worker looks at the queue when nothing
	// told it to (for example after a Retry from another process).
	PollInterval time.Duration
	// ClientTimeout bounds each command of an outbound SMTP session.
	ClientTimeout time.Duration
	// ShutdownGrace is how long Close lets outbound deliveries in progress
	// finish before cutting them.
	ShutdownGrace time.Duration

	// NoRecipientCallout turns off the check, at RCPT time, of a recipient
	// of a migrating domain who has no account yet, for a sender that did
	// not authenticate and is not in a trusted network: normally the old
	// server is asked (MAIL FROM:<>, RCPT TO, RSET on a pooled session), a
	// recipient it refuses for good is refused at once and one it cannot
	// be asked about gets 451. Without the check, such recipients are
	// accepted at RCPT (unless an earlier refusal is remembered) and the
	// old server's answer comes at DATA, when the message is forwarded.
	NoRecipientCallout bool

	// AuthResults, if set, returns an Authentication-Results header field
	// (RFC 8601, with its CRLF) for a message from outside (no AUTH, not a
	// trusted network) delivered locally, from the client's address, HELO
	// name and MAIL FROM; it is prepended above the Received field. It is
	// information for the user's client, never a reason to refuse. When
	// set, fields in mail from outside that claim this server's
	// authserv-id (Hostname in mail forwarded to an old server) are
	// renamed X-Untrusted-Authentication-Results.
	AuthResults func(ctx context.Context, ip netip.Addr, helo, mailFrom string, msg []byte) string

	// OldServer looks a domain's old server up; nil reads the store's
	// domain settings (store.Domain: Migrating and OldServer JSON).
	OldServer OldServerFunc
	// Dial connects to an old server's SMTP; nil means DialOldServer.
	Dial DialFunc

	// Routes gives the outbound route recorded for a local domain (see
	// Route); nil means StoreRoute(Store). Without a recorded route a
	// domain's mail to other domains goes to its old server while it
	// migrates and directly to the recipients' mail exchangers after.
	Routes RouteFunc
	// Resolver looks up MX, A/AAAA and TXT records for direct delivery and
	// MTA-STS, and smarthost names; nil means the system's resolver.
	// NewResolver makes one that asks a given DNS server.
	Resolver *net.Resolver
	// RootCAs verify the certificates of mail exchangers under MTA-STS,
	// of MTA-STS policy hosts and of smarthosts; nil means the system
	// roots.
	RootCAs *x509.CertPool
	// Sign, when set, is called once per delivery attempt of a message that
	// leaves by RouteMX or RouteSmarthost (a user's message, or a DSN we
	// made for one), with the domain whose route it takes (the sender's)
	// and the message as queued; what it returns is sent instead (DKIM
	// signing, RFC 6376, is done there). Its error defers the attempt.
	// Mail handed to an old server is not signed: that server signs its
	// own. nil means no signing.
	Sign func(domain string, msg []byte) ([]byte, error)

	// MXPort, for tests only, gives the port of a mail exchanger (by its
	// host name) instead of 25: delivery to port 25 needs privileges a test
	// does not have. nil means 25 for every host.
	MXPort func(host string) int
	// MTASTSPort, for tests only, is the port of MTA-STS policy hosts
	// instead of 443. 0 means 443.
	MTASTSPort int
}
