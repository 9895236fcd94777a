package store

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/internal/s3test"
)

// s3Options are the object storage options of a test on srv (or on addr,
// a proxy in front of it).
func s3Options(addr, bucket string) *ObjectStorage {
	return &ObjectStorage{Endpoint: addr, Bucket: bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
		PlainHTTP: true, Timeout: 2 * time.Second}
}

// openObjectStore opens a store keeping its bytes in a fresh bucket behind
// a proxy the test controls.
func openObjectStore(t *testing.T) (*Store, *flakyProxy, int64) {
	t.Helper()
	srv := s3test.Shared(t)
	px := newFlakyProxy(t, srv.Endpoint)
	s, err := Open(filepath.Join(t.TempDir(), "mail.db"), &Options{ChangePoll: -1, Objects: s3Options(px.addr(), srv.Bucket(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, px, matrixInbox(t, s, "a@example.test")
}

// An object storage that cannot be used fails Open with the reason in
// words, within the timeout, and never with the secret key in the message.
func TestObjectStorageOpenErrors(t *testing.T) {
	engineFree(t) // its stores are SQLite ones; the blob matrix runs on every engine
	path := filepath.Join(t.TempDir(), "mail.db")
	open := func(o *ObjectStorage) error {
		t.Helper()
		start := time.Now()
		s, err := Open(path, &Options{ChangePoll: -1, Objects: o})
		if err == nil {
			s.Close()
			t.Fatalf("Open with %+v succeeded", o)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Open took %v to fail", d)
		}
		if strings.Contains(err.Error(), o.SecretKey) {
			t.Errorf("the secret key is in the error: %v", err)
		}
		return err
	}
	// Nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	err = open(s3Options(closed, "mail"))
	if !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "nothing listens") {
		t.Errorf("endpoint down: %v", err)
	}
	// A listener that accepts and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	o := s3Options(hang.Addr().String(), "mail")
	o.Timeout = time.Second
	start := time.Now()
	err = open(o)
	if !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("endpoint hangs: %v", err)
	}
	t.Logf("a hanging endpoint failed Open after %v", time.Since(start).Round(time.Millisecond))
	if _, err := Open(path, &Options{Objects: &ObjectStorage{Endpoint: "nohost", Bucket: "mail"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("endpoint without port: %v", err)
	}
	if _, err := Open(path, &Options{Objects: &ObjectStorage{Endpoint: closed, Bucket: "Bad_Bucket"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid bucket name: %v", err)
	}

	srv := s3test.Shared(t)
	o = s3Options(srv.Endpoint, srv.Bucket(t))
	o.SecretKey = "not-the-secret-key"
	if err := open(o); !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "secret key is wrong") {
		t.Errorf("wrong secret key: %v", err)
	}
	o = s3Options(srv.Endpoint, srv.Bucket(t))
	o.AccessKey = "nobody"
	if err := open(o); !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "access key is unknown") {
		t.Errorf("unknown access key: %v", err)
	}
	o = s3Options(srv.Endpoint, srv.Bucket(t))
	o.PlainHTTP = false
	if err := open(o); !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "TLS failed") {
		t.Errorf("TLS to a plain endpoint: %v", err)
	}
}

// An object storage that starts hanging after Open fails appends (staged
// or not) and reads within the timeout; nothing is committed, and the
// same append succeeds once it answers again.
func TestObjectStorageHangs(t *testing.T) {
	engineFree(t) // its stores are SQLite ones; the blob matrix runs on every engine
	s, px, inbox := openObjectStore(t)
	ctx := context.Background()
	kept := fbody(31, 10<<10)
	if _, err := appendBodies(s, inbox, false, kept); err != nil {
		t.Fatal(err)
	}
	body := fbody(32, 1<<20)
	px.set(proxyStall)
	for _, staged := range []bool{false, true} {
		start := time.Now()
		_, err := appendBodies(s, inbox, staged, body)
		mustNotDurable(t, "append to a hanging object storage", err)
		if !errors.Is(err, ErrObjectStorage) || !strings.Contains(err.Error(), "no answer within") {
			t.Errorf("staged=%v: %v", staged, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("staged=%v: the append took %v to fail", staged, d)
		}
	}
	start := time.Now()
	if _, err := s.Blob(ctx, fkey(kept)); !errors.Is(err, ErrObjectStorage) {
		t.Errorf("read from a hanging object storage: %v", err)
	}
	t.Logf("a read failed after %v", time.Since(start).Round(time.Millisecond))
	px.set(proxyPass)
	mustNotStored(t, s, body)
	if msgs, err := s.Messages(ctx, inbox); err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages (%v), want the 1 before", len(msgs), err)
	}
	if _, err := appendBodies(s, inbox, true, body); err != nil {
		t.Fatal(err)
	}
	mustServe(t, s, body)
	mustServe(t, s, kept)
}

// Compact sweeps a staged object before the transaction naming it
// commits: the commit fails with ErrNotDurable, commits nothing, and the
// bytes staged again are appended and served.
func TestObjectSweptBeforeCommit(t *testing.T) {
	engineFree(t) // its stores are SQLite ones; the blob matrix runs on every engine
	s, _, inbox := openObjectStore(t)
	ctx := context.Background()
	body := fbody(41, 64<<10)
	sb, err := s.Stage(body)
	if err != nil {
		t.Fatal(err)
	}
	s.objects.grace, s.objects.settle = 0, 0
	res, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.ObjectsRemoved != 1 {
		t.Fatalf("compact removed %d objects, want the staged one", res.ObjectsRemoved)
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Append(inbox, &NewMessage{Staged: sb}); err != nil {
		t.Fatal(err)
	}
	mustNotDurable(t, "commit naming a swept object", tx.Commit())
	mustNotStored(t, s, body)
	if _, err := appendBodies(s, inbox, true, body); err != nil {
		t.Fatal(err)
	}
	mustServe(t, s, body)
}

// A store that moves to object storage keeps serving the bytes in its
// packs; new bytes go to objects; Compact leaves both.
func TestObjectStoreKeepsPackBlobs(t *testing.T) {
	engineFree(t) // its stores are SQLite ones; the blob matrix runs on every engine
	srv := s3test.Shared(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	inbox := matrixInbox(t, s, "a@example.test")
	old := fbody(51, 20<<10)
	if _, err := appendBodies(s, inbox, false, old); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, &Options{ChangePoll: -1, Objects: s3Options(srv.Endpoint, srv.Bucket(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fresh := fbody(52, 20<<10)
	if _, err := appendBodies(s, inbox, false, fresh, old); err != nil {
		t.Fatal(err)
	}
	for b, want := range map[*[]byte]int64{&old: 1, &fresh: objectPack} {
		if pack, _, err := BlobPlace(s, fkey(*b)); err != nil || pack != want {
			t.Errorf("blob in pack %d (%v), want %d", pack, err, want)
		}
	}
	s.objects.grace, s.objects.settle = 0, 0
	AgePacks(t, path)
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	mustServe(t, s, old)
	mustServe(t, s, fresh)
	s.Close()
	// Without object storage, its bytes are not there: said in words.
	s, err = Open(path, &Options{ChangePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Blob(ctx, fkey(fresh)); err == nil || !strings.Contains(err.Error(), "none is configured") {
		t.Errorf("object blob without object storage: %v", err)
	}
}

// BenchmarkBlobAppend: the migration's way in (staged, batches of 200
// messages of 48 KB) into packs and into object storage, in one run.
func BenchmarkBlobAppend(b *testing.B) {
	for _, name := range []string{"packs", "s3"} {
		b.Run(name, func(b *testing.B) {
			opts := &Options{ChangePoll: -1}
			if name == "s3" {
				srv := s3test.Shared(b)
				opts.Objects = s3Options(srv.Endpoint, srv.Bucket(b))
			}
			s, err := Open(filepath.Join(b.TempDir(), "mail.db"), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if _, err := s.CreateDomain(ctx, "example.test"); err != nil {
				b.Fatal(err)
			}
			a, err := s.CreateAccount(ctx, "a@example.test", "Secret-1", nil)
			if err != nil {
				b.Fatal(err)
			}
			inbox, err := s.Mailbox(ctx, a.ID, "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			body := fbody(61, 48<<10)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i += 200 {
				var msgs []*NewMessage
				for j := i; j < i+200 && j < b.N; j++ {
					body[0], body[1], body[2] = byte(j), byte(j>>8), byte(j>>16)
					sb, err := s.Stage(body)
					if err != nil {
						b.Fatal(err)
					}
					msgs = append(msgs, &NewMessage{Staged: sb})
				}
				if err := s.SyncStaged(func() []*StagedBlob {
					var out []*StagedBlob
					for _, m := range msgs {
						out = append(out, m.Staged)
					}
					return out
				}()...); err != nil {
					b.Fatal(err)
				}
				tx, err := s.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.AppendMany(inbox.ID, msgs); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// HTTPS to an endpoint that speaks plain HTTP is told as a TLS mismatch
// by a typed error (tls.RecordHeaderError), not by net/http's text; no
// S3 server needed: any plain HTTP server answers so.
func TestObjectStorageTLSToPlainHTTP(t *testing.T) {
	engineFree(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not S3", http.StatusBadRequest)
	}))
	defer plain.Close()
	o := s3Options(strings.TrimPrefix(plain.URL, "http://"), "mail")
	o.PlainHTTP = false
	s, err := Open(filepath.Join(t.TempDir(), "mail.db"), &Options{ChangePoll: -1, Objects: o})
	if err == nil {
		s.Close()
		t.Fatal("Open over TLS to a plain HTTP endpoint succeeded")
	}
	var rec tls.RecordHeaderError
	if !errors.Is(err, ErrObjectStorage) || !errors.As(err, &rec) || !strings.Contains(err.Error(), "TLS failed") {
		t.Errorf("TLS to a plain endpoint: %v; want ErrObjectStorage wrapping a tls.RecordHeaderError, told as TLS failed", err)
	}
}
