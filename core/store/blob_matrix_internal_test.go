package store

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"mailferry/core/internal/s3test"
)

// The blob matrix: the tests of message bytes (exact bytes, dedup,
// Compact, refusal when the bytes cannot be made durable) run on each way
// of keeping them, pack files and S3-compatible object storage (a real
// SeaweedFS), with one test body each.

// backend opens stores on one way of keeping message bytes.
type backend struct {
	name string
	// open opens a store at path (again at the same path: the same bytes).
	open func(t *testing.T, path string) *Store
	// down makes every write of bytes fail from now on; up undoes it.
	down, up func(t *testing.T)
	// held tells whether the backend still keeps bytes under key.
	held func(t *testing.T, s *Store, key string) bool
	// age makes every byte stored so far old enough for Compact.
	age func(t *testing.T, s *Store, path string)
}

// eachBackend runs fn on packs and on object storage.
func eachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Run("packs", func(t *testing.T) {
		disk := &faultyDisk{}
		var broken atomic.Bool
		fn(t, &backend{
			name: "packs",
			open: func(t *testing.T, path string) *Store {
				s, err := testOpen(t, path, &Options{PackSize: 64 << 10, ChangePoll: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				s.packs.wrap = func(f *os.File) packFile {
					fp := disk.wrap(f).(*faultyPack)
					if broken.Load() {
						disk.mu.Lock()
						fp.fail()
						disk.mu.Unlock()
					}
					return fp
				}
				return s
			},
			down: func(t *testing.T) { broken.Store(true); disk.failAfter(1, 1) },
			up:   func(t *testing.T) { broken.Store(false); disk.failAfter(0, 0) },
			held: func(t *testing.T, s *Store, key string) bool {
				pack, _, err := BlobPlace(s, key)
				if errors.Is(err, sql.ErrNoRows) {
					return false
				}
				_, serr := os.Stat(packName(s.packs.dir, pack))
				return err == nil && serr == nil
			},
			age: func(t *testing.T, s *Store, path string) { AgePacks(t, path) },
		})
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Shared(t)
		px := newFlakyProxy(t, srv.Endpoint)
		bucket := srv.Bucket(t)
		fn(t, &backend{
			name: "s3",
			open: func(t *testing.T, path string) *Store {
				s, err := testOpen(t, path, &Options{ChangePoll: -1, Objects: &ObjectStorage{
					Endpoint: px.addr(), Bucket: bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
					PlainHTTP: true, Timeout: 5 * time.Second,
				}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
			down: func(t *testing.T) { px.set(proxyRefuse) },
			up:   func(t *testing.T) { px.set(proxyPass) },
			held: func(t *testing.T, s *Store, key string) bool {
				ok, err := s.objects.exists(context.Background(), key)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			},
			age: func(t *testing.T, s *Store, path string) { s.objects.grace, s.objects.settle = 0, 0 },
		})
	})
}

func matrixInbox(t *testing.T, s *Store, addr string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateDomain(ctx, "example.test"); err != nil && !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(ctx, addr, "Secret-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return inbox.ID
}

// matrixStart opens a store of b at a new path with an account's INBOX.
func matrixStart(t *testing.T, b *backend) (s *Store, path string, inbox int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "mail.db")
	s = b.open(t, path)
	return s, path, matrixInbox(t, s, "a@example.test")
}

// appendBodies appends each body, staged or not, in one transaction.
func appendBodies(s *Store, mailbox int64, staged bool, bodies ...[]byte) ([]*Message, error) {
	ctx := context.Background()
	var msgs []*NewMessage
	for _, b := range bodies {
		m := &NewMessage{Body: b}
		if staged {
			sb, err := s.Stage(b)
			if err != nil {
				return nil, err
			}
			m = &NewMessage{Staged: sb}
		}
		msgs = append(msgs, m)
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	out, err := tx.AppendMany(mailbox, msgs)
	if err != nil {
		return nil, err
	}
	return out, tx.Commit()
}

// mustAppend is appendBodies that fails the test on error.
func mustAppend(t testing.TB, s *Store, mailbox int64, staged bool, bodies ...[]byte) []*Message {
	t.Helper()
	msgs, err := appendBodies(s, mailbox, staged, bodies...)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// What was stored is served byte for byte, also after reopening: empty,
// binary with NULs and bare CR/LF, and 20 MB, appended in a transaction and
// staged.
func TestBlobMatrixExactBytes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		path := filepath.Join(t.TempDir(), "mail.db")
		s := b.open(t, path)
		inbox := matrixInbox(t, s, "a@example.test")
		nul := fbody(1, 4096)
		nul[10], nul[11], nul[12], nul[13] = 0, 0, '\r', '\n'
		big := make([]byte, 20<<20) // random (ChaCha8: fast also under -race), a NUL every 4 KiB
		rand.NewChaCha8([32]byte{2}).Read(big)
		for i := 0; i < len(big); i += 4096 {
			big[i] = 0
		}
		bodies := [][]byte{{}, []byte("Subject: x\r\n\r\nhello\r\n"), nul, big, fbody(3, 300<<10)}
		mustAppend(t, s, inbox, false, bodies[:3]...)
		mustAppend(t, s, inbox, true, bodies[3:]...)
		for _, body := range bodies {
			mustServe(t, s, body)
		}
		s.Close()
		s = b.open(t, path)
		for _, body := range bodies {
			mustServe(t, s, body)
		}
	})
}

// The same bytes are stored once: two messages (one staged, one not) name
// one blob, which outlives the first message's expunge and goes with the
// second's.
func TestBlobMatrixDedup(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "mail.db")
		s := b.open(t, path)
		in1 := matrixInbox(t, s, "a@example.test")
		in2 := matrixInbox(t, s, "b@example.test")
		body := fbody(7, 100<<10)
		m1 := mustAppend(t, s, in1, true, body)
		m2 := mustAppend(t, s, in2, false, body)
		m3 := mustAppend(t, s, in2, true, body)
		if m1[0].BlobKey != m2[0].BlobKey || m2[0].BlobKey != m3[0].BlobKey {
			t.Fatalf("one content, keys %s %s %s", m1[0].BlobKey, m2[0].BlobKey, m3[0].BlobKey)
		}
		var rows, refs int
		if err := s.r.QueryRow(`SELECT count(*), coalesce(sum(refs), 0) FROM blobs`).Scan(&rows, &refs); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || refs != 3 {
			t.Fatalf("%d blob rows with %d references, want 1 with 3", rows, refs)
		}
		if b.name == "s3" {
			if n := len(objectKeys(t, s)); n != 1 {
				t.Fatalf("%d objects for one content, want 1", n)
			}
		}
		for _, m := range [][]*Message{m1, m2} {
			expunge(t, s, m[0].MailboxID, m[0].UID)
		}
		b.age(t, s, path)
		if _, err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		mustServe(t, s, body)
		expunge(t, s, in2, m3[0].UID)
		mustNotStored(t, s, body)
	})
}

// Compact gives back the bytes no message names (an expunged message's,
// and staged bytes never appended), and keeps every live one exact.
func TestBlobMatrixCompact(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		s, path, inbox := matrixStart(t, b)
		dead, live, orphan, last := fbody(11, 100<<10), fbody(12, 30<<10), fbody(13, 90<<10), fbody(14, 70<<10)
		msgs := mustAppend(t, s, inbox, false, dead, live)
		if _, err := s.Stage(orphan); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, inbox, true, last)
		expunge(t, s, inbox, msgs[0].UID)
		// Fresh bytes stay: they may be staged for a commit to come.
		res, err := s.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.PacksRemoved+res.ObjectsRemoved != 0 {
			t.Fatalf("fresh bytes compacted: %+v", res)
		}
		s.Close()
		s = b.open(t, path) // its packs no longer written
		b.age(t, s, path)
		res, err = s.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.BytesFreed < int64(len(dead)) {
			t.Fatalf("compact freed %d bytes (%+v), want at least the %d of the expunged message", res.BytesFreed, res, len(dead))
		}
		if b.held(t, s, fkey(dead)) {
			t.Fatal("the expunged message's bytes are still kept")
		}
		if b.name == "s3" {
			if res.ObjectsRemoved != 2 {
				t.Fatalf("%d objects removed, want 2 (expunged, staged never appended)", res.ObjectsRemoved)
			}
			if keys := objectKeys(t, s); len(keys) != 2 {
				t.Fatalf("objects left: %v, want the 2 live ones", keys)
			}
		}
		mustNotStored(t, s, dead)
		mustServe(t, s, live)
		mustServe(t, s, last)
	})
}

// When the bytes cannot be made durable (a pack write or fsync fails, the
// object storage is down), the append fails with ErrNotDurable and nothing
// is committed; once the trouble is gone the same bytes are stored.
func TestBlobMatrixRefusedWhenNotDurable(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "mail.db")
		s := b.open(t, path)
		inbox := matrixInbox(t, s, "a@example.test")
		before := fbody(21, 5000)
		mustAppend(t, s, inbox, false, before)
		lost := fbody(22, 50<<10)
		for _, staged := range []bool{false, true} {
			b.down(t)
			_, err := appendBodies(s, inbox, staged, lost)
			mustNotDurable(t, b.name, err)
			mustNotStored(t, s, lost)
			msgs, err := s.Messages(ctx, inbox)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 {
				t.Fatalf("staged=%v: %d messages after a refused append, want 1", staged, len(msgs))
			}
			b.up(t)
		}
		mustAppend(t, s, inbox, true, lost)
		mustServe(t, s, lost)
		mustServe(t, s, before)
	})
}

// objectKeys lists the blob keys in the store's bucket.
func objectKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	for info := range s.objects.c.ListObjects(context.Background(), s.objects.bucket, minio.ListObjectsOptions{Prefix: objectPrefix, Recursive: true}) {
		if info.Err != nil {
			t.Fatal(info.Err)
		}
		keys = append(keys, info.Key[len(objectPrefix):])
	}
	return keys
}

// A flakyProxy stands between a store and the object storage: it passes
// connections, refuses them (the object storage is down), or accepts them
// and never answers (it hangs).
type flakyProxy struct {
	ln     net.Listener
	target string
	mode   atomic.Int32
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

const (
	proxyPass int32 = iota
	proxyRefuse
	proxyStall
)

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.set(proxyRefuse)
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			switch p.mode.Load() {
			case proxyRefuse:
				c.Close()
				continue
			case proxyStall:
				p.track(c, true)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.pass(c)
			}()
		}
	}()
	return p
}

func (p *flakyProxy) addr() string { return p.ln.Addr().String() }

// set changes the mode; every connection open is cut.
func (p *flakyProxy) set(mode int32) {
	p.mode.Store(mode)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *flakyProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *flakyProxy) pass(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.track(c, true)
	p.track(up, true)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.track(c, false)
	p.track(up, false)
}

// expunge flags the message \Deleted and expunges it.
func expunge(t *testing.T, s *Store, mailbox int64, uid uint32) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.StoreFlags(ctx, mailbox, []uint32{uid}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.Expunge(ctx, mailbox, []uint32{uid}); err != nil || len(gone) != 1 {
		t.Fatalf("expunge %d: %v %v", uid, gone, err)
	}
}
