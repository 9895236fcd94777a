package ui

import (
	"fmt"
	"os"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// buttonsOutside lists the visible buttons under o (at absolute position
// at) that do not lie wholly inside size. Buttons inside a scroller count
// where the scroller is (they can be scrolled to); the scroller itself must
// be inside.
func buttonsOutside(o fyne.CanvasObject, at fyne.Position, size fyne.Size, path string, out *[]string) {
	if o == nil || !o.Visible() {
		return
	}
	pos := at.Add(o.Position())
	inside := func() bool {
		end := pos.Add(o.Size())
		const slack = 0.5
		return pos.X >= -slack && pos.Y >= -slack && end.X <= size.Width+slack && end.Y <= size.Height+slack
	}
	switch b := o.(type) {
	case *widget.Button:
		if !inside() {
			*out = append(*out, fmt.Sprintf("%s button %q at %v size %v", path, b.Text, pos, b.Size()))
		}
		return
	case *keyButton:
		if !inside() {
			*out = append(*out, fmt.Sprintf("%s button %q at %v size %v", path, b.Text, pos, b.Size()))
		}
		return
	case *container.Scroll, *widget.Table: // scroll to reach what they hold
		if !inside() {
			*out = append(*out, fmt.Sprintf("%s a scroller at %v size %v", path, pos, o.Size()))
		}
		return
	case *fyne.Container:
		for _, c := range b.Objects {
			buttonsOutside(c, pos, size, path, out)
		}
		return
	case fyne.Widget:
		for _, c := range test.WidgetRenderer(b).Objects() {
			buttonsOutside(c, pos, size, path, out)
		}
	}
}

// checkLayout fails if the window content needs more than size or a
// button lies outside the window.
func checkLayout(t *testing.T, u *UI, size fyne.Size, page string) {
	t.Helper()
	content := u.win.Content()
	if m := content.MinSize(); m.Width > size.Width || m.Height > size.Height {
		t.Errorf("%s: the page needs %v, more than %v", page, m, size)
	}
	var out []string
	buttonsOutside(content, fyne.NewPos(0, 0), size, page, &out)
	for _, o := range out {
		t.Errorf("outside the %vx%v window: %s", size.Width, size.Height, o)
	}
}

// TestLayoutSmallScreen: at 800x600 every page of the wizard and the
// dashboard (with domains, users and a relay queue) fits, and every button
// is inside the window; the same on a 4K screen (3840x2160 pixels) at 200%
// (1920x1080 units, as FYNE_SCALE=2 or a HiDPI desktop sets it), where the
// window renders to 3840x2160 pixels and text is drawn twice as large, and
// at 100% (3840x2160 units).
func TestLayoutSmallScreen(t *testing.T) {
	h := newHarness(t)
	h.shots = os.Getenv(screenshotsEnv)
	fillDashboard(t, h, 40)
	scaler, ok := h.u.win.Canvas().(interface{ SetScale(float32) })
	if !ok {
		t.Fatal("the test canvas cannot be scaled")
	}
	defer h.ui(func() { scaler.SetScale(1) })
	for _, screen := range []struct {
		size  fyne.Size
		scale float32
	}{{fyne.NewSize(800, 600), 1}, {fyne.NewSize(1920, 1080), 2}, {fyne.NewSize(3840, 2160), 1}} {
		size := screen.size
		h.ui(func() {
			scaler.SetScale(screen.scale)
			h.u.win.Resize(size)
		})
		for i := range numSteps {
			h.ui(func() {
				h.u.tabs.SelectIndex(0)
				h.w.show(i)
				refreshTree(h.u.win.Content())
				h.u.win.Resize(size)
			})
			h.ui(func() { checkLayout(t, h.u, size, "wizard step "+stepTitles[i]) })
			if size.Width == 800 {
				h.screenshot(fmt.Sprintf("800x600-%d-%s", i, stepTitles[i]))
			}
		}
		h.ui(func() {
			h.u.tabs.SelectIndex(1)
			refreshTree(h.u.win.Content())
			h.u.win.Resize(size)
		})
		h.ui(func() {
			checkLayout(t, h.u, size, "dashboard")
			// The users table shows more than one row.
			if th := h.u.dash.table.table.Size().Height; th < 150 {
				t.Errorf("%v: the users table is %v high", size, th)
			}
		})
		if size.Width == 800 {
			h.screenshot("800x600-dashboard")
		}
		if screen.scale == 2 {
			// The pixels of a 4K screen, the text at twice its size.
			h.ui(func() {
				img := h.u.win.Canvas().Capture()
				if b := img.Bounds(); b.Dx() != 3840 || b.Dy() != 2160 {
					t.Errorf("at 200%% the 1920x1080 window renders to %v pixels, want 3840x2160", b)
				}
				if px := h.u.win.Canvas().Scale() * theme.TextSize(); px < 2*theme.TextSize() {
					t.Errorf("at 200%% text is %v pixels high", px)
				}
			})
			h.screenshot("3840x2160-dashboard")
		}
	}
}

// TestDialogsFitSmallScreen: at 800x600 the dashboard's dialogs lay their
// text out within the window: nothing is wider than the dialog (a hint
// that does not wrap would push every line past the right edge, cut).
func TestDialogsFitSmallScreen(t *testing.T) {
	h := newHarness(t)
	snap := fillDashboard(t, h, 3)
	size := fyne.NewSize(800, 600)
	h.ui(func() {
		h.u.tabs.SelectIndex(1)
		h.u.win.Resize(size)
	})
	fits := func(name string, body fyne.CanvasObject) {
		t.Helper()
		// A dialog at 800x600 leaves the window's padding and its own.
		if w := body.MinSize().Width; w > size.Width-60 {
			t.Errorf("%s: its content needs %v wide, the window is %v", name, w, size.Width)
		}
	}
	h.ui(func() {
		r := h.u.dash.newReadinessDialog(snap.Domains[0])
		fits("the readiness dialog", r.body)
		users := snap.Users()
		ud := h.u.dash.userDialog(users[len(users)-1])
		fits("the user's dialog", ud.body)
	})
}
