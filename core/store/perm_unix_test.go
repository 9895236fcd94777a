//go:build unix

package store_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"mailferry/core/store"
)

// withUmask runs the rest of the test under umask mask. The umask is the
// process's: these tests do not run in parallel.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mustPerm(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s is %#o, want %#o", filepath.Base(path), got, want)
	}
}

// openAndWrite opens the store at path, writes a message (so that the
// -wal and -shm files and a pack exist) and checks the modes of every
// file the store made.
func openAndWrite(t *testing.T, path string) {
	t.Helper()
	s := openAt(t, path, 1<<20)
	_, inbox := inboxOf(t, s, "a@example.test")
	if _, err := s.AppendMessage(context.Background(), inbox, &store.NewMessage{Body: body(1, 1000)}); err != nil {
		t.Fatal(err)
	}
	if store.EngineUnderTest() == store.EngineSQLite {
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			mustPerm(t, name, 0o600)
		}
	}
	mustPerm(t, path+"-packs", 0o700)
	if len(packFiles(t, path)) == 0 {
		t.Fatal("no pack written")
	}
	// The packs and the lock file beside them.
	ents, err := os.ReadDir(path + "-packs")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		mustPerm(t, filepath.Join(path+"-packs", e.Name()), 0o600)
	}
}

// With the usual umask 022 and an existing 0755 directory, the database,
// its -wal and -shm, the packs directory and the packs are private, and
// the directory, which is not the store's, is left as it was.
func TestOpenFileModesExistingDir(t *testing.T) {
	withUmask(t, 0o022)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	openAndWrite(t, filepath.Join(dir, "mail.db"))
	mustPerm(t, dir, 0o755)
}

// A data directory Open creates (with its missing parents) is 0700, also
// under a umask that would leave it open (0) or take the owner's own bits
// (0277: the store must still be able to write).
func TestOpenFileModesNewDir(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o277} {
		t.Run(fmt.Sprintf("umask%03o", mask), func(t *testing.T) {
			base := t.TempDir() // before the umask: under 0277 it would be unwritable
			withUmask(t, mask)
			top := filepath.Join(base, "var")
			path := filepath.Join(top, "lib", "mailferry", "mail.db")
			openAndWrite(t, path)
			for _, d := range []string{top, filepath.Dir(filepath.Dir(path)), filepath.Dir(path)} {
				mustPerm(t, d, 0o700)
			}
		})
	}
}

// A packs directory left open (an older Mailferry, or a restore) is made
// 0700; a database file that exists keeps its mode.
func TestOpenFileModesExistingPacksDir(t *testing.T) {
	withUmask(t, 0o022)
	path := dbPath(t)
	if err := os.Mkdir(path+"-packs", 0o755); err != nil {
		t.Fatal(err)
	}
	openAndWrite(t, path)
}
