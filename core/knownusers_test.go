package core_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mailferry/core"
	"mailferry/core/store"
)

// A user list is read in each form an admin has at hand.
func TestParseKnownUsers(t *testing.T) {
	for _, tc := range []struct {
		name, in, format string
		want             []string
		skipped          int
	}{
		{"plain", "alice\n\n# a comment\nBob@Example.Test\r\nalice@example.test\n", core.ListPlain,
			[]string{"alice@example.test", "bob@example.test"}, 0},
		{"doveadm user '*' of a shared server", "alice@example.test\nbob@example.test\nzed@other.test\n", core.ListPlain,
			[]string{"alice@example.test", "bob@example.test"}, 1},
		{"CSV with header and passwords", "address,password\nalice@example.test,pa:ss,word\n\"bob@example.test\";x\n", core.ListCSV,
			[]string{"alice@example.test", "bob@example.test"}, 0},
		{"passwd-file", "alice:{SHA512-CRYPT}$6$x,y:1000:1000::/home/alice::\nbob@example.test:{PLAIN}pw::::::\n", core.ListPasswd,
			[]string{"alice@example.test", "bob@example.test"}, 0},
		{"LDIF", `# extended LDIF
#
# search
dn: uid=alice,ou=people,dc=example,dc=test
uid: alice
mail: alice@example.test

dn: uid=bob,ou=people,dc=example,dc=test
uid: bob

dn:: dWlkPWNhcm9sLG91PXBlb3BsZQ==
mail:: Y2Fyb2xAZXhhbXBsZS50ZXN0
mail: carol.alias@exam
 ple.test

# search result
search: 2
result: 0 Success
`, core.ListLDIF, []string{"alice@example.test", "bob@example.test", "carol.alias@example.test", "carol@example.test"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := core.ParseKnownUsers(strings.NewReader(tc.in), "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if l.Format != tc.format || !slices.Equal(l.Addresses, tc.want) || l.Skipped != tc.skipped {
				t.Errorf("got %s %v (skipped %d), want %s %v (skipped %d)", l.Format, l.Addresses, l.Skipped, tc.format, tc.want, tc.skipped)
			}
		})
	}
}

// Hostile lists: a clear error naming the line, nothing stored, bounded
// memory.
func TestParseKnownUsersHostile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
	}{
		{"empty", "", 0},
		{"only other domains", "a@other.test\nb@other.test\n", 0},
		{"not a name", "alice\nbad name here\n", 2},
		{"quoted local part", "alice\n\"a b\"@example.test\n", 2},
		{"long line", "alice\n" + strings.Repeat("a", core.MaxUserListLine+10) + "\n", 2},
		{"bad base64", "dn: uid=x\nmail:: !!!\n", 2},
		{"LDIF without colon", "dn: uid=x\nnonsense\n", 2},
		{"endless folding", "dn: uid=x\nmail: a" + strings.Repeat("\n b", core.MaxUserListLine) + "\n", 0},
		{"too big", strings.Repeat("alice@example.test\n", core.MaxUserListBytes/19+1), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := core.ParseKnownUsers(strings.NewReader(tc.in), "example.test")
			var le *core.UserListError
			if !errors.As(err, &le) || !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("%v: want a *UserListError wrapping ErrInvalid", err)
			}
			if tc.line != 0 && le.Line != tc.line {
				t.Errorf("error at line %d, want %d: %v", le.Line, tc.line, err)
			}
		})
	}
}

func FuzzParseKnownUsers(f *testing.F) {
	f.Add([]byte("alice\nbob@example.test,pw\n"))
	f.Add([]byte("dn: uid=a\nmail:: YUBleGFtcGxlLnRlc3Q=\n\n"))
	f.Add([]byte("alice:{PLAIN}x:1:1::/home::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := core.ParseKnownUsers(bytes.NewReader(b), "example.test")
		if err != nil {
			return
		}
		for _, a := range l.Addresses {
			if c, err := store.CanonicalAddress(a); err != nil || c != a || !strings.HasSuffix(a, "@example.test") {
				t.Fatalf("address %q from %q", a, b)
			}
		}
	})
}

// An import replaces the list; a refused one changes nothing; readiness
// counts the listed users and those the relay saw.
func TestImportKnownUsers(t *testing.T) {
	co, err := core.Open(core.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	if _, err := co.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.ImportKnownUsers(ctx, "example.test", strings.NewReader("alice\nbob\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := co.ImportKnownUsers(ctx, "example.test", strings.NewReader("carol\nnot valid\n")); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("bad list: %v", err)
	}
	if _, err := co.ImportKnownUsers(ctx, "never.test", strings.NewReader("carol\n")); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("unknown domain: %v", err)
	}
	if err := core.StoreOf(co).NoteKnownUser(ctx, "example.test", "dave@example.test"); err != nil {
		t.Fatal(err)
	}
	k, err := co.KnownUsersOf(ctx, "example.test")
	if err != nil || !slices.Equal(k.Listed, []string{"alice@example.test", "bob@example.test"}) || !slices.Equal(k.Seen, []string{"dave@example.test"}) {
		t.Fatalf("known users %+v, %v", k, err)
	}
	if _, err := co.AddAccount(ctx, "alice@example.test", "Alice-Secret-1"); err != nil {
		t.Fatal(err)
	}
	r, err := co.Readiness(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !r.UsersListed || r.Listed != 2 || r.Seen != 1 || !slices.Equal(r.NeverLoggedIn, []string{"bob@example.test", "dave@example.test"}) {
		t.Fatalf("readiness %+v", r)
	}
}

// BenchmarkParseKnownUsers200k reads a `doveadm user '*'` listing of
// 200,000 users.
func BenchmarkParseKnownUsers200k(b *testing.B) {
	var buf bytes.Buffer
	for i := range 200000 {
		fmt.Fprintf(&buf, "user%06d@example.test\n", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := core.ParseKnownUsers(bytes.NewReader(buf.Bytes()), "example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

// A user of another domain is only counted and named as a sample, which
// the CLI and the assistant print: the sample (from an LDAP entry's
// base64 value, say) is bounded and has no escape sequence.
func TestKnownUsersSkippedSamplePrintable(t *testing.T) {
	evil := "\x1b]0;owned\x07\x1b[2J\u009b31m\u202e" + strings.Repeat("x", 3000) + "@other.test"
	in := "dn: uid=a\nmail: alice@example.test\n\ndn: uid=b\nmail:: " + base64.StdEncoding.EncodeToString([]byte(evil)) + "\n\n"
	l, err := core.ParseKnownUsers(strings.NewReader(in), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if l.Skipped != 1 || len(l.SkippedSample) != 1 {
		t.Fatalf("list %+v", l)
	}
	s := l.SkippedSample[0]
	if len(s) > 100 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || 0x7f <= r && r <= 0x9f || r == '\u202e' }) {
		t.Errorf("sample kept as %.200q", s)
	}
	_, err = core.ParseKnownUsers(strings.NewReader("dn: uid=b\nmail:: "+base64.StdEncoding.EncodeToString([]byte(evil))+"\n"), "example.test")
	if err == nil || len(err.Error()) > 300 || strings.ContainsAny(err.Error(), "\x1b\x07") {
		t.Errorf("error %.300q", err)
	}
}
