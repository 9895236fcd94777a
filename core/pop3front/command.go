package pop3front

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLine is the longest command line accepted, CRLF included. RFC 2449
// allows 255 octets; an AUTH PLAIN response of the longest address
// (core/auth/addr.MaxInput) and a long password needs more.
const MaxLine = 1024

// maxArg is the longest argument of a command other than a login's
// (RFC 2449 section 4: 40 octets).
const maxArg = 40

// ErrSyntax is wrapped by the errors of ParseCommand.
var ErrSyntax = errors.New("pop3front: syntax error")

// Command is one parsed command line.
type Command struct {
	// Name is the keyword in capitals ("USER", "RETR", ...).
	Name string
	// Args are the arguments, split at single spaces (PASS keeps its whole
	// rest of line as one, since a password may hold spaces).
	Args []string
}

// ParseCommand parses one command line without its CRLF (RFC 1939
// section 3: a keyword of 3 or 4 printable characters, arguments separated
// by single spaces). It checks the form only, not the number of arguments.
func ParseCommand(line string) (Command, error) {
	if line == "" {
		return Command{}, fmt.Errorf("%w: empty line", ErrSyntax)
	}
	if len(line) > MaxLine {
		return Command{}, fmt.Errorf("%w: line too long", ErrSyntax)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return Command{}, fmt.Errorf("%w: control character in command", ErrSyntax)
		}
	}
	name, rest, hasRest := strings.Cut(line, " ")
	if len(name) < 3 || len(name) > 4 {
		return Command{}, fmt.Errorf("%w: unknown command", ErrSyntax)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return Command{}, fmt.Errorf("%w: unknown command", ErrSyntax)
		}
	}
	cmd := Command{Name: strings.ToUpper(name)}
	if !hasRest {
		return cmd, nil
	}
	if cmd.Name == "PASS" {
		// RFC 1939 section 7: the password may contain spaces.
		if rest == "" {
			return Command{}, fmt.Errorf("%w: empty argument", ErrSyntax)
		}
		cmd.Args = []string{rest}
		return cmd, nil
	}
	cmd.Args = strings.Split(rest, " ")
	for _, a := range cmd.Args {
		if a == "" {
			return Command{}, fmt.Errorf("%w: empty argument", ErrSyntax)
		}
	}
	return cmd, nil
}

// number parses a message number or line count argument: decimal digits
// only, at most maxArg of them, no sign, fitting an int.
func number(s string) (int, bool) {
	if s == "" || len(s) > maxArg {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
