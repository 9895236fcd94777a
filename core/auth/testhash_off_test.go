//go:build !mailferry_testhash

package auth_test

// cheapHashes: this test binary hashes passwords with the real argon2id
// parameters.
const cheapHashes = false
