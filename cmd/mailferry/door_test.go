package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The door rule (DESIGN.md): the assistant (ui) and the command line see
// only core.Core. Of the project's packages, ui imports core alone and
// cmd/mailferry core and ui (and its own internal packages); test files may
// use fixtures.
func TestImportsOnlyTheDoor(t *testing.T) {
	for _, c := range []struct {
		dir     string
		allowed []string
	}{
		{"../../ui", []string{"mailferry/core", "mailferry/ui/internal/"}},
		{".", []string{"mailferry/core", "mailferry/ui", "mailferry/cmd/mailferry/internal/"}},
	} {
		files, err := filepath.Glob(filepath.Join(c.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", c.dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path != "mailferry" && !strings.HasPrefix(path, "mailferry/") {
					continue
				}
				ok := false
				for _, a := range c.allowed {
					if path == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(path, a)) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s: go through core.Core (re-export what is needed in core/door.go)", f, path)
				}
			}
		}
	}
}
