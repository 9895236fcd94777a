package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestHeadlessQuietUnderCLocale runs headless commands of the full build
// (the one that links Fyne, unlike the nogui build the other black-box tests
// use) under the locales servers and cron have, and wants nothing on
// stderr: Fyne's package init used to log "Error parsing user locale C".
func TestHeadlessQuietUnderCLocale(t *testing.T) {
	switch runtime.GOOS {
	case "windows", "darwin", "js", "android":
		t.Skip("the locale is read from the environment only on Unix")
	}
	if testing.Short() {
		t.Skip("builds the GUI binary")
	}
	bin := filepath.Join(t.TempDir(), "mailferry-gui")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building mailferry with the assistant: %v\n%s", err, out)
	}
	data := t.TempDir()
	// Everything but the locale variables, which each case sets.
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES":
			continue
		}
		base = append(base, kv)
	}
	base = append(base, "XDG_CONFIG_HOME="+filepath.Join(data, "config"))
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"unset", nil},
		{"LANG=C", []string{"LANG=C"}},
		{"LANG=C.UTF-8", []string{"LANG=C.UTF-8"}},
		{"LC_ALL=C.UTF-8", []string{"LC_ALL=C.UTF-8", "LANG=en_US.UTF-8"}},
		{"LANG=POSIX", []string{"LANG=POSIX"}},
	} {
		for _, args := range [][]string{{"status"}, {"domain", "list"}, {"version"}} {
			t.Run(tc.name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				cmd := exec.Command(bin, append(args, "--data", data)...)
				if args[0] == "version" {
					cmd.Args = cmd.Args[:2]
				}
				cmd.Env = append(append([]string{}, base...), tc.env...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%v: %v\nstderr:\n%s", cmd.Args, err, stderr.String())
				}
				if stderr.Len() != 0 {
					t.Errorf("%v with %v wrote on stderr:\n%s", cmd.Args, tc.env, stderr.String())
				}
			})
		}
	}
}
