package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// welcomeStep is the wizard's first page: what the test migration does,
// and the demo old server for those without one at hand.
type welcomeStep struct {
	w *wizard

	demo       *core.DemoServer // nil until started
	demoBtn    *widget.Button
	demoStatus *widget.Label
}

func (pg *welcomeStep) shown()            {}
func (pg *welcomeStep) nextLabel() string { return "Next" }
func (pg *welcomeStep) next()             { pg.w.show(stepOldServer) }

func (pg *welcomeStep) page() fyne.CanvasObject {
	intro := widget.NewRichTextFromMarkdown(`## Try Mailferry with one test account first

This assistant runs a **test migration**: it moves one test account from your old mail server to Mailferry, exactly as it will happen for your users, and then checks that every message arrived unchanged.

1. **Old server** — where your old IMAP and SMTP server is, and a connection test.
2. **Test domain and account** — a domain that does not exist yet (default *example.test*) and a test account you created on the old server.
3. **Sample messages** — the assistant sends a plain, an HTML and native-language messages through the old server.
4. **Migrate** — Mailferry turns on migration for the test domain and logs in as the test user, like a mail client.
5. **Check** — every sample is compared byte for byte, with a viewer and a report you can save.

**Run the test on a private network only.** Mailferry listens on this computer only (127.0.0.1), the test domain is not a real one, and the test account's password travels to the old server like a mail client's would: keep the test away from the internet and from real users' mail.

No old server at hand? Start the built-in **demo old server**: an IMAP and SMTP server with a few users and realistic mail, running on this computer only.`)
	intro.Wrapping = fyne.TextWrapWord
	pg.demoStatus = widget.NewLabel("")
	pg.demoStatus.Wrapping = fyne.TextWrapWord
	pg.demoBtn = widget.NewButton("Start the demo old server", pg.startDemo)
	return container.NewVScroll(container.NewVBox(intro, container.NewHBox(pg.demoBtn), pg.demoStatus))
}

// startDemo starts the demo old server and fills the wizard with it.
func (pg *welcomeStep) startDemo() {
	if pg.demo != nil {
		return
	}
	var srv *core.DemoServer
	pg.w.runTask("Starting the demo old server", 30*time.Second, func(ctx context.Context, t task) error {
		var err error
		srv, err = pg.w.u.core.StartDemo(pg.w.u.ctx) // lives until the UI closes
		return err
	}, func(err error) {
		if err != nil {
			pg.demoStatus.SetText("The demo old server did not start: " + err.Error())
			return
		}
		pg.demo = srv
		pg.demoBtn.Disable()
		pg.useDemo()
	})
}

// useDemo fills the old-server form and the test account from the demo.
func (pg *welcomeStep) useDemo() {
	srv := pg.demo
	s := core.DemoSettings(srv)
	// Its certificate is self-signed: the next step shows it to be
	// trusted, as an admin's own old server's would be.
	s.PinnedSHA256 = ""
	pg.w.oldServer.old.set(s)
	user := srv.SeedAccount()
	var pass string
	for _, u := range srv.Users() {
		if u.Address == user {
			pass = u.Password
		}
	}
	pg.w.account.domain.SetText(srv.Domain())
	pg.w.account.address.SetText(user)
	pg.w.account.password.SetText(pass)
	var users []string
	for _, u := range srv.Users() {
		users = append(users, fmt.Sprintf("%s (password %s)", u.Address, u.Password))
	}
	pg.w.u.win.Canvas().Unfocus() // Enter is Next now
	pg.demoStatus.SetText(fmt.Sprintf("The demo old server runs on this computer: IMAP %s, SMTP %s, both with STARTTLS and a self-signed certificate "+
		"(the next step shows it, to be trusted).\nIts users: %s.\nThe next steps are filled in for %s: just press Next.",
		srv.IMAPAddr(), srv.SMTPAddr(), strings.Join(users, ", "), user))
}

func (pg *welcomeStep) stopDemo() {
	if pg.demo != nil {
		if err := pg.demo.Close(); err != nil {
			pg.w.u.log.Warn("demo old server", "err", err)
		}
	}
}
