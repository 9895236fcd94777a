package migrate

// The engine talks to the old server only through the names in this file
// (core/oldserver: dialing with the domain's TLS settings, LOGIN forms,
// master users).

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
)

type oldSettings = oldserver.Settings

func dialOld(ctx context.Context, s *oldSettings, opts *oldserver.DialOptions) (*imapclient.Client, error) {
	return oldserver.DialIMAP(ctx, *s, opts)
}

// errAuthFailed matches a refused password or master login.
var errAuthFailed = oldserver.ErrAuthFailed

func loginUser(ctx context.Context, c *imapclient.Client, s *oldSettings, user, password string) error {
	_, err := oldserver.Login(ctx, c, *s, user, password)
	return err
}

func loginMaster(ctx context.Context, c *imapclient.Client, s *oldSettings, user, masterUser, masterPassword string) error {
	ms := *s
	if masterUser != "" {
		ms.MasterUser = masterUser
	}
	if ms.MasterUser == "" {
		return fmt.Errorf("%w: no master user given", errors.ErrUnsupported)
	}
	_, err := oldserver.LoginMaster(ctx, c, ms, user, masterPassword)
	return err
}
