package oldtest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Fixtures shared by a whole test process (Shared), one per kind and
// options, started on first use and stopped by StopShared.

var shared struct {
	sync.Mutex
	m map[string]*sharedEntry
}

type sharedEntry struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the fixture for opts shared by the whole test process,
// starting it on first use. Tests sharing it must not depend on each
// other's mail: use distinct users or mailboxes, or WipeUser. It is stopped by
// StopShared (call it from TestMain) or, failing that, by the watchdog when
// the test process exits.
func Shared(t testing.TB, opts *Options) *Server {
	t.Helper()
	return sharedKind(t, Dovecot, opts)
}

func sharedKind(t testing.TB, kind Kind, opts *Options) *Server {
	t.Helper()
	key := string(kind) + "|" + optionsKey(opts)
	shared.Lock()
	if shared.m == nil {
		shared.m = make(map[string]*sharedEntry)
	}
	e := shared.m[key]
	if e == nil {
		e = &sharedEntry{}
		shared.m[key] = e
	}
	shared.Unlock()
	e.once.Do(func() { e.srv, e.err = startScripted(kind, opts) })
	if e.err != nil {
		unavailable(t, e.err)
	}
	return e.srv
}

// StopShared stops every fixture started by Shared. Later calls to Shared
// start new ones.
func StopShared() error {
	shared.Lock()
	m := shared.m
	shared.m = nil
	shared.Unlock()
	var errs []error
	for _, e := range m {
		e.once.Do(func() {}) // wait for a Start in progress
		if e.srv != nil {
			errs = append(errs, e.srv.Stop())
		}
	}
	return errors.Join(errs...)
}

func optionsKey(opts *Options) string {
	o, err := normalize(opts)
	if err != nil {
		return "invalid:" + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%c|%s|%s|%v|%s|%d|%v|", o.Separator, o.MasterUser, o.MasterPassword, o.WithSMTP, o.Fsync, o.MaxUserIPConnections, o.InboxNamespace)
	users := make([]string, 0, len(o.Users))
	for u, p := range o.Users {
		users = append(users, u+":"+p)
	}
	sort.Strings(users)
	b.WriteString(strings.Join(users, ","))
	return b.String()
}
