// Package ui is Mailferry's desktop assistant, built with Fyne: the
// test-migration wizard, the domains and dashboard view, and the message
// viewer.
//
// Invariants:
//   - The UI talks only to a *core.Core; it holds no mail and no password
//     beyond the wizard's in-memory state, and never writes either to disk
//     (only the check report, when the admin saves it).
//   - Long work (anything touching the network or the store) never runs on
//     the UI goroutine: it runs in a goroutine owned by the UI, with a
//     context the admin can cancel, that recovers panics with a logged stack
//     and hands its results back through fyne.Do.
//   - Every input is validated inline, next to its field, before anything is
//     changed; bad input changes nothing.
//   - A failure is said once, in words (core.Explain), with the technical
//     detail one click away; editing an input clears results of the old
//     input; error lines are always laid out, so fields never move.
//   - Every page fits an 800x600 window; Enter runs the default action,
//     Escape closes the top dialog, a dialog opens with its first field
//     focused, and a destructive action is never the default.
//   - Close stops every goroutine the UI started and the demo old server;
//     after Close no callback touches a widget.
package ui

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

//go:embed icon.png
var iconPNG []byte

// Icon is the application icon (a copy of assets/icon.png).
var Icon fyne.Resource = fyne.NewStaticResource("mailferry.png", iconPNG)

// closeWait bounds how long Close waits for the UI's goroutines.
const closeWait = 5 * time.Second

// Options configure New. A nil *Options means the defaults.
type Options struct {
	// StartErr is the error Core.Start returned, if any: the assistant
	// still opens and shows it at the top of the window.
	StartErr error
}

// UI is the assistant's main window and its state.
type UI struct {
	app  fyne.App
	win  fyne.Window
	core *core.Core
	log  *slog.Logger

	tabs   *container.AppTabs
	wizard *wizard
	dash   *dashboard
	banner *widget.Label

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// serial makes do hold mu: under Fyne's test driver fyne.Do runs in
	// the calling goroutine, so callbacks from different goroutines would
	// otherwise touch widgets at the same time (the real drivers run them
	// all on the one UI goroutine).
	serial bool
	mu     sync.Mutex

	// dialogs are the open dialogs the keyboard reaches, the top last
	// (showDialog).
	dialogs []*openDialog
}

// do runs fn on the UI goroutine (fyne.Do), unless the UI is closing:
// once the app quits, Fyne runs what is handed to fyne.Do on the calling
// goroutine, and widgets touched there log "Error in Fyne call thread".
func (u *UI) do(fn func()) {
	run := func() {
		if u.ctx.Err() != nil {
			return
		}
		fn()
	}
	if u.ctx.Err() != nil {
		return
	}
	if !u.serial {
		fyne.Do(run)
		return
	}
	fyne.Do(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		run()
	})
}

// New builds the assistant's window for c in a. Call ShowAndRun (or Show)
// and, when the app ends, Close.
func New(a fyne.App, c *core.Core, opts *Options) *UI {
	return newUI(a, c, opts, true)
}

// newUI is New; tests turn the dashboard's periodic refresh off
// (autoRefresh false), which also serializes UI callbacks (see UI.serial).
func newUI(a fyne.App, c *core.Core, opts *Options, autoRefresh bool) *UI {
	var o Options
	if opts != nil {
		o = *opts
	}
	u := &UI{app: a, core: c, log: c.Logger().With("component", "ui"), serial: !autoRefresh}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.win = a.NewWindow("Mailferry")
	u.win.SetIcon(Icon)
	u.banner = widget.NewLabel("")
	u.banner.Wrapping = fyne.TextWrapWord
	u.banner.Importance = widget.DangerImportance
	u.banner.Hide()
	if o.StartErr != nil {
		u.banner.SetText(fmt.Sprintf("Mailferry could not start its mail services: %v\n"+
			"The assistant works, but the migration step needs Mailferry's IMAP front end: "+
			"free the port, or set another (in the configuration file, or e.g. mailferry gui --imap 127.0.0.1:1143), and restart Mailferry.", o.StartErr))
		u.banner.Show()
	}
	u.wizard = newWizard(u)
	u.dash = newDashboard(u)
	u.tabs = container.NewAppTabs(
		container.NewTabItem("Test migration", u.wizard.content()),
		container.NewTabItem("Domains & dashboard", u.dash.content()),
	)
	u.tabs.OnSelected = func(t *container.TabItem) {
		if t.Text == "Domains & dashboard" {
			u.dash.refresh()
		}
	}
	u.win.SetContent(container.NewBorder(u.banner, nil, nil, nil, u.tabs))
	u.win.Canvas().SetOnTypedKey(u.typedKey)
	u.win.Resize(fyne.NewSize(1024, 720))
	u.win.SetOnClosed(u.Close)
	if autoRefresh {
		u.dash.start()
	}
	return u
}

// Window is the main window.
func (u *UI) Window() fyne.Window { return u.win }

// ShowAndRun shows the window and runs the app until it quits.
func (u *UI) ShowAndRun() { u.win.ShowAndRun() }

// ShowDashboard switches to the domains and dashboard tab.
func (u *UI) ShowDashboard() {
	u.tabs.SelectIndex(1)
	u.dash.refresh()
}

// Close cancels the UI's work, waits for its goroutines and stops the demo
// old server. It does not close the Core. It is safe to call more than once.
func (u *UI) Close() {
	u.once.Do(func() {
		u.cancel()
		u.wizard.cancelTask()
		// Close may run on the UI goroutine (window closed): wait for the
		// UI's goroutines, all canceled, but never hang the window on one
		// stuck in the network.
		done := make(chan struct{})
		go func() {
			u.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeWait):
			u.log.Warn("closing with work still running", "waited", closeWait)
		}
		u.wizard.welcome.stopDemo()
	})
}

// goSafe runs fn in a goroutine owned by u (fn watches a context derived
// from u.ctx); a panic is logged with its stack and reported to done as an
// error. done, if not nil, runs on the UI goroutine.
func (u *UI) goSafe(name string, fn func() error, done func(error)) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					u.log.Error("panic", "goroutine", name, "panic", r, "stack", string(debug.Stack()))
					err = fmt.Errorf("internal error in %s: %v", name, r)
				}
			}()
			err = fn()
		}()
		if done != nil {
			u.do(func() { done(err) })
		}
	}()
}

// refreshTree refreshes o and everything in it, innermost first, so that
// containers lay their children out again after texts changed or error
// lines appeared: Fyne lays a container out again only when it is
// refreshed or resized.
func refreshTree(o fyne.CanvasObject) {
	switch c := o.(type) {
	case *fyne.Container:
		for _, ch := range c.Objects {
			refreshTree(ch)
		}
	case *container.Scroll:
		refreshTree(c.Content)
	case *container.Split:
		refreshTree(c.Leading)
		refreshTree(c.Trailing)
	case *container.AppTabs:
		if s := c.Selected(); s != nil {
			refreshTree(s.Content)
		}
	case *widget.Form:
		for _, it := range c.Items {
			refreshTree(it.Widget)
		}
	case *widget.Card:
		if c.Content != nil {
			refreshTree(c.Content)
		}
	}
	o.Refresh()
}
