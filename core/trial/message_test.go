package trial_test

import (
	"strings"
	"testing"
	"time"

	"mailferry/core/demo"
	"mailferry/core/trial"
)

func TestParseMessageSamples(t *testing.T) {
	var codes []string
	for _, l := range demo.Languages() {
		codes = append(codes, l.Code)
	}
	for _, sm := range demo.Samples("alice@example.test", "alice@example.test", codes, time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))) {
		t.Run(sm.Name, func(t *testing.T) {
			v, err := trial.ParseMessage(sm.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if v.Subject != sm.Subject {
				t.Errorf("subject %q, want %q", v.Subject, sm.Subject)
			}
			if want := strings.ReplaceAll(sm.Text, "\r\n", "\n"); v.Text != want {
				t.Errorf("text %q, want %q", v.Text, want)
			}
			if want := strings.ReplaceAll(sm.HTML, "\r\n", "\n"); v.HTML != want {
				t.Errorf("HTML %q, want %q", v.HTML, want)
			}
			if !strings.Contains(v.From, "alice@example.test") || v.Date.IsZero() {
				t.Errorf("from %q date %v", v.From, v.Date)
			}
		})
	}
}

func TestParseMessageLegacy(t *testing.T) {
	raw := "From: =?iso-8859-1?q?J=F6rg?= <j@example.org>\r\nSubject: =?koi8-r?b?8NLJ18XU?=\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n"
	v, err := trial.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if v.Subject != "Привет" || v.Text != "Grüße\n" || !strings.Contains(v.From, "Jörg") {
		t.Errorf("got %+v", v)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, sm := range demo.Samples("a@example.test", "b@example.test", []string{"de", "ja"}, time.Unix(0, 0)) {
		f.Add(sm.Raw)
	}
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Add([]byte("Content-TrAnsfer-EnCoding:0")) // unknown encoding: no reader (was a nil dereference)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = trial.ParseMessage(raw) // must not panic
	})
}
