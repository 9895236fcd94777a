//go:build !nogui

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"mailferry/core"
	// Before Fyne's lang package reads the locale: see its doc.
	_ "mailferry/cmd/mailferry/internal/fynelocale"
	"mailferry/ui"
)

// runGUI opens the desktop assistant with an in-process Core. If the
// services cannot start (a port is taken, say) the assistant still opens and
// shows why.
func runGUI(args []string, stderr io.Writer) error {
	fs := newFlags("gui", stderr)
	var c common
	c.register(fs)
	var listen listenFlags
	listen.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("the assistant takes no arguments, got %q", fs.Args())
	}
	if noDisplay() {
		return errors.New("no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set): start the assistant in a desktop session, or run 'mailferry serve' for the headless server")
	}
	cfg, err := c.load(stderr)
	if err != nil {
		return err
	}
	listen.apply(&cfg)
	co, err := core.Open(cfg)
	if err != nil {
		return fmt.Errorf("open data in %s: %w", cfg.Defaults().DataDir, err)
	}
	defer co.Close()
	startErr := co.Start()
	if startErr != nil {
		fmt.Fprintln(stderr, "mailferry:", startErr)
	}
	a := app.NewWithID("io.mailferry.assistant")
	a.SetIcon(ui.Icon)
	u := ui.New(a, co, &ui.Options{StartErr: startErr})
	// Ctrl-C or SIGTERM closes the window, as the admin would: the UI
	// stops its work before Fyne's loop ends (a clean shutdown).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			fyne.Do(u.Window().Close)
		case <-quit:
		}
	}()
	u.ShowAndRun()
	signal.Stop(sigs)
	close(quit)
	u.Close()
	return nil
}

// noDisplay reports whether this is a Unix-like system without an X11 or
// Wayland display, where opening a window would fail.
func noDisplay() bool {
	switch runtime.GOOS {
	case "windows", "darwin", "android", "ios", "js":
		return false
	}
	return os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == ""
}
