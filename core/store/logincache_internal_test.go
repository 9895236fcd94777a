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

// TestLoginCacheHostile: what an attacker who knows one account's
// password, or saw it in use, tries against the cache: another account
// (of this domain or another) with that password, the name in another
// form (the same account: it must open exactly as the hash would), an
// account deleted and made again at the same address, and a password
// changed while a login with the old one was being checked (that login
// may pass, as it began first; no later one may).
func TestLoginCacheHostile(t *testing.T) {
	engineFree(t)
	ctx := context.Background()
	s, _, _ := inboxStore(t, nil, 0)
	if _, err := s.CreateDomain(ctx, "other.test"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"v@example.test", "u@other.test"} {
		if _, err := s.CreateAccount(ctx, a, "pw2", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CheckPassword(ctx, "u@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	check := func(address, password string) error {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := s.CheckPassword(c, address, password)
		return err
	}
	free := fillHashSlots(t, s)
	t.Run("other accounts", func(t *testing.T) {
		for _, a := range []string{"v@example.test", "u@other.test"} {
			if err := check(a, "pw"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with u@example.test's cached password: %v, want it to wait for the hash", a, err)
			}
		}
	})
	t.Run("other forms of the name", func(t *testing.T) {
		forms := 0
		for _, a := range []string{"U@EXAMPLE.TEST", "u@Example.Test.", " u@example.test"} {
			c, err := CanonicalAddress(a)
			if err != nil || c != "u@example.test" {
				continue // not this account's name: nothing to check
			}
			forms++
			if err := check(a, "pw"); err != nil {
				t.Errorf("%q (the same account) with its password: %v, want accepted", a, err)
			}
			if err := check(a, "PW"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%q with a wrong password: %v, want it to wait for the hash", a, err)
			}
		}
		if forms < 2 {
			t.Fatalf("only %d other forms of the name are the account's: the subtest checks too little", forms)
		}
	})
	free()
	t.Run("deleted and made again", func(t *testing.T) {
		if err := s.DeleteAccount(ctx, "u@example.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAccount(ctx, "u@example.test", "new", nil); err != nil {
			t.Fatal(err)
		}
		fillHashSlots(t, s)
		if err := check("u@example.test", "pw"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the old account's password on the new account: %v, want it to wait for the hash", err)
		}
	})
	t.Run("changed while checked", func(t *testing.T) {
		s, _, _ := inboxStore(t, nil, 0)
		free := fillHashSlots(t, s)
		done := make(chan error, 1)
		go func() {
			_, err := s.CheckPassword(ctx, "u@example.test", "pw")
			done <- err
		}()
		// The login has read the stored hash and waits for a slot; another
		// process changes the password meanwhile.
		time.Sleep(100 * time.Millisecond)
		other, err := HashPassword("other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.Exec(`UPDATE accounts SET password_hash = ? WHERE address = ?`, other, "u@example.test"); err != nil {
			t.Fatal(err)
		}
		free()
		if err := <-done; err != nil {
			t.Logf("the login begun before the change: %v", err)
		}
		if _, err := s.CheckPassword(ctx, "u@example.test", "pw"); !errors.Is(err, ErrBadPassword) {
			t.Fatalf("the old password after the change: %v, want ErrBadPassword", err)
		}
		if _, err := s.CheckPassword(ctx, "u@example.test", "other"); err != nil {
			t.Fatalf("the new password: %v", err)
		}
	})
}
