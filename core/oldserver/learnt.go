package oldserver

// What Mailferry learns about an old server by talking to it (the probe,
// a first login, a copy turned away), kept with the domain's settings so
// that later logins and copies start from it, and told to the admin as
// findings with the workaround for each.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// ErrTurnedAway matches (errors.Is) a connection the old server turned
// away before any login: a "* BYE" greeting ("Too many connections from
// your IP address"), or the connection closed before or during the
// greeting, as servers with a connection cap do (Courier's MAXPERIP,
// Dovecot's mail_max_userip_connections, xinetd's per_source). It is
// never ErrAuthFailed.
var ErrTurnedAway = errors.New("the server turned the connection away")

// turnedAway is the error of a connection the server turned away, with the
// server's words (or what it did) and the cause. user: it was the login
// that was refused (a cap on one user's sessions, as Dovecot's
// mail_max_userip_connections), not the connection.
type turnedAway struct {
	words string
	cause error
	user  bool
}

// maxWords bounds the server's words kept from a refusal (they are stored
// and shown to the admin).
const maxWords = 200

// serverWords is a server's text made safe to keep and show: printable
// ASCII and UTF-8 letters only, at most maxWords bytes.
func serverWords(text string) string {
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(text, ""))
	if len(text) > maxWords {
		cut := maxWords
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	return strings.TrimSpace(text)
}

func (e *turnedAway) Error() string {
	return fmt.Sprintf("%v (%s); it may allow only so many connections at once", ErrTurnedAway, serverWords(e.words))
}

func (e *turnedAway) Is(target error) bool { return target == ErrTurnedAway }
func (e *turnedAway) Unwrap() error        { return e.cause }

// TurnedAwayWords returns the server's words (or "closed the connection")
// of an error matching ErrTurnedAway, else "".
func TurnedAwayWords(err error) string {
	var ta *turnedAway
	if errors.As(err, &ta) {
		return serverWords(ta.words)
	}
	return ""
}

// TurnedAwayUser reports whether err (matching ErrTurnedAway) refused a
// login rather than a connection: the server caps each user's sessions
// (Dovecot's mail_max_userip_connections: "NO [LIMIT]"), and the user's own
// mail client may hold some of them.
func TurnedAwayUser(err error) bool {
	var ta *turnedAway
	return errors.As(err, &ta) && ta.user
}

// Learnt is what Mailferry found out about an old server by talking to
// it. It is kept apart from the admin's Settings (core/migrate stores it
// with the domain) and is only ever a hint: it reorders what the rules of
// Settings allow, never allows more. In particular a learnt LoginLocal
// makes Login try the bare name first only where Settings would try it at
// all (LoginLocal, or LoginAuto for an address of Settings.DefaultDomain).
type Learnt struct {
	// Server is the IMAP address (host:port) the facts were learnt at;
	// facts of another address are stale: see For.
	Server string `json:"server"`
	// LoginForm is the form of user names the server accepted last
	// (LoginFull or LoginLocal); empty if no login was seen.
	LoginForm LoginForm `json:"login_form,omitempty"`
	// RefusalDelay is how long the server took to refuse the form tried
	// before LoginForm, when it refused one; 0 if none was refused.
	RefusalDelay time.Duration `json:"refusal_delay,omitempty"`
	// ConnCap is how many connections Mailferry had open to the server
	// when it turned one more away (ErrTurnedAway); 0 if that was never
	// seen. ConnCapWords are the server's words then.
	ConnCap      int    `json:"conn_cap,omitempty"`
	ConnCapWords string `json:"conn_cap_words,omitempty"`
	// UserCapWords, if set, are the server's words when it refused an
	// extra login of one user (a cap on each user's sessions from one
	// address, which the user's own mail client shares): such a refusal
	// lowers that account's connections only, not ConnCap.
	UserCapWords string `json:"user_cap_words,omitempty"`
	// ConnsTried is how many connections at once the probe opened without
	// one being turned away (0 if it did not try).
	ConnsTried int `json:"conns_tried,omitempty"`
	// Capabilities are the capabilities the server announced after a
	// login, sorted.
	Capabilities []string `json:"capabilities,omitempty"`
	// IgnoresDomain: the server accepted the user's password for the same
	// local part at a domain that does not exist (ProbeResult).
	IgnoresDomain bool `json:"ignores_domain,omitempty"`
	// Updated is when a fact was last learnt.
	Updated time.Time `json:"updated"`
}

// LearntKey is the key of s's IMAP server in Learnt.Server.
func LearntKey(s Settings) string { return s.Host.DialAddr(s.IMAPPort) }

// For returns l if it was learnt at s's IMAP server, else nil (the admin
// moved the domain to another server: nothing learnt holds there).
func (l *Learnt) For(s Settings) *Learnt {
	if l == nil || l.Server != LearntKey(s) {
		return nil
	}
	return l
}

// Merge returns l (nil means nothing learnt yet) with what n learnt at the
// same server added: a login form, a connection cap, capabilities that n
// knows override l's. Learnt at another server, n replaces l.
func (l *Learnt) Merge(n *Learnt) *Learnt {
	if n == nil {
		return l
	}
	if l == nil || l.Server != n.Server {
		c := *n
		return &c
	}
	m := *l
	if n.LoginForm != "" {
		m.LoginForm, m.RefusalDelay = n.LoginForm, n.RefusalDelay
	}
	if n.ConnCap > 0 {
		m.ConnCap, m.ConnCapWords = n.ConnCap, n.ConnCapWords
	}
	if n.UserCapWords != "" {
		m.UserCapWords = n.UserCapWords
	}
	if n.ConnsTried > 0 {
		m.ConnsTried = n.ConnsTried
		if n.ConnCap == 0 && m.ConnCap > 0 && m.ConnCap < n.ConnsTried {
			// The probe held more at once than the cap once seen:
			// that refusal was someone else's connections.
			m.ConnCap, m.ConnCapWords = 0, ""
		}
	}
	if len(n.Capabilities) > 0 {
		m.Capabilities = n.Capabilities
		m.IgnoresDomain = n.IgnoresDomain
	}
	if n.Updated.After(m.Updated) {
		m.Updated = n.Updated
	}
	return &m
}

// Same reports whether l and n hold the same facts (Updated aside), so a
// caller can skip writing what it knows already.
func (l *Learnt) Same(n *Learnt) bool {
	if l == nil || n == nil {
		return l == n
	}
	a, b := *l, *n
	a.Updated, b.Updated = time.Time{}, time.Time{}
	// A delay measured again differs by milliseconds: the fact is the same.
	a.RefusalDelay, b.RefusalDelay = a.RefusalDelay.Round(time.Second), b.RefusalDelay.Round(time.Second)
	return a.Server == b.Server && a.LoginForm == b.LoginForm && a.RefusalDelay == b.RefusalDelay &&
		a.ConnCap == b.ConnCap && a.ConnCapWords == b.ConnCapWords && a.UserCapWords == b.UserCapWords && a.ConnsTried == b.ConnsTried &&
		slices.Equal(a.Capabilities, b.Capabilities) && a.IgnoresDomain == b.IgnoresDomain
}

// FromLogin is what a successful login at s's server teaches: the form of
// user names it accepted and how long it took to refuse the other.
func FromLogin(s Settings, info LoginInfo) *Learnt {
	if info.Form == "" {
		return nil
	}
	return &Learnt{Server: LearntKey(s), LoginForm: info.Form, RefusalDelay: info.Refused, Updated: time.Now()}
}

// FromTurnedAway is what a connection turned away teaches: the server
// allows at most open connections at once (open ≥ 1: the ones Mailferry
// held when it refused one more), or, for a refused login
// (TurnedAwayUser), that it caps each user's sessions.
func FromTurnedAway(s Settings, open int, err error) *Learnt {
	if !errors.Is(err, ErrTurnedAway) {
		return nil
	}
	if TurnedAwayUser(err) {
		return &Learnt{Server: LearntKey(s), UserCapWords: TurnedAwayWords(err), Updated: time.Now()}
	}
	if open < 1 {
		return nil
	}
	return &Learnt{Server: LearntKey(s), ConnCap: open, ConnCapWords: TurnedAwayWords(err), Updated: time.Now()}
}

// Fact is one thing learnt about an old server, in words an admin
// understands, and what Mailferry does about it.
type Fact struct {
	// Finding is what the server does.
	Finding string `json:"finding"`
	// Workaround is what Mailferry does about it; empty when nothing is
	// needed.
	Workaround string `json:"workaround,omitempty"`
}

// String is the finding and its workaround on one line.
func (f Fact) String() string {
	if f.Workaround == "" {
		return f.Finding
	}
	return f.Finding + " → " + f.Workaround
}

// Facts explains l in plain words for an admin, one Fact per finding,
// as it applies under s (the admin's settings of a domain; domain is
// that domain, for the examples). A nil or stale l has no facts.
func (l *Learnt) Facts(s Settings, domain string) []Fact {
	l = l.For(s)
	if l == nil {
		return nil
	}
	if domain == "" {
		domain = "example.org"
	}
	full, bare := "alice@"+domain, "alice"
	var out []Fact
	slow := ""
	if l.RefusalDelay >= time.Second {
		slow = fmt.Sprintf(" and takes %.1f s to refuse the other form", l.RefusalDelay.Seconds())
	}
	switch l.LoginForm {
	case LoginLocal:
		f := Fact{Finding: fmt.Sprintf("The server wants bare user names (%q, not %q)%s.", bare, full, slow)}
		switch {
		case s.LoginForm == LoginLocal:
			f.Workaround = "Mailferry sends bare user names, as the settings say."
		case s.LoginForm == LoginAuto && strings.EqualFold(strings.TrimSuffix(s.DefaultDomain, "."), domain):
			f.Workaround = fmt.Sprintf("Mailferry sends the bare name first for users of %s, so their first login is not slowed.", domain)
		default:
			f.Workaround = fmt.Sprintf("Bare names are sent only for the old server's default domain: set it to %s if the old server's bare names are that domain's, or users cannot log in for the first time.", domain)
		}
		out = append(out, f)
	case LoginFull:
		f := Fact{Finding: fmt.Sprintf("The server takes full addresses as user names (%q)%s.", full, slow)}
		if slow != "" {
			f.Workaround = "Mailferry sends full addresses first, so first logins are not slowed."
		}
		out = append(out, f)
	}
	if l.IgnoresDomain {
		f := Fact{Finding: "The server ignores the domain of user names (it took the test user's name at a domain that does not exist)."}
		if s.DefaultDomain != "" {
			f.Workaround = fmt.Sprintf("Only users of %s may log in for the first time; another domain's %q would get the same mailbox.", s.DefaultDomain, bare)
		} else {
			f.Workaround = "Set the old server's default domain: only its users may then log in for the first time."
		}
		out = append(out, f)
	}
	capWords := ""
	if l.ConnCapWords != "" {
		capWords = fmt.Sprintf(" (it said %q)", l.ConnCapWords)
	}
	switch {
	case l.ConnCap > 0:
		out = append(out, Fact{
			Finding:    fmt.Sprintf("The server turned a connection away when Mailferry had %d open%s.", l.ConnCap, capWords),
			Workaround: fmt.Sprintf("Mailferry opens at most %d connections to it at once, shared by all accounts; a copy whose extra connection is refused goes on with the ones it has.", l.ConnCap),
		})
	case l.ConnsTried > 0:
		out = append(out, Fact{Finding: fmt.Sprintf("The server accepted %d connections at once from this computer.", l.ConnsTried)})
	}
	if l.UserCapWords != "" {
		out = append(out, Fact{
			Finding:    fmt.Sprintf("The server limits how many sessions one user may have open from one address (it said %q); the user's own mail client counts too.", l.UserCapWords),
			Workaround: "When it refuses one more, Mailferry copies that user's mailbox on the connections it has.",
		})
	}
	if len(l.Capabilities) > 0 {
		caps := imap.CapSet{}
		for _, c := range l.Capabilities {
			caps[imap.Cap(c)] = struct{}{}
		}
		out = append(out, capFacts(caps)...)
	}
	return out
}

// capFacts explains the missing capabilities that change how Mailferry
// copies from the server.
func capFacts(caps imap.CapSet) []Fact {
	rev2 := caps.Has(imap.CapIMAP4rev2)
	var out []Fact
	if !caps.Has(imap.CapNamespace) && !rev2 {
		out = append(out, Fact{"The server does not say where personal folders are (no NAMESPACE).",
			"Mailferry takes the folder separator from the folder list and copies every folder it lists."})
	}
	if !caps.Has(imap.CapListStatus) && !rev2 {
		out = append(out, Fact{"The server cannot give folder sizes with the folder list (no LIST-STATUS).",
			"Mailferry asks each folder's size on its own (one STATUS per folder): a little slower to start."})
	}
	if !caps.Has(imap.CapSpecialUse) {
		out = append(out, Fact{"The server does not mark Sent, Drafts, Trash or Junk folders (no SPECIAL-USE).",
			"Mailferry recognizes them by their usual names (Sent, Sent Items, Gesendet...)."})
	}
	if !caps.Has(imap.CapIdle) && !rev2 {
		out = append(out, Fact{"The server cannot announce new mail (no IDLE).",
			"Mail arriving on it during the migration is picked up by regular checks."})
	}
	if !caps.Has(imap.CapCondStore) {
		out = append(out, Fact{"The server does not track flag changes (no CONDSTORE).",
			"Flag changes made on it after the copy are found by re-reading all flags."})
	}
	return out
}

// turnedAway returns err as a *turnedAway when the server greeted with BYE
// or closed the connection before sending anything (and not because sctx,
// the setup's context, ended: that closes it too); else err itself.
func (c *bannerConn) turnedAway(sctx context.Context, err error) error {
	first := string(c.banner())
	var ierr *imap.Error
	switch {
	case err == nil:
		return nil
	case strings.HasPrefix(first, "* BYE"):
		line, _, _ := strings.Cut(first, "\n")
		words := strings.TrimSpace(strings.TrimPrefix(line, "* BYE"))
		if words == "" {
			words = "BYE"
		}
		return &turnedAway{words: words, cause: err}
	case errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeBye:
		return &turnedAway{words: ierr.Text, cause: err}
	case first == "" && sctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded):
		// Nothing came, and not for want of time: the server closed or
		// reset the connection.
		return &turnedAway{words: "it closed the connection before greeting", cause: err}
	}
	return err
}
