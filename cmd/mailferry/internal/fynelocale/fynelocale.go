//go:build !windows && !darwin && !js && !android

// Package fynelocale keeps Fyne quiet about a C locale. Fyne's lang
// package, at its package init, reads the user's locale the way
// github.com/jeandeaual/go-locale does (LC_ALL, LC_MESSAGES, LANG, then
// LANGUAGE) and logs "Fyne error: Error parsing user locale C" (three lines
// on stderr) when that locale is C or POSIX with an encoding, as in
// LANG=C.UTF-8, the default of most servers, containers and cron: go-locale
// only recognises a bare "C" or "POSIX". It does so in every command of a
// binary that links Fyne, headless ones included.
//
// Importing this package (for its side effect, from main) sets LANGUAGE,
// before Fyne reads it, to the same list with each C or POSIX entry read as
// "en", which is what the C locale means for messages. A locale Fyne already
// parses is left alone, and nothing is changed outside this one variable.
//
// It runs first because the Go specification (since Go 1.21) initialises
// packages in import-path order among those whose imports are done: this
// package imports only os and strings, and its path ("mailferry/…") sorts
// before "text/template", which Fyne's lang package imports; so it is
// initialised before text/template, hence before Fyne's lang. The
// cmd/mailferry test TestHeadlessQuietUnderCLocale checks it on the built
// binary.
package fynelocale

import (
	"os"
	"strings"
)

func init() {
	if v, ok := Language(os.Getenv); ok {
		os.Setenv("LANGUAGE", v)
	}
}

// Language returns the value LANGUAGE should take so that Fyne parses the
// user's locale, and whether it must be set at all, reading the environment
// through getenv.
func Language(getenv func(string) string) (string, bool) {
	locale := ""
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = getenv(k); locale != "" {
			break
		}
	}
	if locale == "C" || locale == "POSIX" {
		return "", false // go-locale reads this one as "no locale": English
	}
	list := locale
	if l := getenv("LANGUAGE"); l != "" {
		list = l
	}
	if list == "" {
		return "", false
	}
	entries := strings.Split(list, ":")
	changed := false
	for i, e := range entries {
		if isC(e) {
			entries[i], changed = "en", true
		}
	}
	if !changed {
		return "", false
	}
	return strings.Join(entries, ":"), true
}

// isC reports whether a locale name is C or POSIX, with or without an
// encoding or modifier (C.UTF-8, POSIX@euro), or empty (which go-locale
// would also hand to Fyne as a tag it cannot parse).
func isC(name string) bool {
	lang, _, _ := strings.Cut(name, ".")
	lang, _, _ = strings.Cut(lang, "@")
	lang, _, _ = strings.Cut(strings.ReplaceAll(lang, "-", "_"), "_")
	return lang == "" || lang == "C" || lang == "POSIX"
}
