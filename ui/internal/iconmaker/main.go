// Command iconmaker draws the Mailferry application icon (assets/icon.png):
// a rounded blue square with a white envelope riding on two waves. It is
// run once by hand (go run ./ui/internal/iconmaker) and its output is
// committed; the build does not run it.
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

func main() {
	out := flag.String("o", "assets/icon.png", "output PNG file")
	size := flag.Int("size", 512, "icon size in pixels")
	flag.Parse()
	img := draw(*size)
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := png.Encode(f, img); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// draw renders the icon with 4x4 supersampling for smooth edges.
func draw(n int) *image.NRGBA {
	const ss = 4
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) / float64(n)
					y := (float64(py) + (float64(sy)+0.5)/ss) / float64(n)
					c := shade(x, y)
					r += c[0] * c[3]
					g += c[1] * c[3]
					b += c[2] * c[3]
					a += c[3]
				}
			}
			k := float64(ss * ss)
			if a > 0 {
				r, g, b = r/a, g/a, b/a
			}
			img.SetNRGBA(px, py, color.NRGBA{R: u8(r), G: u8(g), B: u8(b), A: u8(a / k)})
		}
	}
	return img
}

func u8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v*255)))) }

// shade returns the colour (r, g, b, a in 0..1) at (x, y) in unit coordinates.
func shade(x, y float64) [4]float64 {
	// Rounded square background with a vertical gradient.
	if !inRoundRect(x, y, 0.04, 0.04, 0.96, 0.96, 0.18) {
		return [4]float64{}
	}
	top := [3]float64{0.16, 0.47, 0.90}
	bot := [3]float64{0.05, 0.26, 0.62}
	t := (y - 0.04) / 0.92
	c := [4]float64{top[0] + (bot[0]-top[0])*t, top[1] + (bot[1]-top[1])*t, top[2] + (bot[2]-top[2])*t, 1}
	white := [4]float64{1, 1, 1, 1}
	foam := [4]float64{0.62, 0.85, 1, 1}

	// Waves: two sine bands near the bottom.
	w1 := 0.74 + 0.025*math.Sin(x*2*math.Pi*2.0)
	w2 := 0.84 + 0.025*math.Sin(x*2*math.Pi*2.0+math.Pi)
	if math.Abs(y-w1) < 0.022 && x > 0.14 && x < 0.86 {
		return foam
	}
	if math.Abs(y-w2) < 0.022 && x > 0.20 && x < 0.80 {
		return white
	}

	// Envelope: a white rounded rectangle with a blue flap outline.
	ex0, ey0, ex1, ey1 := 0.22, 0.24, 0.78, 0.62
	if inRoundRect(x, y, ex0, ey0, ex1, ey1, 0.04) {
		// Flap: the "V" from the top corners to the centre.
		cx, cy := (ex0+ex1)/2, ey0+(ey1-ey0)*0.58
		d1 := distSeg(x, y, ex0+0.01, ey0+0.01, cx, cy)
		d2 := distSeg(x, y, ex1-0.01, ey0+0.01, cx, cy)
		if math.Min(d1, d2) < 0.018 {
			return [4]float64{0.10, 0.36, 0.78, 1}
		}
		return white
	}
	return c
}

func inRoundRect(x, y, x0, y0, x1, y1, r float64) bool {
	if x < x0 || x > x1 || y < y0 || y > y1 {
		return false
	}
	cx := math.Max(x0+r, math.Min(x, x1-r))
	cy := math.Max(y0+r, math.Min(y, y1-r))
	return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
}

func distSeg(px, py, ax, ay, bx, by float64) float64 {
	vx, vy := bx-ax, by-ay
	t := ((px-ax)*vx + (py-ay)*vy) / (vx*vx + vy*vy)
	t = math.Max(0, math.Min(1, t))
	dx, dy := px-(ax+t*vx), py-(ay+t*vy)
	return math.Hypot(dx, dy)
}
