package oldserver_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"mailferry/core/oldserver"
)

func TestValidate(t *testing.T) {
	host := oldserver.MustParseHost("mail.example.org")
	good := oldserver.DefaultSettings(host)
	const fp = "AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
	tests := []struct {
		name   string
		mod    func(*oldserver.Settings)
		fields []string // JSON fields expected in errors; nil: valid
	}{
		{"defaults", func(*oldserver.Settings) {}, nil},
		{"implicit TLS", func(s *oldserver.Settings) { s.IMAPTLS, s.IMAPPort = oldserver.TLSImplicit, 993 }, nil},
		{"pin with colons", func(s *oldserver.Settings) { s.PinnedSHA256 = fp }, nil},
		{"pin plain", func(s *oldserver.Settings) { s.PinnedSHA256 = strings.ReplaceAll(fp, ":", "") }, nil},
		{"pin openssl form", func(s *oldserver.Settings) { s.PinnedSHA256 = "SHA256 Fingerprint=" + fp }, nil},
		{"master", func(s *oldserver.Settings) { s.MasterUser, s.MasterForm = "admin", oldserver.MasterPlain }, nil},
		{"no host", func(s *oldserver.Settings) { s.Host = oldserver.Host{} }, []string{"host"}},
		{"port 0", func(s *oldserver.Settings) { s.IMAPPort = 0 }, []string{"imap_port"}},
		{"port 70000", func(s *oldserver.Settings) { s.SMTPPort = 70000 }, []string{"smtp_port"}},
		{"port -1", func(s *oldserver.Settings) { s.IMAPPort = -1 }, []string{"imap_port"}},
		{"tls mode", func(s *oldserver.Settings) { s.IMAPTLS = "ssl" }, []string{"imap_tls"}},
		{"empty tls mode", func(s *oldserver.Settings) { s.SMTPTLS = "" }, []string{"smtp_tls"}},
		{"short pin", func(s *oldserver.Settings) { s.PinnedSHA256 = "abcd" }, []string{"pinned_sha256"}},
		{"non-hex pin", func(s *oldserver.Settings) { s.PinnedSHA256 = strings.Repeat("zz", 32) }, []string{"pinned_sha256"}},
		{"login form", func(s *oldserver.Settings) { s.LoginForm = "email" }, []string{"login_form"}},
		{"master form", func(s *oldserver.Settings) { s.MasterForm = "sudo" }, []string{"master_form"}},
		{"master sep", func(s *oldserver.Settings) { s.MasterSeparator = "a b" }, []string{"master_separator"}},
		{"several", func(s *oldserver.Settings) { s.IMAPPort, s.SMTPPort, s.LoginForm = 0, 0, "" },
			[]string{"imap_port", "smtp_port", "login_form"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.mod(&s)
			err := s.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", s)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %q does not name field %s", err, f)
				}
			}
			var se *oldserver.SettingsError
			if !errors.As(err, &se) {
				t.Errorf("error is not a *SettingsError: %T", err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	s := oldserver.Settings{Host: oldserver.MustParseHost("[192.0.2.7]"), IMAPTLS: oldserver.TLSImplicit}.WithDefaults()
	if s.IMAPPort != 993 || s.SMTPPort != 25 || s.SMTPTLS != oldserver.TLSStartTLS || s.LoginForm != oldserver.LoginAuto {
		t.Fatalf("WithDefaults = %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	d := oldserver.DefaultSettings(oldserver.MustParseHost("mail.example.org"))
	if d.IMAPPort != 143 || d.IMAPTLS != oldserver.TLSStartTLS || d.SMTPPort != 25 {
		t.Fatalf("DefaultSettings = %+v", d)
	}
}

func TestSettingsJSON(t *testing.T) {
	s := oldserver.DefaultSettings(oldserver.MustParseHost("[IPv6:2001:db8::1]"))
	s.PinnedSHA256 = strings.Repeat("ab", 32)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"host":"[IPv6:2001:db8::1]"`, `"imap_port":143`, `"imap_tls":"starttls"`,
		`"smtp_port":25`, `"login_form":"auto"`, `"pinned_sha256":"abab`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back oldserver.Settings
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, s)
	}
}

func TestParseFingerprint(t *testing.T) {
	b, err := oldserver.ParseFingerprint(strings.Repeat("0A:", 31) + "0a")
	if err != nil || len(b) != 32 || b[0] != 10 {
		t.Fatalf("ParseFingerprint = %x, %v", b, err)
	}
	if got := oldserver.FormatFingerprint(b); got != strings.Repeat("0a:", 31)+"0a" {
		t.Errorf("FormatFingerprint = %s", got)
	}
}
