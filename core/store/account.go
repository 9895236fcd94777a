package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"mailferry/core/auth/addr"
)

// Domain is a mail domain served by Mailferry.
type Domain struct {
	ID   int64
	Name string
	// Migrating is true while automatic migration from the old server is on.
	Migrating bool
	// OldServer is the old server's settings as the migration engine wrote
	// them (JSON); the store does not read it.
	OldServer string
	Created   time.Time
}

// Account is a mail user.
type Account struct {
	ID       int64
	DomainID int64
	Address  string
	// Delim is the hierarchy separator of the account's mailbox names.
	Delim   rune
	Created time.Time
	// Migration is the state of the copy from the old server: "" for an
	// account that was never migrated, else one of the Mig* constants.
	Migration      string
	MigrationError string
	MigrationTime  time.Time
	// OldLogin is the user name the old server accepted for this account
	// (its full address, or a bare name); the engine logs in with exactly
	// that name. Empty for accounts that were never migrated.
	OldLogin string
	// PasswordOrigin says where the password came from: PasswordRandom,
	// PasswordOld or PasswordAdmin.
	PasswordOrigin string
	// FirstLogin is when a user first logged in to the account (zero:
	// never).
	FirstLogin time.Time
}

// Password origins (Account.PasswordOrigin).
const (
	// PasswordRandom: a bulk copy made the account with a random password
	// nobody knows; until someone logs in, the old server's password may
	// become its password (store.AdoptOldPassword).
	PasswordRandom = "random"
	// PasswordOld: the old server's password, taken at a first login.
	PasswordOld = "old"
	// PasswordAdmin: set by the admin (or the account was made by hand).
	PasswordAdmin = "admin"
)

// Migration states of accounts and mailboxes.
const (
	MigPending = "pending"
	MigRunning = "running"
	MigDone    = "done"
	MigFailed  = "failed"
)

// NormalizeDomain returns the canonical form of a domain name (lower case,
// no trailing dot, IDNA A-labels; see core/auth/addr), or an error wrapping
// ErrInvalid if it is not a plausible one.
func NormalizeDomain(name string) (string, error) {
	d, err := addr.Domain(strings.TrimSpace(name))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return d, nil
}

// CanonicalAddress returns the canonical form of an account address (see
// core/auth/addr), or an error wrapping ErrInvalid. Every account is made,
// found and authenticated by it.
func CanonicalAddress(address string) (string, error) {
	a, err := addr.Canonical(address)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return a, nil
}

// SplitAddress splits user@domain, lower-casing the domain.
func SplitAddress(address string) (local, domain string, err error) {
	address = strings.TrimSpace(address)
	i := strings.LastIndexByte(address, '@')
	if i <= 0 || i == len(address)-1 || strings.ContainsAny(address, " \t\r\n\"<>") {
		return "", "", fmt.Errorf("%w: address %q is not user@domain", ErrInvalid, address)
	}
	domain, err = NormalizeDomain(address[i+1:])
	if err != nil {
		return "", "", err
	}
	return address[:i], domain, nil
}

// CreateDomain adds a domain. It fails with ErrExists if it is there already.
func (s *Store) CreateDomain(ctx context.Context, name string) (*Domain, error) {
	name, err := NormalizeDomain(name)
	if err != nil {
		return nil, err
	}
	d := &Domain{Name: name, Created: time.Unix(now(), 0)}
	err = s.write(ctx, func(tx wtx, _ *changes) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO domains(name, created) VALUES(?, ?) RETURNING id`, name, d.Created.Unix()).Scan(&d.ID)
		if isUnique(err) {
			return fmt.Errorf("domain %s: %w", name, ErrExists)
		} else if err != nil {
			return fmt.Errorf("store: create domain: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

const domainCols = `id, name, migrating, old_server, created`

func scanDomain(sc rowScanner) (*Domain, error) {
	var d Domain
	var created int64
	if err := sc.Scan(&d.ID, &d.Name, &d.Migrating, &d.OldServer, &created); err != nil {
		return nil, err
	}
	d.Created = time.Unix(created, 0)
	return &d, nil
}

// Domain returns the named domain, or ErrNotFound.
func (s *Store) Domain(ctx context.Context, name string) (*Domain, error) {
	name, err := NormalizeDomain(name)
	if err != nil {
		return nil, err
	}
	d, err := scanDomain(s.r.QueryRowContext(ctx, `SELECT `+domainCols+` FROM domains WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return d, nil
}

// Domains lists all domains by name.
func (s *Store) Domains(ctx context.Context) ([]*Domain, error) {
	return queryAll(ctx, s.r, scanDomain, `SELECT `+domainCols+` FROM domains ORDER BY name`)
}

// SetDomainMigration turns automatic migration of a domain on or off and
// records the old server's settings (opaque JSON; "" keeps the current).
func (s *Store) SetDomainMigration(ctx context.Context, name string, migrating bool, oldServer string) error {
	name, err := NormalizeDomain(name)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE domains SET migrating = ?,
			old_server = CASE WHEN ? = '' THEN old_server ELSE ? END WHERE name = ?`,
			boolInt(migrating), oldServer, oldServer, name)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		ch.domains = true
		return nil
	})
}

// DeleteDomain removes a domain that has no accounts.
func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	name, err := NormalizeDomain(name)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE d.name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: domain %s still has %d accounts", ErrInvalid, name, n)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		ch.domains = true
		return nil
	})
}

// AccountOptions tunes CreateAccount. A nil *AccountOptions means defaults.
type AccountOptions struct {
	// Delim is the hierarchy separator; 0 means '/'.
	Delim rune
	// Migration is the initial migration state ("" for a native account).
	Migration string
	// Inbox sets the INBOX's UIDVALIDITY, UIDNEXT and subscription, as an
	// old server had them; nil means a new INBOX.
	Inbox *MailboxOptions
	// OldLogin is the user name the old server accepted (Account.OldLogin).
	OldLogin string
	// PasswordOrigin is Account.PasswordOrigin; "" means PasswordAdmin.
	PasswordOrigin string
	// HashLater makes the account without its password hash, which the
	// caller then stores with FinishPassword, off the path of an answer
	// (a first login answers once the old server said yes). Until then
	// no password opens the account here: Authenticate and CheckPassword
	// fail with ErrPasswordPending.
	HashLater bool
	// AtLogin makes the account at its user's login (a first login, the
	// old server's yes): Account.FirstLogin is set in the same
	// transaction, and the login's NoteLogin then writes nothing (one
	// commit, one fsync, fewer per first login).
	AtLogin bool
}

// CreateAccount adds an account with its INBOX in one transaction. The
// address is made canonical (CanonicalAddress) and the domain must exist.
// The password is kept only as an argon2id hash.
func (s *Store) CreateAccount(ctx context.Context, address, password string, opts *AccountOptions) (*Account, error) {
	address, err := CanonicalAddress(address)
	if err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(address, "@")
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrInvalid)
	}
	if opts == nil {
		opts = &AccountOptions{}
	}
	delim := opts.Delim
	if delim == 0 {
		delim = '/'
	}
	origin := opts.PasswordOrigin
	if origin == "" {
		origin = PasswordAdmin
	}
	hash := "" // pending: matches no password (VerifyPassword)
	if !opts.HashLater {
		if hash, err = s.hash(ctx, password); err != nil {
			return nil, err
		}
	}
	a := &Account{Address: address, Delim: delim, Created: time.Unix(now(), 0), Migration: opts.Migration,
		OldLogin: opts.OldLogin, PasswordOrigin: origin}
	var first int64
	if opts.AtLogin {
		a.FirstLogin, first = a.Created, a.Created.Unix()
	}
	err = s.write(ctx, func(tx wtx, ch *changes) error {
		if err := tx.QueryRowContext(ctx, `SELECT id FROM domains WHERE name = ?`, domain).Scan(&a.DomainID); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", domain, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		insert := `INSERT INTO accounts(domain_id, address, password_hash, delim, created, mig_state, mig_updated, old_login, password_origin, first_login)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
		if !s.d.postgres() {
			insert = `INSERT INTO accounts(id, domain_id, address, password_hash, delim, created, mig_state, mig_updated, old_login, password_origin, first_login)
			VALUES(` + newAccountID + `, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
		}
		err := tx.QueryRowContext(ctx, insert, a.DomainID, a.Address, hash, string(delim), a.Created.Unix(), a.Migration, a.Created.Unix(), a.OldLogin, origin, first).Scan(&a.ID)
		if isUnique(err) {
			return fmt.Errorf("account %s: %w", a.Address, ErrExists)
		} else if err != nil {
			return fmt.Errorf("store: create account: %w", err)
		}
		inbox := MailboxOptions{Subscribed: true}
		if opts.Inbox != nil {
			inbox = *opts.Inbox
		}
		_, err = createMailbox(ctx, tx, s.d, a.ID, "INBOX", &inbox)
		ch.account(a.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.MigrationTime = a.Created
	return a, nil
}

// newAccountID (SQLite) is the id a new account takes: above every id an
// account ever had (account_id_top, its schema step), not the highest
// present plus one, which SQLite's INTEGER PRIMARY KEY gives again after
// the account holding it is deleted. Processes keep state by account id
// (the migration engine's old-server password, pending hash, run times and
// failures; a POP3 session's lock): an account made again at the same id
// would inherit the deleted one's, e.g. a late hash of its old password.
// NULL, should the table be empty, lets SQLite choose. PostgreSQL's
// identity column never reuses an id.
const newAccountID = `(SELECT max(top, coalesce((SELECT max(id) FROM accounts), 0)) + 1 FROM account_id_top)`

const accountCols = `id, domain_id, address, delim, created, mig_state, mig_error, mig_updated, old_login, password_origin, first_login`

// scanAccount scans accountCols, then the extra columns into extra.
func scanAccount(sc rowScanner, extra ...any) (*Account, error) {
	var a Account
	var delim string
	var created, updated, first int64
	dest := append([]any{&a.ID, &a.DomainID, &a.Address, &delim, &created, &a.Migration, &a.MigrationError, &updated,
		&a.OldLogin, &a.PasswordOrigin, &first}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	a.Delim = '/'
	if delim != "" {
		a.Delim = []rune(delim)[0]
	}
	a.Created = time.Unix(created, 0)
	a.MigrationTime = time.Unix(updated, 0)
	if first != 0 {
		a.FirstLogin = time.Unix(first, 0)
	}
	return &a, nil
}

// notFound is the error for an account name that has no account; a name
// that is not canonical (CanonicalAddress) has none either.
func notFound(address string, cause error) error {
	if len(address) > 64 {
		address = address[:64] + "…"
	}
	if cause != nil {
		return fmt.Errorf("account %q: %w (%w)", address, ErrNotFound, cause)
	}
	return fmt.Errorf("account %s: %w", address, ErrNotFound)
}

// Account returns the account with that address (any form that has the
// same canonical form), or ErrNotFound.
func (s *Store) Account(ctx context.Context, address string) (*Account, error) {
	c, err := CanonicalAddress(address)
	if err != nil {
		return nil, notFound(address, err)
	}
	a, err := scanAccount(s.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE address = ?`, c))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(c, nil)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return a, nil
}

// AccountByID returns the account with that ID, or ErrNotFound.
func (s *Store) AccountByID(ctx context.Context, id int64) (*Account, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("account %d: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return a, nil
}

// Accounts lists the accounts of a domain, or of all domains when domain
// is "", by address.
func (s *Store) Accounts(ctx context.Context, domain string) ([]*Account, error) {
	q := `SELECT ` + accountCols + ` FROM accounts ORDER BY address`
	var args []any
	if domain != "" {
		d, err := NormalizeDomain(domain)
		if err != nil {
			return nil, err
		}
		q = `SELECT ` + accountCols + ` FROM accounts WHERE domain_id = (SELECT id FROM domains WHERE name = ?) ORDER BY address`
		args = append(args, d)
	}
	return queryAll(ctx, s.r, func(r rowScanner) (*Account, error) { return scanAccount(r) }, q, args...)
}

// Authenticate checks a password. It returns ErrNotFound when there is no
// such account and ErrBadPassword when the password is wrong; both take
// the time of one password check (a missing account is checked against a
// dummy hash), so the answer's timing does not tell which. An account made
// with AccountOptions.HashLater whose hash is not stored yet gives
// ErrPasswordPending. It waits for a
// free hashing slot (Options.MaxHashes) while ctx allows.
func (s *Store) Authenticate(ctx context.Context, address, password string) (*Account, error) {
	return s.authenticate(ctx, address, password, true)
}

// CheckPassword is Authenticate without the dummy check of a missing
// account: it fails at once with ErrNotFound. It is for callers that hide
// the timing themselves (core/auth answers every failed login at the same
// time after it began) and must not spend a hash on a name that has no
// account yet (a first login).
func (s *Store) CheckPassword(ctx context.Context, address, password string) (*Account, error) {
	return s.authenticate(ctx, address, password, false)
}

func (s *Store) authenticate(ctx context.Context, address, password string, dummy bool) (*Account, error) {
	var hash string
	c, cerr := CanonicalAddress(address)
	var a *Account
	err := cerr
	if err == nil {
		a, err = scanAccount(s.r.QueryRowContext(ctx, `SELECT `+accountCols+`, password_hash FROM accounts WHERE address = ?`, c), &hash)
	}
	switch {
	case err == nil:
	case cerr != nil, errors.Is(err, sql.ErrNoRows):
		if dummy {
			if _, err := s.verify(ctx, dummyHash, password); err != nil {
				return nil, err
			}
		}
		return nil, notFound(address, cerr)
	default:
		return nil, fmt.Errorf("store: %w", err)
	}
	if hash == "" {
		return nil, fmt.Errorf("account %s: %w", a.Address, ErrPasswordPending)
	}
	hit, mac := s.logins.check(c, hash, password)
	if hit {
		return a, nil // verified with this stored hash a moment ago (logincache.go)
	}
	ok, err := s.verify(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBadPassword
	}
	s.logins.put(c, mac)
	return a, nil
}

// SetPassword replaces an account's password with one the admin chose
// (PasswordAdmin): from then on the old server's password no longer opens
// the account.
func (s *Store) SetPassword(ctx context.Context, address, password string) error {
	return s.setPassword(ctx, address, password, PasswordAdmin, false)
}

// AdoptOldPassword makes password (which the old server just accepted for
// the account's user) the account's password, only while the account has
// the random password of a bulk copy and nobody has logged in to it;
// otherwise it fails with ErrBadPassword and changes nothing. The check
// and the change are one transaction.
func (s *Store) AdoptOldPassword(ctx context.Context, address, password string) error {
	return s.setPassword(ctx, address, password, PasswordOld, true)
}

func (s *Store) setPassword(ctx context.Context, address, password, origin string, onlyRandom bool) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", ErrInvalid)
	}
	c, err := CanonicalAddress(address)
	if err != nil {
		return notFound(address, err)
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx wtx, _ *changes) error {
		var cur string
		var first int64
		err := tx.QueryRowContext(ctx, `SELECT password_origin, first_login FROM accounts WHERE address = ?`, c).Scan(&cur, &first)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(c, nil)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if onlyRandom && (cur != PasswordRandom || first != 0) {
			return fmt.Errorf("account %s: %w: its password is no longer the old server's to set", c, ErrBadPassword)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = ?, password_origin = ? WHERE address = ?`, hash, origin, c); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
	// The old password no longer hits anyway (the stored hash is part of
	// the entry); forget it all the same.
	s.logins.drop(c)
	return err
}

// NoteLogin records that a user logged in to the account, the first time
// only (Account.FirstLogin); later calls change nothing and write nothing.
func (s *Store) NoteLogin(ctx context.Context, acct *Account) error {
	if !acct.FirstLogin.IsZero() {
		return nil
	}
	t := now()
	err := s.write(ctx, func(tx wtx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET first_login = ? WHERE id = ? AND first_login = 0`, t, acct.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: note login: %w", err)
	}
	acct.FirstLogin = time.Unix(t, 0)
	return nil
}

// SetOldLogin records the user name the old server accepted for the
// account (Account.OldLogin).
func (s *Store) SetOldLogin(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET old_login = ? WHERE id = ?`, name, accountID)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
		}
		return nil
	})
}

// DeleteAccount removes an account with all its mailboxes and messages.
func (s *Store) DeleteAccount(ctx context.Context, address string) error {
	c, err := CanonicalAddress(address)
	if err != nil {
		return notFound(address, err)
	}
	return s.write(ctx, func(tx wtx, ch *changes) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE address = ?`, c).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(c, nil)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id); err != nil {
			return fmt.Errorf("store: delete account: %w", err)
		}
		ch.account(id)
		return nil
	})
}

// maxMigrationError bounds an account's kept migration error: it may quote
// the old server's words, and is shown to the admin.
const maxMigrationError = 1000

// SetAccountMigration records an account's migration state and last error
// (kept Printable).
func (s *Store) SetAccountMigration(ctx context.Context, accountID int64, state, errText string) error {
	return s.write(ctx, func(tx wtx, ch *changes) error {
		return setAccountMigration(ctx, tx, ch, accountID, state, errText)
	})
}

func setAccountMigration(ctx context.Context, tx wtx, ch *changes, accountID int64, state, errText string) error {
	res, err := tx.ExecContext(ctx, `UPDATE accounts SET mig_state = ?, mig_error = ?, mig_updated = ? WHERE id = ?`,
		state, Printable(errText, maxMigrationError), now(), accountID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("account %d: %w", accountID, ErrNotFound)
	}
	ch.account(accountID)
	return nil
}
