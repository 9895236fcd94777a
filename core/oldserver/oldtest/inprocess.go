package oldtest

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/demo"
)

// Kind is an implementation of the fixture's old server.
type Kind string

const (
	// Dovecot is the real old server: Dovecot, and Postfix with
	// Options.WithSMTP, started as root (see the package doc).
	Dovecot Kind = "dovecot"
	// Cyrus is Cyrus IMAP 3.6 (Debian 12's cyrus-imapd, unpacked by
	// `make test-deps`), and Postfix with Options.WithSMTP, started as
	// root like Dovecot (see cyrus.go for how it differs).
	Cyrus Kind = "cyrus"
	// InProcess is core/demo's in-memory IMAP and SMTP server, run inside
	// the test process on 127.0.0.1: it needs no root and nothing
	// installed, so it always runs.
	InProcess Kind = "inprocess"
)

// Kinds lists every kind, Dovecot first.
var Kinds = []Kind{Dovecot, Cyrus, InProcess}

// Each runs f once per kind, as the subtests "dovecot", "cyrus" and
// "inprocess".
// A test that seeds and reads the old server only through the fixture's
// IMAP methods (Append, CreateMailbox, Messages, Mailboxes, Dial...) and
// StartKind runs against all three: the Dovecot subtest is skipped where the
// machine cannot run Dovecot (failed under RequireEnv=1), the Cyrus one where
// Cyrus is not unpacked (`make test-deps`; failed under RequireEnv=1), the
// in-process one
// runs everywhere, so `go test ./...` as a non-root user still exercises
// the code under test against a real IMAP server.
func Each(t *testing.T, f func(t *testing.T, kind Kind)) {
	t.Helper()
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) { f(t, k) })
	}
}

// StartKind starts a fresh fixture of kind for one test, stopped in
// t.Cleanup; Dovecot as [Start] does.
func StartKind(t testing.TB, kind Kind, opts *Options) *Server {
	t.Helper()
	switch kind {
	case Dovecot:
		return Start(t, opts)
	case Cyrus:
		return startKindScripted(t, Cyrus, opts)
	case InProcess:
		return StartInProcess(t, opts)
	}
	t.Fatalf("oldtest: unknown kind %q", kind)
	return nil
}

// SharedKind is [Shared] for Dovecot and Cyrus; an in-process server is
// cheap, so for InProcess it is [StartInProcess].
func SharedKind(t testing.TB, kind Kind, opts *Options) *Server {
	t.Helper()
	if kind == Dovecot || kind == Cyrus {
		return sharedKind(t, kind, opts)
	}
	return StartKind(t, kind, opts)
}

// StartInProcess starts an in-process fixture ([InProcess]) for one test
// and stops it in t.Cleanup. It never skips.
func StartInProcess(t testing.TB, opts *Options) *Server {
	t.Helper()
	srv, err := StartInProcessServer(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			srv.logTail(t)
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("oldtest: stop: %v", err)
		}
	})
	return srv
}

// StartInProcessServer starts an in-process fixture without a testing.TB;
// the caller must call Stop.
//
// It is core/demo's server (go-imap's imapserver over its in-memory backend,
// go-smtp) made to look like the Dovecot fixture from the wire: the same
// users and passwords, Options.Separator ('/' or '.'), a master user
// (LOGIN "user*master" or AUTHENTICATE PLAIN with an authzid), LOGIN with
// the full address or the local part, STARTTLS with a self-signed
// certificate (CertSHA256), and for every user a subscribed Sent, Drafts,
// Trash, Junk and Archive with their SPECIAL-USE attribute. With WithSMTP,
// SMTPAddr accepts mail without AUTH and delivers it to a user of [Domain]
// or, for any other domain, to catchall@example.test.
//
// What differs from Dovecot (see core/demo's README): no implicit-TLS
// listeners (IMAPSAddr and SMTPSAddr are empty), no CONDSTORE, no \Recent,
// UIDVALIDITY counts 1, 2, 3... per user, INTERNALDATE keeps its zone
// (Dovecot's Maildir keeps only the instant), no StateDir, and WipeUser and Restart are
// not supported. Tests that depend on those keep to Dovecot.
func StartInProcessServer(opts *Options) (*Server, error) {
	o, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	if o.InboxNamespace {
		return nil, fmt.Errorf("oldtest: InboxNamespace is for the Cyrus fixture")
	}
	if o.WithSMTP {
		if _, ok := o.Users["catchall@"+Domain]; !ok {
			o.Users["catchall@"+Domain] = "CatchallSecret1"
		}
	}
	users := make(map[string]string, len(o.Users)+1)
	for u, p := range o.Users {
		users[u] = p
	}
	// demo always has a catch-all account; make it one the tests know.
	if _, ok := users["catchall@"+Domain]; !ok {
		users["catchall@"+Domain] = "CatchallSecret1"
	}
	logs := &tailBuffer{}
	mem, err := demo.Start(context.Background(), &demo.Options{
		Domain:         Domain,
		Users:          users,
		CatchAll:       "catchall@" + Domain,
		Delimiter:      o.Separator,
		LocalPartLogin: true,
		MasterUser:     o.MasterUser,
		MasterPassword: o.MasterPassword,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		return nil, fmt.Errorf("oldtest: in-process server: %w", err)
	}
	srv := &Server{
		Kind:           InProcess,
		IMAPAddr:       mem.IMAPAddr(),
		POP3Addr:       mem.POP3Addr(),
		Separator:      o.Separator,
		Users:          o.Users,
		MasterUser:     o.MasterUser,
		MasterPassword: o.MasterPassword,
		CertPEM:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mem.CertificateDER()}),
		CertSHA256:     mem.CertFingerprint(),
		mem:            mem,
		memLogs:        logs,
		conns:          make(map[string]*imapclient.Client),
	}
	if o.WithSMTP {
		srv.SMTPAddr = mem.SMTPAddr()
	}
	for u := range srv.Users {
		if err := srv.withSession(u, createSpecialUse); err != nil {
			srv.Stop()
			return nil, err
		}
	}
	return srv, nil
}

// specialUse are the folders the Dovecot fixture creates and subscribes
// for every user (auto = subscribe), in its order.
var specialUse = []struct {
	name string
	attr imap.MailboxAttr
}{
	{"Sent", imap.MailboxAttrSent},
	{"Drafts", imap.MailboxAttrDrafts},
	{"Trash", imap.MailboxAttrTrash},
	{"Junk", imap.MailboxAttrJunk},
	{"Archive", imap.MailboxAttrArchive},
}

func createSpecialUse(c *imapclient.Client) error {
	for _, f := range specialUse {
		if err := c.Create(f.name, &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{f.attr}}).Wait(); err != nil {
			return fmt.Errorf("oldtest: create %s: %w", f.name, err)
		}
		if err := c.Subscribe(f.name).Wait(); err != nil {
			return fmt.Errorf("oldtest: subscribe %s: %w", f.name, err)
		}
	}
	// Dovecot does not subscribe INBOX by itself.
	if err := c.Unsubscribe("INBOX").Wait(); err != nil {
		return fmt.Errorf("oldtest: unsubscribe INBOX: %w", err)
	}
	return nil
}

// needDovecot fails t when s is not the Dovecot fixture.
func (s *Server) needDovecot(t testing.TB, what string) {
	t.Helper()
	if s.Kind != Dovecot {
		t.Fatalf("oldtest: %s needs the Dovecot fixture (this one is %s)", what, s.Kind)
	}
}

// errNeedDovecot is returned by what only the Dovecot fixture can do.
var errNeedDovecot = errors.New("oldtest: needs the Dovecot fixture")

// tailBuffer keeps the in-process server's log for logTail.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		b.buf.Next(b.buf.Len() / 2)
	}
	return b.buf.Write(p)
}

func (b *tailBuffer) lastLines(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(b.buf.String()), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
