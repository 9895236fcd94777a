package privfile_test

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"mailferry/core/internal/privfile"
)

func TestWritePrivateWhole(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "new", "key.pem")
	for _, data := range []string{"first", "second, longer"} {
		if err := privfile.Write(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
		fi, _ := os.Stat(path)
		di, _ := os.Stat(filepath.Dir(path))
		if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
			t.Fatalf("modes: file %v, dir %v", fi.Mode().Perm(), di.Mode().Perm())
		}
	}
	left, _ := os.ReadDir(filepath.Dir(path))
	if len(left) != 1 {
		t.Fatalf("files left beside it: %v", left)
	}
}
