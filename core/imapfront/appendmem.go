package imapfront

import (
	"sync"

	"github.com/emersion/go-imap/v2"
)

// appendMem bounds the bytes of APPENDed messages sessions hold in memory
// while they read them (and the first message of a MULTIAPPEND until its
// commit, appendBatch): per account, and in all. Each APPEND takes what it
// allocates as its bytes come (readLiteral), so a client that announces
// much and sends little holds little; but every session of a user could
// send a message of APPENDLIMIT (64 MiB) at once, 50 connections per
// source 3 GiB, with nothing to stop them. Past an account's bound its
// APPEND is answered NO [LIMIT] (the client may try again once its other
// APPENDs ended); past the bound in all, NO [INUSE] (the server is busy
// with others' APPENDs), as the relay's DATA answers 452 past its memory
// budget (relay/limits.go), except to an account holding at most its share
// of the bound in all (underShare), up to twice that bound.
type appendMem struct {
	mu           sync.Mutex
	all          int64
	acct         map[int64]int64
	maxAll, maxA int64
}

// newAppendMem bounds an account's APPENDs in memory at twice the largest
// message (one whole beside another being read) and all of them at 16
// such messages.
func newAppendMem(limit uint32) *appendMem {
	return &appendMem{acct: map[int64]int64{}, maxA: 2 * int64(limit), maxAll: 16 * int64(limit)}
}

// take holds n more bytes for an APPEND of account acct, or refuses them.
func (m *appendMem) take(acct, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acct[acct]+n > m.maxA {
		return imapErr(imap.ResponseCodeLimit, "This account's APPENDs in progress hold %d MiB at most: try again once they ended", m.maxA>>20)
	}
	if m.all+n > m.maxAll && !m.underShare(acct, n) {
		return imapErr(imap.ResponseCodeInUse, "The server is busy with other APPENDs: try again shortly")
	}
	m.acct[acct] += n
	m.all += n
	return nil
}

// underShare reports whether account acct may take n more bytes past the
// bound in all: while it holds at most its share of that bound (the bound
// divided by the accounts holding bytes, acct counted), up to twice the
// bound. Eight accounts of one attacker, each at its own bound (128 MiB),
// filled the bound in all (1 GiB) and every other account's APPEND was
// answered NO [INUSE] for as long as they trickled their bytes in
// (TestAppendMemFairShare); now only accounts holding more than their
// share are, and memory in all stays under twice the bound.
func (m *appendMem) underShare(acct, n int64) bool {
	holders := int64(len(m.acct))
	if m.acct[acct] == 0 {
		holders++
	}
	return m.acct[acct]+n <= m.maxAll/holders && m.all+n <= 2*m.maxAll
}

// give lets go of n bytes taken for account acct.
func (m *appendMem) give(acct, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all -= n
	if m.acct[acct] -= n; m.acct[acct] <= 0 {
		delete(m.acct, acct)
	}
}
