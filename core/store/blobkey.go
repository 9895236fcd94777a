package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/zeebo/blake3"
)

// Blob keys: a message's bytes are named by a hash of them (the blobs
// table's key, an object's name, a kept POP3 UIDL's match). A key has
// one of two forms, told apart by its text alone:
//
//   - 64 lowercase hex digits: the bytes' SHA-256. Every key this store
//     writes (Stage, putBlob, prepare).
//   - blake3KeyPrefix and 64 lowercase hex digits: the bytes' BLAKE3
//     (256 bits). Written by no code yet; read, checked, swept, compacted
//     and copied like the other form, so that readers know it before any
//     writer makes it (a store shared by nodes of two versions, a store
//     copied back). Issue 17: on this machine BLAKE3
//     (github.com/zeebo/blake3) hashes a 50 kB body 1.8x faster than
//     SHA-256 with SHA-NI, a quarter of a copy's CPU (README,
//     "mailferry migrate, the whole process").
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

// sha256Key is body's key in the SHA-256 form.
func sha256Key(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// keyLike is body's key in the form of key (a blob key: isBlobKey).
func keyLike(key string, body []byte) string {
	if strings.HasPrefix(key, blake3KeyPrefix) {
		sum := blake3.Sum256(body)
		return blake3KeyPrefix + hex.EncodeToString(sum[:])
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
