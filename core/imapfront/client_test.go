package imapfront_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/imapfront"
	"mailferry/core/store"
)

// TestImapclient drives the server with go-imap's own client, as a mail
// program would.
func TestImapclient(t *testing.T) {
	e := newEnv(t, nil)
	exists := make(chan uint32, 10)
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Archive/2020", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	if strings.Join(names, ",") != "INBOX,Archive,Archive/2020" {
		t.Fatalf("LIST = %v", names)
	}
	for _, m := range []string{simple, eightBit, multipart} {
		ac := c.Append("INBOX", int64(len(m)), &imap.AppendOptions{Flags: []imap.Flag{"$Work"}})
		ac.Write([]byte(m))
		ac.Close()
		data, err := ac.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if data.UID == 0 || data.UIDValidity == 0 {
			t.Fatalf("APPENDUID missing: %+v", data)
		}
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 {
		t.Fatalf("SELECT = %+v", sel)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		Envelope: true, Flags: true, UID: true, RFC822Size: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	if msgs[0].Envelope.Subject != "Hello" || msgs[0].Envelope.From[0].Addr() != "bob@example.test" || msgs[0].Envelope.MessageID != "m1@example.test" {
		t.Fatalf("envelope = %+v", msgs[0].Envelope)
	}
	if msgs[1].Envelope.Subject != "Été à Paris – 日本語" {
		t.Fatalf("8-bit subject = %q", msgs[1].Envelope.Subject)
	}
	if mp, ok := msgs[2].BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 2 {
		t.Fatalf("structure = %#v", msgs[2].BodyStructure)
	}
	for i, m := range []string{simple, eightBit, multipart} {
		if got := string(msgs[i].FindBodySection(&imap.FetchItemBodySection{})); got != m {
			t.Fatalf("message %d body differs", i+1)
		}
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "parts"}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uids := found.AllUIDs(); len(uids) != 1 || uids[0] != 3 {
		t.Fatalf("UID SEARCH = %v", uids)
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move(imap.UIDSetNum(2), "Archive/2020").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if moved.UIDValidity == 0 || moved.DestUIDs.String() != "1" {
		t.Fatalf("MOVE = %+v", moved)
	}
	st, err := c.Status("Archive/2020", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS = %+v, %v", st, err)
	}

	// IDLE sees a message the migration engine stores.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	for len(exists) > 0 {
		<-exists
	}
	e.put(e.inbox(), simple)
	select {
	case n := <-exists:
		if n != 3 {
			t.Fatalf("EXISTS %d, want 3", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestCacheFallback serves ENVELOPE from a store that has no Summarize:
// the message is parsed once and its cache entry kept.
func TestCacheFallback(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), &store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.CreateDomain(ctx, "example.test")
	acct, err := st.CreateAccount(ctx, user, pass, nil)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, acct.ID, "INBOX")
	m, err := st.AppendMessage(ctx, inbox.ID, &store.NewMessage{Body: []byte(simple)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := imapfront.New(&imapfront.Options{Store: st, Logger: quietLogger(), AllowInsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	e := &env{t: t, st: st, addr: ln.Addr().String()}
	c := e.login()
	c.ok("SELECT INBOX")
	if un := c.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE)"); !strings.Contains(un, `"Hello"`) || !strings.Contains(un, `"plain"`) {
		t.Fatalf("FETCH: %s", un)
	}
	got, err := st.Message(ctx, inbox.ID, m.UID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := imapfront.Summarize([]byte(simple))
	if string(got.Envelope) != string(want) || got.Structure == nil {
		t.Fatalf("cache not kept: %q", got.Envelope)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cfg, err := imapfront.SelfSignedTLS(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := imapfront.SelfSignedTLS(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Certificates[0].Certificate[0]) != string(again.Certificates[0].Certificate[0]) {
		t.Fatal("the certificate was made again instead of loaded")
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	insecure := false
	e := newEnv(t, &envOpts{tls: cfg, insecure: &insecure})
	// Plain connection: STARTTLS offered, LOGIN refused before it.
	c := e.dial()
	if un := c.ok("CAPABILITY"); !strings.Contains(un, "STARTTLS") || !strings.Contains(un, "LOGINDISABLED") {
		t.Fatalf("CAPABILITY: %s", un)
	}
	if got, all := c.status("LOGIN %s %s", user, pass); got != "NO" || !strings.Contains(all, "PRIVACYREQUIRED") {
		t.Fatalf("LOGIN without TLS: %s", all)
	}
	sc, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	sc.Close()

	// Implicit TLS (RFC 8314).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)
	tc, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN over implicit TLS: %v", err)
	}
	if _, err := tc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestPythonImaplib runs testdata/imaplib_check.py: Python's imaplib, a
// client we did not write, against the server.
func TestPythonImaplib(t *testing.T) {
	runImaplib(t, newEnv(t, nil), "testdata/imaplib_check.py", "imaplib OK")
}

// TestPythonImaplibSync runs testdata/imaplib_sync_check.py: Python's
// imaplib driving CONDSTORE, QRESYNC, ESEARCH, SEARCHRES, SORT (with
// SORT=DISPLAY and ESORT) and THREAD.
func TestPythonImaplibSync(t *testing.T) {
	runImaplib(t, newEnv(t, nil), "testdata/imaplib_sync_check.py", "imaplib sync OK")
}
