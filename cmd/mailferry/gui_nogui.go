//go:build nogui

package main

import (
	"errors"
	"io"
)

// runGUI reports that this build has no desktop assistant.
func runGUI(args []string, stderr io.Writer) error {
	return errors.New("this build of mailferry has no desktop assistant (built with -tags nogui): run 'mailferry serve', or see 'mailferry help'")
}
