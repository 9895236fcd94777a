package imapfront

import (
	"errors"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"mailferry/core/store"
)

// Subscriptions are names (RFC 3501 6.3.6): a name may be subscribed
// whether or not it is a mailbox, and stays subscribed when its mailbox is
// deleted (store.KeptSubscriptions). LIST shows them as RFC 5258 says:
// LIST (SUBSCRIBED) gives \NonExistent for a subscribed name that is not a
// mailbox, and with RECURSIVEMATCH a CHILDINFO (SUBSCRIBED) for a level
// whose subscribed children the pattern does not reach; LSUB gives such a
// level \Noselect (RFC 3501 6.3.9).

// Subscribe implements imapserver.Session: the mailbox must exist (RFC
// 3501 6.3.6 allows the check; Dovecot makes it).
func (s *session) Subscribe(name string) error {
	mb, err := s.mailbox(name)
	if err != nil {
		return err
	}
	return s.storeErr(s.srv.st.SetSubscribed(s.ctx(), s.acct.ID, mb.Name, true), "SUBSCRIBE")
}

// Unsubscribe implements imapserver.Session: the mailbox need not exist
// any more, and unsubscribing a name that is not subscribed is OK (as
// Dovecot).
func (s *session) Unsubscribe(name string) error {
	n, err := s.mailboxName(name)
	if err != nil {
		return err
	}
	err = s.srv.st.SetSubscribed(s.ctx(), s.acct.ID, n, false)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return s.storeErr(err, "UNSUBSCRIBE")
}

// listEntry is a mailbox, a level that only exists as a parent, or a
// subscribed name that is neither.
type listEntry struct {
	name       string
	mb         *store.Mailbox // nil for a missing parent or a kept subscription
	children   bool           // some mailbox is below it
	subscribed bool
	// subChildren are the subscribed names below it (RECURSIVEMATCH,
	// LSUB).
	subChildren []string
}

// List implements imapserver.Session (RFC 3501 LIST and LSUB, RFC 5258
// LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	delim := s.acct.Delim
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	mbs, err := s.srv.st.Mailboxes(s.ctx(), s.acct.ID)
	if err != nil {
		return s.storeErr(err, "LIST")
	}
	d := string(delim)
	entries := map[string]*listEntry{}
	get := func(n string) *listEntry {
		e := entries[n]
		if e == nil {
			e = &listEntry{name: n}
			entries[n] = e
		}
		return e
	}
	for _, mb := range mbs {
		e := get(mb.Name)
		e.mb, e.subscribed = mb, mb.Subscribed
	}
	for _, mb := range mbs {
		levels := strings.Split(mb.Name, d)
		for i := 1; i < len(levels); i++ {
			get(strings.Join(levels[:i], d)).children = true
		}
	}
	lsub := w.LSub()
	extended := !lsub && (options.Extended || len(patterns) > 1 || options.SelectSubscribed || options.SelectRemote || options.SelectSpecialUse ||
		options.ReturnSubscribed || options.ReturnChildren || options.ReturnStatus != nil || options.ReturnSpecialUse)
	if options.SelectSubscribed || options.ReturnSubscribed {
		kept, err := s.srv.st.KeptSubscriptions(s.ctx(), s.acct.ID)
		if err != nil {
			return s.storeErr(err, "LIST")
		}
		for _, n := range kept {
			get(n).subscribed = true
		}
		for n, e := range entries {
			if !e.subscribed {
				continue
			}
			levels := strings.Split(n, d)
			for i := 1; i < len(levels); i++ {
				pn := strings.Join(levels[:i], d)
				if p := entries[pn]; p != nil {
					p.subChildren = append(p.subChildren, n)
				} else if options.SelectSubscribed {
					get(pn).subChildren = []string{n}
				}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "INBOX") != (names[j] == "INBOX") {
			return names[i] == "INBOX"
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		e := entries[n]
		if !listMatch(n, delim, ref, patterns) {
			continue
		}
		data, ok := s.listData(e, delim, options, lsub, extended, func(child string) bool { return listMatch(child, delim, ref, patterns) })
		if !ok {
			continue
		}
		if options.ReturnStatus != nil && e.mb != nil {
			if data.Status, err = s.statusData(e.mb, options.ReturnStatus); err != nil {
				return err
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listData makes the LIST (or LSUB) response for an entry, or reports that
// the entry is not listed. matches tells whether another name matches the
// patterns.
// extended tells an RFC 5258 extended LIST (a selection list, even "()", a
// parenthesized pattern list or a RETURN clause, even "RETURN ()": fork
// change 55) from a basic one, as Dovecot 2.3 does.
func (s *session) listData(e *listEntry, delim rune, options *imap.ListOptions, lsub, extended bool, matches func(string) bool) (*imap.ListData, bool) {
	var uses []imap.MailboxAttr
	if e.mb != nil {
		for _, u := range strings.Fields(e.mb.SpecialUse) {
			if a := imap.MailboxAttr(u); specialUses[a] {
				uses = append(uses, a)
			}
		}
	}
	if options.SelectSpecialUse && len(uses) == 0 {
		return nil, false
	}
	// childInfo: the entry is listed for its subscribed children that the
	// patterns do not reach (RFC 5258 3.5; RFC 3501 6.3.9 for LSUB).
	childInfo := false
	if options.SelectSubscribed {
		for _, c := range e.subChildren {
			childInfo = childInfo || !matches(c)
		}
	}
	if options.SelectSubscribed && !e.subscribed && !(childInfo && (lsub || options.SelectRecursiveMatch)) {
		return nil, false
	}
	if !options.SelectSubscribed && e.mb == nil && !e.children {
		return nil, false // a kept subscription: not a mailbox
	}
	data := &imap.ListData{Mailbox: e.name, Delim: delim}
	if lsub {
		if e.mb == nil || !e.subscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		}
		return data, true
	}
	switch {
	case e.mb == nil && (!e.children || extended):
		// RFC 5258 3: \NonExistent (which implies \Noselect) for a
		// name that is no mailbox; Dovecot 2.3 gives it in an extended
		// LIST to a level that is only a parent too.
		data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
	case e.mb == nil:
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
	}
	if e.mb != nil || e.children {
		if e.children {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
	}
	if e.subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	data.Attrs = append(data.Attrs, uses...)
	if childInfo && options.SelectRecursiveMatch {
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	return data, true
}

func listMatch(name string, delim rune, ref string, patterns []string) bool {
	for _, p := range patterns {
		if name == "INBOX" && ref == "" && strings.EqualFold(p, "INBOX") {
			return true
		}
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}
