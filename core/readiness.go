package core

// Readiness: whether a domain can stop migrating — its users (known from
// the admin's list and the relay) all moved, nothing in flight, and the
// cutover checks (cutover.go) — and the one door to turning it off.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/store"
)

// Readiness says whether a domain's migration can be turned off: every
// user of the old server has moved, nothing is left in flight, and mail
// keeps flowing without the old server (Checks). It never says "ready"
// without a list of the old server's users: then it does not know.
type Readiness struct {
	Domain string `json:"domain"`
	// UsersListed says the admin gave the old server's users
	// (ImportKnownUsers); Listed and Seen count the users known from the
	// list and from the relay (the old server accepted mail for them).
	UsersListed bool      `json:"users_listed"`
	ListedAt    time.Time `json:"listed_at,omitzero"`
	Listed      int       `json:"listed"`
	Seen        int       `json:"seen"`
	// NeverLoggedIn are known users that have no account on Mailferry
	// yet.
	NeverLoggedIn []string `json:"never_logged_in"`
	// Running are accounts whose copy is pending or running; Failed those
	// whose copy failed.
	Running []string `json:"running"`
	Failed  []string `json:"failed"`
	// NoPassword are accounts that no password of their user opens yet
	// without the old server: made by a bulk copy (a random password) and
	// never logged in to, or by a first login whose password hash was
	// never stored (the process ended first). Their users can log in only
	// while the domain migrates (the old server's yes gives them their
	// password), or once the admin sets one (`mailferry account passwd`).
	NoPassword []string `json:"no_password"`
	// Queued counts queued messages with a recipient in the domain (mail
	// still to be relayed to the old server).
	Queued int `json:"queued"`
	// Checks are the cutover checks (route, MX, DNS records, certificate).
	Checks []CutoverCheck `json:"checks"`
}

// Verdict is what a Readiness says, in one word.
type Verdict string

// Verdicts.
const (
	// VerdictReady: migration can be turned off.
	VerdictReady Verdict = "ready"
	// VerdictUnknown: nothing known stands in the way, but Mailferry does
	// not know the old server's users (no list), or DNS did not answer.
	VerdictUnknown Verdict = "unknown"
	// VerdictNotReady: something stands in the way.
	VerdictNotReady Verdict = "not ready"
)

// Verdict says whether migration can be turned off.
func (r *Readiness) Verdict() Verdict {
	if len(r.NeverLoggedIn) > 0 || len(r.Running) > 0 || len(r.Failed) > 0 || len(r.NoPassword) > 0 || r.Queued > 0 {
		return VerdictNotReady
	}
	unknown := !r.UsersListed
	for _, c := range r.Checks {
		switch c.State {
		case CheckFail:
			return VerdictNotReady
		case CheckUnknown:
			unknown = true
		}
	}
	if unknown {
		return VerdictUnknown
	}
	return VerdictReady
}

// Ready reports whether nothing stands in the way, as far as Mailferry
// can know.
func (r *Readiness) Ready() bool { return r.Verdict() == VerdictReady }

// SendingBreaks reports whether mail from the domain's users would stop
// leaving once migration is off: its post-migration route is not proven.
func (r *Readiness) SendingBreaks() bool {
	for _, c := range r.Checks {
		if c.Name == CheckRoute {
			return c.State != CheckOK
		}
	}
	return false
}

// Facts are what stands in the way (or is not known), one line each, for
// a confirmation; empty when Ready.
func (r *Readiness) Facts() []string {
	var out []string
	list := func(title string, l []string) {
		if len(l) == 0 {
			return
		}
		shown := l
		if len(shown) > 10 {
			shown = shown[:10]
		}
		more := ""
		if len(l) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(l)-len(shown))
		}
		out = append(out, fmt.Sprintf("%s: %d (%s%s)", title, len(l), strings.Join(shown, ", "), more))
	}
	if !r.UsersListed {
		out = append(out, "Unknown whether every user has moved: Mailferry has no list of the old server's users"+r.seenNote()+".")
	}
	list("Users who have not moved", r.NeverLoggedIn)
	list("Copies still running", r.Running)
	list("Copies that failed", r.Failed)
	list("Users with no password here yet (they log in once while migrating, or get one: mailferry account passwd)", r.NoPassword)
	if r.Queued > 0 {
		out = append(out, fmt.Sprintf("Mail queued for the old server: %s", Plural(r.Queued, "message", "messages")))
	}
	for _, c := range r.Checks {
		if c.State != CheckOK && c.State != CheckWarn {
			out = append(out, fmt.Sprintf("%s: %s", upper(c.Name), c.Text))
		}
	}
	return out
}

func (r *Readiness) seenNote() string {
	if r.Seen == 0 {
		return ""
	}
	return fmt.Sprintf(" (the relay has seen %s)", Plural(r.Seen, "user", "users"))
}

// Plural is "1 one" or "n many".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Text says in plain words where the domain stands: the verdict first,
// then what stands in the way, then each check.
func (r *Readiness) Text() string {
	var b strings.Builder
	v := r.Verdict()
	switch v {
	case VerdictReady:
		fmt.Fprintf(&b, "Every known user has moved (%s listed%s), no copy is running, no mail is waiting for the old server, and mail keeps flowing without it: migration can be turned off.\n",
			Plural(r.Listed, "user", "users"), r.seenNote())
	case VerdictUnknown:
		if !r.UsersListed {
			b.WriteString("Unknown: Mailferry does not know the old server's users, so it cannot tell whether everyone has moved. " +
				"Give their list: paste it, load a CSV file, or the output of `doveadm user '*'`, a passwd-file or an LDAP search.\n")
		} else {
			b.WriteString("Unknown: some checks could not be made (see below).\n")
		}
	default:
		b.WriteString("Not ready:\n")
	}
	for _, f := range r.Facts() {
		if v != VerdictUnknown || r.UsersListed || !strings.HasPrefix(f, "Unknown whether") {
			b.WriteString("• " + f + "\n")
		}
	}
	if len(r.Checks) > 0 {
		b.WriteString("\nAfter the old server:\n")
		for _, c := range r.Checks {
			fmt.Fprintf(&b, "%s %s: %s\n", checkMark(c.State), upper(c.Name), c.Text)
		}
	}
	return strings.TrimSpace(b.String())
}

func checkMark(s CheckState) string {
	switch s {
	case CheckOK:
		return "✓"
	case CheckWarn:
		return "!"
	case CheckUnknown:
		return "?"
	}
	return "✗"
}

// Readiness checks domain before its migration is turned off: its known
// users (KnownUsersOf) against its accounts, the copies, the queue, and
// the cutover checks.
func (c *Core) Readiness(ctx context.Context, domain string) (*Readiness, error) {
	domain, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	r := &Readiness{Domain: domain}
	accts, err := c.store.Accounts(ctx, domain)
	if err != nil {
		return nil, err
	}
	pending, err := c.store.PendingPasswords(ctx, domain)
	if err != nil {
		return nil, err
	}
	r.NoPassword = pending
	have := map[string]bool{}
	for _, a := range accts {
		have[strings.ToLower(a.Address)] = true
		if a.PasswordOrigin == store.PasswordRandom && a.FirstLogin.IsZero() && !slices.Contains(pending, a.Address) {
			r.NoPassword = append(r.NoPassword, a.Address)
		}
		switch a.Migration {
		case MigPending, MigRunning:
			r.Running = append(r.Running, a.Address)
		case MigFailed:
			r.Failed = append(r.Failed, a.Address)
		}
	}
	slices.Sort(r.NoPassword)
	known, err := c.KnownUsersOf(ctx, domain)
	if err != nil {
		return nil, err
	}
	r.UsersListed, r.ListedAt = len(known.Listed) > 0, known.ListedAt
	r.Listed, r.Seen = len(known.Listed), len(known.Seen)
	for _, e := range known.All() {
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
			if _, d, err := SplitAddress(rc); err == nil && strings.EqualFold(d, domain) {
				r.Queued++
				break
			}
		}
	}
	if r.Checks, err = c.cutoverChecks(ctx, domain); err != nil {
		return nil, err
	}
	return r, nil
}

// ErrNotReady: migration was not turned off because the readiness check
// did not say ready; a *NotReadyError carries the facts.
var ErrNotReady = errors.New("the domain is not ready to stop migrating")

// NotReadyError is DisableMigration's refusal, with the readiness found.
type NotReadyError struct{ Readiness *Readiness }

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("%s: %s", e.Readiness.Domain, strings.Join(e.Readiness.Facts(), " "))
}

func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// DisableMigration turns automatic migration off for domain, keeping its
// old-server settings, once the readiness check says ready. Otherwise it
// refuses with a *NotReadyError (wrapping ErrNotReady) and changes
// nothing — unless force is set: the admin saw the facts and goes on. It
// returns the readiness it judged by.
func (c *Core) DisableMigration(ctx context.Context, domain string, force bool) (*Readiness, error) {
	r, err := c.Readiness(ctx, domain)
	if err != nil {
		return nil, err
	}
	if !r.Ready() {
		if !force {
			return r, &NotReadyError{Readiness: r}
		}
		c.log.Warn("migration turned off although not ready", "domain", r.Domain, "facts", r.Facts())
	}
	return r, c.SetMigration(ctx, r.Domain, nil, false)
}

// ParseUserList reads the users an admin pastes: one a line, "address"
// or "address,password" (ReadUsersCSV; a local part without "@"
// is taken as one of domain). Every address must be of domain.
func ParseUserList(text, domain string) ([]Credentials, error) {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return nil, err
	}
	creds, err := migrate.ReadUsersCSV(strings.NewReader(text))
	var ferr *migrate.UsersFileError
	if errors.As(err, &ferr) {
		return nil, errors.New(ferr.Problem())
	} else if err != nil {
		return nil, err
	}
	var bad []string
	for i := range creds {
		a := strings.ToLower(creds[i].Address)
		if !strings.Contains(a, "@") {
			a += "@" + domain
		}
		if _, d, err := SplitAddress(a); err != nil || d != domain {
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
func Addresses(creds []Credentials) []string {
	out := make([]string, len(creds))
	for i, c := range creds {
		out[i] = c.Address
	}
	return out
}
