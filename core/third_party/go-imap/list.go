package imap

// ListOptions contains options for the LIST command.
type ListOptions struct {
	SelectSubscribed     bool
	SelectRemote         bool
	SelectRecursiveMatch bool // requires SelectSubscribed to be set
	SelectSpecialUse     bool // requires SPECIAL-USE

	ReturnSubscribed bool
	ReturnChildren   bool
	ReturnStatus     *StatusOptions // requires IMAP4rev2 or LIST-STATUS
	ReturnSpecialUse bool           // requires SPECIAL-USE

	// Extended is set by the server for an RFC 5258 extended LIST: one
	// with a selection list (even "()"), a parenthesized pattern list or
	// a RETURN clause (even "RETURN ()") (Mailferry fork change 55).
	Extended bool
}

// ListData is the mailbox data returned by a LIST command.
type ListData struct {
	Attrs   []MailboxAttr
	Delim   rune
	Mailbox string

	// Extended data
	ChildInfo *ListDataChildInfo
	OldName   string
	Status    *StatusData
}

type ListDataChildInfo struct {
	Subscribed bool
}

// RawMailboxMark begins a mailbox name that a server sent in modified UTF-7
// that does not decode (RFC 3501 §5.1.3): imapclient returns such a name as
// RawMailboxMark followed by the bytes as sent, and sends a name so marked
// as those bytes, not encoded again, so that a server that stores names as
// bytes finds the mailbox. No mailbox name holds a NUL, so the mark is
// never a real name's (Mailferry fork, FORK.md change 24).
const RawMailboxMark = "\x00"
