package core_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mailferry/core"
	"mailferry/core/oldserver"
	"mailferry/core/oldserver/oldtest"
	"mailferry/core/store"
)

// TestServeResumesWithMasterPassword: a bulk copy left unfinished (its
// process gone) is resumed by `serve` itself when the domain's master
// password is configured (master_password_files): no rerun, no login. The
// status says done at the end.
func TestServeResumesWithMasterPassword(t *testing.T) {
	ctx := context.Background()
	old := oldtest.StartKind(t, oldtest.InProcess, nil)
	for i := range 30 {
		old.Append(t, "bob", "INBOX", nil, time.Now(), []byte("Subject: m"+strconv.Itoa(i)+"\r\n\r\nhello\r\n"))
	}
	co := openMigrating(t, old, core.Off)
	// What a bulk run killed before it copied anything leaves.
	addr, _ := old.Address(t, "bob")
	if _, err := core.StoreOf(co).CreateAccount(ctx, addr, "random-Nobody-knows-1", &store.AccountOptions{
		Migration: store.MigRunning, PasswordOrigin: store.PasswordRandom, OldLogin: addr,
		Inbox: &store.MailboxOptions{Migration: store.MigPending, OldName: "INBOX", Subscribed: true}}); err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := co.Status(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var u core.UserStatus
		for _, x := range st.Users() {
			if x.Address == addr {
				u = x
			}
		}
		if u.State == core.MigDone && u.Messages == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not resume the copy by itself: %+v", u)
		}
	}
}

// openMigrating opens (not starts) a Core whose domain migrates from old
// through its master user (master_password_files), with IMAP on
// imapListen (core.Off: none) and every other listener off.
func openMigrating(t *testing.T, old *oldtest.Server, imapListen string) *core.Core {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "master.pass")
	if err := os.WriteFile(pwFile, []byte(old.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := core.Config{
		DataDir: t.TempDir(), Hostname: "mail.test", IMAPListen: imapListen, IMAPSListen: core.Off, SMTPListen: core.Off,
		SubmissionListen: core.Off, SubmissionTLSListen: core.Off, POP3Listen: core.Off, POP3SListen: core.Off,
		AllowInsecureAuth: true, Logger: slog.New(slog.DiscardHandler),
		MasterPasswordFiles: map[string]string{oldtest.Domain: pwFile},
	}
	co, err := core.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(old.IMAPAddr)
	p, _ := strconv.Atoi(port)
	s := core.OldServerSettings{Host: oldserver.MustParseHost(host), IMAPPort: p, IMAPTLS: oldserver.TLSNone,
		SMTPPort: 25, SMTPTLS: oldserver.TLSNone, LoginForm: oldserver.LoginFull, MasterUser: old.MasterUser}
	if err := co.SetMigration(context.Background(), oldtest.Domain, &s, true); err != nil {
		co.Close()
		t.Fatal(err)
	}
	return co
}
