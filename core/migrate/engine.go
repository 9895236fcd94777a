package migrate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Options configures an Engine. Zero fields mean defaults.
type Options struct {
	// Store is where accounts are created and mail is copied to. Required.
	Store *store.Store
	// Logger receives the engine's diagnostics; nil means slog.Default().
	// Passwords are never logged.
	Logger *slog.Logger
	// Accounts is how many accounts are copied at once; 0 means as many
	// as the old server takes connections (its cap, Settings.MaxConnections
	// or what was learnt: each copy holds at least one), at most
	// maxJobs.
	Accounts int
	// ConnsPerAccount is how many old-server connections one account's copy
	// uses (INBOX is always copied first, on one); 0 means 2.
	ConnsPerAccount int
	// CatchUpInterval is how often accounts whose old-server credentials are
	// in memory are checked for new mail on the old server while their
	// domain migrates; 0 means 5 minutes, negative turns periodic catch-up
	// off (LoggedIn still triggers it).
	CatchUpInterval time.Duration
	// CatchUpDebounce is the least time between two catch-up runs of one
	// account triggered by LoggedIn; 0 means 15 seconds, negative means none.
	CatchUpDebounce time.Duration
	// BatchMessages and BatchBytes bound one store transaction; 0 means 200
	// messages and 8 MiB. (Bodies are written to the store as they arrive,
	// so a batch holds only their metadata in memory.) BatchDelay commits a batch once its first message
	// waited that long; 0 means 250ms. The three grow as a mailbox's copy
	// goes on (see batchGrowEvery).
	BatchMessages int
	BatchBytes    int64
	BatchDelay    time.Duration
	// ChunkMessages and ChunkBytes bound one UID FETCH command; 0 means 500
	// messages and 32 MiB. A connection has one FETCH in flight: the server
	// streams the chunk's messages back to back, and a chunk boundary costs
	// one round trip. (Several FETCH commands in flight are not used: a
	// server may interleave their responses — Dovecot does — and following
	// that would mean buffering whole chunks.)
	ChunkMessages int
	ChunkBytes    int64
	// MaxMessageSize is the largest message copied; a larger one is skipped
	// and reported. 0 means 256 MiB.
	MaxMessageSize int64
	// Retries is how many times a cut connection is re-opened for one
	// mailbox before the job fails; 0 means 5. RetryBackoff is the first
	// wait between attempts (doubling, at most 30s); 0 means 500ms.
	Retries      int
	RetryBackoff time.Duration
	// Dial tunes connections to old servers (timeouts, test roots); nil
	// means defaults.
	Dial *oldserver.DialOptions
	// ResumeBackoff is the first wait before the engine runs a failed
	// job's account again by itself (see resume.go), doubling per failure
	// in a row up to ResumeBackoffMax; 0 means 30 seconds and 15 minutes.
	ResumeBackoff    time.Duration
	ResumeBackoffMax time.Duration
	// Node names this node in its copy leases (lease.go): a lease of the
	// same node whose process is gone is taken at once, another node's
	// only when it expires. Default the host name.
	Node string
	// LeaseTTL is how long an account's copy lease lasts unless renewed
	// (see lease.go); 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LoginHold is the longest that copy work (a copy's next FETCH, a
	// job's start, an extra connection, a first login's password hash)
	// waits while first logins ask the old server (logingate.go); 0 means
	// 10 seconds, negative never waits.
	LoginHold time.Duration
	// Streams is how many accounts of a bulk run (MigrateAccount,
	// MigrateUsers; not on-login copies) download their messages from one old
	// server at a time, the earliest scheduled first, INBOXes before other
	// folders (streams.go); the other accounts copied at once log in and
	// open their folders meanwhile. 0 means 2; negative: no turns, every
	// account copied at once downloads at once. StreamWait is the longest
	// a download waits for its turn; 0 means 20 seconds.
	Streams    int
	StreamWait time.Duration
	// CapProbeAfter is how long a connection cap lowered by the old
	// server's refusal stays as it is (with connections opening well)
	// before a copy that wants one more place tries one more (connlimit.go);
	// 0 means 2 minutes, negative never.
	CapProbeAfter time.Duration
}

// Credentials log in to the old server: either the user's Password, or a
// master user (MasterUser and MasterPassword) acting for the user
// (Dovecot "user*master", SASL PLAIN with authzid, RFC 4616).
type Credentials struct {
	// Address is the user's address (used by MigrateUsers).
	Address string `json:"address"`
	// Password is the user's old-server password; with a master user it may
	// be empty, or set to give the new account that password.
	Password       string `json:"-"`
	MasterUser     string `json:"-"`
	MasterPassword string `json:"-"`
	// OldLogin, if set, is the exact user name to log in to the old server
	// with (the account's store.Account.OldLogin), instead of the forms
	// the domain's LoginForm gives.
	OldLogin string `json:"-"`
}

func (c Credentials) master() bool { return c.MasterUser != "" || c.MasterPassword != "" }

// String never shows passwords.
func (c Credentials) String() string {
	if c.master() {
		return c.Address + " (master user " + c.MasterUser + ")"
	}
	return c.Address
}

// Engine copies accounts from old servers into the store. It is safe for
// concurrent use.
type Engine struct {
	st   *store.Store
	log  *slog.Logger
	opts Options

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	prog   *progress
	holder string // of copy leases: see lease.go

	mu      sync.Mutex
	closed  bool
	jobs    map[int64]*job
	creds   map[int64]Credentials  // by account ID, in memory only
	masters map[string]Credentials // by domain, in memory only
	lastRun map[int64]time.Time
	kept    map[int64]keptConn    // by account ID: see keepConn
	fails   map[int64]int         // failed runs in a row, by account ID: see afterRun
	pending map[int64]pendingHash // by account ID: see hashLater
	hashes  chan struct{}         // hashLater's one hash at a time
	wide    chan struct{}         // hashes told to go now (pendingHash.now), up to the CPUs at once
	conns   map[string]*connLimit // by old server (host:port): see connlimit.go
	learnMu sync.Mutex            // serializes recording what was learnt
}

// maxJobs bounds the jobs run at once when Options.Accounts does not: a
// job waits for a place under its old server's cap before it copies, so
// this only bounds the jobs waiting so (a goroutine and a little memory
// each).
const maxJobs = 256

type job struct {
	id      int64
	address string
	turn    uint64 // when it (its next run) was scheduled: its place in line (turn.go)
	// bulk says a bulk run (MigrateAccount, MigrateUsers) asked for it:
	// its downloads take stream turns (streams.go); on-login copies'
	// do not.
	bulk bool
	// began is when the job's current run began (zero while it waits for
	// a slot); again asks for one more run after it. A run reads the old
	// server after it began, so it covers whatever asked for it before.
	began time.Time
	again bool
	done  chan struct{}
	err   error
}

// New starts an engine. Call Close (or Shutdown) to stop it.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("migrate: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	opts.Accounts = max(opts.Accounts, 0)
	def(&opts.ConnsPerAccount, 2)
	def(&opts.BatchMessages, 200)
	def(&opts.ChunkMessages, 500)
	def(&opts.Retries, 5)
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 8 << 20
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = 32 << 20
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 256 << 20
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = 250 * time.Millisecond
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 500 * time.Millisecond
	}
	if opts.CatchUpInterval == 0 {
		opts.CatchUpInterval = 5 * time.Minute
	}
	if opts.CatchUpDebounce == 0 {
		opts.CatchUpDebounce = 15 * time.Second
	}
	if opts.ResumeBackoff <= 0 {
		opts.ResumeBackoff = 30 * time.Second
	}
	if opts.ResumeBackoffMax <= 0 {
		opts.ResumeBackoffMax = 15 * time.Minute
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LoginHold == 0 {
		opts.LoginHold = 10 * time.Second
	}
	if opts.Streams == 0 {
		opts.Streams = 2
	}
	if opts.StreamWait <= 0 {
		opts.StreamWait = 20 * time.Second
	}
	if opts.CapProbeAfter == 0 {
		opts.CapProbeAfter = 2 * time.Minute
	}
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	holder, err := newHolder(opts.Node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		st: opts.Store, log: opts.Logger, opts: opts,
		ctx: ctx, cancel: cancel, holder: holder,
		sem:     make(chan struct{}, cmp.Or(opts.Accounts, maxJobs)),
		prog:    newProgress(),
		jobs:    map[int64]*job{},
		creds:   map[int64]Credentials{},
		masters: map[string]Credentials{},
		pending: map[int64]pendingHash{},
		hashes:  make(chan struct{}, 1),
		wide:    make(chan struct{}, max(runtime.NumCPU(), 1)),
		lastRun: map[int64]time.Time{},
		kept:    map[int64]keptConn{},
		conns:   map[string]*connLimit{},
		fails:   map[int64]int{},
	}
	if opts.CatchUpInterval > 0 {
		e.goSafe("catch-up timer", e.catchUpLoop)
	}
	return e, nil
}

// goSafe runs fn in a goroutine owned by the engine (Close waits for it),
// logging a panic with its stack instead of crashing the process.
func (e *Engine) goSafe(name string, fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		recovered(e.log, name, func() error { fn(); return nil })
	}()
}

// recovered runs fn and turns a panic in it into an error (logged with its
// stack), so that a bug fails the work it hit instead of passing for
// success.
func recovered(log *slog.Logger, name string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("migrate: panic", "in", name, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("migrate: %s: internal error: %v", name, r)
		}
	}()
	return fn()
}

// Close stops every job at once (a stopped copy resumes later from its last
// committed UID), waits for them and closes event subscriptions.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	e.mu.Lock()
	kept := e.kept
	e.kept = map[int64]keptConn{}
	e.mu.Unlock()
	for _, k := range kept {
		k.close()
	}
	e.prog.closeAll()
	return nil
}

// Shutdown stops accepting work and waits for running jobs to finish; when
// ctx ends first, it stops them as Close does.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	for ctx.Err() == nil {
		e.mu.Lock()
		var j *job
		for _, j = range e.jobs {
			break
		}
		e.mu.Unlock()
		if j == nil {
			break
		}
		select {
		case <-j.done:
		case <-ctx.Done():
		}
	}
	err := ctx.Err()
	e.Close()
	return err
}

func (e *Engine) kick(acct *store.Account, debounce bool) {
	var window time.Duration
	if debounce && e.opts.CatchUpDebounce > 0 {
		window = e.opts.CatchUpDebounce
		if acct.Migration == store.MigDone {
			e.mu.Lock()
			last := e.lastRun[acct.ID]
			e.mu.Unlock()
			if time.Since(last) < window {
				return
			}
		}
	}
	e.scheduleRun(acct.ID, acct.Address, window, false)
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// schedule starts the job of an account, or asks a running one to run once
// more when done (it may have missed what triggered this call). A job
// still waiting for its slot is not asked: its run, which reads the old
// server later, covers the call. (A first login both starts the job and,
// as every login, kicks it: its copy then runs once, not twice.)
func (e *Engine) schedule(id int64, address string) *job { return e.scheduleRun(id, address, 0, false) }

// scheduleRun is schedule where a run that began less than window ago
// covers the call too (a login's kick, debounced as Options.CatchUpDebounce
// says).
func (e *Engine) scheduleRun(id int64, address string, window time.Duration, bulk bool) *job {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	if j := e.jobs[id]; j != nil {
		j.bulk = j.bulk || bulk
		if !j.began.IsZero() && time.Since(j.began) >= window {
			if !j.again {
				// The run after this one waits behind what was scheduled
				// before it was asked for: an account kicked again and
				// again never goes before other accounts' first copies.
				j.turn = nextTurn()
			}
			j.again = true
		}
		return j
	}
	j := &job{id: id, address: address, turn: nextTurn(), bulk: bulk, done: make(chan struct{})}
	e.jobs[id] = j
	e.goSafe("job "+address, func() { e.runJob(j) })
	return j
}

func (e *Engine) runJob(j *job) {
	finish := func(err error) {
		e.mu.Lock()
		j.err = err
		delete(e.jobs, j.id)
		e.lastRun[j.id] = time.Now()
		e.mu.Unlock()
		close(j.done)
	}
	defer func() {
		if r := recover(); r != nil {
			finish(fmt.Errorf("migrate: job %s: panic: %v", j.address, r))
			panic(r) // logged with its stack by goSafe
		}
	}()
	select {
	case e.sem <- struct{}{}:
	case <-e.ctx.Done():
		finish(ErrClosed)
		return
	}
	defer func() { <-e.sem }()
	for {
		e.mu.Lock()
		j.began, j.again = time.Now(), false
		turn, bulk := j.turn, j.bulk
		e.mu.Unlock()
		ctx := withTurn(e.ctx, turn)
		if bulk {
			ctx = withStreamTurns(ctx)
		}
		err := e.runAccount(ctx, j.id)
		e.mu.Lock()
		again := j.again && e.ctx.Err() == nil
		e.mu.Unlock()
		if !again {
			finish(err)
			e.afterRun(j.id, j.address, err)
			return
		}
	}
}

// runAccount copies (or catches up) one account.
func (e *Engine) runAccount(ctx context.Context, id int64) error {
	acct, err := e.st.AccountByID(ctx, id)
	if err != nil {
		return err
	}
	if acct.Migration == "" {
		return nil
	}
	_, domain, err := store.SplitAddress(acct.Address)
	if err != nil {
		return err
	}
	s, err := migratingSettings(ctx, e.st, domain)
	if err != nil {
		return err
	}
	cred, ok := e.credsFor(acct)
	if !ok {
		err := fmt.Errorf("%w: %s", ErrNoCredentials, acct.Address)
		e.prog.updateErr(acct.ID, acct.Address, EventError, err, nil)
		return err
	}
	// The job waits for its first place under the old server's cap (or
	// takes the one its login's connection holds) before it counts as
	// running: accounts are copied as many at once as the old server
	// takes connections, the others wait as they are, pending. First
	// logins being answered come before its copy (logingate.go), but for
	// one copy at a time, the earliest in turn (the pass), given up as
	// its run ends. The place comes first: a job that took the pass
	// without one would wait for one through the hold (the places are
	// then the held jobs' and the logins', which asked before it), and
	// with it the copy the pass is for.
	c, lim, err := e.firstPlace(ctx, acct, s, cred)
	if err != nil {
		return err
	}
	defer lim.release()
	gate := lim.logins
	defer gate.leave(jobTurn(ctx))
	if err := gate.wait(ctx); err != nil {
		closeClient(c)
		return err
	}
	// One process copies an account at a time; a refusal changes nothing.
	// The same commit records that the account waits for nothing (the row
	// keeps room for the reason should this run fail on a full disk:
	// store.WaitNone) and that its first copy runs.
	catchUp := acct.Migration == store.MigDone
	state, record := store.MigRunning, store.MigRunning
	if catchUp {
		state, record = StateCatchUp, ""
	}
	lctx, lease, err := e.holdLease(ctx, acct, record)
	if err != nil {
		closeClient(c)
		e.prog.updateErr(acct.ID, acct.Address, EventError, err, nil)
		return err
	}
	defer lease.release()
	e.prog.update(acct.ID, acct.Address, EventState, "", func(a *AccountProgress) {
		a.State, a.Started, a.Folder = state, time.Now(), ""
		a.FoldersDone, a.FoldersTotal, a.MessagesDone, a.MessagesTotal, a.BytesDone, a.BytesTotal = 0, 0, 0, 0, 0, 0
		a.MessagesRate, a.BytesRate, a.RetryAt = 0, 0, time.Time{}
		a.Problem = oldserver.Problem{} // of an earlier run
	})
	e.log.Info("migrate: job started", "account", acct.Address, "catchup", catchUp)
	if !catchUp {
		e.afterHash(acct.ID)
	}
	later := &laterMarks{}
	err = copyErr(lctx, e.copyAccount(lctx, acct, s, cred, catchUp, c, lim, later))
	if lost := leaseLost(lctx); ctx.Err() != nil || lost != nil {
		// Stopped: the state stays as it is and the copy resumes later.
		e.prog.update(acct.ID, acct.Address, EventState, "", func(a *AccountProgress) { a.State = acct.Migration })
		if lost != nil {
			return lost
		}
		return ctx.Err()
	}
	if errors.Is(err, ErrBadPassword) {
		e.forget(acct.ID, cred)
	}
	if err != nil {
		e.log.Warn("migrate: job failed", "account", acct.Address, "err", err)
		final, record := store.MigFailed, store.MigFailed
		if catchUp {
			final, record = store.MigDone, ""
		}
		if serr := lease.end(record, err.Error(), later.all()...); serr != nil {
			err = errors.Join(err, serr)
		}
		e.prog.updateErr(acct.ID, acct.Address, EventError, err, func(a *AccountProgress) { a.State, a.Folder = final, "" })
		return err
	}
	if err := lease.end(store.MigDone, "", later.all()...); err != nil {
		return err
	}
	e.prog.update(acct.ID, acct.Address, EventState, "", func(a *AccountProgress) {
		a.State, a.Folder = store.MigDone, ""
		if a.Problem.Kind != ProblemMessage {
			a.Problem = oldserver.Problem{} // overcome: the run finished
		}
	})
	e.log.Info("migrate: job done", "account", acct.Address, "catchup", catchUp)
	return nil
}

// Subscribe returns a channel of events and a function that ends the
// subscription. Events are dropped, never waited for, when the consumer is
// slow: Progress always has the latest state.
func (e *Engine) Subscribe() (<-chan Event, func()) { return e.prog.subscribe(64) }

// Progress returns a snapshot of every account the engine worked on since
// it started.
func (e *Engine) Progress() []AccountProgress { return e.prog.all() }

// Wait waits until the account has no job queued or running, and its
// password hash is stored if a first login left it to store (hashLater),
// and returns the error of its last run (nil if none ran).
func (e *Engine) Wait(ctx context.Context, address string) error {
	acct, err := e.st.Account(ctx, address)
	if err != nil {
		return err
	}
	if ctx.Value(skipHashWait{}) == nil {
		if err := e.waitHashOf(ctx, acct.ID); err != nil {
			return err
		}
	}
	for {
		e.mu.Lock()
		j := e.jobs[acct.ID]
		e.mu.Unlock()
		if j == nil {
			return nil
		}
		select {
		case <-j.done:
			e.mu.Lock()
			again := e.jobs[acct.ID]
			e.mu.Unlock()
			if again == nil {
				return j.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
