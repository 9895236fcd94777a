package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords: argon2id hashes, computed a bounded number at a time.

// argon2id parameters (OWASP: m=19 MiB, t=2, p=1). Variables only so that
// a test binary built with the tag mailferry_testhash can make them
// cheap (testhash.go); nothing else changes them.
var (
	argonTime   uint32 = 2
	argonMemory uint32 = 19 * 1024
	// cheapTestHash is true in a test binary built with mailferry_testhash.
	cheapTestHash bool
)

const (
	argonThreads = 1
	argonKeyLen  = 32
)

// dummyHash has the parameters of HashPassword; a login for a missing
// account is checked against it, so that it takes as long as a wrong
// password.
var dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$bWFpbGZlcnJ5LWR1bW15$Bxq1s1n0Yl8A0J8dWb3nK0fJkq0h3tq3m5x9YxQyG8o"

// hashing bounds the password hashes computed at once (Options.MaxHashes).
type hashing struct{ slots chan struct{} }

func newHashing(n int) *hashing {
	if n <= 0 {
		n = min(runtime.NumCPU(), 4)
	}
	return &hashing{slots: make(chan struct{}, n)}
}

// run runs fn in a hashing slot, waiting for one while ctx allows.
func (h *hashing) run(ctx context.Context, fn func()) error {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: waiting to check a password: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	warmHashMemory()
	fn()
	return nil
}

// HashesInUse is the number of password hashes being computed now.
func (s *Store) HashesInUse() int { return len(s.hashes.slots) }

func (s *Store) hash(ctx context.Context, password string) (hash string, err error) {
	if rerr := s.hashes.run(ctx, func() { hash, err = HashPassword(password) }); rerr != nil {
		return "", rerr
	}
	return hash, err
}

func (s *Store) verify(ctx context.Context, hash, password string) (ok bool, err error) {
	err = s.hashes.run(ctx, func() { ok = VerifyPassword(hash, password) })
	return ok, err
}

// HashPassword returns an argon2id hash of password in the PHC string form
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches a hash made by
// HashPassword, in constant time.
func VerifyPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// SpendCheck costs what a password check costs (in a hashing slot) and
// checks nothing: for a login that has no account to check against, so
// that it takes as long as a wrong password (see CheckPassword).
func (s *Store) SpendCheck(ctx context.Context, password string) error {
	_, err := s.verify(ctx, dummyHash, password)
	return err
}

// FinishPassword stores the hash of password for acct, an account made
// with AccountOptions.HashLater, computing it in a hashing slot. It changes
// nothing if the account has a hash already (an admin set a password
// meanwhile) and fails with ErrNotFound if the account is gone, also when
// its ID now names another account (one deleted and another made since:
// SQLite gives the highest ID again), which must never take this password.
func (s *Store) FinishPassword(ctx context.Context, acct *Account, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", ErrInvalid)
	}
	if acct == nil {
		return fmt.Errorf("%w: no account", ErrInvalid)
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		var cur, address string
		err := tx.QueryRowContext(ctx, `SELECT password_hash, address FROM accounts WHERE id = ?`, acct.ID).Scan(&cur, &address)
		if errors.Is(err, sql.ErrNoRows) || err == nil && address != acct.Address {
			return fmt.Errorf("account %s (%d): %w", acct.Address, acct.ID, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if cur != "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = ? WHERE id = ? AND address = ? AND password_hash = ''`,
			hash, acct.ID, acct.Address); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
}

// PendingPasswords lists, sorted, the addresses of domain's accounts whose
// password hash was never stored (AccountOptions.HashLater, and the process
// ended, or FinishPassword failed, before it was): until a login the old
// server accepts stores it, no password opens them here.
func (s *Store) PendingPasswords(ctx context.Context, domain string) ([]string, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT address FROM accounts
		WHERE password_hash = '' AND domain_id = (SELECT id FROM domains WHERE name = ?) ORDER BY address`, d)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}
