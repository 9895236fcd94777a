package imapfront_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// Dovecot's imaptest (its scripted conformance tests, src/tests of
// github.com/dovecot/imaptest) run against Mailferry, one script at a time,
// as a user with a password, without stress. The binary and the scripts are
// built from the source vendored in testdata/imaptest (build.sh; `make
// test-deps` runs it) into bin/tools/imaptest-<commit>; MAILFERRY_IMAPTEST
// names another binary (its scripts in the "tests" directory beside it).
// Without the binary the test is skipped, unless MAILFERRY_REQUIRE_OLDSERVER=1
// (make test), then it fails.
//
// A script whose "capabilities:" Mailferry does not all advertise is
// skipped by imaptest: each such script is named in imaptestSkipped with
// the capability it needs, and one skipped without being named fails the
// test (as does a named one that runs and fails). A script that fails (any
// command of it) fails the test unless named in imaptestKnownFailures, with
// what differs; a named one that passes is logged, to be taken off the list.
//
// MAILFERRY_IMAPTEST_DOVECOT=1 runs the same scripts against the Dovecot
// fixture too (subtest "dovecot"; every script must pass there, or be
// skipped for a capability Dovecot 2.3 does not offer), the side-by-side
// of issue 15. MAILFERRY_IMAPTEST_ONLY=name,name runs those scripts only.

// imaptestCommit is the imaptest commit vendored in testdata/imaptest.
const imaptestCommit = "924f619"

// imaptestSkipped: the scripts needing a capability Mailferry does not
// offer, and that capability.
var imaptestSkipped = map[string]string{
	"notify":         "NOTIFY (RFC 5465)",
	"sort-partial":   "CONTEXT=SORT (RFC 5267; Dovecot 2.3 does not offer it either)",
	"urlauth":        "URLAUTH (RFC 4467; Dovecot's fixture does not offer it either)",
	"urlauth-binary": "URLAUTH (RFC 4467, RFC 5524)",
	"urlauth2":       "URLAUTH (RFC 4467)",
}

// imaptestKnownFailures: scripts Mailferry fails today (Dovecot 2.3 passes
// them), and what differs. README "IMAP server" keeps the same list.
var imaptestKnownFailures = map[string]string{}

// imaptestResult is one script's run.
type imaptestResult struct {
	name           string
	skipped        bool
	need           []string // the capabilities a skipped script needs
	failed, total  int      // commands, base protocol and extensions
	failedCommands string   // imaptest's report of each failed command
	err            error    // the run itself (exit status, timeout)
}

func TestImaptestScripts(t *testing.T) {
	bin, dir := imaptestBinary(t)
	scripts := imaptestScripts(t, dir)
	e := newEnv(t, nil)
	c := e.login()
	caps := capabilities(t, c)
	results := runImaptest(t, bin, dir, scripts, e.addr, user, pass, caps)
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: %v\n%s", r.name, r.err, r.failedCommands)
		case r.skipped && imaptestSkipped[r.name] == "":
			t.Errorf("%s: skipped: Mailferry does not advertise %s; offer it, or name the script in imaptestSkipped", r.name, strings.Join(r.need, " "))
		case r.skipped:
		case r.failed > 0 && imaptestKnownFailures[r.name] == "":
			t.Errorf("%s: %d of %d commands failed (Dovecot 2.3 passes them all):\n%s", r.name, r.failed, r.total, r.failedCommands)
		case r.failed == 0 && imaptestKnownFailures[r.name] != "":
			t.Logf("%s: passes now: take it off imaptestKnownFailures", r.name)
		case r.failed == 0 && imaptestSkipped[r.name] != "":
			t.Logf("%s: runs and passes now: take it off imaptestSkipped", r.name)
		}
	}
	t.Log("imaptest " + imaptestCommit + " against Mailferry:\n" + imaptestTable(results))

	if os.Getenv("MAILFERRY_IMAPTEST_DOVECOT") != "1" {
		return
	}
	t.Run("dovecot", func(t *testing.T) {
		old := oldtest.Start(t, nil)
		addr, pw := "alice@example.test", old.Users["alice@example.test"]
		dc := dialAddr(t, old.IMAPAddr)
		dc.line()
		dc.ok("LOGIN %q %q", addr, pw)
		dcaps := capabilities(t, dc)
		dres := runImaptest(t, bin, dir, scripts, old.IMAPAddr, addr, pw, dcaps)
		for _, r := range dres {
			if r.err != nil || r.failed > 0 {
				t.Errorf("Dovecot fails %s (%v): %d of %d commands:\n%s", r.name, r.err, r.failed, r.total, r.failedCommands)
			}
		}
		t.Log("imaptest " + imaptestCommit + " against Dovecot:\n" + imaptestTable(dres))
	})
}

// imaptestBinary finds the imaptest binary and its scripts' directory.
func imaptestBinary(t *testing.T) (bin, dir string) {
	t.Helper()
	bin = os.Getenv("MAILFERRY_IMAPTEST")
	if bin == "" {
		root, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatal("no go.mod above the test's directory")
			}
			root = parent
		}
		bin = filepath.Join(root, "bin", "tools", "imaptest-"+imaptestCommit, "imaptest")
	}
	dir = filepath.Join(filepath.Dir(bin), "tests")
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("imaptest not built (%v): make test-deps, or testdata/imaptest/build.sh bin/tools/imaptest-%s", err, imaptestCommit)
		if os.Getenv(oldtest.RequireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin, dir
}

// imaptestScripts lists the scripts (files not ending in .mbox; the
// "broken" directory holds scripts imaptest itself does not run).
func imaptestScripts(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var only []string
	if s := os.Getenv("MAILFERRY_IMAPTEST_ONLY"); s != "" {
		only = strings.Split(s, ",")
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(n, ".mbox") || strings.HasPrefix(n, ".") {
			continue
		}
		if only != nil && !slices.Contains(only, n) {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("no imaptest scripts in %s", dir)
	}
	for n := range imaptestSkipped {
		if only == nil && !slices.Contains(out, n) {
			t.Errorf("imaptestSkipped names %s, which is no script", n)
		}
	}
	return out
}

// capabilities returns what a logged-in session advertises, upper case.
func capabilities(t *testing.T, c *conn) []string {
	t.Helper()
	un := c.ok("CAPABILITY")
	for _, l := range strings.Split(un, "\r\n") {
		if rest, ok := strings.CutPrefix(l, "* CAPABILITY "); ok {
			return strings.Fields(strings.ToUpper(rest))
		}
	}
	t.Fatalf("no CAPABILITY response: %q", un)
	return nil
}

// missingCaps reads a script's "capabilities:" header and returns those
// not in caps.
func missingCaps(t *testing.T, dir, name string, caps []string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var missing []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			break // the header ends at the first empty line
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "capabilities") {
			continue
		}
		for _, c := range strings.Fields(strings.ToUpper(v)) {
			if !slices.Contains(caps, c) {
				missing = append(missing, c)
			}
		}
	}
	return missing
}

var imaptestCounts = regexp.MustCompile(`(?m)^(base protocol|extensions): (\d+)/(\d+) individual commands failed`)

// runImaptest runs each script on its own against addr and reads
// imaptest's counts. A script with no command run was skipped (this
// imaptest does not count skipped groups itself); one skipped while the
// server advertises all it needs is an error.
func runImaptest(t *testing.T, bin, dir string, scripts []string, addr, login, password string, caps []string) []imaptestResult {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("address %q", addr)
	}
	var out []imaptestResult
	for _, name := range scripts {
		r := imaptestResult{name: name}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, bin, "host="+host, "port="+port, "user="+login, "pass="+password, "test="+filepath.Join(dir, name))
		b, err := cmd.CombinedOutput()
		cancel()
		text := string(b)
		m := imaptestCounts.FindAllStringSubmatch(text, -1)
		if len(m) != 2 {
			r.err = fmt.Errorf("imaptest gave no counts (%v)", err)
			r.failedCommands = text
			out = append(out, r)
			continue
		}
		for _, g := range m {
			f, _ := strconv.Atoi(g[2])
			n, _ := strconv.Atoi(g[3])
			r.failed += f
			r.total += n
		}
		if r.failed > 0 {
			r.failedCommands = imaptestFailures(text)
		} else if err != nil {
			r.err = fmt.Errorf("imaptest: %v", err)
			r.failedCommands = text
		}
		if r.total == 0 {
			r.skipped = true
			if r.need = missingCaps(t, dir, name, caps); len(r.need) == 0 {
				r.err = fmt.Errorf("no command run, yet the server advertises all the script needs")
				r.failedCommands = text
			}
		}
		out = append(out, r)
	}
	return out
}

// imaptestFailures keeps imaptest's report of each failed command (the
// "*** Test" paragraphs) and its errors.
func imaptestFailures(text string) string {
	var b strings.Builder
	for _, p := range strings.Split(text, "\n\n") {
		p = strings.TrimSpace(p)
		if strings.Contains(p, "*** Test") || strings.HasPrefix(p, "Error:") {
			b.WriteString(p + "\n\n")
		}
	}
	return b.String()
}

// imaptestTable is one line per script: passed, failed (n of m), or
// skipped (and for what).
func imaptestTable(rs []imaptestResult) string {
	var b strings.Builder
	for _, r := range rs {
		switch {
		case r.err != nil:
			fmt.Fprintf(&b, "  %-32s error: %v\n", r.name, r.err)
		case r.skipped:
			fmt.Fprintf(&b, "  %-32s skipped: no %s\n", r.name, strings.Join(r.need, " "))
		case r.failed > 0:
			fmt.Fprintf(&b, "  %-32s FAILED %d of %d commands\n", r.name, r.failed, r.total)
		default:
			fmt.Fprintf(&b, "  %-32s passed (%d commands)\n", r.name, r.total)
		}
	}
	return b.String()
}
