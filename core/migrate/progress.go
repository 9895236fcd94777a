package migrate

import (
	"sync"
	"time"

	"mailferry/core/store"
)

// Event kinds.
const (
	// EventState: an account's migration state changed.
	EventState = "state"
	// EventProgress: messages were copied (coalesced, a few per second).
	EventProgress = "progress"
	// EventError: something went wrong; Error says what. The copy may go on.
	EventError = "error"
)

// State of an account's migration job, as shown in AccountProgress.State.
// Besides the store's states (pending, running, done, failed) a job may be
// "catchup": pulling new mail for an account already done.
const StateCatchUp = "catchup"

// AccountProgress is a snapshot of one account's migration.
type AccountProgress struct {
	AccountID int64  `json:"account_id"`
	Address   string `json:"address"`
	// State is store.MigPending, MigRunning, MigDone, MigFailed or
	// StateCatchUp.
	State string `json:"state"`
	// Folder is the mailbox being copied (old name), if any.
	Folder        string  `json:"folder,omitempty"`
	FoldersDone   int     `json:"folders_done"`
	FoldersTotal  int     `json:"folders_total"`
	MessagesDone  int64   `json:"messages_done"`
	MessagesTotal int64   `json:"messages_total"`
	BytesDone     int64   `json:"bytes_done"`
	BytesTotal    int64   `json:"bytes_total"`
	MessagesRate  float64 `json:"messages_per_second"`
	BytesRate     float64 `json:"bytes_per_second"`
	// Skipped counts messages the old server could not serve or that were
	// too large; Errors lists the latest problems (at most 20) and
	// ErrorCount counts them all.
	Skipped    int64    `json:"skipped"`
	Errors     []string `json:"errors,omitempty"`
	ErrorCount int      `json:"error_count,omitempty"`
	// RetryAt is when a failed copy (StateRetrying, StateDiskFull) is run
	// again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// Event is one change in the engine, for dashboards and `status --json`.
type Event struct {
	Kind    string          `json:"kind"`
	Time    time.Time       `json:"time"`
	Account AccountProgress `json:"account"`
	Error   string          `json:"error,omitempty"`
}

const maxErrors = 20

// maxErrorText bounds one error kept in the progress: it may quote an old
// server's words and a folder name a user chose there.
const maxErrorText = 1000

// progress keeps the engine's AccountProgress records and its subscribers.
type progress struct {
	mu       sync.Mutex
	accounts map[int64]*AccountProgress
	last     map[int64]time.Time // last progress event per account
	subs     map[*subscriber]struct{}
}

type subscriber struct {
	c      chan Event
	closed bool
}

func newProgress() *progress {
	return &progress{
		accounts: map[int64]*AccountProgress{},
		last:     map[int64]time.Time{},
		subs:     map[*subscriber]struct{}{},
	}
}

// update changes an account's record under the lock and publishes an event
// of kind (progress events are coalesced to at most 4 a second per account).
func (p *progress) update(id int64, address, kind, errText string, fn func(a *AccountProgress)) {
	// Shown to the admin (status, the assistant, events): printable only.
	errText = store.Printable(errText, maxErrorText)
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.accounts[id]
	if a == nil {
		a = &AccountProgress{AccountID: id, Address: address}
		p.accounts[id] = a
	}
	now := time.Now()
	if fn != nil {
		fn(a)
	}
	if errText != "" {
		a.ErrorCount++
		a.Errors = append(a.Errors, errText)
		if len(a.Errors) > maxErrors {
			a.Errors = append(a.Errors[:0:0], a.Errors[len(a.Errors)-maxErrors:]...)
		}
	}
	if el := now.Sub(a.Started).Seconds(); !a.Started.IsZero() && el > 0 {
		a.MessagesRate = float64(a.MessagesDone) / el
		a.BytesRate = float64(a.BytesDone) / el
	}
	a.Updated = now
	if kind == EventProgress {
		if now.Sub(p.last[id]) < 250*time.Millisecond {
			return
		}
		p.last[id] = now
	}
	ev := Event{Kind: kind, Time: now, Account: snapshot(a), Error: errText}
	for s := range p.subs {
		select {
		case s.c <- ev:
		default: // a slow consumer misses events; Progress has the latest state
		}
	}
}

func snapshot(a *AccountProgress) AccountProgress {
	c := *a
	c.Errors = append([]string(nil), a.Errors...)
	return c
}

func (p *progress) get(id int64) (AccountProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.accounts[id]
	if !ok {
		return AccountProgress{}, false
	}
	return snapshot(a), true
}

func (p *progress) all() []AccountProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]AccountProgress, 0, len(p.accounts))
	for _, a := range p.accounts {
		out = append(out, snapshot(a))
	}
	return out
}

func (p *progress) subscribe(buf int) (<-chan Event, func()) {
	s := &subscriber{c: make(chan Event, buf)}
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	var once sync.Once
	return s.c, func() {
		once.Do(func() {
			p.mu.Lock()
			delete(p.subs, s)
			if !s.closed {
				s.closed = true
				close(s.c)
			}
			p.mu.Unlock()
		})
	}
}

func (p *progress) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.subs {
		delete(p.subs, s)
		if !s.closed {
			s.closed = true
			close(s.c)
		}
	}
}
