package migrate

import (
	"testing"
	"time"
)

func TestLocalName(t *testing.T) {
	courier := nsInfo{prefix: "INBOX.", delim: '.', others: []string{"#shared.", "#users."}}
	dovecot := nsInfo{delim: '/', others: []string{"shared/"}}
	tests := []struct {
		ns   nsInfo
		old  string
		want string
	}{
		{courier, "INBOX", "INBOX"},
		{courier, "inbox", "INBOX"},
		{courier, "INBOX.Sent", "Sent"},
		{courier, "INBOX.Données.Été 2020", "Données.Été 2020"},
		{courier, "#shared.team", ""},
		{courier, "Outside", "Outside"},
		{dovecot, "INBOX/child", "INBOX/child"},
		{dovecot, "日本語", "日本語"},
		{dovecot, "shared/bob/INBOX", ""},
	}
	for _, tc := range tests {
		if got := tc.ns.localName(tc.old); got != tc.want {
			t.Errorf("localName(%q) with prefix %q = %q, want %q", tc.old, tc.ns.prefix, got, tc.want)
		}
	}
}

func TestGuessSpecialUse(t *testing.T) {
	for name, want := range map[string]string{
		"Sent": `\Sent`, "Sent Items": `\Sent`, "drafts": `\Drafts`, "Deleted Items": `\Trash`,
		"Spam": `\Junk`, "Archive": `\Archive`, "Work": "",
	} {
		if got := guessSpecialUse(name); got != want {
			t.Errorf("guessSpecialUse(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestSameFlagsAndDate(t *testing.T) {
	if !sameFlags([]string{`\Seen`, "Work"}, []string{"work", `\seen`}) || sameFlags([]string{`\Seen`}, nil) {
		t.Error("sameFlags")
	}
	a := time.Date(2020, 1, 1, 12, 0, 0, 0, time.FixedZone("", 3600))
	if !sameDate(a, a.In(time.FixedZone("x", 3600))) || sameDate(a, a.UTC()) {
		t.Error("sameDate must compare instant and zone offset")
	}
}
