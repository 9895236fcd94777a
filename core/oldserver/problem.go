package oldserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
)

// ProblemKind names a kind of failure to use an old server, the same for
// the connection test, a login and a migration.
type ProblemKind string

// The kinds of Problem, from the most specific.
const (
	ProblemCanceled      ProblemKind = "canceled"
	ProblemWrongProtocol ProblemKind = "wrong-protocol"
	ProblemTLSMismatch   ProblemKind = "tls-mismatch"
	ProblemUntrusted     ProblemKind = "untrusted-certificate"
	ProblemPassword      ProblemKind = "password-refused"
	ProblemBusy          ProblemKind = "server-busy"
	ProblemTimeout       ProblemKind = "timeout"
	ProblemDNS           ProblemKind = "dns"
	ProblemRefused       ProblemKind = "connection-refused"
	ProblemUnreachable   ProblemKind = "unreachable"
	ProblemClosed        ProblemKind = "connection-closed"
	ProblemRelayRefused  ProblemKind = "relay-refused"
	ProblemOther         ProblemKind = "other"
)

// Problem is a failure to use an old server in words an admin
// understands: what happened (Headline), what to do next (Advice), and the
// technical detail (Detail, the error's own text) for the report and for
// those who ask.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Proto is "IMAP" or "SMTP" when known.
	Proto string `json:"proto,omitempty"`
	// Reached reports whether the server answered at all (a wrong port or
	// a refused password were reached; a timeout or a DNS failure not).
	Reached  bool   `json:"reached"`
	Headline string `json:"headline"`
	Advice   string `json:"advice"`
	Detail   string `json:"detail"`
}

// String is the headline and the advice, one sentence each.
func (p Problem) String() string {
	if p.Advice == "" {
		return p.Headline
	}
	return p.Headline + " " + p.Advice
}

// Explain maps err, a failure of the connection test, a login or a
// migration, to a Problem. It looks at the error's types (errors.As and
// errors.Is on the errors of this package, net, tls, go-imap and go-smtp),
// never at our own errors' text. A nil err has Kind "".
func Explain(err error) Problem { return ExplainFor(err, "") }

// ExplainFor is Explain naming the server proto ("IMAP", "SMTP", or "IMAP
// and SMTP" for a failure both share) instead of the one err names.
func ExplainFor(err error, proto string) Problem {
	if err == nil {
		return Problem{}
	}
	p := Problem{Kind: ProblemOther, Detail: err.Error(), Reached: true}
	var de *DialError
	if errors.As(err, &de) {
		p.Proto = de.Proto
		p.Reached = de.Op != "connect"
	}
	var pe *ProtocolError
	if errors.As(err, &pe) && p.Proto == "" {
		p.Proto = pe.Proto
	}
	if proto == "" {
		proto = p.Proto
	}
	if proto == "" {
		proto = "mail"
	}
	var (
		ce     *CertError
		dnsErr *net.DNSError
		alert  tls.AlertError
		rec    tls.RecordHeaderError
		ierr   *imap.Error
		serr   *smtp.SMTPError
		netErr net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		p.Kind, p.Headline = ProblemCanceled, "Canceled."
		p.Advice = "Nothing was changed; try again when you are ready."
	case errors.As(err, &pe) && pe.Got == "plain text":
		p.Kind = ProblemTLSMismatch
		p.Headline = fmt.Sprintf("The %s port answered without encryption, but SSL/TLS was chosen.", proto)
		p.Advice = "Choose STARTTLS for this port (or the SSL/TLS port, usually 993 for IMAP and 465 for SMTP)."
	case errors.As(err, &pe) && pe.Got != "":
		p.Kind = ProblemWrongProtocol
		p.Headline = fmt.Sprintf("That port speaks %s, not %s.", pe.Got, pe.Proto)
		if (pe.Got == "SMTP" || pe.Got == "IMAP") && pe.Got != pe.Proto {
			p.Advice = "Are the IMAP and SMTP ports swapped? IMAP is usually 143 or 993, SMTP 25, 587 or 465."
		} else {
			p.Advice = fmt.Sprintf("Check the %s port number: IMAP is usually 143 or 993, SMTP 25, 587 or 465.", pe.Proto)
		}
	case errors.As(err, &pe):
		p.Kind = ProblemTLSMismatch
		p.Headline = fmt.Sprintf("The %s port accepted the connection but sent no greeting.", proto)
		p.Advice = "It may expect encryption from the first byte: choose SSL/TLS (usual ports 993 for IMAP, 465 for SMTP), or check the port."
	case errors.As(err, &ce):
		p.Kind = ProblemUntrusted
		why, _, _ := strings.Cut(ce.Problem, ";") // the advice is ours, below
		p.Headline = fmt.Sprintf("The %s server's certificate is not trusted by this computer: %s.", proto, why)
		if ce.Pinned != "" {
			p.Headline = fmt.Sprintf("The %s server presented another certificate than the one trusted before.", proto)
			p.Advice = "If the old server got a new certificate, compare its fingerprint with the server's and trust it again; otherwise something is in the way."
		} else {
			p.Advice = "If this is your old server's own (self-signed) certificate, compare its fingerprint with the server's and trust it."
		}
	case errors.Is(err, ErrAuthFailed):
		p.Kind, p.Headline = ProblemPassword, "The old server refused the user name or password."
		p.Advice = "Check the account and its password on the old server."
	case errors.Is(err, ErrNoStartTLS):
		p.Kind = ProblemTLSMismatch
		p.Headline = fmt.Sprintf("The %s server does not offer STARTTLS.", proto)
		p.Advice = "Choose SSL/TLS (and its port), or None if the server is on a private network."
	case errors.As(err, &rec):
		p.Kind = ProblemTLSMismatch
		p.Headline = fmt.Sprintf("The %s port did not answer with TLS.", proto)
		p.Advice = "Choose STARTTLS or None for this port, or give the SSL/TLS port."
	case errors.As(err, &alert):
		p.Kind = ProblemTLSMismatch
		p.Headline = fmt.Sprintf("The %s server refused the encrypted connection.", proto)
		p.Advice = "It may only speak old TLS versions, or this port is not meant for SSL/TLS: try STARTTLS."
	case busyIMAP(err, &ierr):
		p.Kind, p.Headline = ProblemBusy, "The old server is busy or limits connections: "+ierr.Text+"."
		p.Advice = "Wait a minute and try again, or raise its connection limit (e.g. Dovecot mail_max_userip_connections)."
	case errors.As(err, &serr) && (serr.Code == 421 || serr.Code == 450 || serr.Code == 451 || serr.Code == 452):
		p.Kind, p.Headline = ProblemBusy, fmt.Sprintf("The old SMTP server is busy or limits connections (%d %s).", serr.Code, serr.Message)
		p.Advice = "Wait a minute and try again."
	case errors.As(err, &serr):
		p.Kind = ProblemRelayRefused
		p.Headline = fmt.Sprintf("The old SMTP server refused: %d %s.", serr.Code, serr.Message)
		p.Advice = "Let this computer send through it without a password (e.g. Postfix mynetworks)."
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		p.Kind, p.Reached = ProblemTimeout, p.Reached && !(de != nil && de.Op == "connect")
		p.Headline = fmt.Sprintf("The %s server did not answer in time.", proto)
		p.Advice = "Check the host and the port, and that no firewall drops the connection."
	case errors.As(err, &dnsErr):
		p.Kind, p.Reached = ProblemDNS, false
		if dnsErr.IsNotFound {
			p.Headline = "The host name does not exist in DNS."
			p.Advice = "Check its spelling, or give the server's address, e.g. [192.0.2.7]."
		} else {
			p.Headline = "The host name could not be looked up."
			p.Advice = "Check this computer's DNS settings, or give the server's address, e.g. [192.0.2.7]."
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		p.Kind, p.Reached = ProblemRefused, false
		p.Headline = fmt.Sprintf("Nothing listens on the %s port: the connection was refused.", proto)
		p.Advice = "Check the port number, and that the service runs on the old server."
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		p.Kind, p.Reached = ProblemUnreachable, false
		p.Headline = "The old server's host cannot be reached from this computer."
		p.Advice = "Check the address and the network (routes, VPN, firewall)."
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		p.Kind = ProblemClosed
		p.Headline = fmt.Sprintf("The %s server closed the connection.", proto)
		p.Advice = "It may limit connections from this computer, or the port and TLS mode do not match: check both."
	default:
		p.Headline = fmt.Sprintf("The %s server could not be used: %s.", proto, strings.TrimSuffix(lastCause(err), "."))
		p.Advice = "See the technical detail."
	}
	return p
}

// busyIMAP reports whether err is an IMAP refusal that means "busy" or a
// connection cap (RFC 5530 UNAVAILABLE, LIMIT, INUSE, or a BYE), setting
// *ierr.
func busyIMAP(err error, ierr **imap.Error) bool {
	if !errors.As(err, ierr) {
		return false
	}
	switch (*ierr).Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeLimit, imap.ResponseCodeInUse:
		return true
	}
	return (*ierr).Type == imap.StatusResponseTypeBye
}

// lastCause is the text of err's innermost single cause.
func lastCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
