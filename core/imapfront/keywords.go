package imapfront

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// The FLAGS response lists the flags a mailbox uses (RFC 3501 7.2.6): the
// system flags and every keyword of its messages. When a keyword that the
// session has not announced appears — set by this session's STORE or
// APPEND, by another session, or by the migration — the session sends
// FLAGS and OK [PERMANENTFLAGS] again before the client may see it in a
// FETCH, as Dovecot does.

// systemFlags are the flags every mailbox announces.
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// keywordSet is the flags a session announced, in order, with their
// lower-case forms.
type keywordSet struct {
	list []imap.Flag
	seen map[string]bool
}

func newKeywordSet() *keywordSet {
	k := &keywordSet{seen: map[string]bool{}}
	for _, f := range systemFlags {
		k.list = append(k.list, f)
		k.seen[strings.ToLower(string(f))] = true
	}
	return k
}

// add adds the keywords among flags (stored form) and reports whether one
// was new.
func (k *keywordSet) add(flags []string) bool {
	added := false
	for _, f := range flags {
		if !isKeyword(f) {
			continue
		}
		lf := strings.ToLower(f)
		if k.seen[lf] {
			continue
		}
		k.seen[lf] = true
		k.list = append(k.list, imap.Flag(f))
		added = true
	}
	return added
}

// isKeyword reports whether a stored flag is one a FLAGS response
// announces: not a system flag, and valid as an atom.
func isKeyword(f string) bool {
	return !strings.HasPrefix(f, `\`) && validFlag(f)
}

// permanent is the PERMANENTFLAGS list: every flag and \* (new keywords
// allowed), or none in a read-only mailbox.
func (k *keywordSet) permanent(readOnly bool) []imap.Flag {
	if readOnly {
		return []imap.Flag{}
	}
	return append(append([]imap.Flag{}, k.list...), imap.FlagWildcard)
}

// flagsWriter is what announceFlags writes to (imapserver.UpdateWriter).
type flagsWriter interface {
	WriteMailboxFlags(flags []imap.Flag) error
	WriteMailboxPermanentFlags(flags []imap.Flag) error
}

// announceFlags sends FLAGS and PERMANENTFLAGS again if flags hold a
// keyword the client was not told of.
func (v *view) announceFlags(w flagsWriter, flags []string) error {
	if !v.keywords.add(flags) {
		return nil
	}
	if err := w.WriteMailboxFlags(v.keywords.list); err != nil {
		return err
	}
	return w.WriteMailboxPermanentFlags(v.keywords.permanent(v.readOnly))
}

// hasFlagFold reports whether flags hold f, compared without case.
func hasFlagFold(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}
