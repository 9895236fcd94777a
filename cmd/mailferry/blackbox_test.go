package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
	"mailferry/core/testkit"
)

// mailferryBin builds the command once per test binary.
var mailferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailferry-bin")
	if err != nil {
		panic(err)
	}
	mailferryBin = filepath.Join(dir, "mailferry")
	build := exec.Command("go", "build", "-tags", "nogui", "-o", mailferryBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mailferry:", err)
		os.Exit(1)
	}
	code := m.Run()
	testkit.StopEngines()
	os.RemoveAll(dir)
	os.Exit(code)
}

// mf runs the binary with a data directory and returns stdout, stderr and
// the exit code.
func mf(t testing.TB, data, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(mailferryBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	if data != "" {
		cmd.Args = append(cmd.Args, "--data", data)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serve starts `mailferry serve` with only the IMAP listener, on addr.
func serve(t *testing.T, data, addr string) func() {
	t.Helper()
	s := startServe(t, data, addr, nil)
	return func() { s.stopClean(t) }
}

func TestCLIErrors(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nonsense"}, 2, "unknown command"},
		{[]string{}, 1, "no desktop assistant"}, // "mailferry --data D" opens the assistant
		{[]string{"domain", "add", "bad domain"}, 2, "invalid"},
		{[]string{"account", "add", "bob@nowhere.test"}, 2, "domain nowhere.test"},
		{[]string{"serve", "--imap", "127.0.0.1:70000"}, 2, "port"},
		{[]string{"domain", "delete", "never.test"}, 2, "not found"},
		{[]string{"domain", "migrate", "x.test", "--old", "[300.1.2.3]"}, 2, "300.1.2.3"},
		{[]string{"domain", "migrate", "x.test", "--old", "mail.x.test", "--imap-port", "0"}, 2, "port"},
		{[]string{"domain", "migrate", "x.test", "--old", "mail.x.test", "--tls", "sometimes"}, 2, "tls"},
		{[]string{"domain", "migrate", "x.test", "--old", "mail.x.test", "--max-connections", "-1"}, 2, "max_connections"},
		{[]string{"queue", "retry", "abc"}, 2, "not a number"},
		{[]string{"queue", "delete", "99"}, 2, "not found"},
		{[]string{"migrate", "--domain", "x.test"}, 2, "--users"},
	} {
		_, stderr, code := mf(t, data, "pw\n", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("mailferry %q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	// A port in use is a clear failure (exit 1), and nothing is left listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, code := mf(t, data, "", "serve", "--imap", ln.Addr().String(), "--imaps", "off", "--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off")
	if code != 1 || !strings.Contains(stderr, "address already in use") {
		t.Errorf("serve on a busy port: exit %d, %q", code, stderr)
	}
}

// TestThirdPartyClientRoundTrip drives `mailferry serve` with Python's
// imaplib: APPEND a varied set of messages into nested non-ASCII folders,
// restart the server, read everything back byte for byte.
func TestThirdPartyClientRoundTrip(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (make test installs it)")
	}
	data := t.TempDir()
	if out, stderr, code := mf(t, data, "", "domain", "add", "example.test"); code != 0 {
		t.Fatalf("domain add: %s %s", out, stderr)
	}
	if out, stderr, code := mf(t, data, "S3cret-pw\n", "account", "add", "alice@example.test"); code != 0 {
		t.Fatalf("account add: %s %s", out, stderr)
	}
	out, _, _ := mf(t, data, "", "account", "list")
	if !strings.Contains(out, "alice@example.test") {
		t.Fatalf("account list: %q", out)
	}

	spec := buildSpec(t, t.TempDir())
	specPath := filepath.Join(t.TempDir(), "spec.json")
	b, _ := json.Marshal(spec)
	os.WriteFile(specPath, b, 0o644)
	statePath := filepath.Join(t.TempDir(), "state.json")

	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	client := func(mode string) {
		t.Helper()
		cmd := exec.Command(py, "testdata/imapclient.py", mode, host, port, "alice@example.test", "S3cret-pw", specPath, statePath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("imaplib %s: %v\n%s", mode, err, out)
		}
		t.Logf("imaplib %s: %s", mode, bytes.TrimSpace(out))
	}
	stop := serve(t, data, addr)
	client("store")
	client("verify")
	stop()

	stop = serve(t, data, addr)
	defer stop()
	client("verify")
}

type specFolder struct {
	Name      string `json:"name"`
	Subscribe bool   `json:"subscribe"`
}

type specMessage struct {
	Folder string   `json:"folder"`
	File   string   `json:"file"`
	Flags  []string `json:"flags"`
	Date   string   `json:"date"`
}

type spec struct {
	Folders  []specFolder  `json:"folders"`
	Messages []specMessage `json:"messages"`
}

func buildSpec(t *testing.T, dir string) spec {
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	var b64 strings.Builder
	enc := []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
	for i := 0; i+3 <= len(big); i += 3 {
		n := int(big[i])<<16 | int(big[i+1])<<8 | int(big[i+2])
		b64.WriteByte(enc[n>>18&63])
		b64.WriteByte(enc[n>>12&63])
		b64.WriteByte(enc[n>>6&63])
		b64.WriteByte(enc[n&63])
		if (i/3+1)%19 == 0 {
			b64.WriteString("\r\n")
		}
	}
	msgs := map[string]string{
		"plain.eml":         "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Plain\r\nDate: Mon, 2 Mar 2020 10:00:00 +0100\r\nMessage-ID: <p1@example.test>\r\n\r\nHello Alice,\r\nplain text.\r\n",
		"html.eml":          "From: news@example.test\r\nTo: alice@example.test\r\nSubject: HTML\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hi <b>there</b></p></body></html>\r\n",
		"multipart.eml":     "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: Report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee attached.\r\n--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n--b1--\r\n",
		"8bit-headers.eml":  "From: Jürgen Müller <j@example.test>\r\nTo: alice@example.test\r\nSubject: Grüße aus Köln — 日本語\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße!\r\n",
		"iso2022jp.eml":     "From: tanaka@example.test\r\nTo: alice@example.test\r\nSubject: =?ISO-2022-JP?B?GyRCJEskTyQkJDgbKEI=?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n",
		"koi8r.eml":         "From: ivan@example.test\r\nTo: alice@example.test\r\nSubject: =?KOI8-R?B?8NLJ18XU?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=KOI8-R\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2!\r\n",
		"no-final-crlf.eml": "From: bob@example.test\r\nSubject: no final CRLF\r\n\r\nlast line without newline",
		"big.eml":           "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: 5 MB\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nbig one\r\n--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64.String() + "\r\n--zz--\r\n",
	}
	for name, body := range msgs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	return spec{
		Folders: []specFolder{
			{Name: "Données", Subscribe: true},
			{Name: "Données/Été 2020", Subscribe: true},
			{Name: "日本語", Subscribe: false},
			{Name: "Work & Play", Subscribe: true},
		},
		Messages: []specMessage{
			{"INBOX", f("plain.eml"), []string{`\Seen`}, "02-Mar-2020 10:00:00 +0100"},
			{"INBOX", f("html.eml"), []string{}, "15-Jul-2021 23:59:59 -0700"},
			{"INBOX", f("multipart.eml"), []string{`\Answered`, `\Flagged`, "$Forwarded"}, "01-Jan-2000 00:00:00 +0000"},
			{"Données/Été 2020", f("8bit-headers.eml"), []string{`\Seen`, "Work", "$Label1"}, "29-Feb-2020 12:34:56 +0530"},
			{"日本語", f("iso2022jp.eml"), []string{`\Draft`}, "03-Apr-2019 08:00:00 +0900"},
			{"Données", f("koi8r.eml"), []string{`\Deleted`, `\Seen`}, "10-Oct-2010 10:10:10 +0300"},
			{"Work & Play", f("no-final-crlf.eml"), []string{"ProjectX"}, "05-May-2015 05:05:05 -0300"},
			{"INBOX", f("big.eml"), []string{`\Seen`}, "24-Dec-2022 18:00:00 +0100"},
		},
	}
}

// TestMigrateOnLoginBlackBox: a user of a migrating domain logs in to
// `mailferry serve` with Python's imaplib; Mailferry checks the password at
// a real Dovecot, creates the account and copies the mailbox; every folder
// is then compared with the old server (names, subscriptions, special-use,
// UIDVALIDITY, UIDs, flags, dates, sha256 of BODY[]). Both of Dovecot's
// usual separators are tried.
func TestMigrateOnLoginBlackBox(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (make test installs it)")
	}
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		for _, sep := range []rune{'/', '.'} {
			t.Run(fmt.Sprintf("separator %c", sep), func(t *testing.T) {
				old := oldtest.StartKind(t, kind, &oldtest.Options{Separator: sep})
				seedOld(t, old, sep)
				data := t.TempDir()
				oh, op, _ := net.SplitHostPort(old.IMAPAddr)
				if out, stderr, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
					"--imap-port", op, "--smtp-port", "25", "--tls", "none"); code != 0 {
					t.Fatalf("domain migrate: %s %s", out, stderr)
				}
				addr := freePort(t)
				nh, np, _ := net.SplitHostPort(addr)
				stop := serve(t, data, addr)
				defer stop()

				// Wrong password: NO, and nothing is created.
				wrong := exec.Command(py, "-c", `import imaplib,ssl,sys
c=imaplib.IMAP4(sys.argv[1],int(sys.argv[2]))
x=ssl.create_default_context(); x.check_hostname=False; x.verify_mode=ssl.CERT_NONE
c.starttls(ssl_context=x)
try:
    c.login("alice@example.test","not-her-password")
except imaplib.IMAP4.error as e:
    print("NO", e); sys.exit(0)
sys.exit("wrong password accepted")`, nh, np)
				if out, err := wrong.CombinedOutput(); err != nil {
					t.Fatalf("wrong password: %v %s", err, out)
				}
				if out, _, _ := mf(t, data, "", "account", "list"); strings.Contains(out, "alice") {
					t.Fatalf("an account was created for a wrong password:\n%s", out)
				}

				user, pw := old.Address(t, "alice")
				cmp := exec.Command(py, "testdata/compare.py", oh, op, nh, np, user, pw, "120")
				out, err := cmp.CombinedOutput()
				if err != nil {
					t.Fatalf("compare: %v\n%s", err, out)
				}
				t.Logf("%s", bytes.TrimSpace(out))
				out2, _, code := mf(t, data, "", "status", "--json")
				if code != 0 || !strings.Contains(out2, `"address": "alice@example.test"`) {
					t.Fatalf("status --json: %d %s", code, out2)
				}
			})
		}
	})
}

// seedOld fills alice's old mailbox: nested and non-ASCII folders, every
// system flag and keywords, dates in several zones, special-use folders,
// an unsubscribed folder and an empty one.
func seedOld(t *testing.T, old *oldtest.Server, sep rune) {
	s := string(sep)
	zones := []*time.Location{time.UTC, time.FixedZone("", 9*3600), time.FixedZone("", -(4*3600 + 30*60)), time.FixedZone("", 5*3600+45*60)}
	folders := []string{"INBOX", "Sent", "Archive", "Archive" + s + "2020", "Données" + s + "Été 2020", "日本語", "Work & Play"}
	flagSets := [][]string{{}, {`\Seen`}, {`\Answered`, `\Flagged`}, {`\Deleted`, `\Seen`}, {`\Draft`}, {"$Forwarded", "Work"}, {`\Seen`, "$Label1", "ProjectX"}}
	n := 0
	for i, f := range folders {
		for j := 0; j < 3+i; j++ {
			n++
			date := time.Date(2015+n%8, time.Month(1+n%12), 1+n%28, n%24, n%60, n%60, 0, zones[n%len(zones)])
			raw := fmt.Sprintf("From: Sender %d <s%d@example.net>\r\nTo: alice@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_%d?=\r\nDate: %s\r\nMessage-ID: <m%d@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nNachricht %d — ÄÖÜ ß 日本\r\n",
				n, n, n, date.Format(time.RFC1123Z), n, n)
			if n%5 == 0 {
				raw = strings.TrimSuffix(raw, "\r\n") // no final CRLF
			}
			old.Append(t, "alice", f, flagSets[n%len(flagSets)], date, []byte(raw))
		}
	}
	old.CreateMailbox(t, "alice", "Empty", true)
	old.CreateMailbox(t, "alice", "Hidden", false)
	old.Append(t, "alice", "Hidden", nil, time.Date(2021, 5, 5, 5, 5, 5, 0, time.UTC), []byte("Subject: hidden\r\n\r\nx\r\n"))
}

// TestKillMidCopyAndBulk: `mailferry serve` is killed with SIGKILL while it
// copies a mailbox; after a restart the user's next login finishes the copy
// with no message missing and none twice. Then `mailferry migrate` copies
// the other users in bulk through the old server's master user.
func TestKillMidCopyAndBulk(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (make test installs it)")
	}
	oldtest.Each(t, func(t *testing.T, kind oldtest.Kind) {
		old := oldtest.StartKind(t, kind, &oldtest.Options{Separator: '/'})
		const n = 1500
		seedPadded(t, old, "alice", n)
		old.Append(t, "bob", "INBOX", []string{`\Seen`}, time.Now(), []byte("Subject: for bob\r\n\r\nhi\r\n"))
		old.Append(t, "carol", "Archive", nil, time.Now(), []byte("Subject: for carol\r\n\r\nhi\r\n"))

		data := t.TempDir()
		oh, op, _ := net.SplitHostPort(old.IMAPAddr)
		if out, stderr, code := mf(t, data, "", "domain", "migrate", "example.test", "--old", "["+oh+"]",
			"--imap-port", op, "--tls", "none", "--master-user", old.MasterUser); code != 0 {
			t.Fatalf("domain migrate: %s %s", out, stderr)
		}
		addr := freePort(t)
		nh, np, _ := net.SplitHostPort(addr)
		cmd := exec.Command(mailferryBin, "serve", "--data", data, "--imap", addr, "--imaps", "off",
			"--smtp", "off", "--submission", "off", "--submissions", "off", "--pop3", "off", "--pop3s", "off")
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("serve did not start")
			}
		}
		user, pw := old.Address(t, "alice")
		login := exec.Command(py, "-c", `import imaplib,ssl,sys
c=imaplib.IMAP4(sys.argv[1],int(sys.argv[2]))
x=ssl.create_default_context(); x.check_hostname=False; x.verify_mode=ssl.CERT_NONE
c.starttls(ssl_context=x); c.login(sys.argv[3],sys.argv[4]); c.logout()`, nh, np, user, pw)
		if out, err := login.CombinedOutput(); err != nil {
			cmd.Process.Kill()
			t.Fatalf("first login: %v %s", err, out)
		}
		// Kill as soon as part of the mailbox is in the store.
		var copied uint32
		for deadline := time.Now().Add(60 * time.Second); copied == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("no message copied within a minute")
			}
			copied = inboxCount(t, data, user)
		}
		cmd.Process.Kill()
		cmd.Wait()
		after := inboxCount(t, data, user)
		if after >= n {
			t.Skipf("the copy finished (%d messages) before the kill landed", after)
		}
		t.Logf("killed with %d of %d messages copied", after, n)

		stop := serve(t, data, addr)
		defer stop()
		out, err := exec.Command(py, "testdata/compare.py", oh, op, nh, np, user, pw, "120").CombinedOutput()
		if err != nil {
			t.Fatalf("compare after restart: %v\n%s", err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))

		// Bulk: bob and carol through the master user, whose password is read
		// from standard input.
		users := filepath.Join(t.TempDir(), "users.csv")
		os.WriteFile(users, []byte("user\nbob\ncarol@example.test\n"), 0o600)
		out2, stderr, code := mf(t, data, old.MasterPassword+"\n", "migrate", "--domain", "example.test", "--users", users, "--master-user", old.MasterUser)
		if code != 0 || !strings.Contains(out2, "2 of 2 users migrated") {
			t.Fatalf("bulk migrate: exit %d\n%s\n%s", code, out2, stderr)
		}
		for _, u := range []string{"bob", "carol"} {
			addr, pw := old.Address(t, u)
			out, err := exec.Command(py, "testdata/compare.py", oh, op, nh, np, addr, pw, "60").CombinedOutput()
			if err != nil {
				t.Fatalf("compare %s after bulk: %v\n%s", u, err, out)
			}
		}
		// A wrong master password copies nothing and says so.
		os.WriteFile(users, []byte("dave@example.test\n"), 0o600)
		if _, _, code := mf(t, data, "wrong\n", "migrate", "--domain", "example.test", "--users", users, "--master-user", old.MasterUser); code != 1 {
			t.Fatalf("bulk with a wrong master password: exit %d", code)
		}
		if out, _, _ := mf(t, data, "", "account", "list"); strings.Contains(out, "dave") {
			t.Fatalf("a wrong master password created an account:\n%s", out)
		}
	})
}

// seedPadded appends n messages of about 26 KB to user's INBOX on the old
// server: a mailbox whose copy surely runs for a while.
func seedPadded(t *testing.T, old *oldtest.Server, user string, n int) {
	t.Helper()
	seedPaddedKB(t, old, user, n, 26)
}

// seedPaddedKB is seedPadded with messages of about kb KB (in steps of
// 37 bytes), and says how many bytes it appended.
func seedPaddedKB(t *testing.T, old *oldtest.Server, user string, n, kb int) (total int64) {
	t.Helper()
	const unit = "0123456789abcdefghijklmnopqrstuvwxyz "
	pad := strings.Repeat(unit, kb*1000/len(unit))
	c := old.Dial(t, user)
	defer c.Close()
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf("From: s%d@example.net\r\nSubject: message %d\r\n\r\n%s\r\n", i, i, pad)
		total += int64(len(raw))
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	return total
}

// inboxCount reads, through `mailferry status --json` (with extra flags, a
// --config), how many messages the account's INBOX holds in the store.
func inboxCount(t *testing.T, data, user string, extra ...string) uint32 {
	out, stderr, code := mf(t, data, "", append([]string{"status", "--json"}, extra...)...)
	if code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	var rep struct {
		Domains []struct {
			Accounts []struct {
				Address string
				Folders []struct {
					Name     string
					Messages uint32
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, d := range rep.Domains {
		for _, a := range d.Accounts {
			if strings.EqualFold(a.Address, user) {
				for _, f := range a.Folders {
					if f.Name == "INBOX" {
						return f.Messages
					}
				}
			}
		}
	}
	return 0
}

// domain migrate --max-connections keeps the admin's cap on connections to
// the old server, and --show prints it with what was learnt (nothing yet).
func TestDomainMigrateMaxConnections(t *testing.T) {
	data := t.TempDir()
	if _, stderr, code := mf(t, data, "", "domain", "migrate", "x.test", "--old", "mail.x.test", "--max-connections", "3"); code != 0 {
		t.Fatalf("domain migrate: %d %s", code, stderr)
	}
	out, stderr, code := mf(t, data, "", "domain", "migrate", "x.test", "--show")
	if code != 0 || !strings.Contains(out, `"max_connections": 3`) || !strings.Contains(out, `"learnt": null`) {
		t.Fatalf("--show: %d %s\n%s", code, stderr, out)
	}
}
