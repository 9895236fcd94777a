package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each form names its bytes by its own hash (the published test vectors
// of "abc"); a key of one form never names bytes by the other's hash, and
// text that is neither form names nothing.
func TestBlobKeyForms(t *testing.T) {
	abc, abd := []byte("abc"), []byte("abd")
	const sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	const b3 = "b3-6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
	if got := sha256Key(abc); got != sha {
		t.Fatalf("SHA-256 key of abc %s", got)
	}
	if got := b3Key(abc); got != b3 {
		t.Fatalf("BLAKE3 key of abc %s", got)
	}
	for _, k := range []string{sha, b3} {
		if !isBlobKey(k) {
			t.Errorf("%s is not taken for a blob key", k)
		}
		if ok, got := checkKey(k, abc); !ok || got != k {
			t.Errorf("checkKey(%s, abc) = %v %s", k, ok, got)
		}
		if ok, got := checkKey(k, abd); ok || got == k {
			t.Errorf("checkKey(%s, abd) = %v %s: other bytes pass", k, ok, got)
		}
	}
	// BLAKE3's own test vectors (the first 32 bytes of each hash) of
	// inputs long enough for the vector code: byte i is i mod 251. Whole,
	// and streamed in uneven pieces.
	for n, want := range map[int]string{
		8192:  "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63",
		31744: "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
	} {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte(i % 251)
		}
		if got := b3Key(in); got != blake3KeyPrefix+want {
			t.Errorf("BLAKE3 key of the %d-byte vector %s", n, got)
		}
		h := NewKeyHashBoth()
		for rest := in; len(rest) > 0; {
			k := min(len(rest), 1000+len(rest)%777)
			h.Write(rest[:k])
			rest = rest[k:]
		}
		if h.Key() != blake3KeyPrefix+want || !h.Names(sha256Key(in)) {
			t.Errorf("the %d-byte vector streamed: %s", n, h.Key())
		}
	}
	if got := keyHashName(sha) + "/" + keyHashName(b3); got != "SHA-256/BLAKE3" {
		t.Errorf("hash names %s", got)
	}
	// One hash's digits under the other's form name nothing.
	for _, k := range []string{blake3KeyPrefix + sha, b3[len(blake3KeyPrefix):]} {
		if ok, _ := checkKey(k, abc); ok {
			t.Errorf("%s names abc", k)
		}
	}
	for _, k := range []string{"", sha[:63], sha + "0", strings.ToUpper(sha), "b3-" + sha[:63], "b3-" + sha + "0",
		"b3-" + strings.ToUpper(sha), "B3-" + sha, "b2-" + sha, "b3" + sha, "b3-b3-" + sha[6:], "../" + sha[3:], "b3-" + sha[:62] + "/x"} {
		if isBlobKey(k) {
			t.Errorf("%q is taken for a blob key", k)
		}
		if ok, _ := checkKey(k, abc); ok {
			t.Errorf("%q names abc", k)
		}
	}
}

// A store holding blobs under both key forms (packs and object storage):
// each is served byte for byte, also after Compact copied it out of a
// mostly dead pack (which checks each blob against its key), an object
// under a BLAKE3 key nobody names is swept like any other, and a blob
// whose key does not name its bytes is refused as before. Without the
// readers of both forms, Compact refused the pack ("does not match its
// key") and the object storage's reads refused the BLAKE3 object.
func TestBlobMatrixBothKeyForms(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		s, path, inbox := matrixStart(t, b)
		b3body, dead, shabody, orphan := fbody(21, 10<<10), fbody(22, 40<<10), fbody(23, 5<<10), fbody(24, 3<<10)
		if _, err := s.stageKeyed(orphan, b3Key(orphan)); err != nil { // never appended
			t.Fatal(err)
		}
		// A SHA-256 key, as a store from before BLAKE3 keys holds.
		msgs := appendKeyed(t, s, inbox, keyed{b3body, b3Key}, keyed{dead, nil}, keyed{shabody, sha256Key})
		if msgs[0].BlobKey != b3Key(b3body) || msgs[2].BlobKey != sha256Key(shabody) {
			t.Fatalf("keys %s %s", msgs[0].BlobKey, msgs[2].BlobKey)
		}
		serve := func(key string, want []byte) {
			t.Helper()
			if got, err := s.Blob(ctx, key); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("blob %s: %d bytes served (%v), not the %d stored", key[:12], len(got), err, len(want))
			}
		}
		serve(b3Key(b3body), b3body)
		serve(sha256Key(shabody), shabody)
		expunge(t, s, inbox, msgs[1].UID)
		s.Close()
		s = b.open(t, path)                              // its packs no longer written
		mustAppend(t, s, inbox, false, fbody(25, 1<<10)) // a newer pack: the last one stays
		b.age(t, s, path)
		res, err := s.Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.name == "packs" && res.BlobsMoved != 2 {
			t.Fatalf("compact: %+v, want both live blobs moved out of the mostly dead pack", res)
		}
		if b.name == "s3" {
			keys := objectKeys(t, s)
			slices.Sort(keys)
			want := []string{sha256Key(shabody), b3Key(b3body)}
			want = append(want, fkey(fbody(25, 1<<10)))
			slices.Sort(want)
			if res.ObjectsRemoved != 2 || !slices.Equal(keys, want) {
				t.Fatalf("compact: %+v, objects left %v, want %v", res, keys, want)
			}
		}
		serve(b3Key(b3body), b3body)
		serve(sha256Key(shabody), shabody)
		mustNotStored(t, s, dead)
	})
}

// A store copy of a source holding blobs under both key forms keeps each
// blob under its own key (the target's rows name the source's keys), and
// VerifyCopy checks each by its own hash; kept POP3 UIDLs may name either
// form; the target makes new keys in the source's form. Without the
// readers of both forms the copy refused the blob of the other form as
// damaged (and, had it been let through, staged it under a key no
// message row names).
func TestStoreCopyBothKeyForms(t *testing.T) {
	for _, b3 := range []bool{true, false} {
		t.Run(keyForm(b3), func(t *testing.T) {
			ctx := context.Background()
			src, _ := copySourceStore(t)
			if !b3 {
				setKeyForm(t, src, false)
			}
			fillSource(t, src, false)
			a, inbox := aliceInbox(t, src)
			b3body, shabody := fbody(31, 50<<10), fbody(32, 20<<10)
			appendKeyed(t, src, inbox.ID, keyed{b3body, b3Key}, keyed{shabody, sha256Key})
			if err := src.KeepUIDLs(ctx, a.ID, []KeptUIDL{{UIDL: "old-b3", BlobKey: b3Key(b3body)}, {UIDL: "old-sha", BlobKey: sha256Key(shabody)}}); err != nil {
				t.Fatalf("kept UIDLs of both forms: %v", err)
			}
			if err := src.KeepUIDLs(ctx, a.ID, []KeptUIDL{{UIDL: "bad", BlobKey: "b3-" + sha256Key(b3body)[:63]}}); err == nil {
				t.Fatal("a kept UIDL with a malformed BLAKE3 key was taken")
			}
			dst, _ := copyTarget(t, false)
			if _, err := Copy(ctx, src, dst, nil); err != nil {
				t.Fatal(err)
			}
			r, err := VerifyCopy(ctx, src, dst, 0)
			if err != nil || !r.OK() {
				t.Fatalf("verify: %+v, %v", r, err)
			}
			for key, body := range map[string][]byte{b3Key(b3body): b3body, sha256Key(shabody): shabody} {
				if got, err := dst.Blob(ctx, key); err != nil || !bytes.Equal(got, body) {
					t.Fatalf("blob %s in the target: %d bytes (%v)", key[:8], len(got), err)
				}
			}
			var rows int
			if err := dst.r.QueryRow(`SELECT count(*) FROM blobs WHERE key IN (?, ?)`, sha256Key(b3body), b3Key(shabody)).Scan(&rows); err != nil || rows != 0 {
				t.Fatalf("%d blob rows under keys of the other form in the target (%v), want none", rows, err)
			}
			// New bytes in the target get the source's form, in this
			// process and the next.
			nb := fbody(33, 1000)
			want := keyLike(map[bool]string{true: b3Key(nil), false: sha256Key(nil)}[b3], nb)
			if sb, err := dst.Stage(nb); err != nil || sb.Key != want {
				t.Fatalf("staged in the target under %v (%v), want %s", sb, err, want)
			}
			var form string
			if err := dst.r.QueryRow(`SELECT form FROM blob_key_form`).Scan(&form); err != nil || form != keyForm(b3) {
				t.Fatalf("the target's form %q (%v), want %q", form, err, keyForm(b3))
			}
		})
	}
}

// keyed is a body to append under the key key makes (nil: the store's).
type keyed struct {
	body []byte
	key  func([]byte) string
}

// appendKeyed appends the bodies in one transaction, each staged under
// its key, or appended plainly.
func appendKeyed(t *testing.T, s *Store, mailbox int64, bodies ...keyed) []*Message {
	t.Helper()
	var msgs []*NewMessage
	for _, b := range bodies {
		if b.key == nil {
			msgs = append(msgs, &NewMessage{Body: b.body})
			continue
		}
		sb, err := s.stageKeyed(b.body, b.key(b.body))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &NewMessage{Staged: sb})
	}
	tx, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	out, err := tx.AppendMany(mailbox, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return out
}

// setKeyForm makes s a store whose new keys are b3's or SHA-256's, as
// the schema step leaves a store that held bytes or none when it ran.
func setKeyForm(t *testing.T, s *Store, b3 bool) {
	t.Helper()
	if _, err := s.w.Exec(`UPDATE blob_key_form SET form = ?`, keyForm(b3)); err != nil {
		t.Fatal(err)
	}
	s.b3 = b3
}

// The first Open after the schema step gives a store that holds no bytes
// and no kept UIDL BLAKE3 keys, and one that does SHA-256 keys (so that
// its new bytes are deduplicated against those it holds, and its kept
// UIDLs match); a store's writers, and the hash the copy's POP3 UIDLs
// are kept with, make keys of its form (packs and object storage, each
// engine).
func TestBlobKeyFormOfStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		s, path, inbox := matrixStart(t, b)
		if !s.b3 {
			t.Fatal("a new store makes SHA-256 keys")
		}
		one, two := fbody(41, 9000), fbody(42, 70<<10)
		got := mustAppend(t, s, inbox, false, one)
		sb, err := s.Stage(two)
		if err != nil || sb.Key != b3Key(two) || got[0].BlobKey != b3Key(one) {
			t.Fatalf("a new store's keys %s %v (%v)", got[0].BlobKey, sb, err)
		}
		if m, err := s.AppendMessage(ctx, inbox, &NewMessage{Body: two}); err != nil || m.BlobKey != b3Key(two) {
			t.Fatalf("appended (prepare) under %v (%v)", m, err)
		}
		h := s.NewKeyHash()
		h.Write(one)
		if h.Key() != b3Key(one) || !h.Names(b3Key(one)) || h.Names(sha256Key(one)) {
			t.Fatalf("the store's key hash says %s", h.Key())
		}
		// Opened again without a form, as the first Open after the step
		// finds a store from before it, which now holds bytes.
		if _, err := s.w.Exec(`DELETE FROM blob_key_form`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = b.open(t, path)
		if s.b3 {
			t.Fatal("a store holding bytes makes BLAKE3 keys after the step")
		}
		got = mustAppend(t, s, inbox, true, one)
		if got[0].BlobKey != sha256Key(one) {
			t.Fatalf("a store holding bytes made the key %s", got[0].BlobKey)
		}
		mustAppend(t, s, inbox, false, one) // deduplicated against the SHA-256 blob
		var rows, refs int
		if err := s.r.QueryRow(`SELECT count(*), coalesce(sum(refs), 0) FROM blobs WHERE key = ?`, sha256Key(one)).Scan(&rows, &refs); err != nil || rows != 1 || refs != 2 {
			t.Fatalf("%d rows, %d references under the SHA-256 key (%v), want 1 with 2", rows, refs, err)
		}
		h = s.NewKeyHash()
		h.Write(one)
		if h.Key() != sha256Key(one) {
			t.Fatalf("the store's key hash says %s", h.Key())
		}
		both := NewKeyHashBoth()
		both.Write(one)
		if !both.Names(sha256Key(one)) || !both.Names(b3Key(one)) || both.Names(b3Key(two)) || both.Names("b3-"+sha256Key(one)) {
			t.Fatal("NewKeyHashBoth names the wrong keys")
		}
		for key, body := range map[string][]byte{b3Key(one): one, b3Key(two): two, sha256Key(one): one} {
			if got, err := s.Blob(ctx, key); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("blob %s: %d bytes (%v)", key[:8], len(got), err)
			}
		}
	})
}

// On a CPU where BLAKE3 is not the faster hash (no AVX2: its code is
// plain Go), a new store makes SHA-256 keys.
func TestBlobKeyFormSlowBLAKE3(t *testing.T) {
	was := blake3Fast
	blake3Fast = false
	t.Cleanup(func() { blake3Fast = was })
	s, err := testOpen(t, filepath.Join(t.TempDir(), "mail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := fbody(51, 20000)
	if sb, err := s.Stage(body); err != nil || sb.Key != sha256Key(body) {
		t.Fatalf("staged under %v (%v), want the SHA-256 key", sb, err)
	}
}

// BenchmarkBlobKeyHash: the key of a body in each form, by size (README,
// "mailferry migrate, the whole process", session 17: BLAKE3 is faster
// from about 6 kB, slower below).
func BenchmarkBlobKeyHash(b *testing.B) {
	for _, n := range []int{3000, 8192, 50000, 500000} {
		body := fbody(1, n)
		for _, like := range []string{fkey(nil), b3Key(nil)} {
			b.Run(fmt.Sprintf("%s/%d", keyHashName(like), n), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					keyLike(like, body)
				}
			})
		}
	}
}
