package core_test

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mailferry/core"
)

// syncBuffer is a log sink safe for the services' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// supervisedCore starts a Core serving only IMAP on a free port, with hook
// as its Config.ServiceHook, and returns it with its log.
func supervisedCore(t *testing.T, hook func(string) error) (*core.Core, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	co, err := core.Open(core.Config{
		DataDir:             t.TempDir(),
		Hostname:            "mail.test",
		IMAPListen:          "127.0.0.1:0",
		IMAPSListen:         core.Off,
		SMTPListen:          core.Off,
		SubmissionListen:    core.Off,
		SubmissionTLSListen: core.Off,
		POP3Listen:          core.Off,
		POP3SListen:         core.Off,
		Logger:              slog.New(slog.NewTextHandler(logs, nil)),
		ServiceHook:         hook,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	return co, logs
}

// greeting dials addr and reads the IMAP greeting.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestPanickingServiceRestarted makes the IMAP service panic as it starts;
// the supervisor logs the panic with its stack, restarts the service, and
// IMAP answers again.
func TestPanickingServiceRestarted(t *testing.T) {
	var mu sync.Mutex
	starts := map[string]int{}
	co, logs := supervisedCore(t, func(name string) error {
		mu.Lock()
		starts[name]++
		n := starts[name]
		mu.Unlock()
		if name == "imap" && n == 1 {
			panic("injected by the test")
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	var line string
	var err error
	for time.Now().Before(deadline) {
		if line, err = greeting(co.Addr("imap")); err == nil && strings.HasPrefix(line, "* OK") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(line, "* OK") {
		t.Fatalf("IMAP does not answer after the panic: %q, %v\nlog:\n%s", line, err, logs)
	}
	mu.Lock()
	if starts["imap"] != 2 {
		t.Errorf("imap started %d times, want 2 (once, then once more after the panic)", starts["imap"])
	}
	mu.Unlock()
	log := logs.String()
	for _, want := range []string{
		`msg="service panicked" service=imap panic="injected by the test" stack=`,
		`msg="service stopped; restarting" service=imap`,
		`msg="service restarted" service=imap`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if strings.Count(log, "service panicked") != 1 {
		t.Errorf("want one panic logged:\n%s", log)
	}
	if co.Err() != nil {
		t.Errorf("Err = %v after a restart that worked", co.Err())
	}
}

// TestServiceThatCannotRestartFailsCore: a service that cannot be started
// again fails the Core visibly (Failed, Err), after a few tries, while the
// others run on.
func TestServiceThatCannotRestartFailsCore(t *testing.T) {
	broken := errors.New("injected: cannot start")
	co, logs := supervisedCore(t, func(name string) error {
		if name == "compact" {
			return broken
		}
		return nil
	})
	select {
	case <-co.Failed():
	case <-time.After(15 * time.Second):
		t.Fatalf("Core did not fail\nlog:\n%s", logs)
	}
	if err := co.Err(); !errors.Is(err, broken) || !strings.Contains(err.Error(), "compact") {
		t.Errorf("Err = %v, want the compact service's error", err)
	}
	if !strings.Contains(logs.String(), "service failed for good") {
		t.Errorf("log does not say so:\n%s", logs)
	}
	if line, err := greeting(co.Addr("imap")); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Errorf("IMAP: %q, %v", line, err)
	}
}
