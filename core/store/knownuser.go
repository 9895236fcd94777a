package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Known users and route proofs: what the cutover check (core's readiness)
// needs to know before a domain stops migrating.
//
// A known user is an address the old server serves, as the admin listed it
// (KnownList) or as the relay saw the old server accept it (KnownRelay).
// The admin's list is replaced as a whole by each import; what the relay
// saw is kept. Addresses are canonical (CanonicalAddress) and of the
// domain they are recorded for.
//
// A route proof is the latest test message a domain's post-migration
// outbound route delivered: which route (as the relay describes it), to
// whom, which server accepted it, its reply and when.

// Sources of a known user.
const (
	KnownList  = "list"
	KnownRelay = "relay"
)

// MaxKnownUsers bounds the list an admin imports for one domain.
const MaxKnownUsers = 200000

// KnownUser is one address the old server of a domain serves.
type KnownUser struct {
	Address string
	Source  string // KnownList or KnownRelay
	Added   time.Time
}

// domainID returns the id of the named domain (canonical), or ErrNotFound.
func domainID(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, domain string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, domain).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("domain %s: %w", domain, ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("store: domain %s: %w", domain, err)
	}
	return id, nil
}

// knownAddresses checks that every address is canonical and of domain.
func knownAddresses(domain string, addrs []string) error {
	for _, a := range addrs {
		c, err := CanonicalAddress(a)
		if err != nil {
			return err
		}
		if c != a {
			return fmt.Errorf("%w: known user %q is not in canonical form (%q)", ErrInvalid, a, c)
		}
		if _, d, err := SplitAddress(a); err != nil || d != domain {
			return fmt.Errorf("%w: known user %q is not of %s", ErrInvalid, a, domain)
		}
	}
	return nil
}

// ReplaceKnownUsers makes addrs (canonical addresses of domain) the
// admin's list of domain's users, in one transaction: the previous list
// goes, what the relay saw stays. An empty list removes the admin's list.
func (s *Store) ReplaceKnownUsers(ctx context.Context, domain string, addrs []string) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	if len(addrs) > MaxKnownUsers {
		return fmt.Errorf("%w: %d users listed, at most %d", ErrInvalid, len(addrs), MaxKnownUsers)
	}
	if err := knownAddresses(domain, addrs); err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		id, err := domainID(ctx, tx, domain)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM known_users WHERE domain_id = ? AND source = ?`, id, KnownList); err != nil {
			return fmt.Errorf("store: known users of %s: %w", domain, err)
		}
		st := txStmt{tx, `INSERT INTO known_users(domain_id, address, source, added) VALUES (?, ?, ?, ?)
ON CONFLICT(domain_id, address) DO UPDATE SET source = excluded.source, added = excluded.added`}
		t := now()
		for _, a := range addrs {
			if _, err := st.ExecContext(ctx, id, a, KnownList, t); err != nil {
				return fmt.Errorf("store: known user %s: %w", a, err)
			}
		}
		ch.domains = true
		return nil
	})
}

// noteKnownUser records address as seen by the relay unless it is known.
func noteKnownUser(ctx context.Context, tx wtx, domain, address string) error {
	if err := knownAddresses(domain, []string{address}); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO known_users(domain_id, address, source, added)
SELECT id, ?, ?, ? FROM domains WHERE name = ?
ON CONFLICT(domain_id, address) DO NOTHING`, address, KnownRelay, now(), domain)
	if err != nil {
		return fmt.Errorf("store: known user %s: %w", address, err)
	}
	return nil
}

// NoteKnownUser records that the old server of domain accepted address (a
// canonical address of domain); a domain that is not local is ignored.
func (s *Store) NoteKnownUser(ctx context.Context, domain, address string) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, _ *changes) error { return noteKnownUser(ctx, tx, domain, address) })
}

// NoteKnownUser is Store.NoteKnownUser in this transaction.
func (t *Tx) NoteKnownUser(domain, address string) error {
	if err := t.inScope(0); err != nil {
		return err
	}
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return noteKnownUser(t.ctx, t.tx, domain, address)
}

// KnownUsers lists domain's known users by address.
func (s *Store) KnownUsers(ctx context.Context, domain string) ([]KnownUser, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	return queryAll(ctx, s.r, func(sc rowScanner) (KnownUser, error) {
		var k KnownUser
		var added int64
		err := sc.Scan(&k.Address, &k.Source, &added)
		k.Added = time.Unix(added, 0)
		return k, err
	}, `SELECT k.address, k.source, k.added FROM known_users k JOIN domains d ON d.id = k.domain_id
WHERE d.name = ? ORDER BY k.address`, domain)
}

// RouteProof is the latest test message a domain's outbound route
// delivered.
type RouteProof struct {
	// Route describes the route that delivered it (the relay's
	// Route.String, never with a password).
	Route string
	// Rcpt is the address it went to; Remote the server that accepted
	// it, with Reply its reply to the message's DATA.
	Rcpt, Remote, Reply string
	At                  time.Time
}

// SetRouteProof records p as domain's latest route proof.
func (s *Store) SetRouteProof(ctx context.Context, domain string, p RouteProof) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		id, err := domainID(ctx, tx, domain)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO route_proofs(domain_id, route, rcpt, remote, reply, at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(domain_id) DO UPDATE SET route = excluded.route, rcpt = excluded.rcpt, remote = excluded.remote,
reply = excluded.reply, at = excluded.at`, id, p.Route, p.Rcpt, p.Remote, p.Reply, p.At.Unix())
		if err != nil {
			return fmt.Errorf("store: route proof of %s: %w", domain, err)
		}
		ch.domains = true
		return nil
	})
}

// RouteProofOf returns domain's latest route proof, nil when there is none.
func (s *Store) RouteProofOf(ctx context.Context, domain string) (*RouteProof, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	var p RouteProof
	var at int64
	err = s.r.QueryRowContext(ctx, `SELECT p.route, p.rcpt, p.remote, p.reply, p.at FROM route_proofs p
JOIN domains d ON d.id = p.domain_id WHERE d.name = ?`, domain).Scan(&p.Route, &p.Rcpt, &p.Remote, &p.Reply, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("store: route proof of %s: %w", domain, err)
	}
	p.At = time.Unix(at, 0)
	return &p, nil
}
