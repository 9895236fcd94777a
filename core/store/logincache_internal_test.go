package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// fillHashSlots takes every hashing slot until the test ends: a password
// check that needs the hash then waits (and fails when its context ends).
func fillHashSlots(t *testing.T, s *Store) (free func()) {
	t.Helper()
	n := cap(s.hashes.slots)
	for range n {
		s.hashes.slots <- struct{}{}
	}
	freed := false
	free = func() {
		if !freed {
			freed = true
			for range n {
				<-s.hashes.slots
			}
		}
	}
	t.Cleanup(free)
	return free
}

// checkNoHash checks a password with no hashing slot to be had: it
// succeeds only from the login cache.
func checkNoHash(s *Store, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := s.CheckPassword(ctx, "u@example.test", password)
	return err
}

// TestLoginCache: a password verified once opens the account again
// without a hash; a wrong one always takes the hash; a password changed
// here or by another process (the stored hash changed), an entry past its
// time, or the cache turned off, never hit.
func TestLoginCache(t *testing.T) {
	engineFree(t)
	ctx := context.Background()
	s, _, _ := inboxStore(t, nil, 0)
	if _, err := s.CheckPassword(ctx, "u@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	free := fillHashSlots(t, s)
	if err := checkNoHash(s, "pw"); err != nil {
		t.Fatalf("the password verified a moment ago, checked again: %v, want accepted without a hash", err)
	}
	if err := checkNoHash(s, "pW"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wrong password: %v, want it to wait for the hash", err)
	}
	if err := checkNoHash(s, "pw "); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the password with a space more: %v, want it to wait for the hash", err)
	}

	// Another process sets the password: the stored hash changes.
	free()
	other, err := HashPassword("other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE accounts SET password_hash = ? WHERE address = ?`, other, "u@example.test"); err != nil {
		t.Fatal(err)
	}
	fillHashSlots(t, s)
	if err := checkNoHash(s, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the old password after another process changed it: %v, want it to wait for the hash", err)
	}

	// Set here: its entry goes at once.
	s2, _, _ := inboxStore(t, nil, 0)
	if _, err := s2.CheckPassword(ctx, "u@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s2.SetPassword(ctx, "u@example.test", "new"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.logins.entries["u@example.test"]; ok {
		t.Fatal("the entry of an account whose password was set is still kept")
	}
	fillHashSlots(t, s2)
	if err := checkNoHash(s2, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the old password after SetPassword: %v, want it to wait for the hash", err)
	}

	// Past its time.
	s3, _, _ := inboxStore(t, &Options{ChangePoll: -1, LoginCache: 50 * time.Millisecond}, 0)
	if _, err := s3.CheckPassword(ctx, "u@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	fillHashSlots(t, s3)
	if err := checkNoHash(s3, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the password after the entry's time: %v, want it to wait for the hash", err)
	}

	// Off.
	s4, _, _ := inboxStore(t, &Options{ChangePoll: -1, LoginCache: -1}, 0)
	if _, err := s4.CheckPassword(ctx, "u@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	fillHashSlots(t, s4)
	if err := checkNoHash(s4, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the password with the cache off: %v, want it to wait for the hash", err)
	}
}

// TestLoginCacheBounded: the cache never holds more than loginCacheMax
// entries, however many accounts log in.
func TestLoginCacheBounded(t *testing.T) {
	engineFree(t)
	c := newLoginCache(time.Minute)
	for i := range loginCacheMax + 500 {
		a := fmt.Sprintf("u%d@example.test", i)
		c.put(a, c.mac(a, "h", "pw"))
	}
	if n := len(c.entries); n > loginCacheMax {
		t.Fatalf("%d entries, want at most %d", n, loginCacheMax)
	}
	// The last one is there and hits.
	a := fmt.Sprintf("u%d@example.test", loginCacheMax+499)
	if hit, _ := c.check(a, "h", "pw"); !hit {
		t.Fatal("the last login put does not hit")
	}
	// Two caches (two processes, or a restart) have different keys.
	d := newLoginCache(time.Minute)
	if c.mac(a, "h", "pw") == d.mac(a, "h", "pw") {
		t.Fatal("two caches made the same HMAC: the key is not random")
	}
}
