package oldserver_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mailferry/core/oldserver"
)

func ExampleParseHost() {
	for _, s := range []string{"Mail.Example.ORG", "[192.0.2.7]", "192.0.2.7", "[IPv6:2001:db8::1]", "2001:db8::1", "[300.1.2.3]"} {
		h, err := oldserver.ParseHost(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s -> %s (dial %s)\n", s, h, h.DialAddr(993))
	}
	// Output:
	// Mail.Example.ORG -> mail.example.org (dial mail.example.org:993)
	// [192.0.2.7] -> [192.0.2.7] (dial 192.0.2.7:993)
	// 192.0.2.7 -> [192.0.2.7] (dial 192.0.2.7:993)
	// [IPv6:2001:db8::1] -> [IPv6:2001:db8::1] (dial [2001:db8::1]:993)
	// oldserver: host "2001:db8::1": an IPv6 address must be written in brackets: [IPv6:2001:db8::1]
	// oldserver: host "[300.1.2.3]": "300.1.2.3" is not an IPv4 address (four numbers 0-255 separated by dots)
}

func ExampleSettings_Validate() {
	s := oldserver.DefaultSettings(oldserver.MustParseHost("mail.example.org"))
	s.IMAPPort = 70000
	s.PinnedSHA256 = "12:34"
	fmt.Println(s.Validate())
	// Output:
	// oldserver: imap_port: port 70000 is out of range: a port is 1 to 65535
	// oldserver: pinned_sha256: a SHA-256 fingerprint has 64 hex digits, this one has 4
}

// Log in to an old server with a self-signed certificate pinned by its
// fingerprint, telling a wrong password apart from other failures.
func ExampleLogin() {
	s := oldserver.DefaultSettings(oldserver.MustParseHost("mail.example.org"))
	s.IMAPTLS, s.IMAPPort = oldserver.TLSImplicit, 993
	s.PinnedSHA256 = "b8:9f:3e:ce:d1:68:20:ab:66:0d:de:b4:56:4e:ab:cf:38:f3:df:70:24:f8:ac:30:09:0e:b5:fb:a2:a9:7a:dd"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		fmt.Println(err) // a *DialError, with a *CertError inside for a certificate problem
		return
	}
	defer c.Close()
	info, err := oldserver.Login(ctx, c, s, "alice@example.org", "password from the user")
	switch {
	case errors.Is(err, oldserver.ErrAuthFailed):
		fmt.Println("wrong user name or password")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("logged in with the", info.Form, "form")
	}
}
