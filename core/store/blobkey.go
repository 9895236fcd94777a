package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/cpu"
)

// Blob keys: a message's bytes are named by a hash of them (the blobs
// table's key, an object's name, a kept POP3 UIDL's match). A key has
// one of two forms, told apart by its text alone:
//
//   - 64 lowercase hex digits: the bytes' SHA-256.
//   - blake3KeyPrefix and 64 lowercase hex digits: the bytes' BLAKE3
//     (256 bits). Issue 17: on this machine BLAKE3
//     (github.com/zeebo/blake3) hashes a 50 kB body 1.8x faster than
//     SHA-256 with SHA-NI, which was 30% of a copy's CPU (README,
//     "mailferry migrate, the whole process").
//
// Which form new bytes get is the store's (blob_key_form, one row, made
// by the first Open after the schema step that brought it): BLAKE3 for a
// store that held no blob and no kept POP3 UIDL then, on a CPU where
// BLAKE3 is the faster hash (blake3Fast: AVX2; elsewhere its code is
// plain Go, slower than SHA-256 with the CPU's SHA instructions, e.g. on
// arm64), SHA-256 otherwise. The same
// bytes must get the same key wherever they come from, or they are not
// deduplicated, and a kept UIDL (the key of the old server's bytes)
// must be made in the form the copied messages get, or POP3 clients
// download those messages again; so one store makes one form (Stage,
// putBlob, prepare, NewKeyHash), and an existing store keeps SHA-256.
// Store copy gives the target the source's form and keeps every blob's
// key. Every reader takes both forms: a key's hash is told by its text
// (object reads, Compact, store copy and its verify, the sweeps, kept
// UIDLs; a migration's verify hashes the old server's bytes both ways).
// A Mailferry from before the step refuses the store (its schema is
// newer), so no node writes SHA-256 keys into a BLAKE3 store.
//
// The two forms never collide (the prefix is not hex, and a SHA-256 key
// has no prefix), so a reader given a key knows which hash its bytes must
// have, and a blob is never taken for another because two hashes agree on
// some text.
const blake3KeyPrefix = "b3-"

// isHexKey tells whether s is 64 lowercase hex digits.
func isHexKey(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isBlobKey tells whether s is a blob key in either form.
func isBlobKey(s string) bool {
	if h, ok := strings.CutPrefix(s, blake3KeyPrefix); ok {
		return isHexKey(h)
	}
	return isHexKey(s)
}

// blake3Fast tells whether BLAKE3 hashes faster than SHA-256 on this
// CPU: github.com/zeebo/blake3's vector code needs AVX2 (a test sets it).
var blake3Fast = cpu.X86.HasAVX2

// loadKeyForm reads which form the store's new blob keys have, choosing
// it at the first Open after the schema step (by whichever node comes
// first: the others read its choice).
func (s *Store) loadKeyForm(ctx context.Context) error {
	form := "sha256"
	if blake3Fast {
		var held bool
		if err := s.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM blobs) OR EXISTS (SELECT 1 FROM kept_uidls)`).Scan(&held); err != nil {
			return fmt.Errorf("store: blob key form: %w", err)
		}
		if !held {
			form = "blake3"
		}
	}
	if err := s.execAlone(ctx, `INSERT INTO blob_key_form(id, form) VALUES (1, ?) ON CONFLICT(id) DO NOTHING`, form); err != nil {
		return fmt.Errorf("store: blob key form: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, `SELECT form FROM blob_key_form WHERE id = 1`).Scan(&form); err != nil {
		return fmt.Errorf("store: blob key form: %w", err)
	}
	s.b3 = form == "blake3"
	return nil
}

// keyForm is the blob_key_form of b3.
func keyForm(b3 bool) string {
	if b3 {
		return "blake3"
	}
	return "sha256"
}

// BlobKey is the key body's bytes get in this store (its form: BLAKE3 or
// SHA-256, see above): what a message of those bytes has as BlobKey, for
// a caller (or a test) that compares bytes with what the store kept.
func (s *Store) BlobKey(body []byte) string { return s.blobKey(body) }

// blobKey is body's key in the store's form.
func (s *Store) blobKey(body []byte) string {
	if s.b3 {
		return b3Key(body)
	}
	return sha256Key(body)
}

// b3Key is body's key in the BLAKE3 form.
func b3Key(body []byte) string {
	sum := blake3.Sum256(body)
	return blake3KeyPrefix + hex.EncodeToString(sum[:])
}

// sha256Key is body's key in the SHA-256 form.
func sha256Key(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// keyLike is body's key in the form of key (a blob key: isBlobKey).
func keyLike(key string, body []byte) string {
	if strings.HasPrefix(key, blake3KeyPrefix) {
		return b3Key(body)
	}
	return sha256Key(body)
}

// keyHashName names the hash of key's form, for messages.
func keyHashName(key string) string {
	if strings.HasPrefix(key, blake3KeyPrefix) {
		return "BLAKE3"
	}
	return "SHA-256"
}

// checkKey tells whether body's bytes are those key names (key must be a
// blob key; anything else names no bytes) and, if not, what body's key in
// key's form is.
func checkKey(key string, body []byte) (ok bool, got string) {
	if !isBlobKey(key) {
		return false, keyLike(key, body)
	}
	got = keyLike(key, body)
	return got == key, got
}

// KeyHash makes the blob keys of the bytes written to it, for bytes that
// come as a stream (an old server's POP3 message, a FETCH literal).
type KeyHash struct {
	sha hash.Hash      // nil: not made
	b3  *blake3.Hasher // nil: not made
	w   io.Writer
}

// NewKeyHash makes keys in the store's form: the key the store gives the
// same bytes (a kept UIDL matches the message copied with its bytes).
func (s *Store) NewKeyHash() *KeyHash {
	if s.b3 {
		return newKeyHash(false, true)
	}
	return newKeyHash(true, false)
}

// NewKeyHashBoth makes keys in both forms (Names tells either): for
// bytes compared with keys a store holds, which may be of either form.
func NewKeyHashBoth() *KeyHash { return newKeyHash(true, true) }

func newKeyHash(sha, b3 bool) *KeyHash {
	k := &KeyHash{}
	var ws []io.Writer
	if sha {
		k.sha = sha256.New()
		ws = append(ws, k.sha)
	}
	if b3 {
		k.b3 = blake3.New()
		ws = append(ws, k.b3)
	}
	k.w = io.MultiWriter(ws...)
	return k
}

func (k *KeyHash) Write(p []byte) (int, error) { return k.w.Write(p) }

// Key is the key of the bytes written so far: BLAKE3's if k makes it,
// else SHA-256's.
func (k *KeyHash) Key() string {
	if k.b3 != nil {
		return blake3KeyPrefix + hex.EncodeToString(k.b3.Sum(nil))
	}
	return hex.EncodeToString(k.sha.Sum(nil))
}

// Names tells whether key is the key of the bytes written so far, in a
// form k makes.
func (k *KeyHash) Names(key string) bool {
	if h, ok := strings.CutPrefix(key, blake3KeyPrefix); ok {
		return k.b3 != nil && isHexKey(h) && hex.EncodeToString(k.b3.Sum(nil)) == h
	}
	return k.sha != nil && isHexKey(key) && hex.EncodeToString(k.sha.Sum(nil)) == key
}
