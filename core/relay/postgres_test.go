package relay_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailferry/core/internal/pgtest"
	"mailferry/core/oldserver"
	"mailferry/core/relay"
	"mailferry/core/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// newPostgresEnv is newEnv on the PostgreSQL database at url, and a second
// Store (another node) on the same database and message bytes.
func newPostgresEnv(t *testing.T, oldAddr, url string) (*env, *store.Store) {
	t.Helper()
	open := func(path string) *store.Store {
		st, err := store.Open(path, &store.Options{Logger: testLogger(t), DatabaseURL: url})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ap := netip.MustParseAddrPort(oldAddr)
	set := oldserver.Settings{Host: oldserver.HostFromIP(ap.Addr()), IMAPPort: 143, IMAPTLS: oldserver.TLSNone,
		SMTPPort: int(ap.Port()), SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull}
	e := newEnvOn(t, set, alice, alicePW, open)
	other := open(e.path)
	t.Cleanup(func() { other.Close() })
	return e, other
}

// TestSharedQueuePostgres: two nodes (two Relays on two Stores on one
// PostgreSQL database) drain one queue: every message reaches the old
// server exactly once, and both nodes delivered some. Then a node dies in
// the middle of a delivery (its store gone before it could record
// anything): the other delivers the item once its claim ran out, not
// before, and only once.
func TestSharedQueuePostgres(t *testing.T) {
	t.Run("two nodes drain one queue", func(t *testing.T) {
		old := startOldSMTP(t, "")
		addr := old.addr
		old.stop()
		e, other := newPostgresEnv(t, addr, pgtest.URL(t))
		opts := relay.Options{Workers: 4, TrustedNetworks: trustLoopback}
		nodes := []*running{startRelay(t, e.st, opts), startRelay(t, other, opts)}
		const n = 60
		for i := 0; i < n; i++ {
			if err := send(nodes[i%2].smtpAddr, "sender@elsewhere.test", []string{bob}, message(fmt.Sprintf("shared-%02d", i), "x")); err != nil {
				t.Fatal(err)
			}
		}
		old.start(t, addr)
		waitFor(t, "the queue drained", 30*time.Second, func() bool {
			q, err := e.st.Queue(context.Background())
			return err == nil && len(q) == 0
		})
		time.Sleep(300 * time.Millisecond)
		count := map[string]int{}
		for _, m := range old.messages() {
			for _, l := range strings.Split(string(m.Data), "\r\n") {
				if s, ok := strings.CutPrefix(l, "Subject: "); ok {
					count[s]++
				}
			}
		}
		for i := 0; i < n; i++ {
			if s := fmt.Sprintf("shared-%02d", i); count[s] != 1 {
				t.Errorf("%s reached the old server %d times", s, count[s])
			}
		}
		if len(old.messages()) != n {
			t.Errorf("old server got %d messages, want %d", len(old.messages()), n)
		}
		a, b := nodes[0].r.Stats().Relayed, nodes[1].r.Stats().Relayed
		t.Logf("relayed by node A: %d, by node B: %d", a, b)
		if a == 0 || b == 0 || a+b != n {
			t.Errorf("relayed %d + %d, want both nodes working and %d in all", a, b, n)
		}
	})

	t.Run("a delivery longer than its claim", func(t *testing.T) {
		// A slow receiver (a tarpit, a 50 MB DATA over a thin line) keeps
		// node A's delivery going past its claim's lease: node B must not
		// take the item and send it a second time meanwhile.
		const lease = 2 * time.Second
		old := startOldSMTP(t, "")
		var mu sync.Mutex
		datas := 0
		old.mu.Lock()
		old.dataErr = func(string) *smtp.SMTPError {
			mu.Lock()
			datas++
			first := datas == 1
			mu.Unlock()
			if first {
				time.Sleep(3 * lease) // then accepts
			}
			return nil
		}
		old.mu.Unlock()
		e, other := newPostgresEnv(t, old.addr, pgtest.URL(t))
		short := func(r *relay.Relay) { relay.SetLeaseForTest(r, lease) }
		opts := relay.Options{Workers: 2, TrustedNetworks: trustLoopback, ClientTimeout: 10 * lease}
		nodeA := startRelayWith(t, e.st, opts, short)
		startRelayWith(t, other, opts, short)
		if err := send(nodeA.smtpAddr, "sender@elsewhere.test", []string{bob}, message("slow", "x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the queue drained", 20*time.Second, func() bool {
			q, err := e.st.Queue(context.Background())
			return err == nil && len(q) == 0
		})
		time.Sleep(lease + time.Second) // a second delivery would come by now
		if got := len(old.messages()); got != 1 {
			t.Fatalf("old server got %d copies of one message, want 1", got)
		}
	})

	t.Run("a node dies mid-delivery", func(t *testing.T) {
		const lease = 3 * time.Second
		old := startOldSMTP(t, "")
		var mu sync.Mutex
		var entered []time.Time
		inData, release := make(chan struct{}), make(chan struct{})
		old.mu.Lock()
		old.dataErr = func(string) *smtp.SMTPError {
			mu.Lock()
			entered = append(entered, time.Now())
			first := len(entered) == 1
			mu.Unlock()
			if !first {
				return nil
			}
			close(inData)
			<-release
			// What a dead client leaves: nothing delivered.
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "connection lost"}
		}
		old.mu.Unlock()
		e, other := newPostgresEnv(t, old.addr, pgtest.URL(t))
		short := func(r *relay.Relay) { relay.SetLeaseForTest(r, lease) }
		opts := relay.Options{Workers: 2, TrustedNetworks: trustLoopback}
		nodeA := startRelayWith(t, e.st, opts, short)
		if err := send(nodeA.smtpAddr, "sender@elsewhere.test", []string{bob}, message("dies", "x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-inData:
		case <-time.After(10 * time.Second):
			t.Fatal("node A never reached DATA")
		}
		nodeB := startRelayWith(t, other, opts, short)
		// Node A dies: its database connections are gone before it can
		// record the attempt; then its session ends without a delivery.
		e.st.Close()
		close(release)
		nodeA.close()
		waitFor(t, "node B delivered", 20*time.Second, func() bool { return len(old.messages()) == 1 })
		time.Sleep(lease + time.Second) // a second delivery would come by now
		if got := len(old.messages()); got != 1 {
			t.Fatalf("old server got %d copies, want 1", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(entered) != 2 {
			t.Fatalf("%d attempts reached DATA, want 2 (A's, then B's)", len(entered))
		}
		if d := entered[1].Sub(entered[0]); d < lease-time.Second {
			t.Fatalf("node B tried %v after node A, within A's claim of %v", d, lease)
		}
		if s := nodeB.r.Stats(); s.Relayed != 1 {
			t.Fatalf("node B's stats %+v", s)
		}
		if q, err := other.Queue(context.Background()); err != nil || len(q) != 0 {
			t.Fatalf("queue %v, %v", q, err)
		}
	})
}
