package relay

import (
	"bytes"
	"strings"
)

// untrustedAuthResults is the name a forged Authentication-Results field
// is given (see renameForgedAuthResults).
const untrustedAuthResults = "X-Untrusted-Authentication-Results"

// renameForgedAuthResults renames the Authentication-Results fields of
// msg's header that claim authserv-id id (this server's: the one ours
// carries) to X-Untrusted-Authentication-Results, as RFC 8601 section 5
// asks of a server that adds its own: a sender from outside could write
// "Authentication-Results: <our name>; dkim=pass header.d=bank.example"
// and a reader's client or filter would take it for ours. Only the field
// name changes (the value, other servers' fields and the body stay as
// sent); msg is returned as it is when nothing is renamed.
func renameForgedAuthResults(msg []byte, id string) []byte {
	id = strings.TrimSuffix(id, ".")
	if id == "" {
		return msg
	}
	var out []byte
	last := 0
	for pos := 0; pos < len(msg); {
		end := bytes.IndexByte(msg[pos:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += pos + 1
		}
		line := msg[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the end of the header
		}
		// The field's value runs over its continuation lines.
		next := end
		for next < len(msg) && (msg[next] == ' ' || msg[next] == '\t') {
			if i := bytes.IndexByte(msg[next:], '\n'); i >= 0 {
				next += i + 1
			} else {
				next = len(msg)
			}
		}
		const name = "authentication-results"
		if len(line) > len(name) && strings.EqualFold(string(line[:len(name)]), name) {
			rest := bytes.TrimLeft(msg[pos+len(name):next], " \t")
			if len(rest) > 0 && rest[0] == ':' && strings.EqualFold(strings.TrimSuffix(authservID(rest[1:]), "."), id) {
				out = append(out, msg[last:pos]...)
				out = append(out, untrustedAuthResults...)
				last = pos + len(name)
			}
		}
		pos = next
	}
	if out == nil {
		return msg
	}
	return append(out, msg[last:]...)
}

// authservID is the first token of an Authentication-Results value, past
// white space, folding and comments (RFC 8601 section 2.2). v is not
// changed.
func authservID(v []byte) string {
	depth, start := 0, -1
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth > 0:
			switch c {
			case '(':
				depth++
			case ')':
				depth--
			case '\\':
				i++ // a quoted pair: the next character is not ( or )
			}
		case c == '(' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';':
			if start >= 0 {
				return string(v[start:i])
			}
			if c == '(' {
				depth = 1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		return string(v[start:])
	}
	return ""
}
