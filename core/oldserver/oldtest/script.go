package oldtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The scripts in testdata/oldserver (start.sh, stop.sh, wipe-user.sh) and
// the ports they are given.

func hostPort(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }

// pickPorts is freePorts; a test may make it return a port in use.
var pickPorts = freePorts

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("oldtest: pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) runScript(timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// via bash: works even if a checkout lost the executable bits
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.scripts, name)}, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// The daemons must not get our stdin; their output goes to log files.
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("oldtest: %s: %w\n%s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// scriptsDir finds testdata/oldserver: $MAILFERRY_OLDSERVER_SCRIPTS, else
// upwards from the working directory (go test runs in the package
// directory), else relative to this source file.
func scriptsDir() (string, error) {
	ok := func(d string) bool {
		fi, err := os.Stat(filepath.Join(d, "start.sh"))
		return err == nil && !fi.IsDir()
	}
	if d := os.Getenv(ScriptsEnv); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("oldtest: %s=%s holds no start.sh", ScriptsEnv, d)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if c := filepath.Join(d, "testdata", "oldserver"); ok(c) {
				return c, nil
			}
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil || filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok2 := runtime.Caller(0); ok2 {
		c := filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "oldserver")
		if ok(c) {
			return filepath.Clean(c), nil
		}
	}
	return "", fmt.Errorf("oldtest: cannot find testdata/oldserver/start.sh (set %s)", ScriptsEnv)
}
