package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestWritesUseStatementCache: no write prepares a statement on its
// transaction (tx.PrepareContext): the SQLite driver compiles such a
// statement anew at each call, bypassing its cache of prepared statements
// (_stmt_cache_size), and in a STORE, EXPUNGE, COPY or MOVE it did so on
// the writer connection, with the writer held (two compilations a STORE,
// about a tenth of its writer time in a profile of BenchmarkStoreAlone).
// Statements run again and again in a transaction go through txStmt.
func TestWritesUseStatementCache(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "PrepareContext" && sel.Sel.Name != "Prepare") {
				return true
			}
			recv := sel.X
			if s, ok := recv.(*ast.SelectorExpr); ok {
				recv = s.Sel
			}
			if id, ok := recv.(*ast.Ident); ok && id.Name == "tx" {
				t.Errorf("%s: a statement prepared on a transaction, compiled anew at each call: use txStmt", fset.Position(call.Pos()))
			}
			return true
		})
	}
}
