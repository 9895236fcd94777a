package auth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core/auth"
	"mailferry/core/migrate"
	"mailferry/core/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newPolicy(t *testing.T, o auth.Options) (*auth.Policy, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, "carol@example.test", "Carol-Secret-1", nil); err != nil {
		t.Fatal(err)
	}
	o.Store, o.Logger = st, quiet()
	if o.Delay == 0 {
		o.Delay = -1
	}
	p, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p, st
}

func req(user, pass, ip string) auth.Request {
	return auth.Request{Service: "test", Remote: netip.MustParseAddr(ip), Username: user, Password: pass}
}

// A login for a missing account takes as long as a wrong password for an
// existing one, so timing does not tell which accounts exist.
func TestMissingAccountTakesAsLong(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 1000, PerAccount: 1000})
	ctx := context.Background()
	// Alternate the two and keep the fastest of each: the least disturbed
	// by whatever else the machine runs.
	best := map[string]time.Duration{}
	for range 7 {
		for _, user := range []string{"carol@example.test", "nobody@example.test"} {
			t0 := time.Now()
			if _, err := p.Login(ctx, req(user, "wrong", "192.0.2.1")); !errors.Is(err, auth.ErrFailed) {
				t.Fatalf("%s: %v", user, err)
			}
			if d := time.Since(t0); best[user] == 0 || d < best[user] {
				best[user] = d
			}
		}
	}
	wrong, missing := best["carol@example.test"], best["nobody@example.test"]
	if missing < wrong/2 || missing > wrong*2 {
		t.Fatalf("missing account %v, wrong password %v: the timing tells them apart", missing, wrong)
	}
}

// Sources are IPv4 addresses and IPv6 /64s: an attacker walking the
// addresses of one /64 is one source.
func TestSourceIPv6Prefix(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 3, PerAccount: 100})
	ctx := context.Background()
	for i := range 3 {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}).String()
		if _, err := p.Login(ctx, req("carol@example.test", "wrong", ip)); !errors.Is(err, auth.ErrFailed) {
			t.Fatalf("attempt %d from %s: %v", i, ip, err)
		}
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "2001:db8::99")); !errors.Is(err, auth.ErrLimited) {
		t.Fatalf("another address of the same /64: %v, want ErrLimited", err)
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "2001:db8:0:1::1")); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if got, want := auth.Source(netip.MustParseAddr("::ffff:192.0.2.7")), netip.MustParsePrefix("192.0.2.7/32"); got != want {
		t.Fatalf("Source of a mapped IPv4 address = %v, want %v", got, want)
	}
}

// A stranger's failures never lock the owner out: the owner's logins from
// another source have buckets of their own, and a success gives back the
// token it took.
func TestOwnerNotLockedOut(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 100, PerAccount: 3})
	ctx := context.Background()
	for range 10 {
		p.Login(ctx, req("carol@example.test", "guess", "198.51.100.1"))
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "198.51.100.1")); !errors.Is(err, auth.ErrLimited) {
		t.Fatalf("the attacker's source after its failures: %v, want ErrLimited", err)
	}
	for range 20 {
		if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "203.0.113.5")); err != nil {
			t.Fatalf("the owner from elsewhere: %v", err)
		}
	}
}

// The connections of one source are bounded; others still get in.
func TestListenerBoundsConnsPerSource(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{MaxConnsPerSource: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lln := p.Listener(ln, 0, "* BYE too many\r\n")
	defer lln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := lln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial("127.0.0.1")
	dial("127.0.0.1")
	for range 2 {
		(<-accepted).(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Time{})
	}
	third := dial("127.0.0.1")
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(third)
	if !strings.Contains(string(b), "too many") {
		t.Fatalf("third connection from one source got %q, want the refusal", b)
	}
	dial("127.0.0.2")
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("another source's connection was not accepted")
	}
}

// A network (IPv4 /24) walking its addresses is one network: its failures
// are bounded too.
func TestNetworkBucket(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 2, PerNetwork: 4, PerAccount: 100})
	ctx := context.Background()
	for i := range 4 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).String()
		if _, err := p.Login(ctx, req("carol@example.test", "wrong", ip)); !errors.Is(err, auth.ErrFailed) {
			t.Fatalf("attempt %d from %s: %v", i, ip, err)
		}
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "198.51.100.200")); !errors.Is(err, auth.ErrLimited) {
		t.Fatalf("a fresh address of the same /24: %v, want ErrLimited", err)
	}
	if _, err := p.Login(ctx, req("carol@example.test", "Carol-Secret-1", "198.51.101.1")); err != nil {
		t.Fatalf("another /24: %v", err)
	}
}

// slowMigrator fails every first login after the old server's delay.
type slowMigrator struct{ delay time.Duration }

func (m slowMigrator) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	time.Sleep(m.delay)
	return nil, migrate.ErrBadPassword
}
func (slowMigrator) LoggedIn(*store.Account, string) {}

// A wrong password for an account that has moved (checked here) and one
// for a user who has not (checked at the old server, which takes its time)
// are answered at the same time: timing does not tell who has moved.
func TestFailureTimingHidesWhoMoved(t *testing.T) {
	p, _ := newPolicy(t, auth.Options{PerSource: 1000, PerAccount: 1000, Delay: 1500 * time.Millisecond,
		Migrator: slowMigrator{delay: 600 * time.Millisecond}})
	ctx := context.Background()
	took := func(user string) time.Duration {
		t0 := time.Now()
		if _, err := p.Login(ctx, req(user, "wrong", "192.0.2.1")); !errors.Is(err, auth.ErrFailed) {
			t.Fatalf("%s: %v", user, err)
		}
		return time.Since(t0)
	}
	moved, notYet := took("carol@example.test"), took("dave@example.test")
	for _, d := range []time.Duration{moved, notYet} {
		if d < 1500*time.Millisecond || d > 2200*time.Millisecond {
			t.Fatalf("moved %v, not yet moved %v: want both at the 1.5 s deadline", moved, notYet)
		}
	}
}

// An old server slower to refuse than Delay must not tell who has moved
// either: once it has refused, a wrong password checked here takes as long.
func TestFailureTimingSlowOldServer(t *testing.T) {
	const oldRefuses = 2500 * time.Millisecond // well above a hash, even on a busy machine
	p, _ := newPolicy(t, auth.Options{PerSource: 1000, PerAccount: 1000, Delay: 100 * time.Millisecond,
		Migrator: slowMigrator{delay: oldRefuses}})
	ctx := context.Background()
	took := func(user string) time.Duration {
		t0 := time.Now()
		if _, err := p.Login(ctx, req(user, "wrong", "192.0.2.1")); !errors.Is(err, auth.ErrFailed) {
			t.Fatalf("%s: %v", user, err)
		}
		return time.Since(t0)
	}
	notYet, moved := took("dave@example.test"), took("carol@example.test")
	if notYet < oldRefuses || moved < oldRefuses || moved > oldRefuses+2*time.Second {
		t.Fatalf("not yet moved %v (the old server refused after %v), moved %v: want both about %v", notYet, oldRefuses, moved, oldRefuses)
	}
}

// A login waits for a hashing slot at most MaxWait: behind a flood it is
// answered "try again later" in bounded time.
func TestHashWaitBounded(t *testing.T) {
	if cheapHashes {
		t.Skip("built with mailferry_testhash: a flood of cheap hashes never waits on the slot; make test runs this without the tag")
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quiet(), MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := auth.New(auth.Options{Store: st, Logger: quiet(), Delay: -1, PerSource: 1000, PerNetwork: 1000,
		PerAccount: 1000, MaxWait: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type result struct {
		err  error
		took time.Duration
	}
	res := make(chan result, 20)
	for i := range 20 {
		go func() {
			t0 := time.Now()
			_, err := p.Login(ctx, req("nobody@example.test", "x", netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()))
			res <- result{err, time.Since(t0)}
		}()
	}
	unavailable := 0
	for range 20 {
		r := <-res
		if errors.Is(r.err, auth.ErrUnavailable) {
			unavailable++
			if r.took > 2*time.Second {
				t.Errorf("a login behind the flood took %v", r.took)
			}
		}
	}
	if unavailable == 0 {
		t.Fatal("20 logins on one hashing slot with a 30 ms wait: none was told to try later")
	}
}

// creatingMigrator makes the account after the old server's delay.
type creatingMigrator struct {
	st    *store.Store
	delay time.Duration
}

func (m creatingMigrator) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return m.st.CreateAccount(ctx, username, password, &store.AccountOptions{Migration: store.MigPending, PasswordOrigin: store.PasswordOld})
}
func (creatingMigrator) LoggedIn(*store.Account, string) {}

// The bound on waiting for a hashing slot is not a bound on a first login,
// which waits for the old server (FirstLoginTimeout bounds that).
func TestSlowFirstLoginNotCutByHashWait(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	p, err := auth.New(auth.Options{Store: st, Logger: quiet(), Delay: -1, MaxWait: 100 * time.Millisecond,
		Migrator: creatingMigrator{st: st, delay: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Login(ctx, req("dave@example.test", "Dave-Old-1", "192.0.2.1")); err != nil {
		t.Fatalf("a first login slower than MaxWait: %v", err)
	}
}

// burstMigrator counts the first logins in its FirstLogin at once and
// holds each until want are in (or a deadline passes), then makes the
// account.
type burstMigrator struct {
	st    *store.Store
	want  int
	mu    *sync.Mutex
	in    *int
	most  *int
	ready chan struct{}
}

func (m burstMigrator) FirstLogin(ctx context.Context, username, password string) (*store.Account, error) {
	m.mu.Lock()
	*m.in++
	*m.most = max(*m.most, *m.in)
	if *m.in == m.want {
		close(m.ready)
	}
	m.mu.Unlock()
	select {
	case <-m.ready:
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
	}
	m.mu.Lock()
	*m.in--
	m.mu.Unlock()
	return m.st.CreateAccount(ctx, username, password, &store.AccountOptions{Migration: store.MigPending, PasswordOrigin: store.PasswordOld})
}
func (burstMigrator) LoggedIn(*store.Account, string) {}

// A morning's burst of 50 first logins, each from its own address, is
// checked at the old server all at once: none waits for another's answer
// under the default bound (with 32 places, the last 18 waited for the
// first ones: the burst's p90 went up by an old-server login).
func TestFirstLoginBurstAtOnce(t *testing.T) {
	const users = 50
	var mu sync.Mutex
	var in, most int
	mig := burstMigrator{want: users, mu: &mu, in: &in, most: &most, ready: make(chan struct{})}
	p, st := newPolicy(t, auth.Options{Migrator: &mig})
	mig.st = st
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			user := fmt.Sprintf("u%02d@example.test", i)
			ip := netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).String()
			if _, err := p.Login(ctx, req(user, "Old-Secret-1", ip)); err != nil {
				t.Errorf("%s: %v", user, err)
			}
		})
	}
	wg.Wait()
	if most != users {
		t.Fatalf("%d first logins at once at the old server, want all %d (DefaultMaxFirstLogins %d)", most, users, auth.DefaultMaxFirstLogins)
	}
}
