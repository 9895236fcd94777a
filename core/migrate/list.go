package migrate

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// nsInfo is the old server's personal namespace (RFC 2342).
type nsInfo struct {
	prefix string
	delim  rune
	others []string // prefixes of other users' and shared namespaces
}

func readNamespace(c *imapclient.Client) (nsInfo, error) {
	var ns nsInfo
	if c.Caps().Has(imap.CapNamespace) || c.Caps().Has(imap.CapIMAP4rev2) {
		nd, err := c.Namespace().Wait()
		if err != nil {
			return ns, fmt.Errorf("NAMESPACE: %w", err)
		}
		if len(nd.Personal) > 0 {
			ns.prefix, ns.delim = nd.Personal[0].Prefix, nd.Personal[0].Delim
		}
		for _, d := range append(append([]imap.NamespaceDescriptor{}, nd.Other...), nd.Shared...) {
			if d.Prefix != "" {
				ns.others = append(ns.others, d.Prefix)
			}
		}
	}
	if ns.delim == 0 {
		l, err := c.List("", "", nil).Collect()
		if err != nil {
			return ns, fmt.Errorf("LIST: %w", err)
		}
		if len(l) > 0 {
			ns.delim = l[0].Delim
		}
	}
	if ns.delim == 0 {
		ns.delim = '/'
	}
	return ns, nil
}

// localName maps an old mailbox name to the store's name ("" = skip).
func (ns nsInfo) localName(old string) string {
	if strings.EqualFold(old, "INBOX") {
		return "INBOX"
	}
	for _, p := range ns.others {
		if strings.HasPrefix(old, p) {
			return ""
		}
	}
	if ns.prefix != "" && strings.HasPrefix(old, ns.prefix) {
		return old[len(ns.prefix):]
	}
	return old
}

type statusInfo struct {
	uidValidity, uidNext uint32
	messages             uint32
	size                 int64 // -1 unknown
}

func toStatus(d *imap.StatusData) *statusInfo {
	s := &statusInfo{uidValidity: d.UIDValidity, uidNext: uint32(d.UIDNext), size: -1}
	if d.NumMessages != nil {
		s.messages = *d.NumMessages
	}
	if d.Size != nil {
		s.size = *d.Size
	}
	return s
}

func statusOptions(c *imapclient.Client) *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		Size: c.Caps().Has(imap.CapStatusSize) || c.Caps().Has(imap.CapIMAP4rev2)}
}

// statusOf runs STATUS with what statusOptions asks for.
func statusOf(c *imapclient.Client, name string) (*statusInfo, error) {
	opts := statusOptions(c)
	d, err := c.Status(name, opts).Wait()
	if err != nil {
		return nil, err
	}
	return toStatus(d), nil
}

// oldMailbox is one mailbox as listed by the old server.
type oldMailbox struct {
	// name is the old server's name (as decoded, or, for a name in broken
	// modified UTF-7, the bytes it sent); wire, if set, is what commands
	// send for it: the name marked imap.RawMailboxMark for a broken one,
	// so that it goes back as those bytes (the server may not know the
	// name encoded again).
	name       string
	wire       string
	local      string
	noselect   bool
	subscribed bool
	specialUse string
	status     *statusInfo
}

// cmdName is the name commands send for m.
func (m *oldMailbox) cmdName() string {
	if m.wire != "" {
		return m.wire
	}
	return m.name
}

var specialAttrs = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
	imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrImportant}

// guessSpecialUse names the RFC 6154 use of a top-level mailbox of a server
// without SPECIAL-USE from common names.
func guessSpecialUse(name string) string {
	switch strings.ToLower(name) {
	case "sent", "sent items", "sent messages", "sent mail":
		return `\Sent`
	case "drafts":
		return `\Drafts`
	case "trash", "deleted items", "deleted messages":
		return `\Trash`
	case "junk", "spam", "junk e-mail":
		return `\Junk`
	case "archive", "archives":
		return `\Archive`
	}
	return ""
}

// listOld lists the old server's personal mailboxes with their
// subscription (RFC 5258), special use (RFC 6154) and status (RFC 5819),
// INBOX first.
func listOld(c *imapclient.Client, ns nsInfo) ([]*oldMailbox, error) {
	caps := c.Caps()
	ext := caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2)
	var opts *imap.ListOptions
	if ext {
		opts = &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: caps.Has(imap.CapSpecialUse)}
		if caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2) {
			opts.ReturnStatus = statusOptions(c)
		}
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var out []*oldMailbox
	// A name in broken modified UTF-7 is kept as the bytes sent, which may
	// be the text of a good name ("Caf&AOk" sent broken, and "Caf&-AOk"):
	// two folders. The broken one then takes a name of its own (the old
	// name its local mailbox remembers), so that neither is left out.
	names := map[string]bool{}
	for _, l := range list {
		names[l.Mailbox] = true
	}
	seen := map[string]bool{}
	for _, l := range list {
		name, raw := strings.CutPrefix(l.Mailbox, imap.RawMailboxMark)
		if raw && names[name] {
			base := name + " (as sent)"
			name = base
			for i := 2; names[name] || names[imap.RawMailboxMark+name]; i++ {
				name = fmt.Sprintf("%s %d", base, i)
			}
			names[name] = true
		}
		local := ns.localName(name)
		if local == "" || seen[name] {
			continue
		}
		seen[name] = true
		m := &oldMailbox{name: name, local: local, subscribed: !ext}
		if raw {
			m.wire, m.local = l.Mailbox, strings.ToValidUTF8(local, "\uFFFD")
		}
		if strings.EqualFold(l.Mailbox, "INBOX") {
			m.name = "INBOX"
		}
		var uses []string
		for _, a := range l.Attrs {
			switch {
			case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)), strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
				m.noselect = true
			case strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed)):
				m.subscribed = true
			}
			for _, s := range specialAttrs {
				if strings.EqualFold(string(a), string(s)) {
					uses = append(uses, string(s))
				}
			}
		}
		m.specialUse = strings.Join(uses, " ")
		if m.specialUse == "" && !caps.Has(imap.CapSpecialUse) && !strings.ContainsRune(local, ns.delim) {
			m.specialUse = guessSpecialUse(local)
		}
		if l.Status != nil {
			m.status = toStatus(l.Status)
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name == "INBOX" && out[j].name != "INBOX" })
	if len(out) == 0 || out[0].name != "INBOX" {
		out = append([]*oldMailbox{{name: "INBOX", local: "INBOX", subscribed: true}}, out...)
	}
	for _, m := range out {
		if m.status == nil && !m.noselect {
			st, err := statusOf(c, m.cmdName())
			var ierr *imap.Error
			if errors.As(err, &ierr) {
				// The server refuses this one mailbox: its copy finds
				// out why (EXAMINE) and reports it; the others go on.
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("STATUS %q: %w", m.name, err)
			}
			m.status = st
		}
	}
	return out, nil
}
