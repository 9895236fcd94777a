package migrate

// UIDLs kept: when the old server offers POP3 (Settings.POP3Port), the
// UIDL list of the account's old INBOX is read once, before INBOX is
// copied, each UIDL with the blob key of its message's bytes (RETR; in
// the store's form: SHA-256 or BLAKE3, store.NewKeyHash), and
// recorded in the store (store.KeepUIDLs). The POP3 front end then serves
// each UIDL for the copied message of the same bytes (the same hash as
// its blob key), whatever the order of the two views.

import (
	"context"
	"fmt"

	"mailferry/core/oldserver"
	"mailferry/core/store"
)

// Bounds of one old UIDL list: messages listed, and bytes of one message.
const (
	maxOldUIDLs     = 1 << 20
	maxOldPOP3Bytes = 1 << 30
)

// keepOldUIDLs reads and records the old POP3 UIDLs of acct, once: not
// when the settings name no POP3 port, nor when they were recorded
// already. A failure is logged and recorded nothing; the next job tries
// again (its messages, copied meanwhile, are matched all the same).
func (e *Engine) keepOldUIDLs(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials) {
	if s.POP3Port == 0 {
		return
	}
	if done, err := e.st.UIDLsRead(ctx, acct.ID); err != nil || done {
		return
	}
	list, err := e.readOldUIDLs(ctx, acct, s, cred)
	if err == nil {
		err = e.st.KeepUIDLs(ctx, acct.ID, list)
	}
	if err != nil {
		e.log.Warn("migrate: old POP3 UIDLs not read; POP3 clients may download the mailbox again", "account", acct.Address, "err", err)
		return
	}
	e.log.Info("migrate: old POP3 UIDLs kept", "account", acct.Address, "uidls", len(list))
}

// readOldUIDLs logs in to the old POP3 as the account's old login (or a
// master user for it) and lists its UIDLs with their messages' hashes.
func (e *Engine) readOldUIDLs(ctx context.Context, acct *store.Account, s *oldSettings, cred Credentials) ([]store.KeptUIDL, error) {
	c, err := oldserver.DialPOP3(ctx, *s, e.opts.Dial)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Until this returns, a canceled job closes the connection.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	name := acct.OldLogin
	if name == "" {
		name = acct.Address
	}
	if cred.master() {
		ms := *s
		if cred.MasterUser != "" {
			ms.MasterUser = cred.MasterUser
		}
		err = c.LoginMaster(ms, name, ms.MasterUser, cred.MasterPassword)
	} else {
		err = c.Login(name, cred.Password)
	}
	if err != nil {
		return nil, err
	}
	uidls, err := c.UIDL(maxOldUIDLs)
	if err != nil {
		return nil, err
	}
	out := make([]store.KeptUIDL, 0, len(uidls))
	seen := map[string]bool{}
	for _, u := range uidls {
		if seen[u.UIDL] {
			return nil, fmt.Errorf("migrate: old POP3 lists UIDL %q twice", u.UIDL)
		}
		seen[u.UIDL] = true
		h := e.st.NewKeyHash() // the key the copied message gets
		if _, err := c.Retr(u.Num, h, maxOldPOP3Bytes); err != nil {
			return nil, fmt.Errorf("migrate: old POP3 message %d: %w", u.Num, err)
		}
		out = append(out, store.KeptUIDL{UIDL: u.UIDL, BlobKey: h.Key()})
	}
	c.Quit()
	return out, nil
}
