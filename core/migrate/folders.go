package migrate

import (
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Folder is one folder of an old account as the engine copies it: the one
// folder mapping (NAMESPACE, LIST, STATUS) that copyAccount uses, so a
// caller that compares an old account with its copy counts exactly what
// the engine copies — never a folder of another user's or a shared
// namespace, which the engine skips.
type Folder struct {
	// OldName is the folder's name on the old server; Name its name on
	// Mailferry (the personal namespace prefix dropped, INBOX in capitals).
	OldName, Name string
	// Messages is the folder's message count (STATUS MESSAGES) on the old
	// server when it was listed.
	Messages int64
}

// ListFolders lists the selectable folders the engine would copy from the
// account c is logged in to, INBOX first, with their message counts.
func ListFolders(c *imapclient.Client) ([]Folder, error) {
	ns, err := readNamespace(c)
	if err != nil {
		return nil, err
	}
	list, err := listOld(c, ns)
	if err != nil {
		return nil, err
	}
	out := make([]Folder, 0, len(list))
	for _, m := range list {
		if m.noselect {
			continue
		}
		if m.status == nil {
			return nil, fmt.Errorf("STATUS %q: no answer", m.name)
		}
		out = append(out, Folder{OldName: m.name, Name: m.local, Messages: int64(m.status.messages)})
	}
	return out, nil
}
