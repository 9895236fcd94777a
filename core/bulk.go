package core

// Bulk migration and verification: copying users who never log in, and
// comparing an account with the old server.

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// MigrateUsers copies the given users of a migrating domain now (migrate's
// bulk copy); progress (if not nil) gets the engine's events for them. A
// slow progress misses events (the engine never waits for it): the
// results say what happened to every user.
func (c *Core) MigrateUsers(ctx context.Context, domain string, users []Credentials, progress func(MigrationEvent)) ([]UserResult, error) {
	return c.mig.MigrateUsers(ctx, domain, users, progress)
}

// Verify compares the account address on Mailferry with the old server,
// message by message.
func (c *Core) Verify(ctx context.Context, address string, cred Credentials) (*VerifyReport, error) {
	return c.mig.Verify(ctx, address, cred)
}

// PreMigrate copies the given users of a migrating domain now, in bulk, so
// users who never log in still get their mail. A user with a password logs
// in to the old server with it; the others through the master user
// (Dovecot "user*master" or SASL PLAIN with an authorization identity, RFC
// 4616). progress (if not nil) gets the number of users finished, as the
// engine's events tell it and, at the end, as the results say (events may
// have been dropped). Failures of single users are in the results; the
// error is non-nil only for missing credentials, or when ctx ended or the
// engine stopped.
func (c *Core) PreMigrate(ctx context.Context, domain string, users []Credentials, masterUser, masterPassword string, progress func(done, total int)) ([]UserResult, error) {
	creds := make([]Credentials, len(users))
	for i, u := range users {
		creds[i] = u
		if u.Password == "" {
			if masterUser == "" || masterPassword == "" {
				return nil, fmt.Errorf("%s has no password: give the old server's master user and its password, or a password for each user (address,password)", u.Address)
			}
			creds[i].MasterUser, creds[i].MasterPassword = masterUser, masterPassword
		}
	}
	var mu sync.Mutex
	done := map[string]bool{} // addresses finished
	reported := 0
	report := func(n int) { // under mu
		if n > reported {
			reported = n
			progress(n, len(users))
		}
	}
	res, err := c.mig.MigrateUsers(ctx, domain, creds, func(ev MigrationEvent) {
		if progress == nil || (ev.Account.State != MigDone && ev.Account.State != MigFailed) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done[strings.ToLower(ev.Account.Address)] = true
		report(len(done))
	})
	if progress != nil {
		// The results are what happened; the events may have missed some.
		mu.Lock()
		report(finished(res))
		mu.Unlock()
	}
	return res, err
}

// finished counts the users whose copy ended, well or not.
func finished(res []UserResult) int {
	n := 0
	for _, r := range res {
		if r.OK || r.Error != "" {
			n++
		}
	}
	return n
}

// RetryCopy runs the copy of address again now: the messages the old
// server could not serve are tried again. It needs the user's password or
// a master user in the engine's memory (an error wrapping
// ErrNoCredentials says it has neither) and a migrating domain.
func (c *Core) RetryCopy(ctx context.Context, address string) error {
	return c.mig.Retry(ctx, address)
}

// WaitCopy waits until no copy of address is queued or running and returns
// the error of its last run (nil if none ran).
func (c *Core) WaitCopy(ctx context.Context, address string) error {
	return c.mig.Wait(ctx, address)
}
