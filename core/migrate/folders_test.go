package migrate_test

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"mailferry/core/migrate"
)

// sharedSession is a memory IMAP session whose server also has a shared
// namespace, "Shared/".
type sharedSession struct {
	*imapmemserver.UserSession
}

func (s sharedSession) Login(string, string) error { return nil }

func (s sharedSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Delim: '/'}},
		Shared:   []imap.NamespaceDescriptor{{Prefix: "Shared/", Delim: '/'}},
	}, nil
}

// ListFolders lists what the engine copies: not a folder of a shared
// namespace (the test migration waited for one until its timeout).
func TestListFoldersSkipsSharedNamespace(t *testing.T) {
	user := imapmemserver.NewUser("alice", "pw")
	for _, name := range []string{"INBOX", "Sent", "Shared", "Shared/team"} {
		if err := user.Create(name, nil); err != nil && name != "INBOX" {
			t.Fatal(err)
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sharedSession{imapmemserver.NewUserSession(user)}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapNamespace: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := migrate.ListFolders(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Name)
		if f.Name == "Shared/team" {
			t.Errorf("ListFolders lists %q of the shared namespace", f.OldName)
		}
	}
	if len(names) == 0 || names[0] != "INBOX" {
		t.Errorf("folders %v, want INBOX first", names)
	}
}
