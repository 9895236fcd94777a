package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MAILFERRY_CPUPROFILE makes any command write a CPU profile (gzip, as
// runtime/pprof writes it) once it ends, MAILFERRY_TRACE a Go execution
// trace; a file that cannot be made is said and the command still runs.
func TestDiagnosticsEnv(t *testing.T) {
	for _, c := range []struct {
		env    string
		prefix []byte
	}{{"MAILFERRY_CPUPROFILE", []byte{0x1f, 0x8b}}, {"MAILFERRY_TRACE", []byte("go 1.")}} {
		dir := t.TempDir()
		file := filepath.Join(dir, "out")
		cmd := exec.Command(mailferryBin, "version")
		cmd.Env = append(os.Environ(), c.env+"="+file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: version: %v\n%s", c.env, err, out)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, c.prefix) {
			t.Errorf("%s: the file starts % x, want % x", c.env, b[:min(len(b), 8)], c.prefix)
		}
		cmd = exec.Command(mailferryBin, "version")
		cmd.Env = append(os.Environ(), c.env+"="+filepath.Join(dir, "no", "such", "dir", "out"))
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(c.env)) || !bytes.Contains(out, []byte("mailferry ")) {
			t.Errorf("%s unwritable: %v\n%s", c.env, err, out)
		}
	}
}
