package migrate

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// MigrateAccount copies one account now and waits until the copy is done
// (or ctx ends: the copy then goes on in the background). The account is
// created if needed, with cred.Password as its password; with a master user
// and no password it gets a random password nobody knows, and the user's
// first login at Mailferry (Login or FirstLogin) checks the password at the
// old server and makes it the account's password. The credentials stay in
// memory for catch-up runs; they are never stored.
func (e *Engine) MigrateAccount(ctx context.Context, address string, cred Credentials) error {
	if e.isClosed() {
		return ErrClosed
	}
	address, err := store.CanonicalAddress(address)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	cred.Address = address
	_, domain, _ := strings.Cut(address, "@")
	if cred.Password == "" && !cred.master() {
		return fmt.Errorf("migrate: %s: %w: no password and no master user", address, ErrNoCredentials)
	}
	s, err := migratingSettings(ctx, e.st, domain)
	if err != nil {
		return err
	}
	acct, err := e.st.Account(ctx, address)
	if errors.Is(err, store.ErrNotFound) {
		acct, err = e.createForBulk(ctx, s, cred)
	}
	if err != nil {
		return err
	}
	if acct.Migration == "" {
		return fmt.Errorf("migrate: %s: %w: a native account (not made by migration)", address, store.ErrExists)
	}
	cred.OldLogin = acct.OldLogin
	e.remember(acct.ID, cred)
	if e.scheduleRun(acct.ID, acct.Address, 0, true) == nil {
		return ErrClosed
	}
	return e.Wait(ctx, acct.Address)
}

// migrateAccount is MigrateAccount without waiting for the account's
// password hash (MigrateUsers waits for them all at its end, so that a
// slot is not held by a hash while copies wait).
func (e *Engine) migrateAccount(ctx context.Context, address string, cred Credentials) error {
	ctx = context.WithValue(ctx, skipHashWait{}, true)
	return e.MigrateAccount(ctx, address, cred)
}

// skipHashWait in a context makes Wait leave out the password hash.
type skipHashWait struct{}

// createForBulk checks the credentials at the old server and creates the
// account with the old INBOX's UIDVALIDITY and UIDNEXT. The connection is
// kept for the copy.
func (e *Engine) createForBulk(ctx context.Context, s *oldSettings, cred Credentials) (*store.Account, error) {
	// A bulk run waits for a place under the old server's cap; the
	// connection keeps it for the copy.
	lim := e.limits(s)
	if err := lim.acquire(ctx); err != nil {
		return nil, err
	}
	c, name, err := e.connectAs(ctx, s, cred)
	if err != nil {
		lim.release()
		return nil, err
	}
	password, origin := cred.Password, store.PasswordOld
	if password == "" {
		origin = store.PasswordRandom
		if password, err = randomPassword(); err != nil {
			closeExtra(lim, c)
			return nil, err
		}
	}
	// The user's own password is hashed off the copy's path (hashLater:
	// one background hash at a time, the copies first); a random one is
	// hashed now, as an account whose hash never came would then be shut
	// (only a password of the old server's can be asked for again).
	later := origin == store.PasswordOld
	acct, err := e.createFromOld(ctx, c, cred.Address, password, name, origin, later, false)
	if err != nil {
		closeExtra(lim, c)
		if errors.Is(err, store.ErrExists) {
			return e.st.Account(ctx, cred.Address)
		}
		return nil, err
	}
	cred.OldLogin = name
	if later {
		e.hashLater(acct, password, lim.logins)
	}
	e.keepConn(acct.ID, cred, c, lim)
	return acct, nil
}

// UserResult is the outcome of one user of MigrateUsers.
type UserResult struct {
	Address string `json:"address"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	// Problem is Error in words an admin understands, with what to do
	// next (oldserver.Explain); nil when OK.
	Problem *oldserver.Problem `json:"problem,omitempty"`
}

// MigrateUsers copies the accounts of users of domain (an Address without
// "@" is a local part of domain), up to Options.Accounts at once (0: as
// many as the old server's connection cap, each holding one connection
// from its login check to its copy's end), and returns one result per
// user in order. progress, if not nil, gets the
// events of these accounts, from one goroutine, until MigrateUsers returns.
// The error is non-nil only when ctx ended or the engine closed; failures
// of single users are in the results.
func (e *Engine) MigrateUsers(ctx context.Context, domain string, users []Credentials, progress func(Event)) ([]UserResult, error) {
	domain, err := store.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s, err := migratingSettings(ctx, e.st, domain)
	if err != nil {
		return nil, err
	}
	results := make([]UserResult, len(users))
	want := map[string]bool{}
	for i, u := range users {
		a := strings.TrimSpace(u.Address)
		if a != "" && !strings.Contains(a, "@") {
			a += "@" + domain
		}
		if c, err := store.CanonicalAddress(a); err == nil {
			a = c
		}
		results[i].Address = a
		want[strings.ToLower(a)] = true
	}
	var fwd sync.WaitGroup
	if progress != nil {
		ch, cancel := e.Subscribe()
		defer func() { cancel(); fwd.Wait() }()
		fwd.Add(1)
		go func() {
			defer fwd.Done()
			defer func() {
				if r := recover(); r != nil {
					e.log.Error("migrate: panic in progress callback", "panic", r)
					for range ch {
					}
				}
			}()
			for ev := range ch {
				if want[strings.ToLower(ev.Account.Address)] {
					progress(ev)
				}
			}
		}()
	}
	sem := make(chan struct{}, cmp.Or(e.opts.Accounts, e.limits(s).places()))
	var wg sync.WaitGroup
	for i, u := range users {
		a := results[i].Address
		_, d, err := store.SplitAddress(a)
		if err != nil || d != domain {
			results[i].Error = fmt.Sprintf("not an address of %s", domain)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return results, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := true // this user's place in sem
			defer func() {
				if held {
					<-sem
				}
			}()
			defer func() {
				if r := recover(); r != nil {
					results[i].Error = fmt.Sprintf("panic: %v", r)
					e.log.Error("migrate: panic", "account", a, "panic", r)
				}
			}()
			u.Address = a
			err := e.migrateAccount(ctx, a, u)
			for errors.Is(err, store.ErrLeased) {
				// Another process copies the account now (a second bulk
				// run on another node, or serve): wait for it, then catch
				// up, rather than fail or copy it twice. Its place goes
				// to the users nobody copies meanwhile, so that two runs
				// of one list share the users instead of one waiting.
				e.log.Info("migrate: account being copied by another process; waiting for it", "account", a)
				<-sem
				held = false
				if err = sleepCtx(ctx, e.opts.LeaseTTL/3); err != nil {
					break
				}
				select {
				case sem <- struct{}{}:
					held = true
				case <-ctx.Done():
					err = ctx.Err()
				}
				if !held {
					break
				}
				err = e.migrateAccount(ctx, a, u)
			}
			if err != nil {
				results[i].Error = err.Error()
				p := oldserver.Explain(err)
				results[i].Problem = &p
			} else {
				results[i].OK = true
			}
		}()
	}
	wg.Wait()
	// The password hashes left to store (hashLater) are stored before
	// this returns: a bulk run that ends leaves every hash it made. With
	// no copy left to come first, they go at once (hashNow).
	e.hashNow(want)
	for _, r := range results {
		if r.OK {
			if err := e.waitHash(ctx, r.Address); err != nil && ctx.Err() == nil {
				e.log.Warn("migrate: waiting for a password hash", "account", r.Address, "err", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return results, err
	}
	return results, nil
}

// UsersFileError is what is wrong with a users file (ReadUsersCSV).
type UsersFileError struct {
	// Line is the line at fault; 0 when the file as a whole is.
	Line int
	Err  error
}

func (e *UsersFileError) Error() string {
	if e.Line == 0 {
		return "migrate: users file: " + e.Problem()
	}
	return "migrate: users file " + e.Problem()
}

// Problem says what is wrong and where, without the "migrate: users file"
// prefix: "line 3: bad user ...".
func (e *UsersFileError) Problem() string {
	if e.Line == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *UsersFileError) Unwrap() error { return e.Err }

// ReadUsersCSV reads a users file for MigrateUsers: one user a line,
// "user" or "user,password" (RFC 4180 quoting; a user without "@" is a
// local part of the domain). Empty lines, lines starting with "#" and a
// first line "user,password" (a header) are skipped. With a master user a
// password may be left out.
func ReadUsersCSV(r io.Reader) ([]Credentials, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	var out []Credentials
	seen := map[string]int{}
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, &UsersFileError{Err: err}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 0 || (len(rec) == 1 && strings.TrimSpace(rec[0]) == "") {
			continue
		}
		if len(rec) > 2 {
			return nil, &UsersFileError{Line: line, Err: fmt.Errorf("want user[,password], got %d fields", len(rec))}
		}
		user := strings.TrimSpace(rec[0])
		if n == 0 && strings.EqualFold(user, "user") && (len(rec) == 1 || strings.EqualFold(strings.TrimSpace(rec[1]), "password")) {
			continue
		}
		if user == "" || strings.ContainsAny(user, " \t\r\n\"<>,") || strings.Count(user, "@") > 1 {
			return nil, &UsersFileError{Line: line, Err: fmt.Errorf("bad user %q", user)}
		}
		if prev, dup := seen[strings.ToLower(user)]; dup {
			return nil, &UsersFileError{Line: line, Err: fmt.Errorf("user %q already on line %d", user, prev)}
		}
		seen[strings.ToLower(user)] = line
		c := Credentials{Address: user}
		if len(rec) == 2 {
			c.Password = rec[1]
		}
		out = append(out, c)
	}
}

// sleepCtx waits d, or less when ctx ends (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
