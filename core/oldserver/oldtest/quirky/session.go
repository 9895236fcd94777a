package quirky

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// session is imapmemserver's session of the server's user with the old
// server's folder names: it lists them itself (prefix, separator, special
// use, subscriptions) and opens them by those names only. The server is
// read-only: it is what a migration reads.
type session struct {
	*imapmemserver.UserSession
	srv *Server
}

// nsSession is a session of a server that offers NAMESPACE.
type nsSession struct{ session }

var _ imapserver.SessionNamespace = (*nsSession)(nil)

// Namespace is the personal namespace alone (RFC 2342).
func (s *nsSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: s.srv.prefix, Delim: s.srv.delim}}}, nil
}

func (s *session) Login(username, password string) error {
	if err := s.srv.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.srv.user)
	s.srv.sessions.Add(1)
	return nil
}

func (s *session) Close() error {
	if s.UserSession == nil {
		return nil
	}
	return s.UserSession.Close()
}

// backend is the backend name of the folder listed as name (the token of a
// raw name, which the wire filter put in place of its bytes).
func (s *session) backend(name string) (string, error) {
	for _, f := range s.srv.folders {
		if (f.token == "" && f.wire == name) || (f.token != "" && f.token == name) ||
			(f.wire == "INBOX" && strings.EqualFold(name, "INBOX")) {
			if f.refused.Load() {
				return "", errRefused
			}
			return f.backend, nil
		}
	}
	return "", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "Mailbox doesn't exist: " + name}
}

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	b, err := s.backend(name)
	if err != nil {
		return nil, err
	}
	return s.UserSession.Select(b, options)
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	b, err := s.backend(name)
	if err != nil {
		return nil, err
	}
	d, err := s.srv.user.Status(b, options)
	if err != nil {
		return nil, err
	}
	d.Mailbox = name
	return d, nil
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: s.srv.delim})
	}
	if options == nil {
		options = &imap.ListOptions{}
	}
	for _, f := range s.srv.folders {
		name := f.wire
		if f.token != "" {
			name = f.token
		}
		match := false
		for _, p := range patterns {
			match = match || imapserver.MatchList(name, s.srv.delim, ref, p)
		}
		if !match || (options.SelectSubscribed && !f.Subscribed) {
			continue
		}
		d := &imap.ListData{Mailbox: name, Delim: s.srv.delim}
		if f.Subscribed && (options.SelectSubscribed || options.ReturnSubscribed || w.LSub()) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if f.SpecialUse != "" && s.srv.specialUse {
			d.Attrs = append(d.Attrs, f.SpecialUse)
		}
		if options.ReturnStatus != nil && !f.refused.Load() {
			st, err := s.srv.user.Status(f.backend, options.ReturnStatus)
			if err != nil {
				return err
			}
			st.Mailbox = name
			d.Status = st
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

var errRefused = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error occurred. Refer to server log for more information."}

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "This old server is read-only"}

func (s *session) Create(string, *imap.CreateOptions) error         { return errReadOnly }
func (s *session) Delete(string) error                              { return errReadOnly }
func (s *session) Rename(string, string, *imap.RenameOptions) error { return errReadOnly }
func (s *session) Subscribe(string) error                           { return errReadOnly }
func (s *session) Unsubscribe(string) error                         { return errReadOnly }
func (s *session) Append(string, imap.LiteralReader, *imap.AppendOptions) (*imap.AppendData, error) {
	return nil, errReadOnly
}
func (s *session) Copy(imap.NumSet, string) (*imap.CopyData, error) { return nil, errReadOnly }
func (s *session) Expunge(*imapserver.ExpungeWriter, *imap.UIDSet) error {
	return errReadOnly
}
func (s *session) Store(*imapserver.FetchWriter, imap.NumSet, *imap.StoreFlags, *imap.StoreOptions) error {
	return errReadOnly
}
