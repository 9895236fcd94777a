//go:build mailferry_testhash

package auth_test

// cheapHashes: this test binary was built with mailferry_testhash
// (core/store/testhash.go), whose password hashes cost next to nothing.
const cheapHashes = true
