package ui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"mailferry/core"
)

// plainError is an error in plain words for the admin; its cause stays
// reachable for errors.Is.
// Its cause's text is the technical detail, one click away.
type plainError struct {
	msg   string
	cause error
}

func newPlainError(msg string, cause error) *plainError { return &plainError{msg: msg, cause: cause} }

func (e *plainError) Error() string { return e.msg }
func (e *plainError) Unwrap() error { return e.cause }

// Wizard steps, in order.
const (
	stepWelcome = iota
	stepOldServer
	stepAccount
	stepSamples
	stepMigrate
	stepCheck
	numSteps
)

var stepTitles = [numSteps]string{"Welcome", "Old server", "Test domain and account", "Sample messages", "Migrate", "Check"}

// stepHeader is the title of step i: the welcome page is not numbered, the
// others are "Step 1 of 5" to "Step 5 of 5", as the welcome page lists them.
func stepHeader(i int) string {
	if i == stepWelcome {
		return stepTitles[i]
	}
	return fmt.Sprintf("Step %d of %d: %s", i, numSteps-1, stepTitles[i])
}

// Timeouts of the long steps (the admin can cancel sooner).
const (
	probeTimeout   = 45 * time.Second
	loginTimeout   = 45 * time.Second
	samplesTimeout = 3 * time.Minute
	migrateTimeout = 30 * time.Minute
	checkTimeout   = 5 * time.Minute
)

// defaultLanguages are preselected on the samples step.
var defaultLanguages = []string{"de", "ru", "ja"}

// step is one page of the wizard: a type and a file each
// (wizard_welcome.go, ...), holding the page's widgets and the state it
// produces for the steps after it.
type step interface {
	// page builds the page, once.
	page() fyne.CanvasObject
	// shown runs when the wizard switches to the step.
	shown()
	// nextLabel is the Next button's text on the step.
	nextLabel() string
	// next runs when the admin presses Next.
	next()
}

// wizard is the test-migration wizard: the frame around its steps (title,
// navigation, progress, status line) and the running task. Its methods run
// on the UI goroutine; long work goes through runTask.
type wizard struct {
	u *UI

	root  *fyne.Container
	step  int
	steps [numSteps]step
	pages [numSteps]fyne.CanvasObject
	stack *fyne.Container

	title            *widget.Label
	back, next, stop *keyButton
	bar              *widget.ProgressBar
	barInf           *widget.ProgressBarInfinite
	status           *widget.Label
	// problem shows a failure in words with its technical detail (then
	// status is empty: a failure is said once).
	problem *problemView
	// fieldsMsg: the status counts the fields that need attention (and is
	// recounted as they are fixed).
	fieldsMsg bool

	cancel context.CancelFunc // of the running task, nil when idle
	taskID int

	// onIdle, if set (tests), is called on the UI goroutine after every
	// task ends, with its error; onProgress after every progress update.
	onIdle     func(error)
	onProgress func(frac float64)

	// The steps, in order.
	welcome   *welcomeStep
	oldServer *oldServerStep
	account   *accountStep
	sampling  *samplesStep
	migration *migrateStep
	checking  *checkStep
}

func newWizard(u *UI) *wizard {
	w := &wizard{u: u}
	w.title = widget.NewLabel("")
	w.title.TextStyle = fyne.TextStyle{Bold: true}
	w.back = newKeyButton("Back", w.goBack)
	w.next = newKeyButton("Next", w.goNext)
	w.next.Importance = widget.HighImportance
	w.stop = newKeyButton("Cancel", w.cancelOrRestart)
	w.problem = newProblemView()
	w.bar = widget.NewProgressBar()
	w.bar.Hide()
	w.barInf = widget.NewProgressBarInfinite()
	w.barInf.Stop()
	w.barInf.Hide()
	w.status = widget.NewLabel("")
	w.status.Wrapping = fyne.TextWrapWord

	w.welcome = &welcomeStep{w: w}
	w.oldServer = &oldServerStep{w: w}
	w.account = &accountStep{w: w}
	w.sampling = &samplesStep{w: w}
	w.migration = &migrateStep{w: w}
	w.checking = &checkStep{w: w}
	w.steps = [numSteps]step{w.welcome, w.oldServer, w.account, w.sampling, w.migration, w.checking}
	for i, s := range w.steps {
		w.pages[i] = s.page()
	}
	w.stack = container.NewStack()
	nav := container.NewBorder(nil, nil, w.back, container.NewHBox(w.stop, w.next))
	bottom := container.NewVBox(widget.NewSeparator(), container.NewStack(w.bar, w.barInf), w.status, w.problem.content(), nav)
	w.root = container.NewBorder(container.NewVBox(w.title, widget.NewSeparator()), bottom, nil, nil, w.stack)
	w.show(stepWelcome)
	return w
}

func (w *wizard) content() fyne.CanvasObject { return w.root }

// relayout lays the wizard out again after texts or error lines changed.
func (w *wizard) relayout() { refreshTree(w.root) }

// show switches to step i.
func (w *wizard) show(i int) {
	w.step = i
	w.title.SetText(stepHeader(i))
	w.stack.Objects = []fyne.CanvasObject{w.pages[i]}
	w.stack.Refresh()
	w.setStatus("", false)
	w.updateNav()
	w.u.win.Canvas().Unfocus() // Enter is Next, unless the step focuses a field
	w.steps[i].shown()
}

func (w *wizard) updateNav() {
	busy := w.cancel != nil
	if busy || w.step == stepWelcome {
		w.back.Disable()
	} else {
		w.back.Enable()
	}
	w.next.SetText(w.steps[w.step].nextLabel())
	if busy {
		w.next.Disable()
		w.stop.SetText("Cancel")
	} else {
		w.next.Enable()
		if w.step == stepWelcome {
			w.stop.SetText("Cancel")
			w.stop.Disable()
		} else {
			w.stop.SetText("Start over")
			w.stop.Enable()
		}
	}
	if busy {
		w.stop.Enable()
	}
	w.checking.busy(busy)
}

// setStatus shows msg in the status line; isErr marks it as a problem.
func (w *wizard) setStatus(msg string, isErr bool) {
	w.fieldsMsg = false
	w.problem.clear()
	w.status.SetText(msg)
	if isErr {
		w.status.Importance = widget.DangerImportance
	} else {
		w.status.Importance = widget.MediumImportance
	}
	w.status.Refresh()
	w.relayout()
}

// setFieldsStatus says that n fields need attention; fieldsChanged
// recounts it.
func (w *wizard) setFieldsStatus(n int) {
	w.setStatus(fieldsNeedAttention(n), true)
	w.fieldsMsg = true
}

// inputChanged runs after the admin edited an input of the page, which now
// has n fields with an error: a failure shown for the old input is stale
// and goes; "N fields need attention" is recounted.
func (w *wizard) inputChanged(n int) {
	if w.cancel != nil {
		return
	}
	switch {
	case w.fieldsMsg && n > 0:
		w.setFieldsStatus(n)
	case w.status.Text != "", w.problem.box.Visible():
		w.setStatus("", false)
	}
}

// showError shows a failed task's error: the words of a *plainError, or
// the error vocabulary's (core.Explain) with the technical detail one
// click away, or the error's own text.
func (w *wizard) showError(err error) {
	var pe *plainError
	if errors.As(err, &pe) {
		if pe.cause == nil {
			w.setStatus(pe.msg, true)
			return
		}
		w.showProblem(core.Problem{Kind: core.ProblemOther, Headline: pe.msg, Detail: pe.cause.Error()})
		return
	}
	if p := core.Explain(err); p.Kind != core.ProblemOther && p.Kind != "" {
		w.showProblem(p)
		return
	}
	w.setStatus(err.Error(), true)
}

// showProblem shows p in the problem view (and nothing in the status).
func (w *wizard) showProblem(p core.Problem) {
	w.setStatus("", false)
	w.problem.set(p)
	w.relayout()
}

// task reports progress from a long step's goroutine.
type task struct {
	w  *wizard
	id int
}

// progress shows a fraction (negative: indeterminate) and a line of text;
// safe to call from any goroutine.
func (t task) progress(frac float64, text string) {
	t.w.u.do(func() {
		if t.w.taskID != t.id || t.w.cancel == nil {
			return
		}
		if frac < 0 {
			t.w.bar.Hide()
			t.w.barInf.Show()
			t.w.barInf.Start()
		} else {
			t.w.barInf.Stop()
			t.w.barInf.Hide()
			t.w.bar.Show()
			t.w.bar.SetValue(frac)
		}
		if text != "" {
			t.w.setStatus(text, false)
		}
		if t.w.onProgress != nil {
			t.w.onProgress(frac)
		}
	})
}

// runTask runs fn off the UI goroutine with a cancelable context bounded by
// timeout, showing progress; done runs on the UI goroutine with fn's error
// (context.Canceled when the admin canceled).
func (w *wizard) runTask(name string, timeout time.Duration, fn func(ctx context.Context, t task) error, done func(err error)) {
	if w.cancel != nil {
		return
	}
	ctx, cancel := context.WithTimeout(w.u.ctx, timeout)
	w.taskID++
	t := task{w: w, id: w.taskID}
	w.cancel = cancel
	w.updateNav()
	w.bar.Hide()
	w.barInf.Show()
	w.barInf.Start()
	w.setStatus(name+"…", false)
	w.u.goSafe(name, func() error { return fn(ctx, t) }, func(err error) {
		canceled := errors.Is(ctx.Err(), context.Canceled) // by the admin (or the UI closing)
		cancel()
		if w.taskID == t.id {
			w.cancel = nil
		}
		w.barInf.Stop()
		w.barInf.Hide()
		w.bar.Hide()
		if err != nil && canceled {
			err = context.Canceled
			if w.step == stepMigrate {
				w.setStatus("Canceled. Mailferry goes on copying the account in the background; press Start migration to watch it again.", true)
			} else {
				w.setStatus("Canceled. You can change the input and try again.", true)
			}
		} else if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = newPlainError(name+" took too long and was stopped.", err)
			w.showError(err)
		} else if err != nil {
			w.showError(err)
		} else {
			w.setStatus("", false)
		}
		w.updateNav()
		if done != nil {
			done(err)
		}
		w.relayout()
		if w.onIdle != nil {
			w.onIdle(err)
		}
	})
}

// cancelTask cancels the running task, if any.
func (w *wizard) cancelTask() {
	if w.cancel != nil {
		w.cancel()
	}
}

func (w *wizard) cancelOrRestart() {
	if w.cancel != nil {
		w.cancel()
		return
	}
	d := dialog.NewConfirm("Start over?", "Leave the test migration and go back to the welcome page? "+
		"What was set up so far (the test domain on Mailferry) stays.", func(ok bool) {
		if ok {
			w.reset()
		}
	}, w.u.win)
	w.u.showDialog(d, nil, nil, nil)
}

// reset forgets the test state and shows the welcome page.
func (w *wizard) reset() {
	w.sampling.reset()
	w.migration.reset()
	w.checking.reset()
	w.show(stepWelcome)
}

func (w *wizard) goBack() {
	if w.cancel != nil || w.step == stepWelcome {
		return
	}
	w.show(w.step - 1)
}

func (w *wizard) goNext() {
	if w.cancel != nil {
		return
	}
	w.steps[w.step].next()
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func plainStoreErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "store: ")
	s = strings.TrimPrefix(s, "invalid input: ")
	return upperFirst(s) + "."
}
