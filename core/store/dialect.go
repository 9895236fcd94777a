package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"
)

// The store speaks one SQL to two engines. Its statements are written for
// SQLite with `?` placeholders in the common subset both engines accept
// (ON CONFLICT upserts, RETURNING, coalesce, CASE); the PostgreSQL schema
// (pgschema.go) adds what SQLite has built in (two-argument min and max,
// case-insensitive text), and the one translation, `?` to `$n`, is made
// below, in the driver, for every statement. Where a statement genuinely
// differs, the dialect holds the PostgreSQL form beside the SQLite one.

// Engines (Store.Engine).
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgresql"
)

// dialect is what differs between the engines, beside the statements.
type dialect struct {
	engine string
	// notIn is "x NOT IN (the int64s of the JSON array ?)".
	notIn string
	// notInText is "x NOT IN (the strings of the JSON array ?)".
	notInText string
}

var (
	sqliteDialect = &dialect{engine: EngineSQLite, notIn: `NOT IN (SELECT value FROM json_each(?))`,
		notInText: `NOT IN (SELECT value FROM json_each(?))`}
	postgresDialect = &dialect{engine: EnginePostgres, notIn: `NOT IN (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(? AS JSON)))`,
		notInText: `NOT IN (SELECT value FROM json_array_elements_text(CAST(? AS JSON)))`}
)

func (d *dialect) postgres() bool { return d == postgresDialect }

// rebind turns the `?` placeholders of q into PostgreSQL's `$1`, `$2`, ...;
// a `?` inside a quoted string or identifier, a dollar-quoted string
// ($$...$$, $tag$...$tag$), or a comment (-- to the end of the line, or
// /* */, which PostgreSQL nests) is left alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) && q[j] != c {
				j++
			}
			// A doubled quote inside is two quoted runs side by side.
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j, depth := i+2, 1
			for j < len(q) && depth > 0 {
				switch {
				case strings.HasPrefix(q[j:], "/*"):
					depth++
					j += 2
				case strings.HasPrefix(q[j:], "*/"):
					depth--
					j += 2
				default:
					j++
				}
			}
			b.WriteString(q[i:j])
			i = j - 1
		case c == '$' && dollarTag(q[i:]) != "":
			tag := dollarTag(q[i:])
			end := strings.Index(q[i+len(tag):], tag)
			j := len(q)
			if end >= 0 {
				j = i + len(tag) + end + len(tag)
			}
			b.WriteString(q[i:j])
			i = j - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dollarTag returns the opening tag of a dollar-quoted string that s
// begins with ("$$" or "$name$"), or "" (a "$1" parameter is none).
func dollarTag(s string) string {
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$':
			return s[:i+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || i > 1 && c >= '0' && c <= '9':
		default:
			return ""
		}
	}
	return ""
}

// pgConnector opens pgx connections whose statements are rebound.
type pgConnector struct{ driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("store: unexpected PostgreSQL driver connection %T", conn)
	}
	return &pgConn{sc}, nil
}

// pgConn is a pgx connection that rebinds every statement; everything else
// (transactions, named values, session reset) is pgx's own.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c *pgConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}

func (c *pgConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(q), args)
}

func (c *pgConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(q), args)
}

// PostgreSQL error codes the store tells apart
// (https://www.postgresql.org/docs/15/errcodes-appendix.html).
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgDiskFull            = "53100"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isUnique(err error) bool {
	var se sqlite3.Error
	return (errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique) || pgCode(err) == pgUniqueViolation
}

func isForeignKey(err error) bool {
	var se sqlite3.Error
	return (errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey) || pgCode(err) == pgForeignKeyViolation
}

// RedactDatabaseURL returns a database URL fit to print: its password,
// in the user part or as a password or sslpassword parameter, replaced by
// "xxxxx". A
// string that is not a URL is replaced whole, since it may be a
// key=value connection string with a password in it.
func RedactDatabaseURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(database URL hidden)"
	}
	q := u.Query()
	hidden := false
	// sslpassword unlocks the client key (libpq, pgx).
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			hidden = true
		}
	}
	if hidden {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// CheckDatabaseURL says whether s is a PostgreSQL URL the store opens:
// postgres:// or postgresql://. Other forms are refused, so that what is
// printed of it can always be redacted.
func CheckDatabaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		// url's error quotes the URL, password and all.
		return fmt.Errorf("%w: database URL is not a URL", ErrInvalid)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("%w: database URL %s: want postgres://user:password@host/database", ErrInvalid, RedactDatabaseURL(s))
	}
	return nil
}
