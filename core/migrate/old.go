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

// exactly returns s set to send name as it is: an account is bound to the
// login name the old server accepted (store.Account.OldLogin), which later
// logins use instead of trying forms again.
func exactly(s *oldSettings, name string) *oldSettings {
	if name == "" {
		return s
	}
	es := *s
	es.LoginForm = oldserver.LoginFull
	return &es
}

// loginUser logs c in as user and says which name the server accepted.
func loginUser(ctx context.Context, c *imapclient.Client, s *oldSettings, user, password string) (oldserver.LoginInfo, error) {
	return oldserver.Login(ctx, c, *s, user, password)
}

// loginMaster logs c in as user through a master user and says which
// user name the server accepted.
func loginMaster(ctx context.Context, c *imapclient.Client, s *oldSettings, user, masterUser, masterPassword string) (oldserver.LoginInfo, error) {
	ms := *s
	if masterUser != "" {
		ms.MasterUser = masterUser
	}
	if ms.MasterUser == "" {
		return oldserver.LoginInfo{}, fmt.Errorf("%w: no master user given", errors.ErrUnsupported)
	}
	return oldserver.LoginMaster(ctx, c, ms, user, masterPassword)
}
