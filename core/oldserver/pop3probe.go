package oldserver

import (
	"context"
	"fmt"
	"time"
)

// POP3Report is the POP3 part of a ProbeResult: whether the old server
// offers POP3, whose UIDLs the migration can keep (Settings.POP3Port).
type POP3Report struct {
	// Addr is the host:port where POP3 answered, or the one probed last.
	Addr string `json:"addr"`
	// Port and TLS are the settings that reached POP3 (set them as
	// Settings.POP3Port and POP3TLS); 0 and "" when none did.
	Port int     `json:"port,omitempty"`
	TLS  TLSMode `json:"tls,omitempty"`
	// Reached reports whether a POP3 greeting (over TLS if so) came.
	Reached bool `json:"reached"`
	// Error is the failure, in plain words; empty if none.
	Error string `json:"error,omitempty"`
	// LoggedIn reports whether the user's password was accepted; UIDLs
	// is then the number of messages the UIDL command listed.
	LoggedIn bool `json:"logged_in"`
	UIDLs    int  `json:"uidls"`
	// Summary is one line in plain words.
	Summary string `json:"summary"`
}

// pop3Candidates are the POP3 settings a probe tries when Settings name no
// POP3 port: implicit TLS on 995, then STLS on 110.
var pop3Candidates = []struct {
	port int
	tls  TLSMode
}{{995, TLSImplicit}, {110, TLSStartTLS}}

// probePOP3 fills r: the configured POP3, or the usual ports when none is
// configured. Only a configured POP3 that fails is an error.
func probePOP3(ctx context.Context, s Settings, user, loginName, password string, opts *DialOptions, r *POP3Report) error {
	tries := pop3Candidates
	if s.POP3Port != 0 {
		tries = tries[:0:0]
		tries = append(tries, struct {
			port int
			tls  TLSMode
		}{s.POP3Port, s.POP3TLS})
	}
	var last error
	for _, t := range tries {
		ps := s
		ps.POP3Port, ps.POP3TLS = t.port, t.tls
		r.Addr = s.Host.DialAddr(t.port)
		var o DialOptions
		if opts != nil {
			o = *opts
		}
		if s.POP3Port == 0 && (o.Timeout == 0 || o.Timeout > 3*time.Second) {
			o.Timeout = 3 * time.Second // guessing: do not wait long
		}
		c, err := DialPOP3(ctx, ps, &o)
		if err != nil {
			last = err
			continue
		}
		r.Reached, r.Port, r.TLS = true, t.port, t.tls
		if t.tls == "" {
			r.TLS = TLSStartTLS
		}
		defer c.Close()
		if user == "" || password == "" {
			r.Summary = fmt.Sprintf("POP3 answers on port %d (%s); not logged in (no password given)", t.port, r.TLS)
			return nil
		}
		if loginName == "" {
			loginName = user
		}
		if err := c.Login(loginName, password); err != nil {
			r.Error = explainNet(err)
			r.Summary = fmt.Sprintf("POP3 answers on port %d (%s) but refused the login as %q", t.port, r.TLS, loginName)
			return err
		}
		r.LoggedIn = true
		list, err := c.UIDL(maxProbeUIDLs)
		if err != nil {
			r.Error = explainNet(err)
			r.Summary = fmt.Sprintf("POP3 on port %d (%s): logged in, but UIDL failed", t.port, r.TLS)
			return err
		}
		r.UIDLs = len(list)
		r.Summary = fmt.Sprintf("POP3 on port %d (%s): logged in, %d messages with UIDLs (kept for POP3 clients after the move)", t.port, r.TLS, len(list))
		c.Quit()
		return nil
	}
	if last != nil {
		r.Error = explainNet(last)
	}
	if s.POP3Port == 0 {
		r.Summary = "no POP3 found on ports 995 and 110: POP3 clients' UIDLs cannot be kept (set the POP3 port if the server has one)"
		return nil
	}
	r.Summary = "POP3 not reached: " + r.Error
	return last
}

// maxProbeUIDLs bounds the UIDL listing of a probe.
const maxProbeUIDLs = 1 << 20
