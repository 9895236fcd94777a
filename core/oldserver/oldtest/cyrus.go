package oldtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The Cyrus fixture ([Cyrus]) is Cyrus IMAP 3.6 from Debian 12, started by
// testdata/oldserver/start.sh with IMAP_SERVER=cyrus (its half is cyrus.sh)
// beside Postfix as Dovecot is. Debian's cyrus-imapd conflicts with
// dovecot-imapd (both provide imap-server), so `make test-deps` unpacks the
// cyrus-imapd and cyrus-common packages into [CyrusRootEnv] (default
// [DefaultCyrusRoot]) with dpkg-deb -x and installs their libraries normally.
//
// What differs from the Dovecot fixture, from the wire:
//   - master users are Cyrus proxy servers: AUTHENTICATE PLAIN with
//     authzid=user, authcid=MasterUser works; the "user*master" LOGIN of
//     MasterLogin does not;
//   - SPECIAL-USE attributes are sent in lower case (`\sent`), INBOX is
//     subscribed, INTERNALDATE keeps the instant only (as Dovecot's
//     Maildir), UIDVALIDITY is a time;
//   - a message with NUL bytes is served as a literal8 (`BODY[] ~{n}`,
//     RFC 3516), whatever the FETCH asked for;
//   - Cyrus refuses NUL bytes in a plain APPEND literal and bare LF in any
//     APPEND, so Append seeds such a message by writing it into the
//     mailbox's spool directory and running Cyrus's reconstruct, as an admin
//     restoring a spool would: Cyrus then serves its bytes exactly;
//   - WipeUser is not supported; Restart is; Postfix offers no SMTP AUTH;
//   - the fixture is up when Cyrus's master holds both listening sockets
//     and a LOGIN succeeds, as a user of its own (mfo-ready, a password new
//     at each start; that login makes its folders). An open port was not
//     enough: a port another process took between freePorts and master's
//     bind (master goes on without it) passed, and the tests' logins went
//     to that process (a test's login failed once, session 17).

// CyrusRootEnv, when set, is where the Cyrus packages were unpacked.
const CyrusRootEnv = "MAILFERRY_CYRUS_ROOT"

// DefaultCyrusRoot is where `make test-deps` unpacks the Cyrus packages.
const DefaultCyrusRoot = "/opt/mailferry-oldtest/cyrus"

func cyrusRoot() string {
	if d := os.Getenv(CyrusRootEnv); d != "" {
		return d
	}
	return DefaultCyrusRoot
}

func cyrusBin(name string) string {
	return filepath.Join(cyrusRoot(), "usr", "lib", "cyrus", "bin", name)
}

// cyrusAvailable returns an error wrapping ErrUnavailable when Cyrus is not
// unpacked where the fixture looks for it.
func cyrusAvailable() error {
	for _, b := range []string{"master", "imapd", "lmtpd", "reconstruct", "mbpath"} {
		if fi, err := os.Stat(cyrusBin(b)); err != nil || fi.IsDir() {
			return fmt.Errorf("%w: Cyrus IMAP is not unpacked in %s (make test-deps, or set %s)", ErrUnavailable, cyrusRoot(), CyrusRootEnv)
		}
	}
	return nil
}

// needsCyrusSpool reports whether Cyrus refuses raw in an APPEND: a NUL byte
// or a bare LF.
func needsCyrusSpool(raw []byte) bool {
	if bytes.IndexByte(raw, 0) >= 0 {
		return true
	}
	for i, b := range raw {
		if b == '\n' && (i == 0 || raw[i-1] != '\r') {
			return true
		}
	}
	return false
}

// cyrusTool runs one of Cyrus's command-line tools on this fixture's
// configuration (as root: the tools switch to the cyrus user themselves).
func (s *Server) cyrusTool(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"-C", filepath.Join(s.StateDir, "etc", "imapd.conf")}, args...)
	cmd := exec.CommandContext(ctx, cyrusBin(name), args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(cyrusRoot(), "usr", "lib", "x86_64-linux-gnu"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("oldtest: cyrus %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// cyrusMailboxName is the internal name Cyrus's tools take for mailbox of
// user: user/alice/Archive/2019 (or user.alice.Archive.2019 with '.').
func (s *Server) cyrusMailboxName(addr, mailbox string) (string, error) {
	for _, r := range mailbox {
		if r > 0x7e || r < 0x20 || r == '&' || r == '"' {
			return "", fmt.Errorf("oldtest: Cyrus spool seeding supports ASCII mailbox names only, not %q", mailbox)
		}
	}
	sep := string(s.Separator)
	name := "user" + sep + strings.TrimSuffix(addr, "@"+Domain)
	if !strings.EqualFold(mailbox, "INBOX") {
		name += sep + strings.TrimPrefix(mailbox, s.Prefix)
	}
	return name, nil
}

// appendCyrusSpool seeds raw (which Cyrus would refuse in an APPEND) into
// user's mailbox: the next UID's spool file is written, reconstruct adds it
// to the index, and the flags are set with UID STORE. s.mu is held (through
// withSession) the whole time, so no other seeding takes the UID meanwhile.
func (s *Server) appendCyrusSpool(user, mailbox string, flags []string, date time.Time, raw []byte) (uint32, error) {
	addr, _, err := s.lookup(user)
	if err != nil {
		return 0, err
	}
	internal, err := s.cyrusMailboxName(addr, mailbox)
	if err != nil {
		return 0, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	cy, err := osuser.Lookup("cyrus")
	if err != nil {
		return 0, fmt.Errorf("oldtest: cyrus user: %w", err)
	}
	uidNum, _ := strconv.Atoi(cy.Uid)
	gidNum, _ := strconv.Atoi(cy.Gid)
	var uid uint32
	err = s.withSession(addr, func(c *imapclient.Client) error {
		if err := createLocked(c, mailbox, true); err != nil {
			return err
		}
		st, err := c.Status(mailbox, &imap.StatusOptions{UIDNext: true}).Wait()
		if err != nil {
			return fmt.Errorf("oldtest: status of %q: %w", mailbox, err)
		}
		uid = uint32(st.UIDNext)
		out, err := s.cyrusTool("mbpath", internal)
		if err != nil {
			return err
		}
		dir := strings.TrimSpace(string(out))
		if dir == "" || !strings.HasPrefix(dir, s.StateDir) {
			return fmt.Errorf("oldtest: mbpath %s answered %q", internal, dir)
		}
		file := filepath.Join(dir, strconv.FormatUint(uint64(uid), 10)+".")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			return fmt.Errorf("oldtest: %w", err)
		}
		if err := os.Chown(file, uidNum, gidNum); err != nil {
			return fmt.Errorf("oldtest: %w", err)
		}
		// Cyrus takes the INTERNALDATE of a found message from its mtime
		if err := os.Chtimes(file, date, date); err != nil {
			return fmt.Errorf("oldtest: %w", err)
		}
		if _, err := s.cyrusTool("reconstruct", internal); err != nil {
			return err
		}
		st, err = c.Status(mailbox, &imap.StatusOptions{UIDNext: true}).Wait()
		if err != nil {
			return fmt.Errorf("oldtest: status of %q: %w", mailbox, err)
		}
		if uint32(st.UIDNext) != uid+1 {
			return fmt.Errorf("oldtest: reconstruct of %s did not add UID %d (UIDNEXT %d)", internal, uid, st.UIDNext)
		}
		if len(flags) == 0 {
			return nil
		}
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			return fmt.Errorf("oldtest: select %q: %w", mailbox, err)
		}
		defer func() { _ = c.Unselect().Wait() }()
		fl := &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true}
		for _, f := range flags {
			fl.Flags = append(fl.Flags, imap.Flag(f))
		}
		if err := c.Store(imap.UIDSetNum(imap.UID(uid)), fl, nil).Close(); err != nil {
			return fmt.Errorf("oldtest: store flags of UID %d: %w", uid, err)
		}
		return nil
	})
	return uid, err
}
