package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Supervision of the services Core starts. Every service runs in a
// goroutine owned by the supervisor (Close waits for it) under the Core's
// context. A service that panics (logged once, with its stack) or stops
// while the Core runs is started again after a backoff that doubles from
// restartMin up to restartMax, and falls back to restartMin once the
// service has run for restartStable. A service that cannot be started
// again (its listener cannot be reopened, say) restartGiveUp times in a
// row fails the Core: Failed is closed and Err says why, and `mailferry
// serve` exits non-zero. No service is ever left dead while the process
// runs on.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 30 * time.Second
	restartStable = time.Minute
	restartGiveUp = 5
)

// service is one long-running part of the Core.
type service struct {
	name string
	// restart, when set, prepares a run after the first (reopens a
	// listener); an error means the service cannot run now.
	restart func() error
	// run serves until ctx ends (then its error is ignored) or the
	// service fails.
	run func(ctx context.Context) error
}

// supervisor runs services; see the constants above.
type supervisor struct {
	ctx  context.Context
	log  *slog.Logger
	wg   *sync.WaitGroup
	hook func(service string) error // Config.ServiceHook

	failOnce sync.Once
	failed   chan struct{}
	err      error // set before failed is closed
}

func newSupervisor(ctx context.Context, log *slog.Logger, wg *sync.WaitGroup, hook func(string) error) *supervisor {
	return &supervisor{ctx: ctx, log: log, wg: wg, hook: hook, failed: make(chan struct{})}
}

// errPanic marks a run that ended in a panic.
var errPanic = errors.New("panic")

// start runs svc in a goroutine owned by the supervisor until its context
// ends.
func (s *supervisor) start(svc service) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(svc)
	}()
}

func (s *supervisor) loop(svc service) {
	backoff := restartMin
	startFailures := 0
	for first := true; ; first = false {
		if !first {
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, restartMax)
		}
		began := time.Now()
		startErr, runErr := s.attempt(svc, first)
		if s.ctx.Err() != nil {
			return
		}
		if startErr != nil {
			startFailures++
			if startFailures >= restartGiveUp {
				s.fail(fmt.Errorf("service %s cannot be restarted (%d attempts): %w", svc.name, startFailures, startErr))
				return
			}
			s.log.Error("service cannot start; retrying", "service", svc.name, "attempt", startFailures, "in", backoff, "err", startErr)
			continue
		}
		startFailures = 0
		if time.Since(began) >= restartStable {
			backoff = restartMin
		}
		s.log.Error("service stopped; restarting", "service", svc.name, "in", backoff, "err", runErr)
	}
}

// attempt prepares and runs svc once. startErr says it could not start;
// runErr why it stopped (wrapping errPanic after a panic, which is logged
// here with its stack).
func (s *supervisor) attempt(svc service, first bool) (startErr, runErr error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("service panicked", "service", svc.name, "panic", r, "stack", string(debug.Stack()))
			startErr, runErr = nil, fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	if !first && svc.restart != nil {
		if err := svc.restart(); err != nil {
			return err, nil
		}
	}
	if s.hook != nil {
		if err := s.hook(svc.name); err != nil {
			return err, nil
		}
	}
	if !first {
		s.log.Info("service restarted", "service", svc.name)
	}
	return nil, svc.run(s.ctx)
}

func (s *supervisor) fail(err error) {
	s.failOnce.Do(func() {
		s.log.Error("service failed for good; the process must stop", "err", err)
		s.err = err
		close(s.failed)
	})
}
