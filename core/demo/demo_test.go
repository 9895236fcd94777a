package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"mailferry/core/demo"
)

// lockedBuffer collects the server log; it is printed when a test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startDemo(t *testing.T, opts *demo.Options) *demo.Server {
	t.Helper()
	if opts == nil {
		opts = &demo.Options{Seed: true}
	}
	logs := &lockedBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := demo.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return s
}

func password(t *testing.T, s *demo.Server, addr string) string {
	t.Helper()
	for _, u := range s.Users() {
		if u.Address == addr {
			return u.Password
		}
	}
	t.Fatalf("no user %q", addr)
	return ""
}

func login(t *testing.T, s *demo.Server, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatalf("dial IMAP: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(addr, password(t, s, addr)).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", addr, err)
	}
	return c
}

// fetchAll returns every message of mailbox with its flags, date and bytes.
func fetchAll(t *testing.T, c *imapclient.Client, mailbox string) []*imapclient.FetchMessageBuffer {
	t.Helper()
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %q: %v", mailbox, err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("FETCH %q: %v", mailbox, err)
	}
	return msgs
}

func body(m *imapclient.FetchMessageBuffer) []byte {
	return m.FindBodySection(&imap.FetchItemBodySection{Peek: true})
}

// stripReceived removes the first header field, which must be Received.
func stripReceived(t *testing.T, raw []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte("Received: ")) {
		t.Fatalf("message does not start with Received:\n%.200s", raw)
	}
	i := 0
	for {
		j := bytes.Index(raw[i:], []byte("\r\n"))
		if j < 0 {
			t.Fatalf("unterminated Received header")
		}
		i += j + 2
		if i >= len(raw) || (raw[i] != ' ' && raw[i] != '\t') {
			return raw[i:]
		}
	}
}

func TestStartDefaults(t *testing.T) {
	s := startDemo(t, &demo.Options{})
	for _, addr := range []string{s.IMAPAddr(), s.SMTPAddr()} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("address %q is not 127.0.0.1:port", addr)
		}
	}
	want := []string{"alice@example.test", "bob@example.test", "carol@example.test", "catchall@example.test"}
	var got []string
	for _, u := range s.Users() {
		got = append(got, u.Address)
		if u.Password == "" {
			t.Errorf("user %s has no password", u.Address)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Users() = %v, want %v", got, want)
	}
	if s.SeedAccount() != "" {
		t.Errorf("SeedAccount() = %q without Seed", s.SeedAccount())
	}
	// Without Seed, a user has just an empty INBOX.
	c := login(t, s, "bob@example.test")
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil || len(boxes) != 1 || boxes[0].Mailbox != "INBOX" {
		t.Errorf("LIST = %v, %v; want only INBOX", boxes, err)
	}
}

func TestStartRejectsNonLoopback(t *testing.T) {
	_, err := demo.Start(t.Context(), &demo.Options{IMAPAddr: "0.0.0.0:0"})
	if err == nil {
		t.Fatal("Start on 0.0.0.0 succeeded")
	}
}

func TestLoginFailures(t *testing.T) {
	s := startDemo(t, nil)
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "alice@example.test", "nope"},
		{"unknown user", "mallory@example.test", "alice-demo-pw"},
		{"empty password", "alice@example.test", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Login(tc.user, tc.pass).Wait()
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAuthenticationFailed {
				t.Errorf("LOGIN error = %v, want NO [AUTHENTICATIONFAILED]", err)
			}
		})
	}
	// Login is case-insensitive in the address.
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("Alice@Example.TEST", "alice-demo-pw").Wait(); err != nil {
		t.Errorf("mixed-case LOGIN: %v", err)
	}
}

func TestListFolders(t *testing.T) {
	s := startDemo(t, nil)
	c := login(t, s, s.SeedAccount())

	boxes, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, UIDValidity: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	byName := map[string]*imap.ListData{}
	var names []string
	for _, b := range boxes {
		byName[b.Mailbox] = b
		names = append(names, b.Mailbox)
		if b.Delim != demo.Delimiter {
			t.Errorf("%q: delimiter %q", b.Mailbox, b.Delim)
		}
	}
	t.Logf("LIST: %q", names)

	for _, f := range demo.SeedFolders() {
		b := byName[f.Name]
		if b == nil {
			t.Errorf("folder %q missing", f.Name)
			continue
		}
		if f.SpecialUse != "" && !slices.Contains(b.Attrs, f.SpecialUse) {
			t.Errorf("%q: attrs %v lack %v", f.Name, b.Attrs, f.SpecialUse)
		}
		if b.Status == nil || b.Status.UIDValidity == 0 {
			t.Errorf("%q: no LIST-STATUS", f.Name)
		}
	}
	parent := byName["Données"]
	if parent == nil || !slices.Contains(parent.Attrs, imap.MailboxAttrNoSelect) || !slices.Contains(parent.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("Données = %+v, want \\Noselect \\HasChildren", parent)
	}
	if b := byName["Junk"]; b == nil || b.Status == nil || *b.Status.NumMessages != 0 {
		t.Errorf("Junk should exist and be empty: %+v", b)
	}
	if b := byName["INBOX"]; b == nil || *b.Status.NumMessages < 20 {
		t.Errorf("INBOX should hold ~20 messages: %+v", b)
	}

	// Subscriptions: everything but Newsletters.
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SUBSCRIBED): %v", err)
	}
	var subNames []string
	for _, b := range subs {
		subNames = append(subNames, b.Mailbox)
	}
	for _, f := range demo.SeedFolders() {
		if slices.Contains(subNames, f.Name) != f.Subscribed {
			t.Errorf("%q: subscribed = %v, want %v", f.Name, !f.Subscribed, f.Subscribed)
		}
	}

	// Special-use selection (RFC 6154).
	special, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SPECIAL-USE): %v", err)
	}
	if len(special) != 5 {
		t.Errorf("LIST (SPECIAL-USE) returned %d mailboxes, want 5", len(special))
	}

	// "%" lists one level.
	top, err := c.List("", "%", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range top {
		if strings.ContainsRune(b.Mailbox, demo.Delimiter) {
			t.Errorf("LIST %% returned %q", b.Mailbox)
		}
	}
}

// TestRawProtocol drives the server with raw IMAP lines (mox style) to check
// the wire form: modified UTF-7 names (RFC 3501 section 5.1.3), special-use.
func TestRawProtocol(t *testing.T) {
	s := startDemo(t, nil)
	conn, err := net.Dial("tcp", s.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	read := func(tag string) []string {
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (so far %q)", err, lines)
			}
			lines = append(lines, strings.TrimRight(line, "\r\n"))
			if strings.HasPrefix(line, tag+" ") {
				return lines
			}
		}
	}
	if greet := read("*"); !strings.Contains(greet[0], "IMAP4rev1") || !strings.Contains(greet[0], "STARTTLS") {
		t.Errorf("greeting %q lacks IMAP4rev1 or STARTTLS", greet[0])
	}
	fmt.Fprintf(conn, "a1 LOGIN alice@example.test alice-demo-pw\r\n")
	if l := read("a1"); !strings.HasPrefix(l[len(l)-1], "a1 OK") {
		t.Fatalf("LOGIN: %q", l)
	}
	fmt.Fprintf(conn, "a2 LIST \"\" \"*\"\r\n")
	lines := read("a2")
	joined := strings.Join(lines, "\n")
	for _, want := range []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\Noselect \HasChildren) "/" "Donn&AOk-es"`,
		`* LIST (\HasNoChildren) "/" "Donn&AOk-es/&AMk-t&AOk- 2020"`,
		`* LIST (\HasChildren \Archive) "/" "Archive"`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("LIST output lacks %s:\n%s", want, joined)
		}
	}
	fmt.Fprintf(conn, "a3 SELECT \"Donn&AOk-es/&AMk-t&AOk- 2020\"\r\n")
	if l := read("a3"); !strings.Contains(strings.Join(l, "\n"), "* 2 EXISTS") {
		t.Errorf("SELECT: %q", l)
	}

	// EXAMINE is read-only: BODY[] does not set \Seen, STORE is refused.
	// INBOX message 6 is unseen in the seed.
	cmds := []struct{ cmd, want string }{
		{`EXAMINE INBOX`, `OK [READ-ONLY]`},
		{`FETCH 6 BODY[]`, `OK`},
		{`FETCH 6 FLAGS`, `* 6 FETCH (UID 6 FLAGS ())`},
		{`STORE 6 +FLAGS (\Flagged)`, `NO [READ-ONLY]`},
		{`SELECT INBOX`, `OK [READ-WRITE]`},
		{`FETCH 6 BODY[]`, `FLAGS (\Seen)`},
		{`UID STORE 6 -FLAGS.SILENT (\Seen)`, `OK`},
		// Flags keep their case: a system flag as RFC 9051 spells it, a
		// keyword as first set; both compare without case.
		{`UID STORE 6 +FLAGS (\flagged CamelKey)`, `FLAGS (\Flagged CamelKey)`},
		{`UID STORE 6 +FLAGS (camelkey)`, `FLAGS (\Flagged CamelKey)`},
		{`UID STORE 6 -FLAGS (CAMELKEY \FLAGGED)`, `FLAGS ()`},
		{`LOGOUT`, `OK`},
	}
	for i, c := range cmds {
		tag := fmt.Sprintf("b%d", i)
		fmt.Fprintf(conn, "%s %s\r\n", tag, c.cmd)
		out := strings.Join(read(tag), "\n")
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: want %q in:\n%s", c.cmd, c.want, out)
		}
	}
}

// TestFetchSeed compares every seeded message byte for byte, with its
// INTERNALDATE (zone kept) and flags.
func TestFetchSeed(t *testing.T) {
	s := startDemo(t, nil)
	c := login(t, s, s.SeedAccount())

	want := map[string][]demo.SeedMessage{}
	for _, m := range demo.SeedMessages(s.SeedAccount()) {
		want[m.Mailbox] = append(want[m.Mailbox], m)
	}
	if n := len(want["INBOX"]); n < 20 {
		t.Errorf("seed INBOX has %d messages, want about 20", n)
	}
	for box, msgs := range want {
		t.Run(box, func(t *testing.T) {
			got := fetchAll(t, c, box)
			if len(got) != len(msgs) {
				t.Fatalf("%d messages, want %d", len(got), len(msgs))
			}
			for i, m := range got {
				w := msgs[i]
				if m.UID != imap.UID(i+1) {
					t.Errorf("message %d: UID %d", i+1, m.UID)
				}
				if !bytes.Equal(body(m), w.Raw) {
					t.Errorf("UID %d: bytes differ (got %d, want %d)", m.UID, len(body(m)), len(w.Raw))
				}
				if m.RFC822Size != int64(len(w.Raw)) {
					t.Errorf("UID %d: RFC822.SIZE %d, want %d", m.UID, m.RFC822Size, len(w.Raw))
				}
				if !m.InternalDate.Equal(w.InternalDate) {
					t.Errorf("UID %d: INTERNALDATE %v, want %v", m.UID, m.InternalDate, w.InternalDate)
				}
				_, gotOff := m.InternalDate.Zone()
				_, wantOff := w.InternalDate.Zone()
				if gotOff != wantOff {
					t.Errorf("UID %d: INTERNALDATE zone %d, want %d", m.UID, gotOff, wantOff)
				}
				// Flags come back exactly as seeded, case included.
				if !sameFlags(m.Flags, w.Flags) {
					t.Errorf("UID %d: flags %v, want %v", m.UID, m.Flags, w.Flags)
				}
				if _, err := mail.CreateReader(bytes.NewReader(body(m))); err != nil && !message.IsUnknownCharset(err) {
					t.Errorf("UID %d: go-message cannot parse: %v", m.UID, err)
				}
			}
		})
	}
}

func sameFlags(a, b []imap.Flag) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func sendRaw(t *testing.T, addr string, from string, to []string, raw []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial SMTP: %v", err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// findByMessageID returns the bytes of the message with that Message-ID in
// mailbox, or nil.
func findByMessageID(t *testing.T, c *imapclient.Client, mailbox, id string) []byte {
	t.Helper()
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE %q: %v", mailbox, err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
	if err != nil {
		t.Fatalf("SEARCH: %v", err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		return nil
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v", err)
	}
	return body(msgs[0])
}

func TestSMTPDeliversSamples(t *testing.T) {
	s := startDemo(t, nil)
	codes := []string{}
	for _, l := range demo.Languages() {
		codes = append(codes, l.Code)
	}
	samples := demo.Samples("Test Sender <tester@example.test>", "Alice Example <alice@example.test>", codes,
		time.Date(2026, 11, 25, 10, 0, 0, 0, time.FixedZone("", 3600)))
	for _, sm := range samples {
		if err := sendRaw(t, s.SMTPAddr(), "tester@example.test", []string{"alice@example.test"}, sm.Raw); err != nil {
			t.Fatalf("send %s: %v", sm.Name, err)
		}
	}
	c := login(t, s, "alice@example.test")
	for _, sm := range samples {
		got := findByMessageID(t, c, "INBOX", sm.MessageID)
		if got == nil {
			t.Errorf("%s: not found in INBOX", sm.Name)
			continue
		}
		if rest := stripReceived(t, got); !bytes.Equal(rest, sm.Raw) {
			t.Errorf("%s: stored bytes differ from sent bytes\n got: %q\nwant: %q", sm.Name, rest, sm.Raw)
		}
	}
}

func TestSMTPRecipients(t *testing.T) {
	s := startDemo(t, nil)
	raw := []byte("From: x@outside.example\r\nTo: someone@elsewhere.example\r\nSubject: relay\r\nMessage-ID: <relay-1@outside.example>\r\n\r\nrelayed\r\n")

	// Other domains land in the catch-all mailbox, once per message.
	if err := sendRaw(t, s.SMTPAddr(), "x@outside.example", []string{"someone@elsewhere.example", "other@else.example"}, raw); err != nil {
		t.Fatalf("relay: %v", err)
	}
	c := login(t, s, s.CatchAll())
	got := findByMessageID(t, c, "INBOX", "relay-1@outside.example")
	if got == nil {
		t.Fatal("relayed message not in catch-all INBOX (or delivered twice)")
	}
	if !bytes.Equal(stripReceived(t, got), raw) {
		t.Errorf("relayed bytes differ:\n%q", got)
	}

	// Unknown user of the demo domain: 550 5.1.1.
	err := sendRaw(t, s.SMTPAddr(), "x@outside.example", []string{"nobody@example.test"}, raw)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 550 || smtpErr.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("unknown local rcpt: %v, want 550 5.1.1", err)
	}

	// Domain and local part are case-insensitive.
	raw2 := []byte("Subject: case\r\nMessage-ID: <case-1@outside.example>\r\n\r\nhi\r\n")
	if err := sendRaw(t, s.SMTPAddr(), "", []string{"Bob@EXAMPLE.test"}, raw2); err != nil {
		t.Fatalf("mixed-case rcpt: %v", err)
	}
	if findByMessageID(t, login(t, s, "bob@example.test"), "INBOX", "case-1@outside.example") == nil {
		t.Error("mixed-case recipient not delivered to bob")
	}
}

func TestSMTPExtensions(t *testing.T) {
	s := startDemo(t, nil)
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"SIZE", "8BITMIME", "SMTPUTF8", "STARTTLS", "PIPELINING", "AUTH"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO lacks %s", ext)
		}
	}
	if n, ok := c.MaxMessageSize(); !ok || n != demo.MaxMessageBytes {
		t.Errorf("SIZE = %d, %v", n, ok)
	}
}

// pinnedTLS trusts exactly the certificate with the given SHA-256.
func pinnedTLS(fingerprint string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != fingerprint {
				return errors.New("certificate fingerprint mismatch")
			}
			return nil
		},
	}
}

func TestSTARTTLS(t *testing.T) {
	s := startDemo(t, nil)
	if !s.TLSEnabled() || len(s.CertFingerprint()) != 64 {
		t.Fatalf("TLS not enabled or bad fingerprint %q", s.CertFingerprint())
	}
	sum := sha256.Sum256(s.CertificateDER())
	if hex.EncodeToString(sum[:]) != s.CertFingerprint() {
		t.Error("CertFingerprint does not match CertificateDER")
	}

	c, err := imapclient.DialStartTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: pinnedTLS(s.CertFingerprint())})
	if err != nil {
		t.Fatalf("IMAP STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login("carol@example.test", "carol-demo-pw").Wait(); err != nil {
		t.Fatalf("LOGIN over TLS: %v", err)
	}

	sc, err := smtp.DialStartTLS(s.SMTPAddr(), pinnedTLS(s.CertFingerprint()))
	if err != nil {
		t.Fatalf("SMTP STARTTLS: %v", err)
	}
	defer sc.Close()
	raw := []byte("Subject: tls\r\nMessage-ID: <tls-1@x.example>\r\n\r\nover TLS\r\n")
	if err := sc.SendMail("x@x.example", []string{"carol@example.test"}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	got := findByMessageID(t, c, "INBOX", "tls-1@x.example")
	if got == nil || !bytes.Contains(got, []byte("with ESMTPS id")) {
		t.Errorf("TLS delivery missing or Received lacks ESMTPS:\n%s", got)
	}

	// The fingerprint is wrong for another server's certificate.
	other := startDemo(t, &demo.Options{})
	if _, err := imapclient.DialStartTLS(other.IMAPAddr(), &imapclient.Options{TLSConfig: pinnedTLS(s.CertFingerprint())}); err == nil {
		t.Error("pin accepted a different certificate")
	}
}

func TestIMAPAppendRoundTrip(t *testing.T) {
	s := startDemo(t, nil)
	c := login(t, s, "bob@example.test")
	if err := c.Create("Projekte/Ärger", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrFlagged}}).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	raw := []byte("From: bob@example.test\r\nSubject: =?utf-8?q?=C3=84rger?=\r\n\r\nBody \xc3\xa4\r\n")
	date := time.Date(2001, 2, 3, 4, 5, 6, 0, time.FixedZone("", -(3*3600+30*60)))
	ac := c.Append("Projekte/Ärger", int64(len(raw)), &imap.AppendOptions{Time: date, Flags: []imap.Flag{imap.FlagSeen, "Work"}})
	ac.Write(raw)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	got := fetchAll(t, c, "Projekte/Ärger")
	if len(got) != 1 || !bytes.Equal(body(got[0]), raw) {
		t.Fatalf("fetched %d messages, bytes equal: %v", len(got), len(got) == 1 && bytes.Equal(body(got[0]), raw))
	}
	if _, off := got[0].InternalDate.Zone(); off != -(3*3600 + 30*60) {
		t.Errorf("INTERNALDATE zone offset %d", off)
	}
	boxes, err := c.List("", "Projekte/*", nil).Collect()
	if err != nil || len(boxes) != 1 || !slices.Contains(boxes[0].Attrs, imap.MailboxAttrFlagged) {
		t.Errorf("LIST after CREATE (USE): %+v, %v", boxes, err)
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Error("DELETE INBOX succeeded")
	}

	// RENAME moves the inferiors along (RFC 3501 section 6.3.5).
	if err := c.Rename("Projekte", "Alt", nil).Wait(); err == nil {
		t.Error("RENAME of a non-existent parent succeeded")
	}
	if err := c.Create("Projekte", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Projekte", "Alt", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	boxes, err = c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
		if b.Mailbox == "Alt/Ärger" && !slices.Contains(b.Attrs, imap.MailboxAttrFlagged) {
			t.Errorf("special-use lost on RENAME: %v", b.Attrs)
		}
	}
	if !slices.Contains(names, "Alt/Ärger") || slices.Contains(names, "Projekte/Ärger") {
		t.Errorf("after RENAME: %q", names)
	}
	if got := fetchAll(t, c, "Alt/Ärger"); len(got) != 1 {
		t.Errorf("renamed child has %d messages", len(got))
	}
}

func TestSamplesParse(t *testing.T) {
	codes := []string{"de", "ro", "ru", "el", "ja", "zh", "xx"}
	date := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	samples := demo.Samples("Tester <tester@example.test>", "alice@example.test", codes, date)
	if len(samples) != 2+6 {
		t.Fatalf("%d samples, want 8 (unknown code skipped)", len(samples))
	}
	again := demo.Samples("Tester <tester@example.test>", "alice@example.test", codes, date)
	ids := map[string]bool{}
	for i, sm := range samples {
		t.Run(sm.Name, func(t *testing.T) {
			for _, id := range []string{sm.MessageID, again[i].MessageID} {
				if ids[id] {
					t.Errorf("Message-ID %s not unique", id)
				}
				ids[id] = true
			}
			if bytes.Contains(bytes.ReplaceAll(sm.Raw, []byte("\r\n"), nil), []byte("\n")) {
				t.Error("Raw has a bare LF")
			}
			for _, line := range strings.Split(string(sm.Raw), "\r\n") {
				if len(line) > 78 {
					t.Errorf("line longer than 78: %q", line)
				}
			}
			mr, err := mail.CreateReader(bytes.NewReader(sm.Raw))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			subject, err := mr.Header.Subject()
			if err != nil || subject != sm.Subject {
				t.Errorf("Subject = %q, %v; want %q", subject, err, sm.Subject)
			}
			if id, _ := mr.Header.MessageID(); id != sm.MessageID {
				t.Errorf("Message-ID = %q, want %q", id, sm.MessageID)
			}
			if d, _ := mr.Header.Date(); !d.Equal(date) {
				t.Errorf("Date = %v", d)
			}
			if sm.Language != "" {
				if raw := mr.Header.Get("Subject"); !strings.HasPrefix(raw, "=?") && !strings.HasPrefix(raw, "Mailferry") {
					t.Errorf("Subject not RFC 2047 encoded: %q", raw)
				}
				if bytes.ContainsFunc(sm.Raw, func(r rune) bool { return r >= 0x80 }) {
					t.Error("language sample Raw is not 7-bit")
				}
			}
			var text, html string
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("part: %v", err)
				}
				b, err := io.ReadAll(p.Body)
				if err != nil {
					t.Fatal(err)
				}
				ct, _, _ := p.Header.(*mail.InlineHeader).ContentType()
				switch ct {
				case "text/plain":
					text = string(b)
				case "text/html":
					html = string(b)
				}
			}
			if text != sm.Text {
				t.Errorf("text = %q\nwant %q", text, sm.Text)
			}
			if html != sm.HTML {
				t.Errorf("html = %q\nwant %q", html, sm.HTML)
			}
		})
	}
}

func TestLanguages(t *testing.T) {
	var codes []string
	for _, l := range demo.Languages() {
		codes = append(codes, l.Code)
		if l.Name == "" || l.Native == "" {
			t.Errorf("%+v lacks a name", l)
		}
	}
	for _, want := range []string{"de", "ro", "ru", "el", "ja", "zh"} {
		if !slices.Contains(codes, want) {
			t.Errorf("Languages() lacks %s", want)
		}
	}
}

func TestCloseStopsEverything(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := demo.Start(ctx, &demo.Options{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	// An idle client connection must not keep Close waiting.
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", "alice-demo-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	sc, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Hello("x"); err != nil {
		t.Fatal(err)
	}

	cancel() // the context alone stops the server
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.IMAPAddr(), time.Second); err == nil {
		conn.Close()
		t.Error("IMAP still listening after Close")
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Error("client connection not closed by Close")
	}
}

// ExampleSamples lists the sample messages the assistant sends.
func ExampleSamples() {
	date := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, s := range demo.Samples("Tester <tester@example.test>", "alice@example.test", []string{"de", "ja"}, date) {
		fmt.Printf("%s: %s\n", s.Name, s.Subject)
	}
	// Output:
	// plain: Mailferry test: plain text message
	// html: Mailferry test: HTML message
	// lang-de: Mailferry-Test: Grüße aus München – Größe, Maß und Übermut
	// lang-ja: Mailferry テスト：東京からのご挨拶
}

// ExampleStart starts the demo server with seed data and prints the users.
func ExampleStart() {
	s, err := demo.Start(context.Background(), &demo.Options{Seed: true})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for _, u := range s.Users() {
		fmt.Println(u.Address, u.Password)
	}
	fmt.Println("rich seed in", s.SeedAccount())
	// Output:
	// alice@example.test alice-demo-pw
	// bob@example.test bob-demo-pw
	// carol@example.test carol-demo-pw
	// catchall@example.test catchall
	// rich seed in alice@example.test
}

// TestSeedWellFormed checks what a strict old server would enforce: CRLF
// only, header lines under 998 octets, 8-bit octets only in 8bit parts.
func TestSeedWellFormed(t *testing.T) {
	for i, m := range demo.SeedMessages("alice@example.test") {
		raw := m.Raw
		if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) ||
			bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
			t.Errorf("message %d (%s): bare CR or LF", i, m.Mailbox)
		}
		if !bytes.HasSuffix(raw, []byte("\r\n")) {
			t.Errorf("message %d (%s): does not end with CRLF", i, m.Mailbox)
		}
		header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(header), "\r\n") {
			if len(line) > 78 {
				t.Errorf("message %d (%s): header line longer than 78: %q", i, m.Mailbox, line)
			}
		}
		if bytes.ContainsFunc(raw, func(r rune) bool { return r >= 0x80 }) && !bytes.Contains(raw, []byte("Content-Transfer-Encoding: 8bit")) {
			t.Errorf("message %d (%s): 8-bit octets without 8bit encoding", i, m.Mailbox)
		}
	}
}

// FuzzSamples checks that any from/to input gives well-formed samples that
// round-trip their Subject, and never injects header fields.
func FuzzSamples(f *testing.F) {
	f.Add("Tester <tester@example.test>", "alice@example.test")
	f.Add("not an address", "x\r\nBcc: evil@example.test")
	f.Add("Jürgen <j@example.test>", "")
	f.Fuzz(func(t *testing.T, from, to string) {
		for _, sm := range demo.Samples(from, to, []string{"de", "ja"}, time.Unix(0, 0).UTC()) {
			mr, err := mail.CreateReader(bytes.NewReader(sm.Raw))
			if err != nil {
				t.Fatalf("%s: parse: %v", sm.Name, err)
			}
			if subject, _ := mr.Header.Subject(); subject != sm.Subject {
				t.Errorf("%s: subject %q", sm.Name, subject)
			}
			if mr.Header.Has("Bcc") {
				t.Errorf("%s: header injection via from/to", sm.Name)
			}
			if bytes.Contains(bytes.ReplaceAll(sm.Raw, []byte("\r\n"), nil), []byte("\n")) {
				t.Errorf("%s: bare LF", sm.Name)
			}
		}
	})
}

// TestIdleSeesSMTPDelivery checks that a client idling on INBOX (RFC 2177)
// sees mail delivered over SMTP, as the migration's catch-up relies on it.
func TestIdleSeesSMTPDelivery(t *testing.T) {
	s := startDemo(t, nil)
	exists := make(chan uint32, 4)
	c, err := imapclient.DialInsecure(s.IMAPAddr(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("carol@example.test", "carol-demo-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("Subject: idle\r\nMessage-ID: <idle-1@x.example>\r\n\r\nnew mail\r\n")
	if err := sendRaw(t, s.SMTPAddr(), "x@x.example", []string{"carol@example.test"}, raw); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != sel.NumMessages+1 {
			t.Errorf("EXISTS %d, want %d", n, sel.NumMessages+1)
		}
	case <-time.After(5 * time.Second):
		t.Error("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestCustomOptions(t *testing.T) {
	t.Run("bad user domain", func(t *testing.T) {
		_, err := demo.Start(t.Context(), &demo.Options{Domain: "firma.test", Users: map[string]string{"x@other.test": "pw"}})
		if err == nil {
			t.Error("Start accepted a user outside the domain")
		}
	})
	t.Run("custom domain", func(t *testing.T) {
		s := startDemo(t, &demo.Options{
			Domain:     "Firma.Test",
			Users:      map[string]string{"Chef@firma.test": "geheim", "zoe@firma.test": "pw2"},
			Seed:       true,
			DisableTLS: true,
		})
		if s.Domain() != "firma.test" || s.CatchAll() != "catchall@firma.test" {
			t.Errorf("Domain %q, CatchAll %q", s.Domain(), s.CatchAll())
		}
		if s.SeedAccount() != "chef@firma.test" {
			t.Errorf("SeedAccount = %q", s.SeedAccount())
		}
		if s.TLSEnabled() || s.CertFingerprint() != "" {
			t.Error("TLS on despite DisableTLS")
		}
		if len(s.Users()) != 3 {
			t.Errorf("Users = %v, want 2 + catch-all", s.Users())
		}
		c := login(t, s, "chef@firma.test")
		got := fetchAll(t, c, "INBOX")
		want := demo.SeedMessages("chef@firma.test")
		if len(got) == 0 || !bytes.Equal(body(got[0]), want[0].Raw) {
			t.Error("rich seed not in chef's INBOX")
		}
		raw := []byte("Subject: out\r\nMessage-ID: <out-1@firma.test>\r\n\r\nto the world\r\n")
		if err := sendRaw(t, s.SMTPAddr(), "chef@firma.test", []string{"someone@example.test"}, raw); err != nil {
			t.Fatal(err)
		}
		if findByMessageID(t, login(t, s, "catchall@firma.test"), "INBOX", "out-1@firma.test") == nil {
			t.Error("mail to another domain not in the catch-all")
		}
	})
}

func TestSMTPUTF8(t *testing.T) {
	s := startDemo(t, nil)
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	raw := []byte("From: jürgen@müller.example\r\nTo: alice@example.test\r\nSubject: Grüße ohne Kodierung\r\nMessage-ID: <utf8-1@x.example>\r\n\r\n8-bit Körper\r\n")
	if err := c.Mail("jürgen@müller.example", &smtp.MailOptions{UTF8: true, Body: smtp.Body8BitMIME}); err != nil {
		t.Fatalf("MAIL SMTPUTF8: %v", err)
	}
	if err := c.Rcpt("alice@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := findByMessageID(t, login(t, s, "alice@example.test"), "INBOX", "utf8-1@x.example")
	if got == nil {
		t.Fatal("UTF-8 message not delivered")
	}
	if !bytes.Contains(got, []byte("with UTF8SMTP id")) || !bytes.Equal(stripReceived(t, got), raw) {
		t.Errorf("stored:\n%s", got)
	}
}
