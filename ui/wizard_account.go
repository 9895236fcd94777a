package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// accountStep takes the test domain and account, checks them at the old
// server and prepares the domain on Mailferry.
type accountStep struct {
	w *wizard

	domain, address, password *keyEntry
	fDomain, fAddress, fPass  *field
	removeBtn                 *widget.Button
	accountOut                *widget.Label
	accountOK                 string // input last checked successfully
}

func (pg *accountStep) shown()            { pg.w.u.win.Canvas().Focus(pg.domain) }
func (pg *accountStep) nextLabel() string { return "Next" }

func (pg *accountStep) page() fyne.CanvasObject {
	pg.domain = newKeyEntry()
	pg.domain.SetText("example.test")
	pg.address = newKeyEntry()
	pg.address.SetPlaceHolder("test@example.test")
	pg.password = newKeyPasswordEntry()
	pg.fDomain = newField("Test domain", pg.domain)
	pg.fAddress = newField("Test account", pg.address)
	pg.fPass = newField("Password", pg.password)
	for _, f := range []*field{pg.fDomain, pg.fAddress, pg.fPass} {
		f := f
		e := f.input.(*keyEntry)
		e.OnSubmitted = func(string) { pg.w.goNext() }
		e.OnChanged = func(string) {
			f.setError("")
			pg.accountOut.SetText("") // findings of other input
			pg.w.inputChanged(countErrors(pg.fDomain, pg.fAddress, pg.fPass))
			pg.w.relayout()
		}
	}
	form := widget.NewForm(pg.fDomain.formItem(), pg.fAddress.formItem(), pg.fPass.formItem())
	form.Items[0].HintText = "a domain that does not exist in the real world, so no real mail can reach it"
	form.Items[1].HintText = "an account you created for this test on the old server"
	form.Items[2].HintText = "its password on the old server (kept in memory only)"
	pg.removeBtn = widget.NewButton("Remove the old test account from Mailferry", pg.removeTestAccount)
	pg.removeBtn.Hide()
	intro := widget.NewLabel("Create a test domain and a test account on the old server first (for example example.test and test@example.test), then type them here. " +
		"The assistant logs in at the old server (and shows what it finds there), checks that its SMTP takes mail for the account, " +
		"and creates the test domain on Mailferry — migration for it stays off until the Migrate step.")
	intro.Wrapping = fyne.TextWrapWord
	pg.accountOut = widget.NewLabel("")
	pg.accountOut.Wrapping = fyne.TextWrapWord
	pg.accountOut.Selectable = true
	return container.NewVScroll(container.NewVBox(intro, form, container.NewHBox(pg.removeBtn), pg.accountOut))
}

// accountInput validates the account step's fields inline.
func (pg *accountStep) accountInput() (domain, address, password string, err error) {
	bad := 0
	domain, derr := core.CheckDomainName(pg.domain.Text)
	if strings.TrimSpace(pg.domain.Text) == "" {
		pg.fDomain.setError("Give the test domain, e.g. example.test.")
		bad++
	} else if derr != nil {
		pg.fDomain.setError(plainStoreErr(derr))
		bad++
	} else {
		pg.fDomain.setError("")
	}
	address = strings.ToLower(strings.TrimSpace(pg.address.Text))
	if address == "" {
		pg.fAddress.setError("Give the test account's address, e.g. test@" + firstNonEmpty(domain, "example.test") + ".")
		bad++
	} else if _, d, aerr := core.SplitAddress(address); aerr != nil {
		pg.fAddress.setError(plainStoreErr(aerr))
		bad++
	} else if derr == nil && d != domain {
		pg.fAddress.setError(fmt.Sprintf("The test account must be in the test domain %s.", domain))
		bad++
	} else {
		pg.fAddress.setError("")
	}
	password = pg.password.Text
	if password == "" {
		pg.fPass.setError("Give the test account's password on the old server.")
		bad++
	} else {
		pg.fPass.setError("")
	}
	if bad > 0 {
		return "", "", "", &fieldsError{bad}
	}
	return domain, address, password, nil
}

func (pg *accountStep) next() {
	domain, address, password, err := pg.accountInput()
	if err != nil {
		pg.w.setFieldsStatus(err.(*fieldsError).n)
		return
	}
	key := domain + "\x00" + address + "\x00" + password + "\x00" + settingsKey(pg.w.oldServer.oldSettings)
	if pg.accountOK == key {
		pg.w.show(stepSamples)
		return
	}
	pg.removeBtn.Hide()
	pg.accountOut.SetText("")
	s := pg.w.oldServer.oldSettings
	var res *core.ProbeResult
	pg.w.runTask("Checking "+address+" at the old server", loginTimeout, func(ctx context.Context, t task) error {
		// The full probe: log in, namespaces, separator, special-use
		// folders, and whether the old SMTP takes mail for the account
		// from this computer without a password.
		var perr error
		res, perr = pg.w.u.core.ProbeOldServer(ctx, s, address, password)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(perr, core.ErrOldAuthFailed):
			return newPlainError(fmt.Sprintf("The old server refused the password for %s: check the account and its password.", address), perr)
		case res == nil:
			return fmt.Errorf("Could not check the account at the old server: %w", perr)
		case !res.IMAP.LoggedIn:
			p := probeProblem(res, true)
			return newPlainError("Could not log in at the old server. "+p.String(), firstErr(res.IMAP.Err, perr))
		case !res.SMTP.RecipientAccepted:
			return newPlainError(fmt.Sprintf("The old server's SMTP does not take mail for %s from this computer without a password (%s). "+
				"Mailferry hands it the mail of users who have not moved yet: let this computer relay through it (e.g. Postfix mynetworks).",
				address, firstNonEmpty(res.SMTP.Reply, core.Explain(res.SMTP.Err).Headline, res.SMTP.Summary)), firstErr(res.SMTP.Err, perr))
		}
		if res.IMAP.IgnoresDomain {
			// Any domain's "alice" is this domain's alice there: only this
			// domain may migrate from it.
			s.IgnoresDomain, s.DefaultDomain = true, domain
		}
		if res.IMAP.Login != nil && res.IMAP.Login.Form == core.LoginLocal {
			// The old server knows the test account only by its bare
			// name: its bare names are this domain's (the first logins of
			// the domain's users may try them).
			s.DefaultDomain = domain
		}
		t.progress(-1, "The old server accepted the password. Creating "+domain+" on Mailferry…")
		if err := pg.w.u.core.PrepareTestDomain(ctx, domain, address, s); err != nil {
			if errors.Is(err, core.ErrTestAccountExists) {
				return newPlainError(fmt.Sprintf("%s already has an account on Mailferry, from an earlier test. Remove it (below) to test again.", address), err)
			}
			return fmt.Errorf("Could not create the test domain on Mailferry: %w", err)
		}
		// What the test learnt (the login form that works, a connection
		// cap) makes the domain's first logins and copies start right;
		// it is a hint, so a failure to keep it fails nothing.
		_ = pg.w.u.core.RememberOldServer(ctx, domain, res)
		return nil
	}, func(err error) {
		if res != nil {
			pg.accountOut.SetText(res.Text() + learntText(res.Facts(s, domain)))
		}
		if err != nil {
			if errors.Is(err, core.ErrTestAccountExists) {
				pg.removeBtn.Show()
			}
			if errors.Is(err, core.ErrOldAuthFailed) {
				pg.fPass.setError("The old server refused this password.")
			}
			return
		}
		pg.accountOK = key
		// One Next: the check passed, so the wizard moves on, and says so.
		pg.w.show(stepSamples)
		pg.w.setStatus(fmt.Sprintf("The old server accepted %s and %s is ready on Mailferry (migration still off).", address, domain), false)
	})
}

// fieldsError is input with n fields that need attention.
type fieldsError struct{ n int }

func (e *fieldsError) Error() string { return fieldsNeedAttention(e.n) }

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (pg *accountStep) removeTestAccount() {
	address := strings.ToLower(strings.TrimSpace(pg.address.Text))
	pg.w.u.confirmDestructive("Remove the test account?", "Delete "+address+" and its mail from Mailferry? "+
		"The account and its mail on the old server are not touched.", "Remove", func() {
		pg.w.runTask("Removing "+address+" from Mailferry", time.Minute, func(ctx context.Context, t task) error {
			return pg.w.u.core.RemoveTestAccount(ctx, address)
		}, func(err error) {
			if err == nil {
				pg.removeBtn.Hide()
				pg.w.setStatus(address+" was removed from Mailferry. Press Next to continue.", false)
			}
		})
	})
}

// learntText is what a connection test learnt about the old server, one
// finding per line with the workaround Mailferry applies; "" for none.
func learntText(facts []core.OldServerFact) string {
	if len(facts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("What Mailferry learnt about the old server:\n")
	for _, f := range facts {
		b.WriteString("  - " + f.Finding + "\n")
		if f.Workaround != "" {
			b.WriteString("    What Mailferry does: " + f.Workaround + "\n")
		}
	}
	return b.String()
}
