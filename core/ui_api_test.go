package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailferry/core"
	"mailferry/core/demo"
	"mailferry/core/oldserver"
	"mailferry/core/store"
)

func TestParseMessageSamples(t *testing.T) {
	var codes []string
	for _, l := range demo.Languages() {
		codes = append(codes, l.Code)
	}
	for _, sm := range demo.Samples("alice@example.test", "alice@example.test", codes, time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))) {
		t.Run(sm.Name, func(t *testing.T) {
			v, err := core.ParseMessage(sm.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if v.Subject != sm.Subject {
				t.Errorf("subject %q, want %q", v.Subject, sm.Subject)
			}
			if want := strings.ReplaceAll(sm.Text, "\r\n", "\n"); v.Text != want {
				t.Errorf("text %q, want %q", v.Text, want)
			}
			if want := strings.ReplaceAll(sm.HTML, "\r\n", "\n"); v.HTML != want {
				t.Errorf("HTML %q, want %q", v.HTML, want)
			}
			if !strings.Contains(v.From, "alice@example.test") || v.Date.IsZero() {
				t.Errorf("from %q date %v", v.From, v.Date)
			}
		})
	}
}

func TestParseMessageLegacy(t *testing.T) {
	raw := "From: =?iso-8859-1?q?J=F6rg?= <j@example.org>\r\nSubject: =?koi8-r?b?8NLJ18XU?=\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n"
	v, err := core.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if v.Subject != "Привет" || v.Text != "Grüße\n" || !strings.Contains(v.From, "Jörg") {
		t.Errorf("got %+v", v)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, sm := range demo.Samples("a@example.test", "b@example.test", []string{"de", "ja"}, time.Unix(0, 0)) {
		f.Add(sm.Raw)
	}
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Add([]byte("Content-TrAnsfer-EnCoding:0")) // unknown encoding: no reader (was a nil dereference)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = core.ParseMessage(raw) // must not panic
	})
}

func TestParseUserList(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
		pw       []string
		err      string
	}{
		{"addresses", "alice@example.test\n\nBob@Example.test\n", []string{"alice@example.test", "bob@example.test"}, []string{"", ""}, ""},
		{"passwords and local parts", "user,password\ncarol,secret\n# comment\ndave@example.test,pw,\n", nil, nil, "want user[,password]"},
		{"local part and password", "carol,secret", []string{"carol@example.test"}, []string{"secret"}, ""},
		{"other domain", "eve@evil.test", nil, nil, "not addresses of example.test"},
		{"duplicate", "a@example.test\na@example.test", nil, nil, "already on line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := core.ParseUserList(c.in, "example.test")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(core.Addresses(got), " ") != strings.Join(c.want, " ") {
				t.Errorf("got %v, want %v", core.Addresses(got), c.want)
			}
			for i := range got {
				if got[i].Password != c.pw[i] {
					t.Errorf("%s password %q, want %q", got[i].Address, got[i].Password, c.pw[i])
				}
			}
		})
	}
}

func TestReadinessText(t *testing.T) {
	r := &core.Readiness{Domain: "example.test"}
	if !r.Ready() || !strings.Contains(r.Text(), "can be turned off") {
		t.Errorf("empty readiness: %v %q", r.Ready(), r.Text())
	}
	r.NeverLoggedIn = []string{"bob@example.test"}
	r.Queued = 2
	if r.Ready() || !strings.Contains(r.Text(), "bob@example.test") || !strings.Contains(r.Text(), "2 message(s)") {
		t.Errorf("readiness: %v %q", r.Ready(), r.Text())
	}
}

func TestReportText(t *testing.T) {
	r := &core.TestReport{Address: "a@example.test", Time: time.Unix(0, 0).UTC(),
		Checks: []core.Check{{Sample: "plain", Name: "identical bytes", OK: true, Detail: "same"}, {Sample: "html", Name: "same flags", OK: false, Detail: "old [\\Seen], new []"}},
		Client: core.ClientSettings{Host: "127.0.0.1", Port: 1143, Security: "STARTTLS", User: "a@example.test"}}
	txt := r.Text()
	for _, want := range []string{"1 of 2 checks FAILED", "[FAIL] html: same flags", "[ok  ] plain: identical bytes", "Port: 1143 (STARTTLS)", "User name: a@example.test"} {
		if !strings.Contains(txt, want) {
			t.Errorf("report lacks %q:\n%s", want, txt)
		}
	}
	if r.OK() || r.Failed() != 1 {
		t.Errorf("OK %v failed %d", r.OK(), r.Failed())
	}
}

// Invalid old-server settings change nothing, not even on a new domain.
func TestEnableMigrationInvalidSettingsCreateNothing(t *testing.T) {
	co, err := core.Open(core.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	bad := oldserver.Settings{Host: oldserver.MustParseHost("[192.0.2.7]"), IMAPPort: 0, SMTPPort: 25}
	if err := co.EnableMigration(ctx, "new.test", bad); err == nil {
		t.Fatal("invalid settings accepted")
	}
	if _, err := co.Store().Domain(ctx, "new.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("domain after a refused EnableMigration: %v", err)
	}
}
