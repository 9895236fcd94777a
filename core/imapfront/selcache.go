package imapfront

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"mailferry/core/store"
)

// A SELECT needs every message's UID and flags. Read from the store each
// time (store.Snapshot) that is the whole mailbox per SELECT: about 1 ms
// of CPU for 2,000 messages, most of a SELECT's cost, holding one of the
// few reader connections all the while, so that a FETCH beside it waited
// for a connection and for a core (2026-12-06, `make bench-imap`, session
// 12: SELECT took 1.1 ms CPU of the 5.1 ms a client round costs).
//
// selectCache keeps, per mailbox, the last state a SELECT read, for the
// process: the next SELECT reads only what changed since that state's
// HIGHESTMODSEQ (store.Delta: by index, the changed rows and expunged
// UIDs) and applies it. Every change to a mailbox's messages raises its
// HIGHESTMODSEQ (store.Snapshot), whichever process or node made it, so
// the state applied is the mailbox's at the Delta's HIGHESTMODSEQ. It is
// checked each time: a different UIDVALIDITY (the mailbox deleted and its
// id used again), or a count of messages that does not add up (an expunge
// not recorded: store.Delta), reads the whole mailbox again, as before.
// A state is never changed once built; sessions share it, and a newer one
// replaces it. The cache holds at most selectCacheBudget messages over
// all its mailboxes, dropping the least recently used.

// selectCacheBudget bounds the messages selectCache holds (and its
// entries, selectEntryCost each): 24 bytes a message
// (UID, MODSEQ, a pointer to the flag list the messages of a state with
// the same flags share), 6 MiB in all beside those lists.
const selectCacheBudget = 256 << 10

// flagSet is one distinct list of flags, shared by the messages that have
// it.
type flagSet struct {
	list   []string
	unseen bool // no \Seen among list
	// keywords are the flags of list a FLAGS response announces (not
	// system flags, valid as atoms), in list's order.
	keywords []string
}

// msgState is one message of a mailboxState.
type msgState struct {
	uid    uint32
	modseq uint64
	flags  *flagSet
}

// mailboxState is a mailbox's messages at one HIGHESTMODSEQ, in UID
// order. Never changed once built.
type mailboxState struct {
	validity uint32
	uidNext  uint32
	highest  uint64
	msgs     []msgState
}

// selectEntryCost is what a state costs against selectCacheBudget beside
// its messages: its entry, map slot and mailboxState, about 150 bytes, as
// many as 8 messages' 24. Counted as 0, empty mailboxes cost nothing, and
// a user who made and SELECTed a million of them (CREATE has no limit)
// grew the cache by a million entries that nothing dropped.
const selectEntryCost = 8

// cost is what s counts against the cache's budget.
func (s *mailboxState) cost() int { return len(s.msgs) + selectEntryCost }

type selectCache struct {
	mu      sync.Mutex
	entries map[int64]*selectEntry
	total   int // the cost of the states held (mailboxState.cost)
	clock   uint64
	// budget is selectCacheBudget (smaller in tests).
	budget int
	// fullReads counts the states read whole (store.Snapshot), for tests.
	fullReads atomic.Int64
}

type selectEntry struct {
	st   *mailboxState
	used uint64
}

func newSelectCache(budget int) *selectCache {
	return &selectCache{entries: map[int64]*selectEntry{}, budget: budget}
}

// flagSets makes the flagSets of one state's build, one per distinct
// list of flags, so that the messages share them.
type flagSets struct {
	sets map[string]*flagSet
	last *flagSet
}

func (fs *flagSets) of(flags []string) *flagSet {
	if fs.last != nil && slices.Equal(fs.last.list, flags) {
		return fs.last // a run of messages with the same flags
	}
	key := strings.Join(flags, " ")
	f := fs.sets[key]
	if f == nil {
		list := make([]string, len(flags))
		for i, g := range flags {
			list[i] = strings.Clone(g) // not a piece of the store's whole read
		}
		f = &flagSet{list: list, unseen: !hasFlagFold(list, `\Seen`)}
		for _, g := range list {
			if isKeyword(g) {
				f.keywords = append(f.keywords, g)
			}
		}
		if fs.sets == nil {
			fs.sets = map[string]*flagSet{}
		}
		fs.sets[key] = f
	}
	fs.last = f
	return f
}

// state returns mailbox mb's messages now: the cached state brought up to
// date by a store.Delta, or the whole mailbox read by store.Snapshot.
func (c *selectCache) state(ctx context.Context, st *store.Store, mb int64) (*mailboxState, error) {
	c.mu.Lock()
	var old *mailboxState
	if e := c.entries[mb]; e != nil {
		old = e.st
	}
	c.mu.Unlock()
	if old != nil {
		d, err := st.Delta(ctx, mb, old.highest)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				c.drop(mb, old) // the mailbox is gone
			}
			return nil, err
		}
		if d.UIDValidity == old.validity {
			if d.Unchanged {
				if d.UIDNext == old.uidNext {
					c.keep(mb, old)
					return old, nil
				}
				n := *old
				n.uidNext = d.UIDNext
				c.put(mb, &n)
				return &n, nil
			}
			if n := apply(old, d); n != nil {
				c.put(mb, n)
				return n, nil
			}
		}
	}
	c.fullReads.Add(1)
	snap, err := st.Snapshot(ctx, mb, 0)
	if err != nil {
		return nil, err
	}
	n := &mailboxState{validity: snap.UIDValidity, uidNext: snap.UIDNext, highest: snap.HighestModSeq, msgs: make([]msgState, len(snap.Changed))}
	var fs flagSets
	for i, m := range snap.Changed {
		n.msgs[i] = msgState{uid: m.UID, modseq: m.ModSeq, flags: fs.of(m.Flags)}
	}
	c.put(mb, n)
	return n, nil
}

// announce adds to k the keywords of s's messages, in UID order of first
// use. Each distinct flag list is looked at once: the messages share
// them (flagSets), and looking at each run of messages with the same
// list, lower-casing each of its flags, cost a SELECT of 2,000 messages
// whose keywords are spread over them (10 clients each STOREing a
// keyword of its own) a few thousand allocations (TestAnnounceAllocations).
func (s *mailboxState) announce(k *keywordSet) {
	var last *flagSet
	var done map[*flagSet]bool
	for _, m := range s.msgs {
		f := m.flags
		if f == last || len(f.keywords) == 0 {
			continue
		}
		last = f
		if done[f] {
			continue
		}
		if done == nil {
			done = map[*flagSet]bool{}
		}
		done[f] = true
		k.add(f.keywords)
	}
}

// apply returns old with d's changes, or nil when the result's count of
// messages is not d.Messages.
func apply(old *mailboxState, d *store.Delta) *mailboxState {
	n := &mailboxState{validity: old.validity, uidNext: d.UIDNext, highest: d.HighestModSeq,
		msgs: make([]msgState, 0, len(old.msgs)+len(d.Changed))}
	gone := d.Expunged // ascending
	ch := d.Changed    // ascending
	var fs flagSets
	for _, m := range old.msgs {
		for len(ch) > 0 && ch[0].UID < m.uid {
			n.msgs = append(n.msgs, msgState{uid: ch[0].UID, modseq: ch[0].ModSeq, flags: fs.of(ch[0].Flags)})
			ch = ch[1:]
		}
		if len(ch) > 0 && ch[0].UID == m.uid {
			// Present now, with these flags (whatever Expunged says of
			// its UID: the rows are the mailbox as it is).
			n.msgs = append(n.msgs, msgState{uid: ch[0].UID, modseq: ch[0].ModSeq, flags: fs.of(ch[0].Flags)})
			ch = ch[1:]
			continue
		}
		for len(gone) > 0 && gone[0] < m.uid {
			gone = gone[1:]
		}
		if len(gone) > 0 && gone[0] == m.uid {
			continue
		}
		n.msgs = append(n.msgs, m)
	}
	for _, m := range ch {
		n.msgs = append(n.msgs, msgState{uid: m.UID, modseq: m.ModSeq, flags: fs.of(m.Flags)})
	}
	if len(n.msgs) != d.Messages {
		return nil
	}
	return n
}

// keep marks mb's entry used.
func (c *selectCache) keep(mb int64, s *mailboxState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[mb]; e != nil && e.st == s {
		c.clock++
		e.used = c.clock
	}
}

// drop forgets mb's entry if it is still s (whatever it is, s nil). A
// mailbox deleted by another process leaves when the next SELECT or poll
// of it finds it gone, or as the least recently used.
func (c *selectCache) drop(mb int64, s *mailboxState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[mb]; e != nil && (s == nil || e.st == s) {
		c.total -= e.st.cost()
		delete(c.entries, mb)
	}
}

// put makes s mb's entry unless the entry is newer (a SELECT beside this
// one read a higher HIGHESTMODSEQ of the same mailbox), then drops the
// least recently used entries past the budget.
func (c *selectCache) put(mb int64, s *mailboxState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	if e := c.entries[mb]; e != nil {
		if e.st.validity == s.validity && e.st.highest > s.highest {
			e.used = c.clock
			return
		}
		c.total -= e.st.cost()
		delete(c.entries, mb)
	}
	if s.cost() > c.budget {
		return
	}
	c.entries[mb] = &selectEntry{st: s, used: c.clock}
	c.total += s.cost()
	for c.total > c.budget {
		var lru int64
		var oldest *selectEntry
		for id, e := range c.entries {
			if id != mb && (oldest == nil || e.used < oldest.used) {
				lru, oldest = id, e
			}
		}
		if oldest == nil {
			return
		}
		c.total -= oldest.st.cost()
		delete(c.entries, lru)
	}
}
