// Package quirky is an in-process old IMAP server for tests that behaves
// like the odd real servers a migration meets: go-imap's imapserver over its
// in-memory backend (imapmemserver), with switchable quirks ([Quirks]) put
// on by a filter on the wire (wire.go) and by a session that lists its own
// folder names (session.go).
//
// Invariants:
//
//   - Each quirk changes only the server's words, never its mail: every
//     message is stored once with the bytes it was given, so a test can
//     ask that each one arrives byte-exact whatever the quirks. (A stray
//     "* 3 EXPUNGE" is a stray: nothing is expunged.)
//   - Everything listens on 127.0.0.1 on a port picked by the OS, and a
//     server started with [Start] is closed in t.Cleanup.
//   - Folder names are the old server's: [Folder].Name as the client
//     decodes it (with the namespace prefix and separator of [Quirks]), or,
//     for a name in broken modified UTF-7, [Folder].Raw as sent on the wire:
//     such a folder opens only under those raw bytes, as on a server that
//     stores names as bytes (the decoded and re-encoded name is NONEXISTENT).
package quirky

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Quirks are the ways the server departs from a well-behaved one. The zero
// value is a plain IMAP4rev1 server with NAMESPACE, UIDPLUS, LITERAL+,
// ENABLE, LIST-EXTENDED, LIST-STATUS and SPECIAL-USE and '/' as separator.
type Quirks struct {
	// ByeAfter, if above 0, ends a connection with "* BYE" after that many
	// FETCH responses carrying a body, in the middle of the UID FETCH; only
	// the first ByeTimes connections that get so far are ended (1 if 0).
	ByeAfter, ByeTimes int
	// Stray sends untagged responses in odd places: "* OK [ALERT] ...", an
	// unknown "* XSTRAY ..." (with a literal) and "* 3 EXPUNGE" between
	// the responses of a UID FETCH, the first two before LIST and STATUS
	// responses, and a second FETCH response (a flag update) after each
	// one answering RFC822.SIZE.
	Stray bool
	// NoDate and NoFlags leave INTERNALDATE and FLAGS out of FETCH
	// responses carrying a body; SplitItems sends them instead in a FETCH
	// response of their own after the body's (RFC 3501 7.4.2 allows both
	// a server's splitting and a client's getting them separately).
	NoDate, NoFlags, SplitItems bool
	// NilSize answers RFC822.SIZE with NIL.
	NilSize bool
	// Unasked follows each FETCH response carrying a body with the same
	// response again and with Unasked responses carrying a 64 KiB body for
	// UIDs nobody asked for (a lying server: a client must not keep them).
	Unasked int
	// FloodAfter, if above 0, makes the server, after that many FETCH
	// responses carrying a body on a connection, stream unknown untagged
	// responses ("* XFLOOD ...") for ever instead of the rest, until the
	// client closes the connection; only the first FloodTimes connections
	// that get so far (every one if 0).
	FloodAfter, FloodTimes int
	// Without are capabilities the server does not offer (and whose
	// commands it then refuses as unknown where go-imap does).
	Without []imap.Cap
	// InboxPrefix gives the personal namespace "INBOX." with '.' as
	// separator (Courier, Cyrus): every folder but INBOX is listed as
	// "INBOX." + its name.
	InboxPrefix bool
}

// Folder is a mailbox of the server's one user.
type Folder struct {
	// Name is the folder's name under the personal namespace, without the
	// prefix, as the client decodes it: "Sent", "Projects/2020" (a '/' in
	// a name of a '.'-separator server), "Données.Été 2020".
	Name string
	// Raw, if set, is the name as sent on the wire, in modified UTF-7 that
	// does not decode (e.g. "Caf&AOk"); Name is then ignored.
	Raw string
	// Subscribed and SpecialUse (e.g. imap.MailboxAttrSent) are listed.
	Subscribed bool
	SpecialUse imap.MailboxAttr
	// Messages are appended in order: UID 1, 2, ...
	Messages [][]byte
	// Refused folders are listed but cannot be opened: EXAMINE, SELECT and
	// STATUS are answered NO (a damaged index, a permission problem), and
	// LIST-STATUS leaves their status out (RFC 5819 allows it).
	Refused bool
}

// Server is a running quirky server.
type Server struct {
	// Addr is the plaintext IMAP listener (LOGIN without TLS is allowed).
	Addr string
	// User and Password log in.
	User, Password string

	q       Quirks
	srv     *imapserver.Server
	ln      net.Listener
	user    *imapmemserver.User
	folders []*folder
	delim   rune
	// specialUse: the server offers SPECIAL-USE (RFC 6154) and lists it.
	specialUse bool
	prefix     string

	byes     atomic.Int32 // connections ended with a BYE so far
	floods   atomic.Int32 // connections flooded so far
	sessions atomic.Int32 // sessions that logged in
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

// folder is a Folder with its backend mailbox.
type folder struct {
	Folder
	refused atomic.Bool // Folder.Refused, until SetRefused
	wire    string      // the full old name, as the client decodes it (or raw)
	backend string      // imapmemserver's name
	token   string      // for a raw name: what the session lists in its place
}

// Date is the INTERNALDATE of the n-th message (0-based) of every folder.
func Date(n int) time.Time {
	return time.Date(2019, 3, 1+n%28, 10, n%60, 0, 0, time.FixedZone("", 2*3600))
}

// Start starts a server with one user and its folders (INBOX first if it
// is among them, else an empty INBOX), closed in t.Cleanup.
func Start(t testing.TB, user, password string, q Quirks, folders []Folder) *Server {
	t.Helper()
	s, err := start(user, password, q, folders)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func start(user, password string, q Quirks, folders []Folder) (*Server, error) {
	s := &Server{User: user, Password: password, q: q, user: imapmemserver.NewUser(user, password),
		delim: '/', conns: map[net.Conn]bool{}}
	if q.InboxPrefix {
		s.delim, s.prefix = '.', "INBOX."
	}
	hasInbox := false
	for _, f := range folders {
		hasInbox = hasInbox || f.Name == "INBOX"
	}
	if !hasInbox {
		folders = append([]Folder{{Name: "INBOX", Subscribed: true}}, folders...)
	}
	for i, f := range folders {
		fo := &folder{Folder: f, backend: fmt.Sprintf("box%d", i)}
		fo.refused.Store(f.Refused)
		switch {
		case f.Name == "INBOX" && f.Raw == "":
			fo.wire, fo.backend = "INBOX", "INBOX"
		case f.Raw != "":
			fo.wire = s.prefix + f.Raw
			fo.token = fmt.Sprintf("QUIRKYRAWNAME%d", i)
		default:
			fo.wire = s.prefix + f.Name
		}
		if err := s.user.Create(fo.backend, nil); err != nil {
			return nil, fmt.Errorf("quirky: create %s: %w", fo.wire, err)
		}
		for n, raw := range f.Messages {
			if _, err := s.user.Append(fo.backend, literal{bytes.NewReader(raw), int64(len(raw))},
				&imap.AppendOptions{Time: Date(n), Flags: Flags(n)}); err != nil {
				return nil, fmt.Errorf("quirky: append to %s: %w", fo.wire, err)
			}
		}
		s.folders = append(s.folders, fo)
	}
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	for _, c := range []imap.Cap{imap.CapNamespace, imap.CapUIDPlus, imap.CapLiteralPlus, imap.CapEnable,
		imap.CapListExtended, imap.CapListStatus, imap.CapSpecialUse} {
		caps[c] = struct{}{}
	}
	for _, c := range q.Without {
		delete(caps, c)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	_, s.specialUse = caps[imap.CapSpecialUse]
	_, ns := caps[imap.CapNamespace]
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if ns {
				return &nsSession{session{srv: s}}, nil, nil
			}
			return &session{srv: s}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       discard{},
	})
	go s.srv.Serve(&listener{Listener: ln, s: s})
	return s, nil
}

// Flags are the flags of the n-th message (0-based) of every folder
// (keywords in lower case: imapmemserver folds them).
func Flags(n int) []imap.Flag {
	switch n % 4 {
	case 0:
		return []imap.Flag{imap.FlagSeen}
	case 1:
		return []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$label1"}
	case 2:
		return nil
	}
	return []imap.Flag{imap.FlagAnswered, "keyword"}
}

// Close stops the server and closes every connection.
func (s *Server) Close() {
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// SetRefused makes the folder listed as oldName (see OldName) refused or
// served from now on, as a server repaired; it reports whether there is
// such a folder.
func (s *Server) SetRefused(oldName string, refused bool) bool {
	for _, f := range s.folders {
		if f.wire == oldName {
			f.refused.Store(refused)
			return true
		}
	}
	return false
}

// Byes is how many connections the server ended with a BYE mid-FETCH.
func (s *Server) Byes() int { return int(s.byes.Load()) }

// Floods is how many connections were flooded (Quirks.FloodAfter).
func (s *Server) Floods() int { return int(s.floods.Load()) }

// Logins is how many sessions logged in.
func (s *Server) Logins() int { return int(s.sessions.Load()) }

// OldName is the name the client is told of f (its full old name as
// decoded, or its raw bytes for a broken one).
func (s *Server) OldName(f Folder) string {
	if f.Name == "INBOX" && f.Raw == "" {
		return "INBOX"
	}
	if f.Raw != "" {
		return s.prefix + f.Raw
	}
	return s.prefix + f.Name
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

type discard struct{}

func (discard) Printf(string, ...any) {}
