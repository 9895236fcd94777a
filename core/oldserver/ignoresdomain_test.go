package oldserver_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"mailferry/core/demo"
	"mailferry/core/oldserver"
)

// The probe tells a server that ignores the domain of user names (it takes
// alice@anything for alice) from one that does not.
func TestProbeIgnoresDomain(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv, err := demo.Start(ctx, &demo.Options{DisableTLS: true, IgnoreDomain: ignore})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		host, port, _ := net.SplitHostPort(srv.IMAPAddr())
		p, _ := strconv.Atoi(port)
		s := oldserver.Settings{Host: oldserver.MustParseHost("[" + host + "]"), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
			SMTPPort: p, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginAuto}
		var user, pw string
		for _, u := range srv.Users() {
			user, pw = u.Address, u.Password
			break
		}
		res, _ := oldserver.Probe(ctx, s, user, pw)
		if res == nil || !res.IMAP.LoggedIn {
			t.Fatalf("probe of %s: %+v", user, res)
		}
		if res.IMAP.IgnoresDomain != ignore {
			t.Fatalf("server ignoring domains %v: probe says IgnoresDomain %v (%v)", ignore, res.IMAP.IgnoresDomain, res.IMAP.Notes)
		}
	}
}
