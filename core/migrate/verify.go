package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Report is the result of Verify: for every old mailbox, whether each of
// its messages is in the store as the old server serves it now.
type Report struct {
	Account string    `json:"account"`
	Time    time.Time `json:"time"`
	// OK is true when nothing is missing or different in any folder
	// (extra local messages, e.g. mail delivered locally, do not count).
	OK bool `json:"ok"`
	// Totals over all folders.
	Messages  int            `json:"messages"`
	Present   int            `json:"present"`
	Missing   int            `json:"missing"`
	Different int            `json:"different"`
	Extra     int            `json:"extra"`
	Folders   []FolderReport `json:"folders"`
	// Problems are the messages the copy recorded as ones the old server
	// could not serve (store.CopyProblem), with the server's words; they
	// show as Missing in their folder while they last.
	Problems []store.CopyProblem `json:"problems,omitempty"`
}

// FolderReport compares one old mailbox with its local copy.
type FolderReport struct {
	OldName string `json:"old_name"`
	// Name is the local mailbox ("" if there is none).
	Name           string `json:"name"`
	OldUIDValidity uint32 `json:"old_uid_validity"`
	UIDValidity    uint32 `json:"uid_validity"`
	OldSubscribed  bool   `json:"old_subscribed"`
	Subscribed     bool   `json:"subscribed"`
	NoSelect       bool   `json:"noselect,omitempty"`
	// Messages on the old server, Local in the store, Present of the old
	// ones with the same UID, size, bytes (their blob key), flags and
	// INTERNALDATE.
	Messages int `json:"messages"`
	Local    int `json:"local"`
	Present  int `json:"present"`
	// Missing old UIDs not in the store; Extra local UIDs not on the old
	// server; Different messages present under the same UID but not equal.
	Missing   []uint32     `json:"missing,omitempty"`
	Extra     []uint32     `json:"extra,omitempty"`
	Different []Difference `json:"different,omitempty"`
	// Problem says why the folder could not be compared, or what else
	// differs (UIDVALIDITY, subscription).
	Problem string `json:"problem,omitempty"`
}

// Difference is one message that differs.
type Difference struct {
	UID  uint32 `json:"uid"`
	What string `json:"what"`
}

// OK reports whether the folder matches (extra local messages allowed).
func (f *FolderReport) OK() bool {
	return f.Problem == "" && len(f.Missing) == 0 && len(f.Different) == 0
}

// Verify compares an account with the old server, message by message: the
// same UIDs, UIDVALIDITY, size and bytes (their blob key, SHA-256 or
// BLAKE3 as the store holds it; BODY.PEEK[], so
// the old server's \Seen flags are untouched), flags and keywords, and
// INTERNALDATE with its zone. The old server is read as it is now.
func (e *Engine) Verify(ctx context.Context, address string, cred Credentials) (*Report, error) {
	acct, err := e.st.Account(ctx, address)
	if err != nil {
		return nil, fmt.Errorf("migrate: verify: %w", err)
	}
	_, domain, err := store.SplitAddress(acct.Address)
	if err != nil {
		return nil, err
	}
	s, _, err := DomainSettings(ctx, e.st, domain)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("migrate: verify: domain %s has no old server settings", domain)
	}
	cred.Address = acct.Address
	if cred.Password == "" && !cred.master() {
		c, ok := e.credsFor(acct)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoCredentials, acct.Address)
		}
		cred = c
	}
	c, err := e.connect(ctx, s, cred)
	if err != nil {
		return nil, err
	}
	defer closeClient(c)
	ns, err := readNamespace(c)
	if err != nil {
		return nil, fmt.Errorf("migrate: verify %s: %w", acct.Address, err)
	}
	olds, err := listOld(c, ns)
	if err != nil {
		return nil, fmt.Errorf("migrate: verify %s: %w", acct.Address, err)
	}
	byOld, err := e.localsByOldName(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	r := &Report{Account: acct.Address, Time: time.Now()}
	for _, o := range olds {
		f, err := e.verifyFolder(ctx, c, o, byOld[o.name])
		if err != nil {
			return nil, fmt.Errorf("migrate: verify %s: %w", acct.Address, err)
		}
		r.Messages += f.Messages
		r.Present += f.Present
		r.Missing += len(f.Missing)
		r.Different += len(f.Different)
		r.Extra += len(f.Extra)
		r.Folders = append(r.Folders, *f)
	}
	if r.Problems, err = e.st.CopyProblems(ctx, acct.ID); err != nil {
		return nil, err
	}
	r.OK = true
	for i := range r.Folders {
		if !r.Folders[i].OK() {
			r.OK = false
		}
	}
	return r, nil
}

type oldSum struct {
	size  int64
	sum   *store.KeyHash // nil: no body
	flags []string
	date  time.Time
}

func (e *Engine) verifyFolder(ctx context.Context, c *imapclient.Client, o *oldMailbox, lm *store.Mailbox) (*FolderReport, error) {
	f := &FolderReport{OldName: o.name, OldSubscribed: o.subscribed, NoSelect: o.noselect}
	var problems []string
	if lm == nil {
		f.Problem = "no local mailbox"
	} else {
		f.Name, f.UIDValidity, f.Subscribed = lm.Name, lm.UIDValidity, lm.Subscribed
		if f.Subscribed != f.OldSubscribed {
			problems = append(problems, fmt.Sprintf("subscribed here %v, on the old server %v", f.Subscribed, f.OldSubscribed))
		}
	}
	if o.noselect {
		f.Problem = strings.Join(problems, "; ")
		return f, nil
	}
	sel, err := c.Select(o.cmdName(), &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) {
			f.Problem = "old server: " + err.Error()
			return f, nil
		}
		return nil, err
	}
	f.OldUIDValidity = sel.UIDValidity
	if lm != nil && lm.UIDValidity != sel.UIDValidity {
		problems = append(problems, fmt.Sprintf("UIDVALIDITY %d here, %d on the old server", lm.UIDValidity, sel.UIDValidity))
	}
	old := map[uint32]*oldSum{}
	if sel.NumMessages > 0 {
		cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, fetchItems)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var uid uint32
			s := &oldSum{size: -1}
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = uint32(it.UID)
				case imapclient.FetchItemDataFlags:
					s.flags = append(s.flags, oldserver.MessageFlags(it.Flags)...)
				case imapclient.FetchItemDataInternalDate:
					s.date = it.Time
				case imapclient.FetchItemDataBodySection:
					if it.Literal != nil {
						// Both forms: the local message's key may
						// be of either (core/store/blobkey.go).
						h := store.NewKeyHashBoth()
						n, err := io.Copy(h, it.Literal)
						if err != nil {
							c.Close() // not cmd.Close: see readError
							return nil, err
						}
						s.size, s.sum = n, h
					}
				}
			}
			if uid != 0 {
				old[uid] = s
			}
		}
		if err := cmd.Close(); err != nil {
			var ierr *imap.Error
			if !errors.As(err, &ierr) {
				return nil, err
			}
			problems = append(problems, "old server: "+err.Error())
		}
	}
	f.Messages = len(old)
	seen := map[uint32]bool{}
	if lm != nil {
		err := e.st.EachMessage(ctx, lm.ID, 1, 1<<32-1, false, func(m *store.Message) error {
			f.Local++
			o, ok := old[m.UID]
			if !ok {
				f.Extra = append(f.Extra, m.UID)
				return nil
			}
			seen[m.UID] = true
			var what []string
			if o.size != m.Size {
				what = append(what, fmt.Sprintf("size %d here, %d there", m.Size, o.size))
			}
			if o.sum == nil || !o.sum.Names(m.BlobKey) {
				what = append(what, "bytes differ (their hash)")
			}
			if !sameFlags(o.flags, m.Flags) {
				what = append(what, fmt.Sprintf("flags %v here, %v there", m.Flags, o.flags))
			}
			if !sameDate(o.date, m.InternalDate) {
				what = append(what, fmt.Sprintf("INTERNALDATE %s here, %s there", m.InternalDate.Format(time.RFC3339), o.date.Format(time.RFC3339)))
			}
			if len(what) > 0 {
				f.Different = append(f.Different, Difference{UID: m.UID, What: strings.Join(what, "; ")})
			} else {
				f.Present++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for u := range old {
		if !seen[u] {
			f.Missing = append(f.Missing, u)
		}
	}
	sort.Slice(f.Missing, func(i, j int) bool { return f.Missing[i] < f.Missing[j] })
	if f.Problem == "" {
		f.Problem = strings.Join(problems, "; ")
	}
	return f, nil
}

// sameFlags compares flag sets; IMAP flags compare without case.
func sameFlags(a, b []string) bool {
	norm := func(l []string) string {
		c := make([]string, len(l))
		for i, f := range l {
			c[i] = strings.ToLower(f)
		}
		sort.Strings(c)
		return strings.Join(c, " ")
	}
	return norm(a) == norm(b)
}

// sameDate compares two INTERNALDATEs: the same instant and the same zone
// offset.
func sameDate(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Unix() == b.Unix() && ao == bo
}
