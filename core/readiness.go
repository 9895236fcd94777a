package core

// Readiness: whether a domain can stop migrating, and the list of users an
// admin pastes to check it.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mailferry/core/migrate"
)

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
		case MigPending, MigRunning:
			r.Running = append(r.Running, a.Address)
		case MigFailed:
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
			if _, d, err := SplitAddress(rc); err == nil && strings.EqualFold(d, domain) {
				r.Queued++
				break
			}
		}
	}
	return r, nil
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
