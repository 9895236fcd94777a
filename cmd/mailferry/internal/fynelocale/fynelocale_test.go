//go:build !windows && !darwin && !js && !android

package fynelocale_test

import (
	"testing"

	"mailferry/cmd/mailferry/internal/fynelocale"
)

func TestLanguage(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" = leave LANGUAGE alone
	}{
		{"unset", nil, ""},
		{"C", map[string]string{"LANG": "C"}, ""},
		{"POSIX", map[string]string{"LC_ALL": "POSIX"}, ""},
		{"C.UTF-8", map[string]string{"LANG": "C.UTF-8"}, "en"},
		{"LC_ALL C.UTF-8 over LANG", map[string]string{"LC_ALL": "C.UTF-8", "LANG": "de_DE.UTF-8"}, "en"},
		{"LC_MESSAGES POSIX.utf8", map[string]string{"LC_MESSAGES": "POSIX.utf8"}, "en"},
		{"C@modifier", map[string]string{"LANG": "C@euro"}, "en"},
		{"real locale", map[string]string{"LANG": "de_DE.UTF-8"}, ""},
		{"LANGUAGE wins", map[string]string{"LANG": "C.UTF-8", "LANGUAGE": "fr:de"}, ""},
		{"LANGUAGE entry C", map[string]string{"LANG": "fr_FR.UTF-8", "LANGUAGE": "fr:C.UTF-8"}, "fr:en"},
		{"LANGUAGE ignored under bare C", map[string]string{"LANG": "C", "LANGUAGE": "C.UTF-8"}, ""},
		{"LANGUAGE alone", map[string]string{"LANGUAGE": "C.UTF-8"}, "en"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := fynelocale.Language(func(k string) string { return tc.env[k] })
			if ok != (tc.want != "") || got != tc.want {
				t.Errorf("Language = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}
