package ui

import (
	"errors"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// problemView shows one failure in an admin's words (core.Explain): the
// headline and what to do next, and the technical detail one click away.
// It is shown in one place only: the words are never repeated elsewhere.
type problemView struct {
	words   *widget.Label
	detail  *widget.Label
	toggle  *widget.Button
	box     *fyne.Container
	problem core.Problem
}

func newProblemView() *problemView {
	v := &problemView{}
	v.words = widget.NewLabel("")
	v.words.Wrapping = fyne.TextWrapWord
	v.words.Importance = widget.DangerImportance
	v.detail = widget.NewLabel("")
	v.detail.Wrapping = fyne.TextWrapBreak
	v.detail.Selectable = true
	v.detail.Hide()
	v.toggle = widget.NewButton("Technical detail", func() {
		if v.detail.Visible() {
			v.detail.Hide()
		} else {
			v.detail.Show()
		}
		refreshTree(v.box)
	})
	v.box = container.NewVBox(v.words, container.NewHBox(v.toggle), v.detail)
	v.box.Hide()
	return v
}

func (v *problemView) content() fyne.CanvasObject { return v.box }

// set shows p (prefixed by what failed, e.g. "IMAP: "), or hides the view
// for a zero Problem.
func (v *problemView) set(p core.Problem) {
	v.problem = p
	v.detail.Hide()
	if p.Kind == "" {
		v.words.SetText("")
		v.detail.SetText("")
		v.box.Hide()
		return
	}
	v.words.SetText(p.String())
	v.detail.SetText(p.Detail)
	v.box.Show()
}

// clear hides the view (settings changed: the failure is stale).
func (v *problemView) clear() { v.set(core.Problem{}) }

// probeProblem is the first failure of a connection test, explained; its
// headline names the part when both failed apart.
func probeProblem(res *core.ProbeResult, needLogin bool) core.Problem {
	var parts []core.Problem
	if res.IMAP.Err != nil || !res.IMAP.Reached || (needLogin && !res.IMAP.LoggedIn) {
		parts = append(parts, explainPart("IMAP", res.IMAP.Err, res.IMAP.Error))
	}
	if res.SMTP.Err != nil || !res.SMTP.Reached {
		parts = append(parts, explainPart("SMTP", res.SMTP.Err, res.SMTP.Error))
	}
	if len(parts) == 0 {
		return core.Problem{}
	}
	p := parts[0]
	if len(parts) == 2 && parts[1].Kind == p.Kind && res.IMAP.Err != nil {
		// One failure of both (the same certificate, the same firewall):
		// said once for both.
		both := core.ExplainFor(res.IMAP.Err, "IMAP and SMTP")
		both.Detail = p.Detail + "\n" + parts[1].Detail
		return both
	}
	if len(parts) == 2 {
		q := parts[1]
		p.Headline = p.Headline + " " + q.Headline
		if q.Advice != p.Advice {
			p.Advice = strings.TrimSpace(p.Advice + " " + q.Advice)
		}
		p.Detail = p.Detail + "\n" + q.Detail
	}
	return p
}

func explainPart(proto string, err error, text string) core.Problem {
	if err == nil {
		err = errors.New(firstNonEmpty(text, "no answer"))
	}
	p := core.Explain(err)
	if p.Proto == "" {
		p.Headline = proto + ": " + p.Headline
	}
	p.Detail = proto + ": " + p.Detail
	return p
}

// findingsText is the probe's findings without its failures (the
// problemView says those, once).
func findingsText(res *core.ProbeResult) string {
	var b strings.Builder
	part := func(name string, ok bool, summary string, notes []string) {
		if !ok { // the problem line and the certificate panel say it all
			b.WriteString(name + ": ✘ not usable (see below)\n")
			return
		}
		b.WriteString(name + ": " + summary + "\n")
		for _, n := range notes {
			b.WriteString("  - " + n + "\n")
		}
	}
	part("IMAP", res.IMAP.Err == nil && res.IMAP.Reached, res.IMAP.Summary, res.IMAP.Notes)
	part("SMTP", res.SMTP.Err == nil && res.SMTP.Reached, res.SMTP.Summary, res.SMTP.Notes)
	return b.String()
}

// plural is "1 user", "3 users".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fieldsNeedAttention is the status line for n fields with an error.
func fieldsNeedAttention(n int) string {
	if n == 1 {
		return "One field needs attention (see above)."
	}
	return fmt.Sprintf("%d fields need attention (see above).", n)
}
