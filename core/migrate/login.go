package migrate

// Logins and credentials: first logins (an account made from the old
// server's yes), adoption of a bulk copy's account, and the old-server
// credentials the engine keeps in memory only.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/store"
)

// SetMasterCredentials keeps, in memory only, a master user of the old
// server of domain; jobs of that domain's accounts log in with it when they
// have no password of their own. An empty user means the domain settings'
// MasterUser; an empty password forgets the master user.
func (e *Engine) SetMasterCredentials(domain, user, password string) error {
	d, err := store.NormalizeDomain(domain)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if password == "" {
		delete(e.masters, d)
	} else {
		e.masters[d] = Credentials{MasterUser: user, MasterPassword: password}
	}
	return nil
}

// credsFor returns how to log in to the old server for an account.
func (e *Engine) credsFor(acct *store.Account) (Credentials, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.creds[acct.ID]; ok {
		c.Address, c.OldLogin = acct.Address, acct.OldLogin
		return c, true
	}
	_, domain, err := store.SplitAddress(acct.Address)
	if err != nil {
		return Credentials{}, false
	}
	if m, ok := e.masters[domain]; ok {
		m.Address, m.OldLogin = acct.Address, acct.OldLogin
		return m, true
	}
	return Credentials{}, false
}

func (e *Engine) remember(id int64, c Credentials) {
	if c.Password == "" && !c.master() {
		return
	}
	e.mu.Lock()
	e.creds[id] = c
	e.mu.Unlock()
}

func (e *Engine) forget(id int64, c Credentials) {
	e.mu.Lock()
	if cur, ok := e.creds[id]; ok && cur == c {
		delete(e.creds, id)
	}
	e.mu.Unlock()
}

// FirstLogin handles the login of a user who has no account yet. If the
// user's domain is migrating, it checks the password at the old server's
// IMAP; if the old server accepts it, it creates the account with that
// password (hashed), bound to the login name the old server accepted
// (store.Account.OldLogin), and an INBOX keeping the old UIDVALIDITY and
// UIDNEXT, starts copying the mailbox in the background and returns at
// once. username is made canonical first (store.CanonicalAddress): one
// person, one account, whatever case or trailing dot they type.
//
// A wrong password, or a name that cannot be an account's, returns an
// error wrapping ErrBadPassword and creates nothing; a domain that is
// unknown or not migrating returns ErrNotMigrating. Any other error (the
// old server cannot be reached) means "try again later".
//
// An account that exists already is returned only if password is its
// password (a concurrent first login made it), or if it still has the
// random password of a master-user bulk copy and nobody has logged in to
// it: then the old server is asked, with the account's own old login name,
// and its yes makes password the account's (store.AdoptOldPassword). An
// account whose password the admin set, or that someone has logged in to,
// is never opened with the old server's password.
func (e *Engine) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	if e.isClosed() {
		return nil, ErrClosed
	}
	address, err := store.CanonicalAddress(username)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w: %w", ErrBadPassword, err)
	}
	local, domain, _ := strings.Cut(address, "@")
	if password == "" {
		return nil, fmt.Errorf("migrate: %s: %w", address, ErrBadPassword)
	}
	s, err := migratingSettings(ctx, e.st, domain)
	if err != nil {
		return nil, err
	}
	// Copy work waits while this login asks the old server (logingate.go).
	defer e.limits(s).logins.enter()()
	if s.IgnoresDomain && !strings.EqualFold(s.DefaultDomain, domain) {
		// The old server would take alice@this-domain for alice of its
		// one domain.
		return nil, fmt.Errorf("migrate: %s: %w: the old server ignores the domain of user names, and its users are %s's", address, ErrBadPassword, s.DefaultDomain)
	}
	if sep := s.MasterSeparator; sep != "" && strings.Contains(local, strings.ToLower(sep)) {
		// "user*master" would be a master login at the old server.
		return nil, fmt.Errorf("migrate: %s: %w: the name holds the old server's master-user separator %q", address, ErrBadPassword, sep)
	}
	if acct, err := e.st.Account(ctx, address); err == nil {
		return e.adopt(ctx, s, acct, password)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	cred := Credentials{Address: address, Password: password}
	// The login's connection takes a place under the old server's cap if
	// one is free (it keeps it for the copy); a login never waits for one.
	var place *connLimit
	if lim := e.limits(s); lim.tryAcquire() {
		place = lim
	}
	c, name, err := e.connectAs(ctx, s, cred)
	if err != nil {
		if place != nil {
			place.release()
		}
		return nil, err
	}
	acct, err := e.createFromOld(ctx, c, address, password, name, store.PasswordOld, true, true)
	if err != nil {
		keptConn{c: c, place: place}.close()
		if errors.Is(err, store.ErrExists) { // a concurrent first login won
			if acct, err = e.st.Account(ctx, address); err == nil {
				return e.adopt(ctx, s, acct, password)
			}
		}
		return nil, err
	}
	cred.OldLogin = name
	e.hashLater(acct, password, e.limits(s).logins)
	e.log.Info("migrate: account created at first login", "account", acct.Address, "old_login", name, "delim", string(acct.Delim))
	e.remember(acct.ID, cred)
	e.keepConn(acct.ID, cred, c, place) // the copy starts on it
	e.prog.update(acct.ID, acct.Address, EventState, "", func(a *AccountProgress) { a.State = store.MigPending })
	e.schedule(acct.ID, acct.Address)
	return acct, nil
}

// createFromOld creates the account of address with the old server's
// hierarchy separator and an INBOX keeping the old UIDVALIDITY and UIDNEXT,
// read on c (logged in as the user, whose name there is oldLogin). An
// account that exists already gives an error wrapping store.ErrExists.
// With hashLater the password's hash is not stored yet (see hashLater);
// atLogin: the account is made at its user's login (store.AccountOptions.AtLogin).
func (e *Engine) createFromOld(ctx context.Context, c *imapclient.Client, address, password, oldLogin, origin string, hashLater, atLogin bool) (*store.Account, error) {
	// STATUS INBOX goes out with NAMESPACE, before its answer: one round
	// trip to the old server where there were two, on the path of the
	// login's answer (neither command depends on the other). Only
	// UIDVALIDITY and UIDNEXT, which a server answers from its index at
	// once (SIZE may make it read every message).
	inboxCmd := c.Status("INBOX", &imap.StatusOptions{UIDNext: true, UIDValidity: true})
	ns, err := readNamespace(c)
	inboxData, ierr := inboxCmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", address, err)
	}
	if ierr != nil {
		return nil, fmt.Errorf("migrate: %s: INBOX: %w", address, ierr)
	}
	inbox := toStatus(inboxData)
	acct, err := e.st.CreateAccount(ctx, address, password, &store.AccountOptions{
		Delim:     ns.delim,
		Migration: store.MigPending,
		Inbox: &store.MailboxOptions{UIDValidity: inbox.uidValidity, UIDNext: inbox.uidNext, Subscribed: true,
			Migration: store.MigPending, OldName: "INBOX"},
		OldLogin:       oldLogin,
		PasswordOrigin: origin,
		HashLater:      hashLater,
		AtLogin:        atLogin,
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: create account %s: %w", address, err)
	}
	return acct, nil
}

// adopt returns an existing account for a login with password, as
// FirstLogin describes.
func (e *Engine) adopt(ctx context.Context, s *oldSettings, acct *store.Account, password string) (*store.Account, error) {
	if acct.Migration == "" {
		return nil, fmt.Errorf("migrate: %s: %w: account was not made by migration", acct.Address, store.ErrExists)
	}
	cred := Credentials{Address: acct.Address, Password: password, OldLogin: acct.OldLogin}
	if _, err := e.st.Authenticate(ctx, acct.Address, password); err == nil {
		e.remember(acct.ID, cred)
		e.kick(acct, false)
		return acct, nil
	} else if errors.Is(err, store.ErrPasswordPending) {
		return e.adoptPending(ctx, s, acct, cred)
	} else if !errors.Is(err, store.ErrBadPassword) {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if acct.PasswordOrigin != store.PasswordRandom || !acct.FirstLogin.IsZero() {
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, ErrBadPassword)
	}
	c, name, err := e.connectAs(ctx, s, cred)
	if err != nil {
		return nil, err
	}
	closeClient(c)
	if err := e.st.AdoptOldPassword(ctx, acct.Address, password); err != nil {
		if errors.Is(err, store.ErrBadPassword) {
			return nil, fmt.Errorf("migrate: %s: %w", acct.Address, ErrBadPassword)
		}
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
	}
	if acct.OldLogin == "" {
		if err := e.st.SetOldLogin(ctx, acct.ID, name); err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
		}
		acct.OldLogin, cred.OldLogin = name, name
	}
	acct.PasswordOrigin = store.PasswordOld
	e.log.Info("migrate: account password taken from the old server", "account", acct.Address)
	e.remember(acct.ID, cred)
	e.kick(acct, false)
	return acct, nil
}

// hashLater stores the password hash of an account FirstLogin just made
// (store.AccountOptions.HashLater) in a goroutine of the engine's, so that
// the login is answered once the old server said yes: the argon2id hash
// (tens of ms of CPU, 19 MiB) is off the answer's path, one such hash at
// a time (then in one of the store's hashing slots), so that logins
// checking passwords and copies come first. A bulk copy with the user's
// password hashes it so too (createForBulk). Until it is stored, CheckPending answers for the
// account from memory; if the process ends first, the account's next
// login asks the old server again (adoptPending).
func (e *Engine) hashLater(acct *store.Account, password string, logins *loginGate) {
	p := pendingHash{address: acct.Address, sum: sha256.Sum256([]byte(password)), stored: make(chan struct{}), now: make(chan struct{})}
	e.mu.Lock()
	e.pending[acct.ID] = p
	e.mu.Unlock()
	e.goSafe("password hash of "+acct.Address, func() {
		// One such hash at a time (e.hashes): the store's other hashing
		// slots stay free for logins, and the CPU for copies. A clean
		// shutdown still stores it.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Minute)
		defer cancel()
		var err error
		logins.wait(wctx) // first logins at the account's old server being answered come first; wctx's end shows below
		select {
		case <-p.now:
			// Told to go now (hashNow: a bulk run's copies are done and
			// no other account's copy runs): at once, up to the CPUs,
			// each in one of the store's hashing slots.
			select {
			case e.wide <- struct{}{}:
				err = e.storeHash(wctx, acct, password)
				<-e.wide
			case <-wctx.Done():
				err = wctx.Err()
			}
		case e.hashes <- struct{}{}:
			err = e.storeHash(wctx, acct, password)
			<-e.hashes
		case <-wctx.Done():
			err = wctx.Err()
		}
		if err != nil {
			e.log.Warn("migrate: storing the password hash failed; the next login asks the old server", "account", acct.Address, "err", err)
		}
		e.mu.Lock()
		if cur, ok := e.pending[acct.ID]; ok && cur.stored == p.stored {
			// Not another account's, made since with the same ID.
			delete(e.pending, acct.ID)
		}
		alone := len(e.pending) == 0 && len(e.jobs) <= 1
		e.mu.Unlock()
		close(p.stored)
		if alone {
			// The hash's 19 MiB go back to the OS now, while the copy
			// beside it is young, not at the scavenger's pace: the peak
			// RSS of a one-account copy is otherwise both at once.
			freeOSMemory()
		}
	})
}

// storeHash hashes password and stores it for acct (hashLater, in one of
// its places). With another account's hash to come, it collects before it
// returns: this hash's 19 MiB are garbage now, and collected before the
// next hash allocates its own they are free heap, still resident, for it
// to take. Otherwise the next allocation came first and took pages the
// runtime had given back to the OS (page faults: with hashes back to back
// in a 50-account migrate, memclr alone was 17% of its CPU).
func (e *Engine) storeHash(wctx context.Context, acct *store.Account, password string) error {
	ctx, cancel := context.WithTimeout(wctx, time.Minute)
	err := e.st.FinishPassword(ctx, acct, password)
	cancel()
	e.mu.Lock()
	next := len(e.pending) > 1 // another account's hash comes after this one
	e.mu.Unlock()
	if next {
		collectHash()
	}
	return err
}

// pendingHash is a password whose hash hashLater is storing.
type pendingHash struct {
	address string        // the account's, which its ID alone may not name for ever
	sum     [32]byte      // SHA-256 of the password, compared in constant time
	stored  chan struct{} // closed once the hash is stored (or failed to be)
	now     chan struct{} // closed (hashNow, under e.mu) to skip the one-at-a-time turn
}

// hashNow tells the pending hashes of addresses (lower-cased) to go now,
// no longer one at a time, if no account's copy runs or waits: a bulk run
// whose copies are done (`mailferry migrate`) waits for its hashes, and
// one at a time they were its last seconds (50 accounts: 50 argon2id
// hashes of tens of ms of CPU each, one core busy, the other idle). They
// still take the store's hashing slots, which logins share.
func (e *Engine) hashNow(addresses map[string]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.jobs) > 0 {
		return // copies first (and their first logins' hashes, in turn)
	}
	for _, p := range e.pending {
		if !addresses[strings.ToLower(p.address)] || p.now == nil {
			continue
		}
		select {
		case <-p.now:
		default:
			close(p.now)
		}
	}
}

// CheckPending checks password against acct, an account whose hash
// hashLater is still storing: known is false when this engine holds no
// such password for it (the caller then asks FirstLogin, which asks the
// old server), also when the password held under acct's ID was another
// account's (deleted since, its ID given again); ok tells whether password
// is the one the old server accepted. The comparison is in constant time.
func (e *Engine) CheckPending(acct *store.Account, password string) (known, ok bool) {
	if acct == nil {
		return false, false
	}
	e.mu.Lock()
	p, known := e.pending[acct.ID]
	e.mu.Unlock()
	if !known || p.address != acct.Address {
		return false, false
	}
	got := sha256.Sum256([]byte(password))
	return true, subtle.ConstantTimeCompare(got[:], p.sum[:]) == 1
}

// adoptPending handles the login of an account whose hash was never
// stored (the process ended before hashLater did): the password this
// engine holds decides if it holds one; otherwise the old server, asked
// with the account's own old login name, does, and its yes stores the
// hash. (Should migration be turned off meanwhile, such an account needs
// a password from the admin: `mailferry account passwd`.)
func (e *Engine) adoptPending(ctx context.Context, s *oldSettings, acct *store.Account, cred Credentials) (*store.Account, error) {
	if acct.PasswordOrigin != store.PasswordOld || acct.OldLogin == "" {
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, ErrBadPassword)
	}
	if known, ok := e.CheckPending(acct, cred.Password); known {
		if !ok {
			return nil, fmt.Errorf("migrate: %s: %w", acct.Address, ErrBadPassword)
		}
		return acct, nil
	}
	c, _, err := e.connectAs(ctx, s, cred)
	if err != nil {
		return nil, err
	}
	closeClient(c)
	if err := e.st.FinishPassword(ctx, acct, cred.Password); err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", acct.Address, err)
	}
	e.log.Info("migrate: password hash stored at a later login", "account", acct.Address)
	e.remember(acct.ID, cred)
	e.kick(acct, false)
	return acct, nil
}

// LoggedIn tells the engine an existing account logged in with password.
// It never blocks: it remembers the password (in memory) for the old
// server, only if it is the old server's (store.PasswordOld),
// and, if the account's domain is migrating, resumes an unfinished copy or
// starts a catch-up run for mail that arrived on the old server since.
func (e *Engine) LoggedIn(acct *store.Account, password string) {
	if acct == nil || acct.Migration == "" || e.isClosed() {
		return
	}
	if password != "" && acct.PasswordOrigin == store.PasswordOld {
		// The account's password is the old server's (an admin-set one is
		// never sent to the old server).
		e.remember(acct.ID, Credentials{Address: acct.Address, Password: password, OldLogin: acct.OldLogin})
	}
	e.kick(acct, true)
}

// randomPassword returns a password nobody knows, for an account created by
// a master-user bulk copy without the user's password.
func randomPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// freeOSMemory is debug.FreeOSMemory (a test counts its calls).
var freeOSMemory = debug.FreeOSMemory

// collectHash is runtime.GC (a test counts its calls).
var collectHash = runtime.GC

// afterHash runs before an account's first copy streams: the account was
// just made, and hashing its password (argon2id) left about 19 MiB of
// garbage that would otherwise set the collector's pace for the whole
// copy, so a collection resets the pace. When the copy is the engine's
// only work (one first login, a one-account migrate), that memory is also
// given back to the OS, for the lowest peak RSS. With other accounts'
// jobs or hashes about, it is kept for them to reuse: given back each
// time, every next hash faulted its 19 MiB in afresh (page faults and TLB
// shootdowns were about 40% of the CPU of a 50-account migrate).
func (e *Engine) afterHash(id int64) {
	e.mu.Lock()
	_, own := e.pending[id]
	others := len(e.jobs) > 1 || len(e.pending) > 1 || (len(e.pending) == 1 && !own)
	e.mu.Unlock()
	if others {
		runtime.GC()
		return
	}
	freeOSMemory()
}

// waitHash waits until the password hash of address is stored, if
// hashLater is storing one.
func (e *Engine) waitHash(ctx context.Context, address string) error {
	acct, err := e.st.Account(ctx, address)
	if err != nil {
		return err
	}
	return e.waitHashOf(ctx, acct.ID)
}

func (e *Engine) waitHashOf(ctx context.Context, id int64) error {
	e.mu.Lock()
	p, hashing := e.pending[id]
	e.mu.Unlock()
	if !hashing {
		return nil
	}
	select {
	case <-p.stored:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
