package oldserver_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := oldtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// fixture is the Dovecot+Postfix server shared by this package's tests.
func fixture(t *testing.T) *oldtest.Server {
	t.Helper()
	return oldtest.Shared(t, &oldtest.Options{WithSMTP: true})
}

// settingsFor returns settings for srv: IMAP with mode on the matching port,
// SMTP with STARTTLS, the fixture's certificate pinned.
func settingsFor(t *testing.T, srv *oldtest.Server, mode oldserver.TLSMode) oldserver.Settings {
	t.Helper()
	imapAddr := srv.IMAPAddr
	if mode == oldserver.TLSImplicit {
		imapAddr = srv.IMAPSAddr
	}
	s := oldserver.DefaultSettings(oldserver.MustParseHost("127.0.0.1"))
	s.IMAPPort = port(t, imapAddr)
	s.IMAPTLS = mode
	s.SMTPPort = port(t, srv.SMTPAddr)
	s.PinnedSHA256 = srv.CertSHA256
	s.MasterUser = srv.MasterUser
	return s
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dialFixture dials IMAP as s says, within 30 seconds, and closes the
// client when t ends; the context bounds the test's further commands.
func dialFixture(t *testing.T, s oldserver.Settings) (context.Context, *imapclient.Client) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	c, err := oldserver.DialIMAP(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}

func TestLoginModes(t *testing.T) {
	srv := fixture(t)
	for _, mode := range []oldserver.TLSMode{oldserver.TLSNone, oldserver.TLSStartTLS, oldserver.TLSImplicit} {
		for _, form := range []oldserver.LoginForm{oldserver.LoginFull, oldserver.LoginLocal, oldserver.LoginAuto} {
			t.Run(string(mode)+"/"+string(form), func(t *testing.T) {
				t.Parallel()
				s := settingsFor(t, srv, mode)
				s.LoginForm = form
				ctx, c := dialFixture(t, s)
				info, err := oldserver.Login(ctx, c, s, "bob@example.test", "BobSecret1")
				if err != nil {
					t.Fatal(err)
				}
				wantForm := form
				if form == oldserver.LoginAuto {
					wantForm = oldserver.LoginFull
				}
				if info.Form != wantForm {
					t.Errorf("login form %s, want %s", info.Form, wantForm)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestWrongPassword(t *testing.T) {
	srv := fixture(t)
	s := settingsFor(t, srv, oldserver.TLSStartTLS)
	s.LoginForm = oldserver.LoginFull
	ctx, c := dialFixture(t, s)
	_, err := oldserver.Login(ctx, c, s, "bob@example.test", "not-the-password")
	if !errors.Is(err, oldserver.ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("error text contains the password: %v", err)
	}
	var de *oldserver.DialError
	if errors.As(err, &de) {
		t.Errorf("auth failure is also a DialError: %v", err)
	}
}

func TestLoginMaster(t *testing.T) {
	srv := fixture(t)
	srv.Append(t, "carol", "INBOX", nil, time.Time{}, []byte("Subject: for the master\r\n\r\nhi\r\n"))
	for _, form := range []oldserver.MasterForm{oldserver.MasterPlain, oldserver.MasterSeparator, oldserver.MasterAuto} {
		t.Run(string(form), func(t *testing.T) {
			t.Parallel()
			s := settingsFor(t, srv, oldserver.TLSStartTLS)
			s.MasterForm = form
			s.LoginForm = oldserver.LoginFull
			ctx, c := dialFixture(t, s)
			info, err := oldserver.LoginMaster(ctx, c, s, "carol@example.test", srv.MasterPassword)
			if err != nil {
				t.Fatal(err)
			}
			want := form
			if form == oldserver.MasterAuto {
				want = oldserver.MasterPlain
			}
			if info.Master != want || info.Name != "carol@example.test" {
				t.Errorf("LoginInfo = %+v", info)
			}
			st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
			if err != nil || *st.NumMessages == 0 {
				t.Fatalf("master session does not see carol's INBOX: %v %v", st, err)
			}
		})
	}
	t.Run("wrong master password", func(t *testing.T) {
		t.Parallel()
		s := settingsFor(t, srv, oldserver.TLSStartTLS)
		s.MasterForm = oldserver.MasterPlain
		s.LoginForm = oldserver.LoginFull
		ctx, c := dialFixture(t, s)
		if _, err := oldserver.LoginMaster(ctx, c, s, "carol@example.test", "nope"); !errors.Is(err, oldserver.ErrAuthFailed) {
			t.Fatalf("err = %v, want ErrAuthFailed", err)
		}
	})
}

func TestCertificates(t *testing.T) {
	srv := fixture(t)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(srv.CertPEM) {
		t.Fatal("fixture cert does not parse")
	}
	wrongPin := strings.Repeat("00", 32)
	tests := []struct {
		name    string
		mode    oldserver.TLSMode
		host    string
		pin     string
		roots   *x509.CertPool
		wantErr string // "" = success
	}{
		{"starttls pinned", oldserver.TLSStartTLS, "127.0.0.1", srv.CertSHA256, nil, ""},
		{"implicit pinned", oldserver.TLSImplicit, "127.0.0.1", srv.CertSHA256, nil, ""},
		{"pinned with colons upper case", oldserver.TLSImplicit, "127.0.0.1", colons(strings.ToUpper(srv.CertSHA256)), nil, ""},
		{"starttls wrong pin", oldserver.TLSStartTLS, "127.0.0.1", wrongPin, nil, "not the pinned certificate"},
		{"implicit wrong pin", oldserver.TLSImplicit, "127.0.0.1", wrongPin, nil, "not the pinned certificate"},
		{"self-signed without pin", oldserver.TLSStartTLS, "127.0.0.1", "", nil, "not signed by an authority"},
		{"trusted root", oldserver.TLSImplicit, "127.0.0.1", "", roots, ""},
		{"trusted root, name", oldserver.TLSImplicit, "localhost", "", roots, ""},
		{"trusted root, wrong name", oldserver.TLSImplicit, "[127.0.0.2]", "", roots, "not for 127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := settingsFor(t, srv, tt.mode)
			s.Host = oldserver.MustParseHost(tt.host)
			s.PinnedSHA256 = tt.pin
			if tt.host == "[127.0.0.2]" {
				// reach the fixture through another loopback address
				// only if the kernel routes 127.0.0.2 to it
				if c, err := net.DialTimeout("tcp", s.Host.DialAddr(s.IMAPPort), time.Second); err != nil {
					t.Skip("127.0.0.2 does not reach the fixture (it listens on 127.0.0.1 only)")
				} else {
					c.Close()
				}
			}
			ctx := ctxFor(t, 30*time.Second)
			c, err := oldserver.DialIMAP(ctx, s, &oldserver.DialOptions{RootCAs: tt.roots})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("DialIMAP succeeded")
			}
			var ce *oldserver.CertError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v (%T) has no *CertError", err, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), colons(srv.CertSHA256)) {
				t.Errorf("error %q should say %q and show the fingerprint", err, tt.wantErr)
			}
			if errors.Is(err, oldserver.ErrAuthFailed) {
				t.Error("certificate error matches ErrAuthFailed")
			}
		})
	}
}

func colons(hex string) string {
	var parts []string
	for i := 0; i+2 <= len(hex); i += 2 {
		parts = append(parts, hex[i:i+2])
	}
	return strings.ToLower(strings.Join(parts, ":"))
}

// badServer listens on 127.0.0.1 and handles each connection with f.
func badServer(t *testing.T, f func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f(c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDialFailures(t *testing.T) {
	// a port nobody listens on
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	hangUp := badServer(t, func(net.Conn) {})
	silent := badServer(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	greetThenHangUp := badServer(t, func(c net.Conn) { c.Write([]byte("* OK ready\r\n")) })
	noStartTLS := badServer(t, func(c net.Conn) {
		c.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		tag, _, _ := strings.Cut(string(buf[:n]), " ")
		c.Write([]byte(tag + " BAD STARTTLS not supported\r\n"))
		c.Read(buf)
	})

	tests := []struct {
		name string
		port int
		mode oldserver.TLSMode
		op   string
		text string
	}{
		{"unreachable", closedPort, oldserver.TLSNone, "connect", "nothing listens"},
		{"hang up", hangUp, oldserver.TLSNone, "greeting", "closed the connection"},
		{"hang up starttls", hangUp, oldserver.TLSStartTLS, "starttls", "closed the connection"},
		{"hang up tls", hangUp, oldserver.TLSImplicit, "tls", "closed the connection"},
		{"silent", silent, oldserver.TLSNone, "greeting", "no answer in time"},
		{"silent tls", silent, oldserver.TLSImplicit, "tls", "no answer in time"},
		{"greet then hang up, starttls", greetThenHangUp, oldserver.TLSStartTLS, "starttls", "closed the connection"},
		{"no STARTTLS", noStartTLS, oldserver.TLSStartTLS, "starttls", "refused STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
			s.IMAPPort, s.IMAPTLS = tt.port, tt.mode
			start := time.Now()
			c, err := oldserver.DialIMAP(context.Background(), s, &oldserver.DialOptions{Timeout: time.Second})
			if err == nil {
				c.Close()
				t.Fatal("DialIMAP succeeded")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			var de *oldserver.DialError
			if !errors.As(err, &de) || de.Op != tt.op {
				t.Fatalf("err = %v (%T), want a DialError with op %q", err, err, tt.op)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			if errors.Is(err, oldserver.ErrAuthFailed) {
				t.Error("network error matches ErrAuthFailed")
			}
		})
	}

	t.Run("context canceled", func(t *testing.T) {
		t.Parallel()
		s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
		s.IMAPPort, s.IMAPTLS = silent, oldserver.TLSNone
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := oldserver.DialIMAP(ctx, s, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("smtp unreachable", func(t *testing.T) {
		t.Parallel()
		s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
		s.SMTPPort = closedPort
		_, err := oldserver.DialSMTP(context.Background(), s, &oldserver.DialOptions{Timeout: time.Second})
		var de *oldserver.DialError
		if !errors.As(err, &de) || de.Proto != "SMTP" || de.Op != "connect" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("smtp hang up", func(t *testing.T) {
		t.Parallel()
		s := oldserver.DefaultSettings(oldserver.MustParseHost("[127.0.0.1]"))
		s.SMTPPort = silent
		start := time.Now()
		_, err := oldserver.DialSMTP(context.Background(), s, &oldserver.DialOptions{Timeout: time.Second})
		var de *oldserver.DialError
		if !errors.As(err, &de) || time.Since(start) > 5*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
}

func TestDialSMTP(t *testing.T) {
	srv := fixture(t)
	for _, mode := range []oldserver.TLSMode{oldserver.TLSNone, oldserver.TLSStartTLS, oldserver.TLSImplicit} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			s := settingsFor(t, srv, oldserver.TLSStartTLS)
			s.SMTPTLS = mode
			if mode == oldserver.TLSImplicit {
				s.SMTPPort = port(t, srv.SMTPSAddr)
			}
			c, err := oldserver.DialSMTP(ctxFor(t, 30*time.Second), s, &oldserver.DialOptions{LocalName: "new.example.test"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, tlsOn := c.TLSConnectionState(); tlsOn != (mode != oldserver.TLSNone) {
				t.Errorf("TLS = %v", tlsOn)
			}
			if err := c.Mail("relay@example.org", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("dave@example.test", nil); err == nil {
				t.Error("unknown local user accepted")
			}
			if err := c.Rcpt("alice@example.test", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Reset(); err != nil {
				t.Fatal(err)
			}
			c.Quit()
		})
	}
	t.Run("wrong pin", func(t *testing.T) {
		s := settingsFor(t, srv, oldserver.TLSStartTLS)
		s.PinnedSHA256 = strings.Repeat("11", 32)
		_, err := oldserver.DialSMTP(ctxFor(t, 30*time.Second), s, nil)
		var ce *oldserver.CertError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want a CertError", err)
		}
	})
}

func TestProbe(t *testing.T) {
	srv := fixture(t)
	for _, sep := range []rune{'/', '.'} {
		t.Run(fmt.Sprintf("sep %c", sep), func(t *testing.T) {
			t.Parallel()
			srv := srv
			if sep == '.' {
				srv = oldtest.Shared(t, &oldtest.Options{Separator: '.', WithSMTP: true})
			}
			s := settingsFor(t, srv, oldserver.TLSStartTLS)
			r, err := oldserver.Probe(ctxFor(t, 60*time.Second), s, "alice@example.test", "AliceSecret1")
			if err != nil {
				t.Fatalf("Probe: %v\n%s", err, r.Text())
			}
			t.Logf("\n%s", r.Text())
			if !r.IMAP.Reached || !r.IMAP.LoggedIn || r.IMAP.Login.Form != oldserver.LoginFull {
				t.Errorf("IMAP report: %+v", r.IMAP)
			}
			if r.IMAP.TLS == nil || !r.IMAP.TLS.Pinned || r.IMAP.TLS.Verified || !r.IMAP.TLS.SelfSigned ||
				r.IMAP.TLS.SHA256 != colons(srv.CertSHA256) || !strings.Contains(r.IMAP.TLS.Subject, "CN=localhost") {
				t.Errorf("TLS info: %+v", r.IMAP.TLS)
			}
			if r.IMAP.Separator != string(sep) {
				t.Errorf("separator %q, want %q", r.IMAP.Separator, sep)
			}
			if len(r.IMAP.Namespaces) == 0 || r.IMAP.Namespaces[0].Kind != "personal" {
				t.Errorf("namespaces: %+v", r.IMAP.Namespaces)
			}
			for attr, name := range map[string]string{`\Sent`: "Sent", `\Drafts`: "Drafts", `\Trash`: "Trash", `\Junk`: "Junk", `\Archive`: "Archive"} {
				if r.IMAP.SpecialUse[attr] != name {
					t.Errorf("special use %s = %q, want %q", attr, r.IMAP.SpecialUse[attr], name)
				}
			}
			if !slices.Contains(r.IMAP.Capabilities, "IDLE") || !slices.Contains(r.IMAP.Capabilities, "NAMESPACE") {
				t.Errorf("capabilities: %v", r.IMAP.Capabilities)
			}
			sm := r.SMTP
			if !sm.Reached || !sm.StartTLS || !sm.EightBitMIME || !sm.SMTPUTF8 || !sm.HasSize || sm.Size != 209715200 {
				t.Errorf("SMTP report: %+v", sm)
			}
			if !sm.RecipientAccepted || sm.Recipient != "alice@example.test" || sm.TLS == nil || !sm.TLS.Pinned {
				t.Errorf("SMTP delivery test: %+v", sm)
			}
			if r.IMAP.Summary == "" || r.SMTP.Summary == "" {
				t.Error("empty summaries")
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		t.Parallel()
		s := settingsFor(t, srv, oldserver.TLSImplicit)
		r, err := oldserver.Probe(ctxFor(t, 30*time.Second), s, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if !r.IMAP.Reached || r.IMAP.LoggedIn || len(r.IMAP.Capabilities) == 0 || !strings.Contains(r.IMAP.Summary, "no credentials") {
			t.Errorf("report: %+v", r.IMAP)
		}
		if r.SMTP.Recipient != "" || !r.SMTP.Reached {
			t.Errorf("SMTP: %+v", r.SMTP)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		s := settingsFor(t, srv, oldserver.TLSStartTLS)
		s.LoginForm = oldserver.LoginFull
		r, err := oldserver.Probe(ctxFor(t, 30*time.Second), s, "alice@example.test", "wrong")
		if !errors.Is(err, oldserver.ErrAuthFailed) {
			t.Fatalf("err = %v, want ErrAuthFailed", err)
		}
		if r == nil || !r.IMAP.Reached || r.IMAP.LoggedIn || !strings.Contains(r.IMAP.Summary, "refused the user name or password") {
			t.Fatalf("report: %+v", r)
		}
		if !r.SMTP.Reached {
			t.Errorf("SMTP not probed after an IMAP login failure: %+v", r.SMTP)
		}
	})

	t.Run("wrong pin", func(t *testing.T) {
		t.Parallel()
		s := settingsFor(t, srv, oldserver.TLSStartTLS)
		s.PinnedSHA256 = strings.Repeat("ab", 32)
		r, err := oldserver.Probe(ctxFor(t, 30*time.Second), s, "alice@example.test", "AliceSecret1")
		var ce *oldserver.CertError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want a CertError", err)
		}
		if r.IMAP.TLS == nil || r.IMAP.TLS.SHA256 != colons(srv.CertSHA256) || r.IMAP.TLS.Trusted {
			t.Errorf("TLS info of the refused certificate: %+v", r.IMAP.TLS)
		}
		if !strings.Contains(r.Text(), "does NOT match the pinned fingerprint") {
			t.Errorf("text does not explain the pin mismatch:\n%s", r.Text())
		}
	})

	t.Run("invalid settings", func(t *testing.T) {
		t.Parallel()
		r, err := oldserver.Probe(context.Background(), oldserver.Settings{}, "", "")
		if r != nil || err == nil {
			t.Fatalf("Probe(zero settings) = %v, %v", r, err)
		}
	})
}
