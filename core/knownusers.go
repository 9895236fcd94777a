package core

// Known users: the old server's users as the admin lists them, so that the
// readiness check can tell who has not moved. The list comes in whatever
// form the admin has at hand: one address a line, a CSV file (the first
// column; a password in the second is ignored and never stored), the
// output of Dovecot's `doveadm user '*'`, a passwd-file (Dovecot's, or
// /etc/passwd: the first field) or the LDIF output of an LDAP search
// (`ldapsearch ... mail`: each entry's mail, else its uid). Bare user names
// are taken as the domain's; addresses of other domains (a shared old
// server) are skipped and counted. The recipients the old server accepted
// through the relay count as known users too (core/relay).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"mailferry/core/store"
)

// Limits of a user list.
const (
	// MaxUserListBytes bounds a user list's size.
	MaxUserListBytes = 32 << 20
	// MaxUserListLine bounds one line.
	MaxUserListLine = 4096
	// MaxKnownUsers bounds the users of one domain's list.
	MaxKnownUsers = store.MaxKnownUsers
)

// Formats of a user list (UserList.Format).
const (
	ListPlain  = "one address a line"
	ListCSV    = "CSV"
	ListPasswd = "passwd-file"
	ListLDIF   = "LDAP search output (LDIF)"
)

// UserList is a parsed list of a domain's users.
type UserList struct {
	// Format is the form the list was read in (ListPlain, ...).
	Format string
	// Addresses are the domain's users, canonical, sorted, once each.
	Addresses []string
	// Skipped counts the users of other domains; SkippedSample names a
	// few of them.
	Skipped       int
	SkippedSample []string
}

// UserListError says which line of a user list is wrong and why; it wraps
// ErrInvalid.
type UserListError struct {
	Line    int // 0: the list as a whole
	Problem string
}

func (e *UserListError) Error() string {
	if e.Line == 0 {
		return "user list: " + e.Problem
	}
	return fmt.Sprintf("user list, line %d: %s", e.Line, e.Problem)
}

func (e *UserListError) Unwrap() error { return ErrInvalid }

// csvHeaders are first-column words of a header line.
var csvHeaders = []string{"address", "email", "e-mail", "mail", "user", "username", "login", "name"}

// ParseKnownUsers reads the list of domain's users from r (see the forms
// above). It refuses, with a *UserListError, a list that is too big, a
// line that is not a user name, and a list naming none of the domain's
// users.
func ParseKnownUsers(r io.Reader, domain string) (*UserList, error) {
	domain, err := CheckDomainName(domain)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxUserListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("user list: %w", err)
	}
	if len(data) > MaxUserListBytes {
		return nil, &UserListError{Problem: fmt.Sprintf("larger than %d MiB", MaxUserListBytes>>20)}
	}
	l := &UserList{Format: ListPlain}
	seen := map[string]bool{}
	add := func(line int, name string) error {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil
		}
		a := name
		if !strings.Contains(a, "@") {
			a += "@" + domain
		}
		_, d, err := store.SplitAddress(a)
		if err == nil && d != domain {
			l.Skipped++
			if len(l.SkippedSample) < 5 {
				// Printed by the CLI and the assistant: from an LDAP value
				// it may hold anything.
				l.SkippedSample = append(l.SkippedSample, store.Printable(a, 64))
			}
			return nil
		}
		c, cerr := store.CanonicalAddress(a)
		if err != nil || cerr != nil {
			return &UserListError{Line: line, Problem: fmt.Sprintf("%q is not a user name or an address", clip(name))}
		}
		if !seen[c] {
			if len(seen) == MaxKnownUsers {
				return &UserListError{Line: line, Problem: fmt.Sprintf("more than %d users", MaxKnownUsers)}
			}
			seen[c] = true
			l.Addresses = append(l.Addresses, c)
		}
		return nil
	}
	if isLDIF(data) {
		l.Format = ListLDIF
		err = parseLDIF(data, add)
	} else {
		err = parseLines(data, l, add)
	}
	if err != nil {
		return nil, err
	}
	if len(l.Addresses) == 0 {
		p := "no user of " + domain + " in it"
		if l.Skipped > 0 {
			p += fmt.Sprintf(" (%d of other domains, e.g. %s)", l.Skipped, l.SkippedSample[0])
		}
		return nil, &UserListError{Problem: p}
	}
	slices.Sort(l.Addresses)
	return l, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// lines calls fn for each line of data (numbered from 1, without its end),
// refusing a line longer than MaxUserListLine.
func lines(data []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxUserListLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, strings.TrimSuffix(sc.Text(), "\r")); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return &UserListError{Line: n + 1, Problem: fmt.Sprintf("longer than %d bytes", MaxUserListLine)}
	}
	return sc.Err()
}

// parseLines reads a plain, CSV or passwd-file list: per line, what comes
// before the first ":" (passwd-file), ",", ";" or tab (CSV), else the
// whole line. Blank lines and "#" comments are skipped,
// and a CSV header.
func parseLines(data []byte, l *UserList, add func(int, string) error) error {
	first := true
	return lines(data, func(n int, line string) error {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return nil
		}
		field := line
		if i := strings.IndexAny(line, ":,;\t"); i >= 0 {
			// The first separator tells the form: a password after a comma
			// may hold a colon, and a passwd-file's hash a comma.
			l.Format = ListCSV
			if line[i] == ':' {
				l.Format = ListPasswd
			}
			field = line[:i]
		}
		field = strings.Trim(strings.TrimSpace(field), `"'`)
		wasFirst := first
		first = false
		if wasFirst && slices.Contains(csvHeaders, strings.ToLower(field)) {
			return nil
		}
		return add(n, field)
	})
}

// isLDIF says whether data looks like LDIF (RFC 2849): an entry's "dn:"
// line at the start of a line.
func isLDIF(data []byte) bool {
	if bytes.HasPrefix(bytes.ToLower(data), []byte("dn:")) {
		return true
	}
	return bytes.Contains(bytes.ToLower(data), []byte("\ndn:"))
}

// parseLDIF reads the entries of LDIF (RFC 2849) output: folded lines
// joined, "attr:: base64" decoded; per entry with a dn, every mail value,
// else every uid value. What is not an entry (ldapsearch's "search:" and
// "result:" lines, comments) is skipped.
func parseLDIF(data []byte, add func(int, string) error) error {
	type attr struct {
		line       int
		name, text string
	}
	var entry []attr
	flush := func() error {
		defer func() { entry = entry[:0] }()
		hasDN := false
		var mails, uids []attr
		for _, a := range entry {
			switch a.name {
			case "dn":
				hasDN = true
			case "mail":
				mails = append(mails, a)
			case "uid":
				uids = append(uids, a)
			}
		}
		if !hasDN {
			return nil
		}
		if len(mails) == 0 {
			mails = uids
		}
		for _, a := range mails {
			if err := add(a.line, a.text); err != nil {
				return err
			}
		}
		return nil
	}
	var cur *attr
	finish := func() error {
		if cur == nil {
			return nil
		}
		a := *cur
		cur = nil
		name, val, ok := strings.Cut(a.text, ":")
		if !ok {
			return &UserListError{Line: a.line, Problem: "not an LDIF line (attribute: value)"}
		}
		a.name = strings.ToLower(strings.TrimSpace(name))
		if strings.HasPrefix(val, ":") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val[1:]))
			if err != nil {
				return &UserListError{Line: a.line, Problem: "bad base64 value of " + a.name}
			}
			val = string(b)
		}
		a.text = strings.TrimSpace(val)
		entry = append(entry, a)
		return nil
	}
	err := lines(data, func(n int, line string) error {
		switch {
		case strings.HasPrefix(line, " ") && cur != nil:
			if len(cur.text)+len(line) > MaxUserListLine {
				return &UserListError{Line: n, Problem: fmt.Sprintf("longer than %d bytes", MaxUserListLine)}
			}
			cur.text += line[1:]
			return nil
		case strings.HasPrefix(line, "#"):
			return finish()
		case strings.TrimSpace(line) == "":
			if err := finish(); err != nil {
				return err
			}
			return flush()
		}
		if err := finish(); err != nil {
			return err
		}
		cur = &attr{line: n, text: line}
		return nil
	})
	if err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	return flush()
}

// KnownUsers are the users of a domain's old server Mailferry knows of.
type KnownUsers struct {
	// Listed are the users of the admin's list (ImportKnownUsers), from
	// ListedAt; none when no list was given.
	Listed   []string
	ListedAt time.Time
	// Seen are the other users the old server accepted mail for through
	// the relay.
	Seen []string
}

// All are the listed and the seen users, sorted.
func (k *KnownUsers) All() []string {
	out := append(slices.Clone(k.Listed), k.Seen...)
	slices.Sort(out)
	return out
}

// KnownUsersOf returns what Mailferry knows of domain's users.
func (c *Core) KnownUsersOf(ctx context.Context, domain string) (*KnownUsers, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	ks, err := c.store.KnownUsers(ctx, d)
	if err != nil {
		return nil, err
	}
	k := &KnownUsers{}
	for _, u := range ks {
		if u.Source == store.KnownList {
			k.Listed = append(k.Listed, u.Address)
			if u.Added.After(k.ListedAt) {
				k.ListedAt = u.Added
			}
		} else {
			k.Seen = append(k.Seen, u.Address)
		}
	}
	return k, nil
}

// ImportKnownUsers reads a list of domain's users (ParseKnownUsers) and
// makes it the domain's list, replacing the one imported before; a list
// that cannot be read changes nothing.
func (c *Core) ImportKnownUsers(ctx context.Context, domain string, r io.Reader) (*UserList, error) {
	d, err := c.localDomain(ctx, domain)
	if err != nil {
		return nil, err
	}
	l, err := ParseKnownUsers(r, d)
	if err != nil {
		return nil, err
	}
	if err := c.store.ReplaceKnownUsers(ctx, d, l.Addresses); err != nil {
		return nil, err
	}
	c.log.Info("known users imported", "domain", d, "users", len(l.Addresses), "format", l.Format, "other_domains", l.Skipped)
	return l, nil
}
