package imapfront_test

import (
	"fmt"
	"testing"
)

// TestSyntaxErrorBeforeLiteralPlus: a command refused for its syntax
// before a non-synchronizing literal it announces: the literal's bytes,
// sent at once, must not be read as commands.
func TestSyntaxErrorBeforeLiteralPlus(t *testing.T) {
	e := newEnv(t, nil)
	lit := "x\r\nZ DELETE Trash\r\n"
	for _, cmd := range []string{
		"SEARCH SINCE 99-Foo-2024 TEXT {%d+}",
		"SEARCH NOSUCHKEY TEXT {%d+}",
		"SEARCH CHARSET X-NONE TEXT {%d+}",
	} {
		if got, deleted := trashDeletedBy(e, "x1 "+fmt.Sprintf(cmd, len(lit))+"\r\n"+lit); deleted {
			t.Errorf("%s: Trash deleted by the literal's line; server said %.300q", cmd, got)
		}
	}
}
