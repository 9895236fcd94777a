package oldtest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// SeedMaildir writes n messages of about size(i) bytes (BigMessage)
// straight into user's Maildir of a Dovecot fixture, much faster than
// APPEND for big mailboxes, lets Dovecot index them, and returns their
// total size. Every second message is \Seen. It fails the test on the
// in-process server, which has no Maildir.
func (s *Server) SeedMaildir(tb testing.TB, userName, mailbox string, n int, size func(i int) int) int64 {
	tb.Helper()
	s.needDovecot(tb, "SeedMaildir")
	addr, _ := s.Address(tb, userName)
	local := addr[:strings.IndexByte(addr, '@')]
	if mailbox != "INBOX" {
		s.CreateMailbox(tb, userName, mailbox, true)
	} else {
		c := s.Dial(tb, userName)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			tb.Fatal(err)
		}
		c.Logout().Wait()
	}
	root := filepath.Join(s.StateDir, "mail", Domain, local, "Maildir")
	dir := root
	if mailbox != "INBOX" {
		dir = filepath.Join(root, "."+strings.ReplaceAll(mailbox, string(s.Separator), "."))
	}
	if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
		tb.Fatalf("maildir of %s %q: %v", userName, mailbox, err)
	}
	vm, err := user.Lookup("vmail")
	if err != nil {
		tb.Fatal(err)
	}
	uid, _ := strconv.Atoi(vm.Uid)
	gid, _ := strconv.Atoi(vm.Gid)
	var total int64
	base := time.Date(2019, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		raw := BigMessage(fmt.Sprintf("%s %s %d", local, mailbox, i), size(i))
		total += int64(len(raw))
		flags := ""
		if i%2 == 0 {
			flags = "S"
		}
		// Named as Dovecot's own delivery names them: S= and W= (the
		// size, and the size with CRLF line ends, as raw has) spare it
		// reading the file to answer RFC822.SIZE.
		name := filepath.Join(dir, "cur", fmt.Sprintf("%d.M%dP1.seed,S=%d,W=%d:2,%s", base.Unix()+int64(i), i, len(raw), len(raw), flags))
		if err := os.WriteFile(name, raw, 0o600); err != nil {
			tb.Fatal(err)
		}
		os.Chown(name, uid, gid)
		d := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(name, d, d)
	}
	// Let Dovecot index the mailbox now, not in a timed part.
	c := s.Dial(tb, userName)
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		tb.Fatal(err)
	}
	c.Logout().Wait()
	return total
}

// BigMessage makes a unique message of about size bytes (CRLF line ends).
func BigMessage(subject string, size int) []byte {
	var b strings.Builder
	b.Grow(size + 512)
	fmt.Fprintf(&b, "From: Sender <sender@example.org>\r\nTo: user@example.test\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\n", subject, strings.ReplaceAll(subject, " ", "."))
	const line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// MixedSize gives varied message sizes averaging about 50 kB: most small,
// some with attachments, a few large.
func MixedSize(i int) int {
	switch {
	case i%20 == 7:
		return 300_000 + i%5*60_000 // 5%: 300-540 kB
	case i%4 == 1:
		return 40_000 + i%11*8_000 // 25%: 40-120 kB
	default:
		return 3_000 + i%13*1_200 // 70%: 3-18 kB
	}
}
