package trial_test

import (
	"strings"
	"testing"
	"time"

	"mailferry/core/trial"
)

func TestReportText(t *testing.T) {
	r := &trial.Report{Address: "a@example.test", Time: time.Unix(0, 0).UTC(),
		Checks: []trial.Check{{Sample: "plain", Name: "identical bytes", OK: true, Detail: "same"}, {Sample: "html", Name: "same flags", OK: false, Detail: "old [\\Seen], new []"}},
		Client: trial.ClientSettings{Host: "127.0.0.1", Port: 1143, Security: "STARTTLS", User: "a@example.test"}}
	txt := r.Text()
	for _, want := range []string{"1 of 2 checks FAILED", "[FAIL] html: same flags", "[ok  ] plain: identical bytes", "Port: 1143 (STARTTLS)", "User name: a@example.test"} {
		if !strings.Contains(txt, want) {
			t.Errorf("report lacks %q:\n%s", want, txt)
		}
	}
	if r.OK() || r.Failed() != 1 {
		t.Errorf("OK %v failed %d", r.OK(), r.Failed())
	}
}
