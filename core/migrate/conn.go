package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/internal/backoff"
	"mailferry/core/oldserver"
)

func closeClient(c *imapclient.Client) {
	if c == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	c.Close()
}

// connect opens a logged-in session to the old server.
func (e *Engine) connect(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, error) {
	c, _, err := e.connectAs(ctx, s, cred)
	return c, err
}

// connectAs is connect that also returns the user name the old server
// accepted. With cred.OldLogin it logs in with exactly that name; without,
// it tries the forms the settings allow (the learnt one first) and records
// the one that worked (learnt.go).
func (e *Engine) connectAs(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, string, error) {
	c, err := dialOld(ctx, s, e.opts.Dial)
	if err != nil {
		return nil, "", fmt.Errorf("migrate: connect to old server: %w", err)
	}
	user, ls := cred.Address, s
	if cred.OldLogin != "" {
		user, ls = cred.OldLogin, exactly(s, cred.OldLogin)
	}
	var info oldserver.LoginInfo
	if cred.master() {
		info, err = loginMaster(ctx, c, ls, user, cred.MasterUser, cred.MasterPassword)
	} else {
		info, err = loginUser(ctx, c, ls, user, cred.Password)
	}
	if err != nil {
		c.Close()
		if errors.Is(err, errAuthFailed) {
			// Both: ErrBadPassword for the engine, the old server's
			// refusal (oldserver.ErrAuthFailed) for oldserver.Explain.
			return nil, "", fmt.Errorf("migrate: %s: %w: %w", cred, ErrBadPassword, err)
		}
		return nil, "", fmt.Errorf("migrate: log in to old server as %s: %w", cred, err)
	}
	if cred.OldLogin == "" {
		e.learn(ctx, cred.Address, s, oldserver.FromLogin(*s, info))
	}
	return c, info.Name, nil
}

// connectRetry is connect with the engine's retries for failures other than
// a refused password.
func (e *Engine) connectRetry(ctx context.Context, s *oldSettings, cred Credentials) (*imapclient.Client, error) {
	for attempt := 0; ; attempt++ {
		c, err := e.connect(ctx, s, cred)
		if err == nil || errors.Is(err, ErrBadPassword) || attempt >= e.opts.Retries {
			return c, err
		}
		if err := e.backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// backoff waits before retry attempt+1: Options.RetryBackoff doubled per
// attempt, at most 64 times it and at most 30 seconds.
func (e *Engine) backoff(ctx context.Context, attempt int) error {
	base := e.opts.RetryBackoff
	return backoff.Sleep(ctx, backoff.Delay(base, min(base<<6, 30*time.Second), attempt))
}
