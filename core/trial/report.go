package trial

import (
	"fmt"
	"strings"
	"time"

	"mailferry/core/store"
)

// Check is one automated check of the test migration.
type Check struct {
	// Sample is the sample's name, or "" for an account-wide check.
	Sample string
	Name   string
	OK     bool
	// Detail says what was compared, or what differs.
	Detail string
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

// Report is the result of Check.
type Report struct {
	Address string
	Time    time.Time
	Checks  []Check
	// Samples are the samples as Mailferry's IMAP served them, decoded, in
	// the order of the samples checked; a missing one has a zero value.
	Samples []SampleView
	Client  ClientSettings
	// NotCopied are the account's messages the old server could not serve
	// (the copy is "done with N problems"); the caller fills it from the
	// store.
	NotCopied []store.CopyProblem
}

// SampleView is one sample as Mailferry's IMAP served it, for the viewer
// (which decodes Raw with ParseMessage).
type SampleView struct {
	Name  string
	Found bool
	// Subject is the decoded Subject, "" when the sample is missing or
	// does not decode.
	Subject string
	Raw     []byte
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	return len(r.Checks) > 0 && r.Failed() == 0
}

// Failed counts the checks that failed.
func (r *Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Text is the report as plain text, to save or send.
func (r *Report) Text() string {
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
	if n := len(r.NotCopied); n > 0 {
		what := fmt.Sprintf("%d messages", n)
		if n == 1 {
			what = "1 message"
		}
		fmt.Fprintf(&b, "\nNot copied: %s the old server could not serve; the rest was copied.\n", what)
		b.WriteString(NotCopiedAdvice + "\n")
		for _, p := range r.NotCopied {
			fmt.Fprintf(&b, "  folder %q, old UID %d: %s (tried %d times, last %s)\n", p.Mailbox, p.OldUID, p.Words, p.Tries, p.LastSeen.Format(time.RFC1123Z))
		}
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

// NotCopiedAdvice is what an admin can do about messages the old server
// could not serve.
const NotCopiedAdvice = "Mailferry tries them again on every catch-up run while the domain migrates, and \"Try again\" copies now; " +
	"a message that keeps failing may be damaged on the old server: open it there (webmail or a mail client), or save it and send it to the user."
