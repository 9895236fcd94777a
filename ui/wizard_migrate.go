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

// migrateStep turns the test domain's migration on and watches the test
// account move, through Mailferry's IMAP.
type migrateStep struct {
	w *wizard

	migrateInfo *widget.Label
	migrateOut  *widget.Label
	migrated    bool // the test account is on Mailferry
}

func (pg *migrateStep) shown() { pg.migrateInfo.SetText(pg.migrateText()) }

func (pg *migrateStep) nextLabel() string {
	if pg.migrated {
		return "Next"
	}
	return "Start migration"
}

// reset forgets the migration watched.
func (pg *migrateStep) reset() {
	pg.migrated = false
	pg.migrateOut.SetText("")
}

func (pg *migrateStep) page() fyne.CanvasObject {
	pg.migrateInfo = widget.NewLabel("")
	pg.migrateInfo.Wrapping = fyne.TextWrapWord
	pg.migrateOut = widget.NewLabel("")
	return container.NewVScroll(container.NewVBox(pg.migrateInfo, pg.migrateOut))
}

func (pg *migrateStep) migrateText() string {
	addr := pg.w.u.core.Addr("imap")
	if addr == "" {
		addr = "(not listening — see the error at the top)"
	}
	return fmt.Sprintf("Mailferry will now turn on automatic migration for %s and log in as %s through its own IMAP server at %s, "+
		"exactly as the user's mail client would. At that first login Mailferry checks the password at the old server, "+
		"creates the account and copies the whole mailbox, INBOX first, while you watch.",
		strings.TrimSpace(pg.w.account.domain.Text), strings.TrimSpace(pg.w.account.address.Text), addr)
}

func (pg *migrateStep) next() {
	if pg.migrated {
		pg.w.show(stepCheck)
		return
	}
	domain, address, password, err := pg.w.account.accountInput()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
		return
	}
	if len(pg.w.sampling.oldCopies) == 0 {
		pg.w.setStatus("Send the sample messages first (go Back).", true)
		return
	}
	s := pg.w.oldServer.oldSettings
	var last core.TestProgress
	var folders, messages int
	pg.w.runTask("Migrating "+address, migrateTimeout, func(ctx context.Context, t task) error {
		if err := pg.w.u.core.EnableMigration(ctx, domain, s); err != nil {
			return fmt.Errorf("Could not turn on migration for %s: %w", domain, err)
		}
		t.progress(-1, "Migration is on for "+domain+". Logging in to Mailferry's IMAP as "+address+"…")
		p, err := pg.w.u.core.MigrateTestAccount(ctx, s, address, password, func(p core.TestProgress) {
			frac := -1.0
			if p.MessagesTotal > 0 {
				frac = float64(p.Messages) / float64(p.MessagesTotal)
			} else if p.FoldersTotal > 0 {
				frac = float64(p.FoldersDone) / float64(p.FoldersTotal)
			}
			text := folderLines(p)
			pg.w.u.do(func() {
				if pg.w.step == stepMigrate {
					pg.migrateOut.SetText(text)
				}
			})
			t.progress(frac, p.String()) // lays the page out again
		})
		last = p
		if err != nil {
			return err
		}
		// The counts the dashboard and "mailferry status" show, from the
		// same snapshot, so that the three agree.
		folders, messages = last.FoldersTotal, int(last.MessagesTotal)
		if snap, serr := pg.w.u.core.Status(ctx, nil); serr == nil {
			for _, u := range snap.Users() {
				if u.Address == address {
					folders, messages = u.FolderCount, int(u.Messages)
				}
			}
		}
		return nil
	}, func(err error) {
		if err != nil {
			return
		}
		pg.migrated = true
		pg.migrateOut.SetText(fmt.Sprintf("Done: %s and %s of %s are on Mailferry (%s).\n\n%s",
			plural(folders, "folder", "folders"), plural(messages, "message", "messages"), address,
			last.Elapsed.Round(100*time.Millisecond), folderLines(last)))
		pg.w.checking.report = nil
		pg.w.updateNav()
		pg.w.setStatus("The test account is on Mailferry. Press Next to check every sample.", false)
	})
}

// folderLines lists a migration's folders, one a line, with their counts.
func folderLines(p core.TestProgress) string {
	var b strings.Builder
	for _, f := range p.Folders {
		mark := "…"
		switch {
		case f.Seen && f.Messages >= f.Total:
			mark = "✔"
		case !f.Seen:
			mark = "·"
		}
		fmt.Fprintf(&b, "%s %s — %d of %d messages\n", mark, f.Name, f.Messages, f.Total)
	}
	return b.String()
}
