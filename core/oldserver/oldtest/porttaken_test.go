package oldtest_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mailferry/core/oldserver/oldtest"
)

// takenPort listens on a free 127.0.0.1 port as another process would: it
// greets every connection with greeting and refuses every command with
// refusal (the line's first word, a tag, is put before it when tagged).
func takenPort(t *testing.T, greeting, refusal string, tagged bool) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				fmt.Fprintf(c, "%s\r\n", greeting)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if tagged {
						tag, _, _ := strings.Cut(line, " ")
						fmt.Fprintf(c, "%s %s\r\n", tag, refusal)
					} else {
						fmt.Fprintf(c, "%s\r\n", refusal)
					}
				}
			}()
		}
	}()
	return ln
}

// greeting is the first line the server at addr sends (over TLS with
// implicit).
func greeting(t *testing.T, addr string, implicit bool) string {
	t.Helper()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 10 * time.Second}
	if implicit {
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting of %s: %v", addr, err)
	}
	return strings.TrimRight(line, "\r\n")
}

// A port another process took between the fixture's choice and the bind
// by Dovecot's or Postfix's master is not taken for theirs, whichever of
// the Dovecot fixture's ports it is: the start fails (both masters exit
// when a listener cannot bind) and is tried again on other ports, and
// every address the fixture gives is served by its own daemons. The other
// process answers in the port's protocol, refusing everything.
func TestDovecotPortTaken(t *testing.T) {
	cases := []struct {
		name              string
		index             int // in the ports startScripted picks
		greeting, refusal string
		tagged, needPOP3  bool
	}{
		{"imap", 0, "* OK another process", "NO another process", true, false},
		{"imaps", 1, "* OK another process", "NO another process", true, false},
		{"smtp", 2, "220 another process", "554 another process", false, false},
		{"smtps", 3, "220 another process", "554 another process", false, false},
		{"pop3", 4, "+OK another process", "-ERR another process", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln := takenPort(t, tc.greeting, tc.refusal, tc.tagged)
			taken := ln.Addr().(*net.TCPAddr).Port
			picked := false
			undo := oldtest.SetPickPorts(func(free []int) []int {
				if !picked && tc.index < len(free) {
					picked = true
					free[tc.index] = taken
				}
				return free
			})
			defer undo()
			srv := oldtest.Start(t, &oldtest.Options{WithSMTP: true})
			if tc.needPOP3 {
				srv.RequirePOP3(t)
			}
			if !picked {
				t.Fatal("the fixture did not pick its ports")
			}
			for _, a := range []string{srv.IMAPAddr, srv.IMAPSAddr, srv.SMTPAddr, srv.SMTPSAddr, srv.POP3Addr} {
				if a == ln.Addr().String() {
					t.Errorf("the fixture is up on %s, another process's port", a)
				}
			}
			c := srv.Dial(t, "alice")
			if err := c.Noop().Wait(); err != nil {
				t.Errorf("IMAP NOOP: %v", err)
			}
			// the greetings of the fixture's Dovecot and Postfix
			for _, s := range []struct {
				addr, want string
				implicit   bool
			}{{srv.IMAPSAddr, "* OK ", true}, {srv.SMTPAddr, "220 mail.example.test ESMTP mailferry-oldtest", false},
				{srv.SMTPSAddr, "220 mail.example.test ESMTP mailferry-oldtest", true}, {srv.POP3Addr, "+OK Dovecot", false}} {
				if s.addr == "" {
					continue
				}
				if g := greeting(t, s.addr, s.implicit); !strings.HasPrefix(g, s.want) || strings.Contains(g, "another process") {
					t.Errorf("%s greets %q, want %q...", s.addr, g, s.want)
				}
			}
		})
	}
}
