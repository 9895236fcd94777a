package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MAILFERRY_CPUPROFILE makes any command write a CPU profile (gzip, as
// runtime/pprof writes it) once it ends; a file that cannot be made is
// said and the command still runs.
func TestCPUProfileEnv(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.pprof")
	cmd := exec.Command(mailferryBin, "version")
	cmd.Env = append(os.Environ(), "MAILFERRY_CPUPROFILE="+prof)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile is not gzip: % x", b[:min(len(b), 8)])
	}
	cmd = exec.Command(mailferryBin, "version")
	cmd.Env = append(os.Environ(), "MAILFERRY_CPUPROFILE="+filepath.Join(dir, "no", "such", "dir", "cpu.pprof"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("MAILFERRY_CPUPROFILE")) || !bytes.Contains(out, []byte("mailferry ")) {
		t.Fatalf("unwritable profile: %v\n%s", err, out)
	}
}

// MAILFERRY_TRACE makes any command write a Go execution trace (for `go
// tool trace`) once it ends; a file that cannot be made is said and the
// command still runs.
func TestTraceEnv(t *testing.T) {
	dir := t.TempDir()
	tr := filepath.Join(dir, "run.trace")
	cmd := exec.Command(mailferryBin, "version")
	cmd.Env = append(os.Environ(), "MAILFERRY_TRACE="+tr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	b, err := os.ReadFile(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) {
		t.Fatalf("not an execution trace: %q", b[:min(len(b), 16)])
	}
	cmd = exec.Command(mailferryBin, "version")
	cmd.Env = append(os.Environ(), "MAILFERRY_TRACE="+filepath.Join(dir, "no", "such", "dir", "run.trace"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("MAILFERRY_TRACE")) || !bytes.Contains(out, []byte("mailferry ")) {
		t.Fatalf("unwritable trace: %v\n%s", err, out)
	}
}
