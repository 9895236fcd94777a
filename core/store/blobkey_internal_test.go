package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// b3Key is body's key in the BLAKE3 form (blobkey.go), as a writer of
// that form makes it.
func b3Key(body []byte) string { return keyLike(blake3KeyPrefix+strings.Repeat("0", 64), body) }

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
		sb, err := s.stageKeyed(b3body, b3Key(b3body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.stageKeyed(orphan, b3Key(orphan)); err != nil { // never appended
			t.Fatal(err)
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := tx.AppendMany(inbox, []*NewMessage{{Staged: sb}, {Body: dead}, {Body: shabody}})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if msgs[0].BlobKey != b3Key(b3body) || msgs[2].BlobKey != fkey(shabody) {
			t.Fatalf("keys %s %s", msgs[0].BlobKey, msgs[2].BlobKey)
		}
		serve := func(key string, want []byte) {
			t.Helper()
			if got, err := s.Blob(ctx, key); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("blob %s: %d bytes served (%v), not the %d stored", key[:12], len(got), err, len(want))
			}
		}
		serve(b3Key(b3body), b3body)
		serve(fkey(shabody), shabody)
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
			want := []string{fkey(shabody), b3Key(b3body)}
			want = append(want, fkey(fbody(25, 1<<10)))
			slices.Sort(want)
			if res.ObjectsRemoved != 2 || !slices.Equal(keys, want) {
				t.Fatalf("compact: %+v, objects left %v, want %v", res, keys, want)
			}
		}
		serve(b3Key(b3body), b3body)
		serve(fkey(shabody), shabody)
		mustNotStored(t, s, dead)
	})
}

// A store copy of a source holding blobs under both key forms keeps each
// blob under its own key (the target's rows name the source's keys), and
// VerifyCopy checks each by its own hash; kept POP3 UIDLs may name either
// form. Without the readers of both forms the copy refused the BLAKE3
// blob as damaged (and, had it been let through, staged it under a
// SHA-256 key no message row names).
func TestStoreCopyBothKeyForms(t *testing.T) {
	ctx := context.Background()
	src, _ := copySourceStore(t)
	fillSource(t, src, false)
	a, inbox := aliceInbox(t, src)
	body := fbody(31, 50<<10)
	sb, err := src.stageKeyed(body, b3Key(body))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := src.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.AppendMany(inbox.ID, []*NewMessage{{Staged: sb}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := src.KeepUIDLs(ctx, a.ID, []KeptUIDL{{UIDL: "old-b3", BlobKey: b3Key(body)}, {UIDL: "old-sha", BlobKey: fkey(body)}}); err != nil {
		t.Fatalf("kept UIDLs of both forms: %v", err)
	}
	if err := src.KeepUIDLs(ctx, a.ID, []KeptUIDL{{UIDL: "bad", BlobKey: "b3-" + fkey(body)[:63]}}); err == nil {
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
	if got, err := dst.Blob(ctx, b3Key(body)); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the BLAKE3 blob in the target: %d bytes (%v)", len(got), err)
	}
	var rows int
	if err := dst.r.QueryRow(`SELECT count(*) FROM blobs WHERE key = ?`, fkey(body)).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d blob rows under the body's SHA-256 key in the target (%v), want none", rows, err)
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
