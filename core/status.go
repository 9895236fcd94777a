package core

// The one status model: `mailferry status` prints it and the assistant's
// dashboard shows it. It is read from the store (so a separate process
// sees what a running `mailferry serve` committed), with the live progress
// of the migration engine of this process on top.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mailferry/core/migrate"
	"mailferry/core/store"
)

// Status is a snapshot of a Mailferry: its domains, their accounts and
// how far each account's migration is, and the relay queue.
type Status struct {
	Time    time.Time      `json:"-"`
	Domains []DomainStatus `json:"domains"`
	Queue   QueueStatus    `json:"queue"`

	// Totals over every account.
	TotalMessages int64 `json:"-"`
	TotalBytes    int64 `json:"-"`
	// Running counts accounts whose copy is pending or running; Failed
	// those whose copy failed; Waiting those whose copy was interrupted or
	// waits (to retry, for disk space, for the user's login).
	Running int `json:"-"`
	Failed  int `json:"-"`
	Waiting int `json:"-"`
	// Relay counts the SMTP relay's work since start (zero before Start,
	// and in a process that does not serve).
	Relay RelayStats `json:"-"`
	// Listen maps each service to its address ("" when not listening).
	Listen map[string]string `json:"-"`
	// Certificate is the TLS certificate the listeners serve (Core.Certificate).
	Certificate CertificateInfo `json:"certificate"`
	// Engine names the store's engine ("sqlite" or "postgresql") and
	// Database where its metadata is (the SQLite file, or the database
	// URL with its password hidden).
	Engine   string `json:"engine"`
	Database string `json:"database"`
	// Blobs says where message bytes go: "packs in <directory>" or
	// "S3 <endpoint URL>/<bucket>".
	Blobs string `json:"blobs"`
	// SweepHeld says why the store deletes nothing in its bucket (another
	// database of the store uses it: a copy or a restore; `mailferry
	// store adopt-bucket`), "" when nothing holds it.
	SweepHeld string `json:"sweep_held,omitempty"`
	// Node is this process's node name; Nodes the nodes that serve the
	// store, live or seen within store.NodeForget (node.go).
	Node  string       `json:"node"`
	Nodes []NodeStatus `json:"nodes"`
}

// StoreSummary says in words which engine keeps the store's metadata and
// where, and where message bytes go: "SQLite, <file>; packs in <dir>" or
// "PostgreSQL, <URL, password hidden>; S3 <endpoint>/<bucket>".
func (s *Status) StoreSummary() string {
	var w string
	switch s.Engine {
	case EnginePostgres:
		w = "PostgreSQL, " + s.Database
	case EngineSQLite:
		w = "SQLite, " + s.Database
	default:
		return "unknown"
	}
	if s.Blobs != "" {
		w += "; " + s.Blobs
	}
	return w
}

// NodesSummary says in one line how many nodes are live and which:
// "2 live: mail1:/var/lib/mailferry (this one), mail2:/var/lib/mailferry";
// nodes not seen lately are counted apart ("1 not seen since 10:04:05").
func (s *Status) NodesSummary() string {
	var live, gone []string
	var last time.Time
	for _, n := range s.Nodes {
		name := n.Name
		if n.Self {
			name += " (this one)"
		}
		if n.Live {
			live = append(live, name)
		} else {
			gone = append(gone, name)
			if n.LastSeen.After(last) {
				last = n.LastSeen
			}
		}
	}
	w := fmt.Sprintf("%d live", len(live))
	if len(live) > 0 {
		w += ": " + strings.Join(live, ", ")
	}
	if len(gone) > 0 {
		w += fmt.Sprintf("; %d not seen since %s (%s)", len(gone), last.Format("2006-01-02 15:04:05"), strings.Join(gone, ", "))
	}
	return w
}

// Users returns every domain's accounts, in order.
func (s *Status) Users() []UserStatus {
	var out []UserStatus
	for _, d := range s.Domains {
		out = append(out, d.Accounts...)
	}
	return out
}

// DomainStatus is one domain of a Status.
type DomainStatus struct {
	Name      string `json:"name"`
	Migrating bool   `json:"migrating"`
	// OldServer is nil when no old server is recorded.
	OldServer *OldServerSettings `json:"-"`
	Accounts  []UserStatus       `json:"accounts"`
	// Moved counts accounts whose copy is done; Native accounts that were
	// never migrated (made on Mailferry).
	Moved  int `json:"-"`
	Native int `json:"-"`
	// KnownListed counts the old server's users the admin listed
	// (ImportKnownUsers; 0: no list), KnownSeen the others the relay saw.
	KnownListed int `json:"known_users_listed"`
	KnownSeen   int `json:"known_users_seen"`
}

// UserStatus is one account of a DomainStatus.
type UserStatus struct {
	Address string `json:"address"`
	Domain  string `json:"-"`
	// State is the account's migration state: "" for a native account
	// (never migrated), else MigPending, MigRunning, MigDone or MigFailed,
	// or what is truer than the store's state: MigInterrupted (no live
	// process copies it), MigRetrying or MigDiskFull (run again at
	// RetryAt), MigWaitingLogin. MigRunning means a live process holds the
	// account's copy lease.
	State string `json:"migration"`
	// RetryAt is when a MigRetrying or MigDiskFull copy runs again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// LastError is the latest migration error: the engine's, else the one
	// the store recorded.
	LastError string `json:"error,omitempty"`
	// Problem is LastError in an admin's words (the engine's error
	// explained by migrate.Explain when this process saw it, else what the
	// state says), with LastError as its Detail; zero when LastError is "".
	Problem Problem `json:"problem,omitzero"`
	// Errors counts the errors the engine of this process reported for
	// the account (0 when it did not copy it: then only LastError is
	// known).
	Errors  int       `json:"-"`
	Updated time.Time `json:"updated"`
	// FolderCount, Messages and Bytes are what the account holds on
	// Mailferry now.
	FolderCount int   `json:"-"`
	Messages    int64 `json:"messages"`
	Bytes       int64 `json:"bytes"`
	// Folders lists the account's folders (StatusOptions.Folders), else
	// is empty.
	Folders []FolderStatus `json:"folders"`
	// FoldersTotal, MessagesTotal and BytesTotal are the old account's
	// totals as the running (or last) copy of this process found them; 0
	// when unknown.
	FoldersTotal  int   `json:"-"`
	MessagesTotal int64 `json:"-"`
	BytesTotal    int64 `json:"-"`
	// Folder is the folder being copied, if any.
	Folder string `json:"-"`
	// Rate is messages per second since the migration started (0 when
	// unknown).
	Rate float64 `json:"-"`
	// Problems are the messages the old server could not serve (the rest
	// was copied): an account "done with N problems". Catch-up runs try
	// them again.
	Problems []CopyProblem `json:"problems,omitempty"`
}

// StateText says the account's migration state in words: "done with 2
// problems" for a copy done but for messages the old server could not
// serve.
func (u *UserStatus) StateText() string {
	state := u.State
	if state == "" {
		state = "local"
	}
	if n := len(u.Problems); n > 0 {
		word := "problems"
		if n == 1 {
			word = "problem"
		}
		state = fmt.Sprintf("%s with %d %s", state, n, word)
	}
	return state
}

// FolderStatus is one folder of a UserStatus.
type FolderStatus struct {
	Name string `json:"name"`
	// Migration and MigratedUID are the folder's copy state and the
	// highest old UID copied ("" and 0 for a folder made on Mailferry).
	Migration   string `json:"migration,omitempty"`
	MigratedUID uint32 `json:"migrated_uid,omitempty"`
	Messages    uint32 `json:"messages"`
	Bytes       int64  `json:"bytes"`
}

// QueueStatus sums the relay queue up.
type QueueStatus struct {
	Messages int       `json:"messages"`
	Held     int       `json:"held"`
	Oldest   time.Time `json:"oldest,omitzero"`
	// Items are the queued messages.
	Items []*QueueItem `json:"-"`
}

// StatusOptions choose what Status reads. A nil *StatusOptions means the
// defaults.
type StatusOptions struct {
	// Folders lists every account's folders (a query per folder; the
	// dashboard, which asks every second, goes without).
	Folders bool
}

// Status reads a snapshot. It reads the store, and the progress of this
// process's migration engine.
func (c *Core) Status(ctx context.Context, opts *StatusOptions) (*Status, error) {
	var o StatusOptions
	if opts != nil {
		o = *opts
	}
	st := &Status{Time: time.Now(), Listen: map[string]string{}, Engine: c.store.Engine(), Database: c.store.Database(),
		Blobs: c.store.Blobs(), SweepHeld: c.store.SweepHeld(), Node: c.cfg.NodeName}
	nodes, err := c.nodes(ctx, st.Time)
	if err != nil {
		return nil, err
	}
	st.Nodes = nodes
	for _, svc := range []string{"imap", "imaps", "pop3", "pop3s", "smtp", "submission", "submissions"} {
		st.Listen[svc] = c.Addr(svc)
	}
	domains, err := c.store.Domains(ctx)
	if err != nil {
		return nil, err
	}
	prog := map[int64]AccountProgress{}
	for _, p := range c.mig.Progress() {
		prog[p.AccountID] = p
	}
	copies, err := migrate.CopyStates(ctx, c.store, c.cfg.NodeName)
	if err != nil {
		return nil, err
	}
	// One query for what every account holds, not one per mailbox.
	usage, err := c.store.Usages(ctx)
	if err != nil {
		return nil, err
	}
	problems, err := c.store.CopyProblemsByAccount(ctx)
	if err != nil {
		return nil, err
	}
	for _, dom := range domains {
		ds := DomainStatus{Name: dom.Name, Migrating: dom.Migrating, Accounts: []UserStatus{}}
		ds.OldServer, _ = parseOldServer(dom.OldServer)
		accts, err := c.store.Accounts(ctx, dom.Name)
		if err != nil {
			return nil, err
		}
		known, err := c.store.KnownUsers(ctx, dom.Name)
		if err != nil {
			return nil, err
		}
		for _, k := range known {
			if k.Source == store.KnownList {
				ds.KnownListed++
			} else {
				ds.KnownSeen++
			}
		}
		for _, a := range accts {
			us := UserStatus{Address: a.Address, Domain: dom.Name, State: a.Migration, LastError: a.MigrationError,
				Updated: a.MigrationTime, Folders: []FolderStatus{}}
			if cs, ok := copies[a.ID]; ok {
				us.State, us.LastError, us.RetryAt = cs.State, cs.Reason, cs.RetryAt
			}
			switch us.State {
			case "":
				ds.Native++
			case MigDone:
				ds.Moved++
			case MigRunning, MigPending:
				st.Running++
			case MigFailed:
				st.Failed++
			default:
				st.Waiting++
			}
			u := usage[a.ID]
			us.FolderCount, us.Messages, us.Bytes = u.Folders, u.Messages, u.Bytes
			us.Problems = problems[a.ID]
			if us.State == MigRunning && !a.Created.IsZero() {
				if el := time.Since(a.Created).Seconds(); el > 0 {
					us.Rate = float64(us.Messages) / el
				}
			}
			if p, ok := prog[a.ID]; ok {
				us.FoldersTotal, us.MessagesTotal, us.BytesTotal = p.FoldersTotal, p.MessagesTotal, p.BytesTotal
				us.Folder = p.Folder
				if p.MessagesRate > 0 {
					us.Rate = p.MessagesRate
				}
				us.Errors = p.ErrorCount
				if len(p.Errors) > 0 && p.Problem.Kind != "" && (us.State == MigRunning || us.State == MigDone || us.LastError == "") {
					us.LastError = p.Errors[len(p.Errors)-1]
				}
				if p.Problem.Kind != "" && p.Problem.Detail == us.LastError {
					us.Problem = p.Problem // the engine's error, explained by its type
				}
				if !p.Updated.IsZero() {
					us.Updated = p.Updated
				}
			}
			if us.Problem.Kind == "" && us.LastError != "" {
				us.Problem = storedProblem(us.State, us.LastError, us.RetryAt)
			}
			if o.Folders {
				if us.Folders, err = c.folders(ctx, a.ID); err != nil {
					return nil, err
				}
			}
			st.TotalMessages += us.Messages
			st.TotalBytes += us.Bytes
			ds.Accounts = append(ds.Accounts, us)
		}
		st.Domains = append(st.Domains, ds)
	}
	if st.Queue.Items, err = c.store.Queue(ctx); err != nil {
		return nil, err
	}
	for _, it := range st.Queue.Items {
		st.Queue.Messages++
		if it.State == QueueHeld {
			st.Queue.Held++
		}
		if st.Queue.Oldest.IsZero() || it.Created.Before(st.Queue.Oldest) {
			st.Queue.Oldest = it.Created
		}
	}
	if c.relay != nil {
		st.Relay = c.relay.Stats()
	}
	st.Certificate = c.Certificate()
	return st, nil
}

// folders lists an account's folders with their counts.
func (c *Core) folders(ctx context.Context, accountID int64) ([]FolderStatus, error) {
	mbs, err := c.store.Mailboxes(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]FolderStatus, 0, len(mbs))
	for _, m := range mbs {
		s, err := c.store.Status(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, FolderStatus{Name: m.Name, Migration: m.Migration, MigratedUID: m.MigratedUID, Messages: s.Messages, Bytes: s.Size})
	}
	return out, nil
}

// storedProblem says a migration error this process did not see (recorded
// by another process, or before a restart: only its text is known) in
// words by the account's state; the text is the Detail.
func storedProblem(state, text string, retryAt time.Time) Problem {
	p := Problem{Kind: ProblemOther, Reached: true, Detail: text, Advice: "The technical detail says why."}
	switch state {
	case MigInterrupted:
		p.Headline = "The copy stopped before it finished (Mailferry was stopped or died)."
		p.Advice = "It resumes by itself when mailferry serve runs and has the user's password (their next login) or a master user; nothing copied is lost."
	case MigRetrying:
		p.Headline = "The last copy failed; Mailferry tries again by itself"
		if !retryAt.IsZero() {
			p.Headline += " at " + retryAt.Local().Format("15:04:05")
		}
		p.Headline += "."
	case MigDiskFull:
		p.Kind, p.Headline = migrate.ProblemDiskFull, "Mailferry's disk is full: the copy waits for room."
		p.Advice = "Free space on the disk of Mailferry's data directory; the copy goes on by itself, nothing is lost."
	case MigWaitingLogin:
		p.Kind, p.Headline = migrate.ProblemNoPassword, "The copy waits for the user's next login (Mailferry keeps no password on disk)."
		p.Advice = "Or pre-migrate the user (Disable migration…) with their password or a master user."
	case MigFailed:
		p.Headline = "The copy failed."
	default:
		p.Headline = "The last copy ran into an error."
	}
	return p
}
