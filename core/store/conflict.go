package store

import (
	"errors"
	"fmt"
)

// ErrConflict: on PostgreSQL, the transaction met another one and was
// rolled back by the database (a deadlock, SQLSTATE 40P01, or a
// serialization failure, 40001); nothing of it was written, and running
// it again from the start is safe and expected to succeed. The store
// takes its locks in one order (the writer lock, then an account's; blob
// rows in key order, appendMany), so it should not happen; a caller that
// owns a transaction (BeginMailbox) still runs it again on this error
// rather than failing.
var ErrConflict = errors.New("store: the transaction conflicted with another and was rolled back; run it again")

// PostgreSQL error codes of a conflict
// (https://www.postgresql.org/docs/15/errcodes-appendix.html).
const (
	pgDeadlock             = "40P01"
	pgSerializationFailure = "40001"
)

// conflict wraps err with ErrConflict when it is a PostgreSQL deadlock or
// serialization failure; other errors (and nil) are returned as they are.
func conflict(err error) error {
	switch pgCode(err) {
	case pgDeadlock, pgSerializationFailure:
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
