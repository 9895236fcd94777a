package ui

import (
	"fmt"
	"os"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
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
// is inside the window; the same on a 4K screen at 200% (1920x1080 units).
func TestLayoutSmallScreen(t *testing.T) {
	h := newHarness(t)
	h.shots = os.Getenv(screenshotsEnv)
	fillDashboard(t, h, 40)
	for _, size := range []fyne.Size{fyne.NewSize(800, 600), fyne.NewSize(1920, 1080)} {
		h.ui(func() { h.u.win.Resize(size) })
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
	}
}
