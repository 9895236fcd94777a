package ui

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// samplesStep sends the sample messages through the old server and waits
// for them on its IMAP.
type samplesStep struct {
	w *wizard

	langs      *widget.CheckGroup
	fLangs     *field
	langCodes  map[string]string // check label -> code
	samplesOut *widget.Label
	// samples were sent, and oldCopies are what the old server serves for
	// them; nil until they all arrived.
	samples   []core.Sample
	oldCopies []core.SampleCopy
}

func (pg *samplesStep) shown()            {}
func (pg *samplesStep) nextLabel() string { return "Next" }

// reset forgets the samples sent.
func (pg *samplesStep) reset() {
	pg.samples, pg.oldCopies = nil, nil
	pg.samplesOut.SetText("")
}

func (pg *samplesStep) page() fyne.CanvasObject {
	pg.langCodes = map[string]string{}
	var labels, selected []string
	for _, l := range core.SampleLanguages() {
		label := fmt.Sprintf("%s (%s)", l.Name, l.Native)
		pg.langCodes[label] = l.Code
		labels = append(labels, label)
		for _, d := range defaultLanguages {
			if d == l.Code {
				selected = append(selected, label)
			}
		}
	}
	pg.langs = widget.NewCheckGroup(labels, func([]string) {
		if pg.fLangs != nil {
			pg.fLangs.setError("")
		}
	})
	pg.langs.Horizontal = false
	pg.langs.SetSelected(selected)
	pg.fLangs = newField("Languages", pg.langs)
	pg.samplesOut = widget.NewLabel("")
	pg.samplesOut.Wrapping = fyne.TextWrapWord
	intro := widget.NewLabel("The assistant sends sample messages from the test account to itself through the old server's SMTP: " +
		"one plain-text message, one HTML message, and one in each language you pick below, with native characters in the subject and the text. " +
		"It then waits until the old server's IMAP shows all of them.")
	intro.Wrapping = fyne.TextWrapWord
	form := widget.NewForm(pg.fLangs.formItem())
	return container.NewVScroll(container.NewVBox(intro, form, pg.samplesOut))
}

// selectedLanguages returns the codes of the checked languages, sorted.
func (pg *samplesStep) selectedLanguages() []string {
	var codes []string
	for _, s := range pg.langs.Selected {
		codes = append(codes, pg.langCodes[s])
	}
	sort.Strings(codes)
	return codes
}

func (pg *samplesStep) next() {
	langs := pg.selectedLanguages()
	if len(langs) == 0 {
		pg.fLangs.setError("Pick at least one language.")
		pg.w.setStatus("Pick at least one language for the native-language sample.", true)
		return
	}
	pg.fLangs.setError("")
	if len(pg.oldCopies) > 0 && sameStrings(langs, pg.sampleLangs()) {
		pg.w.show(stepMigrate) // sent already; going Next again must not send twice
		return
	}
	_, address, password, err := pg.w.account.accountInput()
	if err != nil {
		pg.w.setStatus(err.Error(), true)
		return
	}
	s := pg.w.oldServer.oldSettings
	var sent []core.Sample
	var copies []core.SampleCopy
	pg.w.runTask("Sending the sample messages", samplesTimeout, func(ctx context.Context, t task) error {
		var err error
		sent, err = pg.w.u.core.SendSamples(ctx, s, address, langs)
		if err != nil {
			return err
		}
		t.progress(0, fmt.Sprintf("Sent %s through the old server. Waiting until its IMAP shows them…", plural(len(sent), "message", "messages")))
		copies, err = pg.w.u.core.WaitForSamples(ctx, s, address, password, sent, func(found, total int) {
			t.progress(float64(found)/float64(total), fmt.Sprintf("%d of %d sample messages arrived on the old server…", found, total))
		})
		return err
	}, func(err error) {
		if err != nil {
			return
		}
		pg.samples, pg.oldCopies = sent, copies
		pg.w.checking.report, pg.w.migration.migrated = nil, false
		var b strings.Builder
		fmt.Fprintf(&b, "All %s arrived in the INBOX of %s on the old server:\n", plural(len(sent), "sample message", "sample messages"), address)
		for i, sm := range sent {
			fmt.Fprintf(&b, "  • %s — %q (UID %d, %d bytes)\n", sm.Name, sm.Subject, copies[i].UID, copies[i].Size)
		}
		pg.samplesOut.SetText(b.String())
		// Stay: the admin reads that they all arrived, then presses Next.
		pg.w.setStatus(fmt.Sprintf("All %s arrived on the old server. Press Next to migrate the test account.", plural(len(sent), "sample message", "sample messages")), false)
	})
}

func (pg *samplesStep) sampleLangs() []string {
	var l []string
	for _, s := range pg.samples {
		if s.Language != "" {
			l = append(l, s.Language)
		}
	}
	sort.Strings(l)
	return l
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
