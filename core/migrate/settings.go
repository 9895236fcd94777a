package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Errors of the migration engine. Callers test them with errors.Is.
var (
	// ErrNotMigrating: the user's domain is unknown or its migration is off.
	ErrNotMigrating = errors.New("migrate: domain is not migrating")
	// ErrBadPassword: the old server refused the user's password (or the
	// master user's).
	ErrBadPassword = errors.New("migrate: old server refused the password")
	// ErrNoCredentials: a job needs to log in to the old server but no
	// password or master user is known for the account in this process.
	ErrNoCredentials = errors.New("migrate: no old-server credentials in memory for this account")
	// ErrClosed: the engine is closed.
	ErrClosed = errors.New("migrate: engine closed")
	// ErrDiskFull: the store's disk is full (store.IsDiskFull). A copy
	// stopped by it is tried again, with backoff, until there is room;
	// it is never retried as a connection problem.
	ErrDiskFull = errors.New("migrate: the disk is full")
)

// SetDomain records the old server of a domain and turns its automatic
// migration on or off, creating the domain if it does not exist. The
// settings are validated first; bad settings change nothing. A nil s keeps
// the settings already recorded (to turn migration on or off only); turning
// migration on needs settings.
func SetDomain(ctx context.Context, st *store.Store, domain string, s *oldserver.Settings, migrating bool) error {
	var js string
	if s != nil {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("migrate: domain %s: %w", domain, err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("migrate: domain %s: %w", domain, err)
		}
		js = string(b)
	}
	d, err := st.Domain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		d, err = st.CreateDomain(ctx, domain)
		if errors.Is(err, store.ErrExists) {
			d, err = st.Domain(ctx, domain)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate: domain %s: %w", domain, err)
	}
	if js == "" && migrating && d.OldServer == "" {
		return fmt.Errorf("migrate: domain %s: %w: no old server settings recorded", domain, store.ErrInvalid)
	}
	if err := st.SetDomainMigration(ctx, d.Name, migrating, js); err != nil {
		return fmt.Errorf("migrate: domain %s: %w", domain, err)
	}
	return nil
}

// DomainSettings returns a domain's old-server settings and whether its
// migration is on. A domain without settings returns nil settings. An
// unknown domain returns an error wrapping store.ErrNotFound.
func DomainSettings(ctx context.Context, st *store.Store, domain string) (s *oldserver.Settings, migrating bool, err error) {
	d, err := st.Domain(ctx, domain)
	if err != nil {
		return nil, false, fmt.Errorf("migrate: domain %s: %w", domain, err)
	}
	if d.OldServer == "" {
		return nil, d.Migrating, nil
	}
	s = new(oldSettings)
	if err := json.Unmarshal([]byte(d.OldServer), s); err != nil {
		return nil, d.Migrating, fmt.Errorf("migrate: domain %s: old server settings: %w", domain, err)
	}
	return s, d.Migrating, nil
}

// SetDomain is the package-level SetDomain on the engine's store.
func (e *Engine) SetDomain(ctx context.Context, domain string, s *oldserver.Settings, migrating bool) error {
	return SetDomain(ctx, e.st, domain, s, migrating)
}

// DomainSettings is the package-level DomainSettings on the engine's store.
func (e *Engine) DomainSettings(ctx context.Context, domain string) (*oldserver.Settings, bool, error) {
	return DomainSettings(ctx, e.st, domain)
}

// migratingSettings returns the settings of a migrating domain, with what
// was learnt about its old server (Settings.Learnt), or an error wrapping
// ErrNotMigrating.
func migratingSettings(ctx context.Context, st *store.Store, domain string) (*oldSettings, error) {
	s, on, err := DomainSettings(ctx, st, domain)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!on || s == nil)) {
		return nil, fmt.Errorf("%w: %s", ErrNotMigrating, domain)
	}
	if err != nil {
		return nil, err
	}
	return withLearnt(ctx, st, domain, s), nil
}
