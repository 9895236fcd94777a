package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Verified logins remembered in memory (as Dovecot's auth_cache), so that
// a client that logs in again and again (a phone reconnecting, a client
// opening a connection per folder) does not cost an argon2id hash (19 MiB,
// tens of ms of a core) each time: after a password was verified against
// the stored hash, an HMAC-SHA256 of the account, that stored hash and the
// password, under a key drawn at random when the store opens and never
// written anywhere, is kept for the account for Options.LoginCache. A
// login whose HMAC equals the kept one (compared in constant time) is
// accepted without the hash.
//
// What it does not weaken:
//   - Only an exact password verified by the full hash hits. A wrong
//     password never matches (that would need an HMAC-SHA256 collision
//     under a key the attacker does not know) and takes the full hash, as
//     before: guessing through the cache is not possible, and the
//     failure's timing (Delay in core/auth) is unchanged. The HMAC is
//     computed for every login, entry or not.
//   - A changed password (here or on another node) changes the stored
//     hash, which is part of the HMAC: the old password no longer hits.
//     The entry of an account whose password is set here is also dropped.
//   - Nothing is written to disk; what is stored there stays argon2id.
//     Someone who can read the process's memory could test guesses
//     against an entry at HMAC speed rather than argon2id speed, while
//     the entry lives; such a reader already sees every password as it
//     arrives in a login, so the entries (short-lived, keyed at random
//     per process) add little. Set LoginCache negative to keep none.
//   - Memory is bounded: at most loginCacheMax entries (about 150 bytes
//     each), expired ones swept first; only a login with the right
//     password makes one.
//   - The rate limits (core/auth) run before the check, hit or not.

// loginCacheMax bounds the entries kept.
const loginCacheMax = 10000

// DefaultLoginCache is how long a verified login is remembered when
// Options.LoginCache is 0.
const DefaultLoginCache = 5 * time.Minute

type loginCache struct {
	ttl  time.Duration // <= 0: off
	pool sync.Pool     // of hash.Hash (HMAC under key)

	mu      sync.Mutex
	entries map[string]loginCacheEntry // by canonical address
}

type loginCacheEntry struct {
	mac     [sha256.Size]byte
	expires time.Time
}

func newLoginCache(ttl time.Duration) *loginCache {
	c := &loginCache{ttl: ttl, entries: map[string]loginCacheEntry{}}
	if ttl == 0 {
		c.ttl = DefaultLoginCache
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		// No randomness: remember nothing rather than use a known key.
		c.ttl = -1
	}
	c.pool.New = func() any { return hmac.New(sha256.New, key) }
	return c
}

// mac is the HMAC of an account's canonical address, its stored hash and
// a password, each prefixed by its length.
func (c *loginCache) mac(address, stored, password string) (out [sha256.Size]byte) {
	h := c.pool.Get().(hash.Hash)
	defer c.pool.Put(h)
	h.Reset()
	var n [8]byte
	for _, s := range []string{address, stored, password} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Sum(out[:0])
	return out
}

// check reports whether password was verified for the account with this
// stored hash within the cache's lifetime. mac is the login's HMAC (to
// keep, with put, once the full hash verified it).
func (c *loginCache) check(address, stored, password string) (hit bool, mac [sha256.Size]byte) {
	if c.ttl < 0 {
		return false, mac
	}
	mac = c.mac(address, stored, password)
	c.mu.Lock()
	e, ok := c.entries[address]
	c.mu.Unlock()
	return ok && time.Now().Before(e.expires) && hmac.Equal(e.mac[:], mac[:]), mac
}

// put remembers a login the full hash verified.
func (c *loginCache) put(address string, mac [sha256.Size]byte) {
	if c.ttl < 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[address]; !ok && len(c.entries) >= loginCacheMax {
		for a, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, a)
			}
		}
		for a := range c.entries {
			if len(c.entries) < loginCacheMax {
				break
			}
			delete(c.entries, a) // any one: the map's order is random
		}
	}
	c.entries[address] = loginCacheEntry{mac: mac, expires: now.Add(c.ttl)}
}

// drop forgets an account's entry (its password was set).
func (c *loginCache) drop(address string) {
	c.mu.Lock()
	delete(c.entries, address)
	c.mu.Unlock()
}
