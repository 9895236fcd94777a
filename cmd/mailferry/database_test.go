package main_test

import (
	"strings"
	"testing"
)

// `--database-url` (the PostgreSQL engine) is checked before anything is
// opened, and its password never printed: not when the URL is refused,
// not when the database cannot be reached.
func TestDatabaseURLFlag(t *testing.T) {
	const secret = "Db-Secret-93"
	for _, tc := range []struct {
		url  string
		code int
		want string
	}{
		{"host=db user=u password=" + secret, 2, "database URL"},
		{"mysql://u:" + secret + "@db/mail", 2, "postgres://"},
		{"postgres://u:" + secret + "@127.0.0.1:1/mail?connect_timeout=2", 1, "postgres://u:xxxxx@127.0.0.1:1/mail"},
	} {
		out, stderr, code := mf(t, t.TempDir(), "", "status", "--database-url", tc.url)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("status --database-url %q: exit %d, %q; want exit %d saying %q", tc.url, code, stderr, tc.code, tc.want)
		}
		if strings.Contains(out+stderr, secret) {
			t.Errorf("status --database-url %q printed the password: %q %q", tc.url, out, stderr)
		}
	}
}
