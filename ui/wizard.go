package ui

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
type plainError struct {
	msg   string
	cause error
}

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

// wizard is the test-migration wizard: its widgets and its state. Its
// methods run on the UI goroutine; long work goes through runTask.
type wizard struct {
	u *UI

	root  *fyne.Container
	step  int
	pages [numSteps]fyne.CanvasObject
	stack *fyne.Container

	title            *widget.Label
	back, next, stop *widget.Button
	bar              *widget.ProgressBar
	barInf           *widget.ProgressBarInfinite
	status           *widget.Label

	cancel context.CancelFunc // of the running task, nil when idle
	taskID int

	// onIdle, if set (tests), is called on the UI goroutine after every
	// task ends, with its error; onProgress after every progress update.
	onIdle     func(error)
	onProgress func(frac float64)

	// Welcome.
	demo       *core.DemoServer
	demoBtn    *widget.Button
	demoStatus *widget.Label

	// Old server.
	old         *oldForm
	probeBtn    *widget.Button
	probeOut    *widget.Label
	trustBtn    *widget.Button
	trustFP     string
	probed      string // settings (JSON-ish key) last probed successfully
	oldSettings core.OldServerSettings

	// Test domain and account.
	domain, address, password *widget.Entry
	fDomain, fAddress, fPass  *field
	removeBtn                 *widget.Button
	accountOut                *widget.Label
	accountOK                 string // input last checked successfully

	// Samples.
	langs      *widget.CheckGroup
	fLangs     *field
	langCodes  map[string]string // check label -> code
	samplesOut *widget.Label
	samples    []core.Sample
	oldCopies  []core.SampleCopy

	// Migrate.
	migrateInfo *widget.Label
	migrateOut  *widget.Label
	migrated    bool

	// Check.
	report    *core.TestReport
	summary   *widget.Label
	checkList *widget.Label
	viewer    *viewer
	clientBox *widget.Label
	// checkBox holds checkList and clientBox in checkScroll; both are laid
	// out again when their text changes.
	checkBox    *fyne.Container
	checkScroll *container.Scroll
	saveBtn     *widget.Button
	rerunBtn    *widget.Button
}

func newWizard(u *UI) *wizard {
	w := &wizard{u: u}
	w.title = widget.NewLabel("")
	w.title.TextStyle = fyne.TextStyle{Bold: true}
	w.back = widget.NewButton("Back", w.goBack)
	w.next = widget.NewButton("Next", w.goNext)
	w.next.Importance = widget.HighImportance
	w.stop = widget.NewButton("Cancel", w.cancelOrRestart)
	w.bar = widget.NewProgressBar()
	w.bar.Hide()
	w.barInf = widget.NewProgressBarInfinite()
	w.barInf.Stop()
	w.barInf.Hide()
	w.status = widget.NewLabel("")
	w.status.Wrapping = fyne.TextWrapWord

	w.pages[stepWelcome] = w.welcomePage()
	w.pages[stepOldServer] = w.oldServerPage()
	w.pages[stepAccount] = w.accountPage()
	w.pages[stepSamples] = w.samplesPage()
	w.pages[stepMigrate] = w.migratePage()
	w.pages[stepCheck] = w.checkPage()
	w.stack = container.NewStack()
	nav := container.NewBorder(nil, nil, w.back, container.NewHBox(w.stop, w.next))
	bottom := container.NewVBox(widget.NewSeparator(), container.NewStack(w.bar, w.barInf), w.status, nav)
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
	w.title.SetText(fmt.Sprintf("Step %d of %d: %s", i+1, numSteps, stepTitles[i]))
	w.stack.Objects = []fyne.CanvasObject{w.pages[i]}
	w.stack.Refresh()
	w.setStatus("", false)
	w.updateNav()
	switch i {
	case stepMigrate:
		w.migrateInfo.SetText(w.migrateText())
	case stepCheck:
		if w.report == nil && w.migrated {
			w.runChecks()
		}
	}
}

func (w *wizard) updateNav() {
	busy := w.cancel != nil
	if busy || w.step == stepWelcome {
		w.back.Disable()
	} else {
		w.back.Enable()
	}
	switch w.step {
	case stepMigrate:
		if w.migrated {
			w.next.SetText("Next")
		} else {
			w.next.SetText("Start migration")
		}
	case stepCheck:
		w.next.SetText("Finish")
	default:
		w.next.SetText("Next")
	}
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
	if w.rerunBtn != nil {
		if busy {
			w.rerunBtn.Disable()
		} else {
			w.rerunBtn.Enable()
		}
	}
}

// setStatus shows msg in the status line; isErr marks it as a problem.
func (w *wizard) setStatus(msg string, isErr bool) {
	w.status.SetText(msg)
	if isErr {
		w.status.Importance = widget.DangerImportance
	} else {
		w.status.Importance = widget.MediumImportance
	}
	w.status.Refresh()
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
		} else if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s took too long and was stopped: %w", name, err)
			w.setStatus(err.Error(), true)
		} else if err != nil {
			w.setStatus(err.Error(), true)
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
	dialog.ShowConfirm("Start over?", "Leave the test migration and go back to the welcome page? "+
		"What was set up so far (the test domain on Mailferry) stays.", func(ok bool) {
		if ok {
			w.reset()
		}
	}, w.u.win)
}

// reset forgets the test state and shows the welcome page.
func (w *wizard) reset() {
	w.samples, w.oldCopies, w.report, w.migrated = nil, nil, nil, false
	w.samplesOut.SetText("")
	w.migrateOut.SetText("")
	w.summary.SetText("")
	w.checkList.SetText("")
	w.viewer.set(nil)
	w.saveBtn.Disable()
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
	switch w.step {
	case stepWelcome:
		w.show(stepOldServer)
	case stepOldServer:
		w.nextOldServer()
	case stepAccount:
		w.nextAccount()
	case stepSamples:
		w.nextSamples()
	case stepMigrate:
		w.nextMigrate()
	case stepCheck:
		w.u.ShowDashboard()
	}
}

// ---- Welcome ----

func (w *wizard) welcomePage() fyne.CanvasObject {
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
	w.demoStatus = widget.NewLabel("")
	w.demoStatus.Wrapping = fyne.TextWrapWord
	w.demoBtn = widget.NewButton("Start the demo old server", w.startDemo)
	return container.NewVScroll(container.NewVBox(intro, container.NewHBox(w.demoBtn), w.demoStatus))
}

// startDemo starts the demo old server and fills the wizard with it.
func (w *wizard) startDemo() {
	if w.demo != nil {
		return
	}
	var srv *core.DemoServer
	w.runTask("Starting the demo old server", 30*time.Second, func(ctx context.Context, t task) error {
		var err error
		srv, err = w.u.core.StartDemo(w.u.ctx) // lives until the UI closes
		return err
	}, func(err error) {
		if err != nil {
			w.demoStatus.SetText("The demo old server did not start: " + err.Error())
			return
		}
		w.demo = srv
		w.demoBtn.Disable()
		w.useDemo()
	})
}

// useDemo fills the old-server form and the test account from the demo.
func (w *wizard) useDemo() {
	srv := w.demo
	s := core.DemoSettings(srv)
	w.old.set(s)
	user := srv.SeedAccount()
	var pass string
	for _, u := range srv.Users() {
		if u.Address == user {
			pass = u.Password
		}
	}
	w.domain.SetText(srv.Domain())
	w.address.SetText(user)
	w.password.SetText(pass)
	var users []string
	for _, u := range srv.Users() {
		users = append(users, fmt.Sprintf("%s (password %s)", u.Address, u.Password))
	}
	w.demoStatus.SetText(fmt.Sprintf("The demo old server runs on this computer: IMAP %s, SMTP %s, both with STARTTLS and a self-signed certificate.\n"+
		"Its users: %s.\nThe next steps are filled in for %s: just press Next.",
		srv.IMAPAddr(), srv.SMTPAddr(), strings.Join(users, ", "), user))
}

func (w *wizard) stopDemo() {
	if w.demo != nil {
		if err := w.demo.Close(); err != nil {
			w.u.log.Warn("demo old server", "err", err)
		}
	}
}

// ---- Old server ----

func (w *wizard) oldServerPage() fyne.CanvasObject {
	w.old = newOldForm()
	w.old.onChange = func() {
		w.probed = ""
		w.relayout()
	}
	w.probeOut = widget.NewLabel("")
	w.probeOut.Wrapping = fyne.TextWrapWord
	w.probeOut.Selectable = true
	w.probeBtn = widget.NewButton("Test connection", w.testConnection)
	w.trustBtn = widget.NewButton("Trust this certificate", func() {
		w.old.pin.SetText(w.trustFP)
		w.trustBtn.Hide()
		w.testConnection()
	})
	w.trustBtn.Hide()
	intro := widget.NewLabel("Where is the old mail server? Mailferry copies mail from its IMAP server and, while users move, hands mail for users who have not moved yet to its SMTP server.")
	intro.Wrapping = fyne.TextWrapWord
	return container.NewVScroll(container.NewVBox(intro, w.old.form,
		container.NewHBox(w.probeBtn, w.trustBtn), w.probeOut))
}

func settingsKey(s core.OldServerSettings) string {
	return fmt.Sprintf("%s|%d|%s|%d|%s|%s", s.Host, s.IMAPPort, s.IMAPTLS, s.SMTPPort, s.SMTPTLS, s.PinnedSHA256)
}

// testConnection probes the old server and shows what it found.
func (w *wizard) testConnection() { w.probe(nil) }

// probe validates the form, runs the probe and, when it reached both IMAP
// and SMTP, calls then (if not nil).
func (w *wizard) probe(then func()) {
	s, err := w.old.settings()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	w.probeOut.SetText("")
	w.trustBtn.Hide()
	var res *core.ProbeResult
	w.runTask("Testing the connection to "+s.Host.String(), probeTimeout, func(ctx context.Context, t task) error {
		var perr error
		res, perr = w.u.core.ProbeOldServer(ctx, s, "", "")
		if res == nil {
			return perr
		}
		return ctx.Err()
	}, func(err error) {
		if err != nil {
			return
		}
		w.probeOut.SetText(res.Text())
		if fp := untrustedFingerprint(res); fp != "" {
			w.trustFP = fp
			w.trustBtn.SetText("Trust this certificate (SHA-256 " + shortFP(fp) + ")")
			w.trustBtn.Show()
		}
		if !res.IMAP.Reached || !res.SMTP.Reached {
			var what []string
			if !res.IMAP.Reached {
				what = append(what, "IMAP: "+firstNonEmpty(res.IMAP.Error, res.IMAP.Summary))
			}
			if !res.SMTP.Reached {
				what = append(what, "SMTP: "+firstNonEmpty(res.SMTP.Error, res.SMTP.Summary))
			}
			w.setStatus("The old server could not be reached. "+strings.Join(what, " "), true)
			return
		}
		w.probed = settingsKey(s)
		w.oldSettings = s
		w.setStatus("The old server answers on IMAP and SMTP.", false)
		if then != nil {
			then()
		}
	})
}

// untrustedFingerprint returns the fingerprint of a certificate the probe
// saw but did not trust, or "".
func untrustedFingerprint(r *core.ProbeResult) string {
	for _, t := range []*core.TLSInfo{r.IMAP.TLS, r.SMTP.TLS} {
		if t != nil && !t.Trusted && t.SHA256 != "" {
			return t.SHA256
		}
	}
	return ""
}

func shortFP(fp string) string {
	if len(fp) > 23 {
		return fp[:23] + "…"
	}
	return fp
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func (w *wizard) nextOldServer() {
	s, err := w.old.settings()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	if w.probed == settingsKey(s) {
		w.oldSettings = s
		w.show(stepAccount)
		return
	}
	w.probe(func() { w.show(stepAccount) })
}

// ---- Test domain and account ----

func (w *wizard) accountPage() fyne.CanvasObject {
	w.domain = widget.NewEntry()
	w.domain.SetText("example.test")
	w.address = widget.NewEntry()
	w.address.SetPlaceHolder("test@example.test")
	w.password = widget.NewPasswordEntry()
	w.fDomain = newField("Test domain", w.domain)
	w.fAddress = newField("Test account", w.address)
	w.fPass = newField("Password", w.password)
	for _, f := range []*field{w.fDomain, w.fAddress, w.fPass} {
		f := f
		f.input.(*widget.Entry).OnChanged = func(string) {
			if f.err.Visible() {
				f.setError("")
				w.relayout()
			}
		}
	}
	form := widget.NewForm(w.fDomain.formItem(), w.fAddress.formItem(), w.fPass.formItem())
	form.Items[0].HintText = "a domain that does not exist in the real world, so no real mail can reach it"
	form.Items[1].HintText = "an account you created for this test on the old server"
	form.Items[2].HintText = "its password on the old server (kept in memory only)"
	w.removeBtn = widget.NewButton("Remove the old test account from Mailferry", w.removeTestAccount)
	w.removeBtn.Hide()
	intro := widget.NewLabel("Create a test domain and a test account on the old server first (for example example.test and test@example.test), then type them here. " +
		"The assistant logs in at the old server (and shows what it finds there), checks that its SMTP takes mail for the account, " +
		"and creates the test domain on Mailferry — migration for it stays off until the Migrate step.")
	intro.Wrapping = fyne.TextWrapWord
	w.accountOut = widget.NewLabel("")
	w.accountOut.Wrapping = fyne.TextWrapWord
	w.accountOut.Selectable = true
	return container.NewVScroll(container.NewVBox(intro, form, container.NewHBox(w.removeBtn), w.accountOut))
}

// accountInput validates the account step's fields inline.
func (w *wizard) accountInput() (domain, address, password string, err error) {
	bad := 0
	domain, derr := core.CheckDomainName(w.domain.Text)
	if strings.TrimSpace(w.domain.Text) == "" {
		w.fDomain.setError("Give the test domain, e.g. example.test.")
		bad++
	} else if derr != nil {
		w.fDomain.setError(plainStoreErr(derr))
		bad++
	} else {
		w.fDomain.setError("")
	}
	address = strings.ToLower(strings.TrimSpace(w.address.Text))
	if address == "" {
		w.fAddress.setError("Give the test account's address, e.g. test@" + firstNonEmpty(domain, "example.test") + ".")
		bad++
	} else if _, d, aerr := core.SplitAddress(address); aerr != nil {
		w.fAddress.setError(plainStoreErr(aerr))
		bad++
	} else if derr == nil && d != domain {
		w.fAddress.setError(fmt.Sprintf("The test account must be in the test domain %s.", domain))
		bad++
	} else {
		w.fAddress.setError("")
	}
	password = w.password.Text
	if password == "" {
		w.fPass.setError("Give the test account's password on the old server.")
		bad++
	} else {
		w.fPass.setError("")
	}
	if bad > 0 {
		return "", "", "", fmt.Errorf("%d field(s) need attention (see above).", bad)
	}
	return domain, address, password, nil
}

func plainStoreErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "store: ")
	s = strings.TrimPrefix(s, "invalid input: ")
	return upperFirst(s) + "."
}

func (w *wizard) nextAccount() {
	domain, address, password, err := w.accountInput()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	key := domain + "\x00" + address + "\x00" + password + "\x00" + settingsKey(w.oldSettings)
	if w.accountOK == key {
		w.show(stepSamples)
		return
	}
	w.removeBtn.Hide()
	w.accountOut.SetText("")
	s := w.oldSettings
	var res *core.ProbeResult
	w.runTask("Checking "+address+" at the old server", loginTimeout, func(ctx context.Context, t task) error {
		// The full probe: log in, namespaces, separator, special-use
		// folders, and whether the old SMTP takes mail for the account
		// from this computer without a password.
		var perr error
		res, perr = w.u.core.ProbeOldServer(ctx, s, address, password)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(perr, core.ErrOldAuthFailed):
			return &plainError{fmt.Sprintf("The old server refused the password for %s: check the account and its password.", address), perr}
		case res == nil:
			return fmt.Errorf("Could not check the account at the old server: %w", perr)
		case !res.IMAP.LoggedIn:
			return fmt.Errorf("Could not log in at the old server: %s", firstNonEmpty(res.IMAP.Error, res.IMAP.Summary))
		case !res.SMTP.RecipientAccepted:
			return fmt.Errorf("The old server's SMTP does not take mail for %s from this computer without a password (%s). "+
				"Mailferry hands it the mail of users who have not moved yet: let this computer relay through it (e.g. Postfix mynetworks).",
				address, firstNonEmpty(res.SMTP.Reply, res.SMTP.Error, res.SMTP.Summary))
		}
		t.progress(-1, "The old server accepted the password. Creating "+domain+" on Mailferry…")
		if err := w.u.core.PrepareTestDomain(ctx, domain, address, s); err != nil {
			if errors.Is(err, core.ErrTestAccountExists) {
				return &plainError{fmt.Sprintf("%s already has an account on Mailferry, from an earlier test. Remove it (below) to test again.", address), err}
			}
			return fmt.Errorf("Could not create the test domain on Mailferry: %w", err)
		}
		return nil
	}, func(err error) {
		if res != nil {
			w.accountOut.SetText(res.Text())
		}
		if err != nil {
			if errors.Is(err, core.ErrTestAccountExists) {
				w.removeBtn.Show()
			}
			if errors.Is(err, core.ErrOldAuthFailed) {
				w.fPass.setError("The old server refused this password.")
			}
			return
		}
		w.accountOK = key
		w.setStatus(fmt.Sprintf("The old server accepted %s and %s is ready on Mailferry (migration still off). Press Next.", address, domain), false)
	})
}

func (w *wizard) removeTestAccount() {
	address := strings.ToLower(strings.TrimSpace(w.address.Text))
	dialog.ShowConfirm("Remove the test account?", "Delete "+address+" and its mail from Mailferry? "+
		"The account and its mail on the old server are not touched.", func(ok bool) {
		if !ok {
			return
		}
		w.runTask("Removing "+address+" from Mailferry", time.Minute, func(ctx context.Context, t task) error {
			return w.u.core.RemoveTestAccount(ctx, address)
		}, func(err error) {
			if err == nil {
				w.removeBtn.Hide()
				w.setStatus(address+" was removed from Mailferry. Press Next to continue.", false)
			}
		})
	}, w.u.win)
}

// ---- Samples ----

func (w *wizard) samplesPage() fyne.CanvasObject {
	w.langCodes = map[string]string{}
	var labels, selected []string
	for _, l := range core.SampleLanguages() {
		label := fmt.Sprintf("%s (%s)", l.Name, l.Native)
		w.langCodes[label] = l.Code
		labels = append(labels, label)
		for _, d := range defaultLanguages {
			if d == l.Code {
				selected = append(selected, label)
			}
		}
	}
	w.langs = widget.NewCheckGroup(labels, func([]string) {
		if w.fLangs != nil {
			w.fLangs.setError("")
		}
	})
	w.langs.Horizontal = false
	w.langs.SetSelected(selected)
	w.fLangs = newField("Languages", w.langs)
	w.samplesOut = widget.NewLabel("")
	w.samplesOut.Wrapping = fyne.TextWrapWord
	intro := widget.NewLabel("The assistant sends sample messages from the test account to itself through the old server's SMTP: " +
		"one plain-text message, one HTML message, and one in each language you pick below, with native characters in the subject and the text. " +
		"It then waits until the old server's IMAP shows all of them.")
	intro.Wrapping = fyne.TextWrapWord
	form := widget.NewForm(w.fLangs.formItem())
	return container.NewVScroll(container.NewVBox(intro, form, w.samplesOut))
}

// selectedLanguages returns the codes of the checked languages, sorted.
func (w *wizard) selectedLanguages() []string {
	var codes []string
	for _, s := range w.langs.Selected {
		codes = append(codes, w.langCodes[s])
	}
	sort.Strings(codes)
	return codes
}

func (w *wizard) nextSamples() {
	langs := w.selectedLanguages()
	if len(langs) == 0 {
		w.fLangs.setError("Pick at least one language.")
		w.setStatus("Pick at least one language for the native-language sample.", true)
		return
	}
	w.fLangs.setError("")
	if len(w.oldCopies) > 0 && sameStrings(langs, w.sampleLangs()) {
		w.show(stepMigrate) // sent already; going Next again must not send twice
		return
	}
	_, address, password, err := w.accountInput()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	s := w.oldSettings
	var sent []core.Sample
	var copies []core.SampleCopy
	w.runTask("Sending the sample messages", samplesTimeout, func(ctx context.Context, t task) error {
		var err error
		sent, err = w.u.core.SendSamples(ctx, s, address, langs)
		if err != nil {
			return err
		}
		t.progress(0, fmt.Sprintf("Sent %d messages through the old server. Waiting until its IMAP shows them…", len(sent)))
		copies, err = w.u.core.WaitForSamples(ctx, s, address, password, sent, func(found, total int) {
			t.progress(float64(found)/float64(total), fmt.Sprintf("%d of %d sample messages arrived on the old server…", found, total))
		})
		return err
	}, func(err error) {
		if err != nil {
			return
		}
		w.samples, w.oldCopies = sent, copies
		w.report, w.migrated = nil, false
		var b strings.Builder
		fmt.Fprintf(&b, "All %d sample messages arrived in the INBOX of %s on the old server:\n", len(sent), address)
		for i, sm := range sent {
			fmt.Fprintf(&b, "  • %s — %q (UID %d, %d bytes)\n", sm.Name, sm.Subject, copies[i].UID, copies[i].Size)
		}
		w.samplesOut.SetText(b.String())
		w.show(stepMigrate)
	})
}

func (w *wizard) sampleLangs() []string {
	var l []string
	for _, s := range w.samples {
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

// ---- Migrate ----

func (w *wizard) migratePage() fyne.CanvasObject {
	w.migrateInfo = widget.NewLabel("")
	w.migrateInfo.Wrapping = fyne.TextWrapWord
	w.migrateOut = widget.NewLabel("")
	return container.NewVScroll(container.NewVBox(w.migrateInfo, w.migrateOut))
}

func (w *wizard) migrateText() string {
	addr := w.u.core.Addr("imap")
	if addr == "" {
		addr = "(not listening — see the error at the top)"
	}
	return fmt.Sprintf("Mailferry will now turn on automatic migration for %s and log in as %s through its own IMAP server at %s, "+
		"exactly as the user's mail client would. At that first login Mailferry checks the password at the old server, "+
		"creates the account and copies the whole mailbox, INBOX first, while you watch.",
		strings.TrimSpace(w.domain.Text), strings.TrimSpace(w.address.Text), addr)
}

func (w *wizard) nextMigrate() {
	if w.migrated {
		w.show(stepCheck)
		return
	}
	domain, address, password, err := w.accountInput()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	if len(w.oldCopies) == 0 {
		w.setStatus("Send the sample messages first (go Back).", true)
		return
	}
	s := w.oldSettings
	var last core.TestProgress
	w.runTask("Migrating "+address, migrateTimeout, func(ctx context.Context, t task) error {
		if err := w.u.core.EnableMigration(ctx, domain, s); err != nil {
			return fmt.Errorf("Could not turn on migration for %s: %w", domain, err)
		}
		t.progress(-1, "Migration is on for "+domain+". Logging in to Mailferry's IMAP as "+address+"…")
		p, err := w.u.core.MigrateTestAccount(ctx, s, address, password, func(p core.TestProgress) {
			frac := -1.0
			if p.MessagesTotal > 0 {
				frac = float64(p.Messages) / float64(p.MessagesTotal)
			} else if p.FoldersTotal > 0 {
				frac = float64(p.FoldersDone) / float64(p.FoldersTotal)
			}
			text := folderLines(p)
			w.u.do(func() {
				if w.step == stepMigrate {
					w.migrateOut.SetText(text)
				}
			})
			t.progress(frac, p.String()) // lays the page out again
		})
		last = p
		return err
	}, func(err error) {
		if err != nil {
			return
		}
		w.migrated = true
		w.migrateOut.SetText(fmt.Sprintf("Done: %d folders and %d messages of %s are on Mailferry (%s).\n\n%s",
			last.FoldersTotal, last.MessagesTotal, address, last.Elapsed.Round(100*time.Millisecond), folderLines(last)))
		w.report = nil
		w.updateNav()
		w.setStatus("The test account is on Mailferry. Press Next to check every sample.", false)
	})
}

// ---- Check ----

func (w *wizard) checkPage() fyne.CanvasObject {
	w.summary = widget.NewLabel("")
	w.summary.TextStyle = fyne.TextStyle{Bold: true}
	// Short lines without wrapping: wrapped labels in a scrolled VBox
	// overlap when their text changes after layout.
	w.checkList = widget.NewLabel("")
	w.checkList.Selectable = true
	w.viewer = newViewer()
	w.clientBox = widget.NewLabel("Shown when the checks have run.")
	w.clientBox.Selectable = true
	w.saveBtn = widget.NewButton("Save report…", w.saveReport)
	w.saveBtn.Disable()
	w.rerunBtn = widget.NewButton("Run the checks again", w.runChecks)
	w.checkBox = container.NewVBox(w.checkList, widget.NewSeparator(), widget.NewLabelWithStyle("Look at the account in any IMAP client", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), w.clientBox)
	w.checkScroll = container.NewVScroll(w.checkBox)
	left := container.NewBorder(
		container.NewVBox(w.summary, container.NewHBox(w.saveBtn, w.rerunBtn)), nil, nil, nil,
		w.checkScroll)
	split := container.NewHSplit(left, w.viewer.content())
	split.Offset = 0.5
	return split
}

// runChecks runs the automated checks against Mailferry's IMAP.
func (w *wizard) runChecks() {
	_, address, password, err := w.accountInput()
	if err != nil {
		w.setStatus(err.Error(), true)
		return
	}
	if !w.migrated || len(w.samples) == 0 {
		w.setStatus("Migrate the test account first (go Back).", true)
		return
	}
	s, samples, old := w.oldSettings, w.samples, w.oldCopies
	var rep *core.TestReport
	w.summary.SetText("Checking…")
	w.runTask("Checking the migrated messages", checkTimeout, func(ctx context.Context, t task) error {
		var err error
		rep, err = w.u.core.CheckTestAccount(ctx, s, address, password, samples, old, func(done, total int) {
			t.progress(float64(done)/float64(total), fmt.Sprintf("Checked %d of %d samples…", done, total))
		})
		return err
	}, func(err error) {
		if err != nil {
			w.summary.SetText("The checks could not run: " + err.Error())
			return
		}
		w.showReport(rep)
	})
}

func (w *wizard) showReport(r *core.TestReport) {
	w.report = r
	if r.OK() {
		w.summary.SetText(fmt.Sprintf("✔ All %d checks passed", len(r.Checks)))
		w.summary.Importance = widget.SuccessImportance
	} else {
		w.summary.SetText(fmt.Sprintf("✘ %d of %d checks failed", r.Failed(), len(r.Checks)))
		w.summary.Importance = widget.DangerImportance
	}
	w.summary.Refresh()
	w.checkList.SetText(checksText(r))
	w.viewer.set(r.Samples)
	cs := r.Client
	port := fmt.Sprintf("%d (STARTTLS)", cs.Port)
	if cs.Security != "STARTTLS" {
		port = fmt.Sprintf("%d (no encryption)", cs.Port)
	}
	if cs.TLSPort != 0 {
		port += fmt.Sprintf(" or %d (SSL/TLS)", cs.TLSPort)
	}
	text := fmt.Sprintf("Server: %s\nPort: %s\nUser name: %s\nPassword: the account's password on the old server", cs.Host, port, cs.User)
	if fp := cs.Fingerprint; fp != "" {
		if len(fp) > 48 {
			fp = fp[:48] + "\n        " + fp[48:]
		}
		text += "\nCertificate (self-signed), SHA-256:\n        " + fp
	}
	w.clientBox.SetText(text)
	w.checkBox.Refresh()
	w.checkScroll.Refresh()
	w.saveBtn.Enable()
}

func (w *wizard) saveReport() {
	if w.report == nil {
		return
	}
	text := w.report.Text()
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			dialog.ShowError(err, w.u.win)
			return
		}
		if wc == nil {
			return
		}
		_, werr := wc.Write([]byte(text))
		cerr := wc.Close()
		if werr == nil {
			werr = cerr
		}
		if werr != nil {
			dialog.ShowError(fmt.Errorf("the report was not saved: %w", werr), w.u.win)
			return
		}
		w.setStatus("Report saved to "+wc.URI().Path(), false)
	}, w.u.win)
	d.SetFileName("mailferry-test-report.txt")
	d.Show()
}

// checksText sums the checks up per sample: one line for a sample whose
// checks all passed, each failed check in full otherwise.
func checksText(r *core.TestReport) string {
	var b strings.Builder
	if r.OK() {
		b.WriteString("Every sample arrived byte for byte identical,\nwith the same UID, flags and date, and decodes\nto the text that was sent.\n\n")
	}
	var order []string
	bySample := map[string][]core.Check{}
	for _, c := range r.Checks {
		if _, ok := bySample[c.Sample]; !ok {
			order = append(order, c.Sample)
		}
		bySample[c.Sample] = append(bySample[c.Sample], c)
	}
	for _, name := range order {
		checks := bySample[name]
		var failed []core.Check
		for _, c := range checks {
			if !c.OK {
				failed = append(failed, c)
			}
		}
		title := name
		if title == "" {
			title = "account"
		}
		if len(failed) == 0 {
			if name == "" {
				for _, c := range checks {
					fmt.Fprintf(&b, "✔ %s: %s\n", c.Name, c.Detail)
				}
			} else {
				fmt.Fprintf(&b, "✔ %s: all %d checks passed\n", title, len(checks))
			}
			continue
		}
		for _, c := range failed {
			fmt.Fprintf(&b, "✘ %s: %s — %s\n", title, c.Name, c.Detail)
		}
	}
	b.WriteString("\nSave the report for every detail\n(the checks, sizes, SHA-256 digests, dates).")
	return b.String()
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
