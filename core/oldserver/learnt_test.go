package oldserver_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/demo"
	"mailferry/core/oldserver"
)

// startQuirky starts the demo server with opts (plaintext) and returns it
// with LoginAuto settings for it.
func startQuirky(t *testing.T, opts demo.Options) (*demo.Server, oldserver.Settings) {
	t.Helper()
	opts.DisableTLS = true
	srv, err := demo.Start(t.Context(), &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	host, port, _ := net.SplitHostPort(srv.IMAPAddr())
	p, _ := strconv.Atoi(port)
	s := oldserver.Settings{Host: oldserver.MustParseHost("[" + host + "]"), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
		SMTPPort: p, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginAuto}
	return srv, s
}

func bobPassword(t *testing.T, srv *demo.Server) string {
	for _, u := range srv.Users() {
		if u.Address == "bob@example.test" {
			return u.Password
		}
	}
	t.Fatal("no bob")
	return ""
}

// timedLogin logs in on a fresh connection and returns how long Login took.
func timedLogin(t *testing.T, s oldserver.Settings, user, pw string) (oldserver.LoginInfo, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	info, err := oldserver.Login(ctx, c, s, user, pw)
	return info, time.Since(start), err
}

// A server that wants bare names and delays refusals: without what was
// learnt, LoginAuto pays the delay (the full address first); with a learnt
// LoginLocal it sends the bare name first and pays nothing — but only for
// the default domain's addresses: learnt facts never allow a bare name
// the settings do not.
func TestLoginGoesStraightToTheLearntForm(t *testing.T) {
	const delay = 700 * time.Millisecond
	srv, s := startQuirky(t, demo.Options{BareLoginOnly: true, LoginFailDelay: delay})
	pw := bobPassword(t, srv)
	s.DefaultDomain = "example.test"

	info, took, err := timedLogin(t, s, "bob@example.test", pw)
	if err != nil || info.Form != oldserver.LoginLocal || info.Name != "bob" {
		t.Fatalf("login: %+v, %v", info, err)
	}
	if took < delay || info.Refused < delay {
		t.Fatalf("without learnt facts the login took %v (refused for %v): the full address should have been refused first, after %v", took, info.Refused, delay)
	}
	learnt := oldserver.FromLogin(s, info)
	if learnt == nil || learnt.LoginForm != oldserver.LoginLocal || learnt.RefusalDelay < delay {
		t.Fatalf("learnt from the login: %+v", learnt)
	}

	s.Learnt = learnt
	before := srv.FailedLogins()
	info, took, err = timedLogin(t, s, "bob@example.test", pw)
	if err != nil || info.Form != oldserver.LoginLocal || info.Refused != 0 {
		t.Fatalf("login with learnt facts: %+v, %v", info, err)
	}
	if n := srv.FailedLogins() - before; n != 0 {
		t.Fatalf("with the learnt form the login was refused %d times first (in %v)", n, took)
	}
	// A wrong password is still refused, both forms tried.
	if _, _, err := timedLogin(t, s, "bob@example.test", "wrong"); !errors.Is(err, oldserver.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}

	// Facts of another server are stale.
	other := s
	other.IMAPPort++
	if learnt.For(other) != nil {
		t.Fatal("facts learnt at one server apply to another")
	}
	// Without the default domain, the learnt form sends no bare name.
	s.DefaultDomain = ""
	if info, _, err := timedLogin(t, s, "bob@example.test", pw); !errors.Is(err, oldserver.ErrAuthFailed) {
		t.Fatalf("learnt bare names without a default domain: %+v, %v; want only the full address sent (and refused)", info, err)
	}
	s.DefaultDomain = "other.test"
	if info, _, err := timedLogin(t, s, "bob@example.test", pw); !errors.Is(err, oldserver.ErrAuthFailed) {
		t.Fatalf("learnt bare names for another domain's user: %+v, %v", info, err)
	}
}

// A connection over the server's cap, turned away by a BYE greeting or by
// a close before the greeting, matches ErrTurnedAway (and never
// ErrAuthFailed) with the server's words; other dial failures do not.
func TestDialTurnedAway(t *testing.T) {
	for _, drop := range []bool{false, true} {
		srv, s := startQuirky(t, demo.Options{MaxConnsPerIP: 1, CapDrop: drop})
		_ = srv
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := oldserver.DialIMAP(ctx, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = oldserver.DialIMAP(ctx, s, nil)
		if !errors.Is(err, oldserver.ErrTurnedAway) || errors.Is(err, oldserver.ErrAuthFailed) {
			t.Fatalf("drop=%v: second connection: %v; want ErrTurnedAway", drop, err)
		}
		var de *oldserver.DialError
		if !errors.As(err, &de) || de.Op != "greeting" {
			t.Fatalf("drop=%v: %#v", drop, err)
		}
		if words := oldserver.TurnedAwayWords(err); !drop && words != demo.TooManyConnections {
			t.Fatalf("words %q", words)
		}
		c.Close()
	}
	// Nothing listening is not a cap.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
	s.IMAPPort, s.IMAPTLS = port, oldserver.TLSNone
	if _, err := oldserver.DialIMAP(context.Background(), s, &oldserver.DialOptions{Timeout: 5 * time.Second}); err == nil || errors.Is(err, oldserver.ErrTurnedAway) {
		t.Fatalf("connection refused: %v", err)
	}
}

// The probe learns the login form, the refusal delay, the connection cap
// and the capabilities, and explains each with its workaround.
func TestProbeLearns(t *testing.T) {
	const delay = 1100 * time.Millisecond
	srv, s := startQuirky(t, demo.Options{BareLoginOnly: true, LoginFailDelay: delay, MaxConnsPerIP: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, _ := oldserver.Probe(ctx, s, "bob@example.test", bobPassword(t, srv))
	if res == nil || !res.IMAP.LoggedIn {
		t.Fatalf("probe: %+v", res)
	}
	l := res.IMAP.Learnt
	if l == nil || l.LoginForm != oldserver.LoginLocal || l.RefusalDelay < delay || l.ConnCap != 3 || len(l.Capabilities) == 0 {
		t.Fatalf("learnt: %+v", l)
	}
	text := func(fs []oldserver.Fact) string {
		var b strings.Builder
		for _, f := range fs {
			b.WriteString(f.String() + "\n")
		}
		return b.String()
	}
	// Before the admin sets the default domain, the facts say to.
	got := text(res.Facts(s, "example.test"))
	for _, want := range []string{`wants bare user names ("alice", not "alice@example.test") and takes 1.1 s`, "set it to example.test",
		"turned a connection away when Mailferry had 3 open", demo.TooManyConnections, "at most 3 connections", "no CONDSTORE"} {
		if !strings.Contains(got, want) {
			t.Errorf("facts lack %q:\n%s", want, got)
		}
	}
	s.DefaultDomain = "example.test"
	if got := text(res.Facts(s, "example.test")); !strings.Contains(got, "sends the bare name first for users of example.test") {
		t.Errorf("facts with the default domain set:\n%s", got)
	}

	// A server without a cap below ProbeConns says so.
	srv2, s2 := startQuirky(t, demo.Options{})
	res2, _ := oldserver.Probe(ctx, s2, "bob@example.test", bobPassword(t, srv2))
	if l := res2.IMAP.Learnt; l == nil || l.ConnCap != 0 || l.ConnsTried != oldserver.ProbeConns || l.LoginForm != oldserver.LoginFull || l.RefusalDelay != 0 {
		t.Fatalf("learnt without a cap: %+v", res2.IMAP.Learnt)
	}
}

// A hostile server's refusal words are kept bounded and without control
// characters (they are stored and shown to the admin), and a server that
// greets with BYE on the only connection teaches no cap.
func TestTurnedAwayHostileWords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("* BYE \x1b[31mred\x07 " + strings.Repeat("é", 5000) + "\r\n"))
			c.Close()
		}
	}()
	s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
	s.IMAPPort, s.IMAPTLS = ln.Addr().(*net.TCPAddr).Port, oldserver.TLSNone
	_, err = oldserver.DialIMAP(context.Background(), s, &oldserver.DialOptions{Timeout: 5 * time.Second})
	if !errors.Is(err, oldserver.ErrTurnedAway) {
		t.Fatalf("BYE greeting: %v", err)
	}
	words := oldserver.TurnedAwayWords(err)
	if len(words) > 210 || strings.ContainsAny(words, "\x1b\x07") || !strings.HasPrefix(words, "[31mred") {
		t.Fatalf("words %q (%d bytes)", words, len(words))
	}
	if strings.ContainsAny(err.Error(), "\x1b\x07") {
		t.Fatalf("error text carries control characters: %q", err)
	}
	if l := oldserver.FromTurnedAway(s, 0, err); l != nil {
		t.Fatalf("a refusal with no connection open taught a cap: %+v", l)
	}
	if l := oldserver.FromTurnedAway(s, 2, errors.New("other")); l != nil {
		t.Fatalf("another failure taught a cap: %+v", l)
	}
}

// A login refused with NO [LIMIT] (Dovecot's mail_max_userip_connections)
// is a session cap of the user, never a wrong password; it teaches no cap
// of the whole server, and the facts say the user's own client counts.
func TestLoginLimitIsAUserCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const said = "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"))
				buf := make([]byte, 512)
				n, _ := c.Read(buf)
				tag, _, _ := strings.Cut(string(buf[:n]), " ")
				c.Write([]byte(tag + " NO [LIMIT] " + said + "\r\n"))
			}()
		}
	}()
	s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
	s.IMAPPort, s.IMAPTLS, s.LoginForm = ln.Addr().(*net.TCPAddr).Port, oldserver.TLSNone, oldserver.LoginFull
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = oldserver.Login(ctx, c, s, "bob@example.test", "pw")
	if !errors.Is(err, oldserver.ErrTurnedAway) || errors.Is(err, oldserver.ErrAuthFailed) || !oldserver.TurnedAwayUser(err) {
		t.Fatalf("NO [LIMIT] at login: %v", err)
	}
	l := oldserver.FromTurnedAway(s, 3, err)
	if l == nil || l.ConnCap != 0 || l.UserCapWords != said {
		t.Fatalf("learnt: %+v", l)
	}
	var text string
	for _, f := range l.Facts(s, "example.test") {
		text += f.String() + "\n"
	}
	if !strings.Contains(text, "one user may have open") || !strings.Contains(text, "own mail client") {
		t.Fatalf("facts:\n%s", text)
	}
}
