// Package auth is Mailferry's one login policy: IMAP, SMTP AUTH (and POP3)
// all log users in through Policy.Login and count connections through
// Policy.Listener.
//
// Invariants:
//   - One person, one account: the login name is brought to its canonical
//     form (core/auth/addr) before any lookup or create; a name longer than
//     addr.MaxInput bytes is refused before it is logged or kept.
//   - No account without the old server's word: a login for an address
//     without an account creates one only through the Migrator (the old
//     server's IMAP accepts the password). An existing account accepts the
//     old server's password only while it has the random password of a bulk
//     copy and nobody has logged in to it (store.AdoptOldPassword).
//   - Failed logins cost the attacker, not the owner. A login takes a token
//     from its source's bucket (an IPv4 address, an IPv6 /64), its
//     network's (an IPv4 /24, an IPv6 /48) and the bucket of its account
//     and source before the password is checked, and gets them back on
//     success; an empty bucket refuses without a check, unless logins
//     holding its tokens are still being checked: then the login waits for
//     them (at most Options.MaxWait; then ErrUnavailable), so that a burst
//     of good logins behind one address (an office's NAT) all get in, one
//     as another's token comes back, while checks in flight and failures
//     together never exceed the bucket.
//     The owner logging in from elsewhere has buckets of their own, so a
//     stranger's guesses never lock the owner out.
//   - Failures are counted by every process on the store alike (several
//     nodes on one PostgreSQL database, or serve beside another process
//     on one SQLite file): each failure is also written to the store
//     (store.NoteLoginFailure, one small write per failed login, made even
//     if the client hangs up), and a login is refused when the failures
//     of its source, network or account and source, counted there by all,
//     have spent the bucket (shared.go). Each login also takes a place
//     there among the logins being checked before its check, and gives
//     it back after (two small writes per login): a bucket's failures and
//     checks under way on every node together never exceed it, so N
//     nodes checking guesses at once still check one bucketful between
//     them; a login finding the places taken by checks under way waits
//     for their outcome (at most Options.MaxWait), as above.
//   - Bounded cost: password hashes run at most store.Options.MaxHashes at
//     once, first logins (which reach the old server) at most
//     Options.MaxFirstLogins at once, connections per source at most
//     Options.MaxConnsPerSource; a login waits for a hashing slot, a
//     first login for a place at the old server, at most Options.MaxWait,
//     and as long for its place among the shared checks (a node frozen
//     holding their lock must not hang every login); every failure is
//     answered Options.Delay after the login began (or as long after as the old server's slowest of
//     its last 8 refusals took, when that is longer), so that its timing
//     tells neither whether the account exists nor whether it has moved; a missing account costs
//     one hash as a wrong password does, unless it goes to the old server.
//   - A first login is answered once the old server said yes: the new
//     account's hash is stored after the answer (PendingChecker), never
//     weaker, and no password opens the account from the store until then.
//   - An old server that cannot be reached is ErrUnavailable (try again),
//     never a wrong password, and is not charged to the account (it is to
//     the source, which cannot make the server work for free).
//   - Passwords are never logged or kept in clear.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailferry/core/auth/addr"
	"mailferry/core/migrate"
	"mailferry/core/store"
)

// Errors of Login. Front ends answer ErrFailed as a wrong name or password
// (IMAP NO [AUTHENTICATIONFAILED], SMTP 535), ErrLimited and
// ErrUnavailable as "try again later" (IMAP NO [UNAVAILABLE], SMTP 454).
var (
	ErrFailed      = errors.New("auth: wrong user name or password")
	ErrLimited     = errors.New("auth: too many failed logins, try again later")
	ErrUnavailable = errors.New("auth: login temporarily unavailable, try again later")
)

// DefaultMaxFirstLogins is Options.MaxFirstLogins by default: a morning's
// burst of 50 users logging in at once is checked at the old server at
// once (with 32, the last 18 waited for the first ones' answers, which
// added a whole old-server login to the burst's p90), and with the
// copies' connections beside them (10 by default) stays under Dovecot's
// default process_limit of 100 login processes.
const DefaultMaxFirstLogins = 64

// Migrator makes the account of a first login from the old server's
// answer; *migrate.Engine is one.
type Migrator interface {
	// FirstLogin checks the password at the old server and creates (or
	// adopts) the account; see migrate.Engine.FirstLogin for its errors.
	FirstLogin(ctx context.Context, username, password string) (*store.Account, error)
	// LoggedIn is told of every successful login; it must not block.
	LoggedIn(acct *store.Account, password string)
}

var _ Migrator = (*migrate.Engine)(nil)

// PendingChecker is a Migrator that makes accounts whose password hash it
// stores after the login was answered (store.AccountOptions.HashLater),
// and answers for them until then; *migrate.Engine is one.
type PendingChecker interface {
	// CheckPending reports whether it holds the password of the account
	// (known) and whether password is it (ok).
	CheckPending(acct *store.Account, password string) (known, ok bool)
}

var _ PendingChecker = (*migrate.Engine)(nil)

// Options configures a Policy. Zero fields mean the defaults given.
type Options struct {
	// Store holds the accounts; required.
	Store *store.Store
	// Migrator handles logins of addresses without an account; nil means
	// none (such a login fails).
	Migrator Migrator
	// Logger receives one line per refused login; nil means slog.Default().
	Logger *slog.Logger
	// PerSource is how many failed logins a source (an IPv4 address or an
	// IPv6 /64) may have in a row; 0 means 20.
	PerSource int
	// PerAccount is how many failed logins one account may have in a row
	// from one source; 0 means 10.
	PerAccount int
	// Refill is the time after which a bucket gets one attempt back; 0
	// means one minute.
	Refill time.Duration
	// PerNetwork is how many failed logins a network (an IPv4 /24, an IPv6
	// /48) may have in a row; 0 means 5 × PerSource.
	PerNetwork int
	// Delay is how long after it began a failed login is answered, so that
	// a wrong password checked here and one checked at the old server (or
	// a missing account) take the same time; 0 means 3 seconds (above
	// Dovecot's own 2-second failure delay), a negative value none.
	Delay time.Duration
	// MaxWait bounds a login's wait for a hashing slot (a flood ahead of
	// it), a first login's for a place at the old server
	// (MaxFirstLogins), a login's wait for a token of an empty bucket
	// that logins being checked hold, and for the shared counts in the
	// store; 0 means 10 seconds. It is then answered ErrUnavailable.
	MaxWait time.Duration
	// MaxFirstLogins bounds the first logins checked at the old server at
	// once; 0 means DefaultMaxFirstLogins. (One costs an old-server
	// connection for as long as the old server takes to answer, and no
	// hash: the first morning's burst of users should be limited by the
	// old server, not by this bound.)
	MaxFirstLogins int
	// FirstLoginTimeout bounds one first login; 0 means 2 minutes.
	FirstLoginTimeout time.Duration
	// MaxConnsPerSource bounds the open connections of one source on a
	// Listener that names no bound of its own; 0 means 50 (an office
	// behind one NAT address shares it).
	MaxConnsPerSource int
}

// Policy is the login policy. It is safe for concurrent use.
type Policy struct {
	st    *store.Store
	mig   Migrator
	log   *slog.Logger
	opts  Options
	lim   *limiter
	first chan struct{}
	// refusals: how long the old server's last refusals took, so that a
	// failure checked here takes as long (failed).
	refusals refusalTimes
}

// New makes a Policy.
func New(opts Options) (*Policy, error) {
	if opts.Store == nil {
		return nil, errors.New("auth: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.PerSource, 20)
	def(&opts.PerAccount, 10)
	def(&opts.MaxFirstLogins, DefaultMaxFirstLogins)
	def(&opts.MaxConnsPerSource, 50)
	if opts.Refill <= 0 {
		opts.Refill = time.Minute
	}
	if opts.PerNetwork <= 0 {
		opts.PerNetwork = 5 * opts.PerSource
	}
	if opts.Delay == 0 {
		opts.Delay = 3 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 10 * time.Second
	}
	if opts.FirstLoginTimeout <= 0 {
		opts.FirstLoginTimeout = 2 * time.Minute
	}
	return &Policy{
		st: opts.Store, mig: opts.Migrator, log: opts.Logger, opts: opts,
		lim:   newLimiter(opts.Refill),
		first: make(chan struct{}, opts.MaxFirstLogins),
	}, nil
}

// Source is the unit a source is limited by: an IPv4 address, or the /64
// of an IPv6 address (one subscriber's network). An invalid address gives
// the zero Prefix, which is one source of its own.
func Source(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.Prefix{}
}

// Network is the wider unit a source is also limited by: the /24 of an IPv4
// address, the /48 of an IPv6 address (one site).
func Network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// SourceOf is Source of a connection's remote address.
func SourceOf(a net.Addr) netip.Prefix {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return Source(ip)
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return Source(ap.Addr())
		}
	}
	return netip.Prefix{}
}

// Request is one login attempt.
type Request struct {
	// Service names the front end in logs ("imap", "smtp", "pop3").
	Service string
	// Remote is the client's address.
	Remote netip.Addr
	// Username and Password are as the client sent them.
	Username, Password string
}

// logName is how a login's user name is logged: quoted, and only up to
// its first NUL. A client that sends SASL PLAIN's "user NUL password"
// where a name goes (AUTHENTICATE LOGIN's username, a LOGIN literal) had
// its password written to the log (session 17 review; no address holds a
// NUL, so the rest names nothing an admin needs).
func logName(u string) string {
	if i := strings.IndexByte(u, 0); i >= 0 {
		return fmt.Sprintf("%s and %d bytes after a NUL, not shown", strconv.Quote(u[:i]), len(u)-i)
	}
	return strconv.Quote(u)
}

// Login checks a login under the policy and returns the account, or an
// error matching ErrFailed, ErrLimited or ErrUnavailable.
func (p *Policy) Login(ctx context.Context, r Request) (*store.Account, error) {
	start := time.Now()
	src := Source(r.Remote)
	srcKey, netKey := "src "+src.String(), "net "+Network(r.Remote).String()
	log := p.log.With("service", r.Service, "remote", r.Remote.String())
	if len(r.Username) > addr.MaxInput {
		// Neither logged nor kept: only its length.
		p.lim.take(srcKey, p.opts.PerSource)
		p.noteFailure(ctx, log, store.LoginFailureKey{Key: srcKey, Capacity: p.opts.PerSource})
		log.Info("login refused: user name too long", "bytes", len(r.Username))
		return nil, p.failed(ctx, start)
	}
	name := logName(r.Username)
	// A bucket found empty while logins holding its tokens are being
	// checked is waited for (at most MaxWait): twenty colleagues behind
	// one NAT address logging in at once all get in, one as another's
	// token comes back, while failed and running checks together never
	// exceed the bucket (limiter.takeWait).
	wctx, cancel := context.WithTimeout(ctx, p.opts.MaxWait)
	defer cancel()
	// limited: the bucket is empty because of failures; or, when the
	// wait ran out, the others' checks take too long: try again later.
	limited := func(what, user string) error {
		if wctx.Err() != nil {
			log.Warn("login not checked: too many logins being checked "+what, "user", user)
			return fmt.Errorf("%w: too many logins being checked %s", ErrUnavailable, what)
		}
		log.Warn("login refused: too many failures "+what, "user", user)
		return ErrLimited
	}
	if !p.lim.takeWait(wctx, srcKey, p.opts.PerSource) {
		return nil, limited("from this source", name)
	}
	defer p.lim.done(srcKey)
	if !p.lim.takeWait(wctx, netKey, p.opts.PerNetwork) {
		p.lim.give(srcKey, p.opts.PerSource)
		return nil, limited("from this network", name)
	}
	defer p.lim.done(netKey)
	canon, cerr := store.CanonicalAddress(r.Username)
	acctKey := "acct " + canon + " " + src.String()
	if cerr == nil {
		if !p.lim.takeWait(wctx, acctKey, p.opts.PerAccount) && !p.clearedElsewhere(wctx, acctKey) {
			p.lim.give(srcKey, p.opts.PerSource)
			p.lim.give(netKey, p.opts.PerNetwork)
			return nil, limited("for this account from this source", canon)
		}
		defer p.lim.done(acctKey)
	}
	// The failures of other processes on the store (other nodes) count
	// as this one's (shared.go): the buckets above bound the logins being
	// checked here, these the failures everywhere.
	srcF := store.LoginFailureKey{Key: srcKey, Capacity: p.opts.PerSource}
	netF := store.LoginFailureKey{Key: netKey, Capacity: p.opts.PerNetwork}
	acctF := store.LoginFailureKey{Key: acctKey, Capacity: p.opts.PerAccount}
	failKeys := []store.LoginFailureKey{srcF, netF}
	if cerr == nil {
		failKeys = append(failKeys, acctF)
	}
	// A place among the checks of every node, taken before the check so
	// that guesses checked at once on several nodes are limited as one.
	what, check, err := p.sharedReserve(ctx, wctx, failKeys)
	if err != nil || what != "" {
		p.lim.give(srcKey, p.opts.PerSource)
		p.lim.give(netKey, p.opts.PerNetwork)
		if cerr == nil {
			p.lim.give(acctKey, p.opts.PerAccount)
		}
		if err != nil {
			log.Warn("login not checked: failed logins cannot be read", "user", name, "err", err)
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, limited(what, name)
	}
	ended := false
	end := func(failed []store.LoginFailureKey, clear ...string) {
		ended = true
		p.endCheck(ctx, log, check, failed, clear...)
	}
	defer func() {
		if !ended { // a panic: the places go back all the same
			p.endCheck(ctx, log, check, nil)
		}
	}()
	fail := func(reason string) error {
		end(failKeys)
		log.Info("login failed", "user", name, "reason", reason)
		return p.failed(ctx, start)
	}
	unavailable := func(err error) error {
		// Not the password's fault: the account's token goes back. The
		// source's stays spent, or a source could make the server hash
		// (and ask the old server) for ever while it is down.
		if cerr == nil {
			p.lim.give(acctKey, p.opts.PerAccount)
		}
		end([]store.LoginFailureKey{srcF, netF})
		log.Warn("login could not be checked", "user", name, "err", err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// noAccount fails a login for a missing account that the old server
	// was not asked about, after the hash a wrong password costs (spend).
	noAccount := func(reason string) error {
		if err := p.spend(ctx, r.Password); err != nil {
			return unavailable(err)
		}
		return fail(reason)
	}
	if cerr != nil {
		if strings.IndexByte(r.Username, 0) >= 0 {
			// Not cerr's text: it quotes the name, after the NUL too.
			return nil, fail("not an address: it holds a NUL")
		}
		return nil, fail("not an address: " + cerr.Error())
	}
	if r.Password == "" {
		return nil, fail("empty password")
	}
	// A check waits for a hashing slot only so long: behind a flood it is
	// "try again later", not a login that never ends. (A first login has
	// its own bound, FirstLoginTimeout.)
	actx, cancel := context.WithTimeout(ctx, p.opts.MaxWait)
	acct, err := p.check(actx, canon, r.Password)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrPasswordPending),
		errors.Is(err, store.ErrBadPassword) && p.adoptable(ctx, canon):
		if p.mig == nil {
			return nil, noAccount("no such account")
		}
		acct, err = p.firstLogin(ctx, canon, r.Password)
		switch {
		case err == nil:
			log.Info("first login", "user", acct.Address)
		case errors.Is(err, migrate.ErrBadPassword), errors.Is(err, store.ErrBadPassword):
			p.refusals.note(time.Since(start))
			return nil, fail("the old server refused the password")
		case errors.Is(err, migrate.ErrNotMigrating):
			return nil, noAccount("no such account (domain not migrating)")
		case errors.Is(err, store.ErrExists):
			return nil, fail("account exists and was not made by migration")
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
			return nil, noAccount("no such account")
		default:
			return nil, unavailable(err)
		}
	case errors.Is(err, store.ErrBadPassword):
		return nil, fail("wrong password")
	default:
		return nil, unavailable(err)
	}
	p.lim.give(acctKey, p.opts.PerAccount) // this login's own token, then the failures
	p.lim.reset(acctKey)
	// The places back, the account's failures from this source forgotten.
	end(nil, acctKey)
	p.lim.give(srcKey, p.opts.PerSource)
	p.lim.give(netKey, p.opts.PerNetwork)
	// Bounded as the counts' writes are: a node frozen holding the
	// writer lock must not hang a login that has succeeded.
	nctx, ncancel := context.WithTimeout(ctx, noteWait)
	err = p.st.NoteLogin(nctx, acct)
	ncancel()
	if err != nil {
		log.Warn("record login", "user", acct.Address, "err", err)
	}
	if p.mig != nil {
		p.safely(log, func() { p.mig.LoggedIn(acct, r.Password) })
	}
	return acct, nil
}

// check checks a password stored here. A missing account costs no hash
// yet (a first login must not wait for one; spend charges the others); an
// account whose hash is still being stored is
// checked by the Migrator that holds its password, and otherwise gives
// store.ErrPasswordPending (FirstLogin then asks the old server).
func (p *Policy) check(ctx context.Context, canon, password string) (*store.Account, error) {
	acct, err := p.st.CheckPassword(ctx, canon, password)
	if !errors.Is(err, store.ErrPasswordPending) {
		return acct, err
	}
	pc, ok := p.mig.(PendingChecker)
	if !ok {
		return nil, err
	}
	a, aerr := p.st.Account(ctx, canon)
	if aerr != nil {
		return nil, aerr
	}
	switch known, match := pc.CheckPending(a, password); {
	case !known:
		return nil, err
	case !match:
		return nil, store.ErrBadPassword
	}
	return a, nil
}

// spend makes a login for a missing account that the old server was not
// asked about cost one hash, as a wrong password does (timing must not
// tell them apart even when a flood makes checks outlast Options.Delay),
// waiting for a hashing slot at most Options.MaxWait, as a check does.
func (p *Policy) spend(ctx context.Context, password string) error {
	actx, cancel := context.WithTimeout(ctx, p.opts.MaxWait)
	defer cancel()
	return p.st.SpendCheck(actx, password)
}

// adoptable reports whether the account of canon may still take the old
// server's password (see store.AdoptOldPassword).
func (p *Policy) adoptable(ctx context.Context, canon string) bool {
	a, err := p.st.Account(ctx, canon)
	return err == nil && a.Migration != "" && a.PasswordOrigin == store.PasswordRandom && a.FirstLogin.IsZero()
}

// firstLogin runs the Migrator's FirstLogin in one of the bounded slots.
func (p *Policy) firstLogin(ctx context.Context, canon, password string) (acct *store.Account, err error) {
	// A place among the first logins at the old server is waited for
	// MaxWait at most, as a hashing slot is: with every place taken (an
	// old server that does not answer, or a stream of guesses for users
	// not yet moved) a login is "try again later", not a hang.
	wait := time.NewTimer(p.opts.MaxWait)
	defer wait.Stop()
	select {
	case p.first <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, fmt.Errorf("%d first logins are being checked at the old server already", cap(p.first))
	}
	defer func() { <-p.first }()
	ctx, cancel := context.WithTimeout(ctx, p.opts.FirstLoginTimeout)
	defer cancel()
	p.safely(p.log, func() { acct, err = p.mig.FirstLogin(ctx, canon, password) })
	if err == nil && acct == nil {
		err = errors.New("auth: first login returned no account")
	}
	if errors.Is(err, store.ErrExists) {
		// Another connection's first login made the account meanwhile.
		return p.check(ctx, canon, password)
	}
	return acct, err
}

// safely runs a call into the Migrator, turning a panic into a log line
// (and, for FirstLogin, an error: acct stays nil).
func (p *Policy) safely(log *slog.Logger, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("auth: panic in migrator", "panic", v)
		}
	}()
	fn()
}

// failed waits until Options.Delay after the login began, or as long as
// the old server's slowest recent refusal took if that is longer (or until
// ctx ends), and returns ErrFailed: every failure takes the same time,
// whether the password was checked here or at the old server.
func (p *Policy) failed(ctx context.Context, start time.Time) error {
	if p.opts.Delay <= 0 {
		return ErrFailed
	}
	// An old server slower than Delay to refuse would otherwise tell who
	// has moved: a failure then takes as long as its recent refusals did.
	wait := max(p.opts.Delay, min(p.refusals.longest(), p.opts.FirstLoginTimeout))
	if d := time.Until(start.Add(wait)); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return ErrFailed
}

// refusalTimes keeps how long the old server's last few refusals took
// (from the login's start to its answer).
type refusalTimes struct {
	mu   sync.Mutex
	last [8]time.Duration
	next int
}

func (r *refusalTimes) note(d time.Duration) {
	r.mu.Lock()
	r.last[r.next] = d
	r.next = (r.next + 1) % len(r.last)
	r.mu.Unlock()
}

// longest is the longest of the kept refusals (0 with none).
func (r *refusalTimes) longest() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Max(r.last[:])
}
