// Command demoimages draws the demo catalog's product photos (a tee, a mug,
// a sneaker) as studio-style JPEGs with Go's image packages. The files are
// committed under web/static/demo and embedded in the binary, so the demo
// shows real pictures on first `make run`; `go generate ./web` redraws them.
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/image/vector"
)

const W, H = 800, 600

// grad is a gradient: f maps a point to a colour.
type grad func(x, y float64) color.RGBA

func (g grad) ColorModel() color.Model { return color.RGBAModel }
func (g grad) Bounds() image.Rectangle { return image.Rect(-1e6, -1e6, 1e6, 1e6) }
func (g grad) At(x, y int) color.Color { return g(float64(x), float64(y)) }

func mix(a, b color.RGBA, t float64) color.RGBA {
	t = math.Max(0, math.Min(1, t))
	l := func(p, q uint8) uint8 { return uint8(float64(p) + (float64(q)-float64(p))*t + 0.5) }
	return color.RGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), 255}
}

func shade(c color.RGBA, k float64) color.RGBA {
	if k < 0 {
		return mix(c, color.RGBA{0, 0, 0, 255}, -k)
	}
	return mix(c, color.RGBA{255, 255, 255, 255}, k)
}

// cylinder lights a colour like a round object lit from the upper left.
func cylinder(c color.RGBA, x0, x1 float64) grad {
	return func(x, y float64) color.RGBA {
		t := (x - x0) / (x1 - x0)
		k := 0.35*math.Cos((t-0.3)*math.Pi) - 0.18
		return shade(c, k)
	}
}

func fill(dst *image.RGBA, src image.Image, path func(z *vector.Rasterizer)) {
	z := vector.NewRasterizer(W, H)
	path(z)
	z.ClosePath()
	z.Draw(dst, dst.Bounds(), src, image.Point{})
}

func uni(c color.RGBA) image.Image { return image.NewUniform(c) }

func ellipse(z *vector.Rasterizer, cx, cy, rx, ry float32) {
	const k = 0.5523
	z.MoveTo(cx+rx, cy)
	z.CubeTo(cx+rx, cy+ry*k, cx+rx*k, cy+ry, cx, cy+ry)
	z.CubeTo(cx-rx*k, cy+ry, cx-rx, cy+ry*k, cx-rx, cy)
	z.CubeTo(cx-rx, cy-ry*k, cx-rx*k, cy-ry, cx, cy-ry)
	z.CubeTo(cx+rx*k, cy-ry, cx+rx, cy-ry*k, cx+rx, cy)
}

// backdrop is a studio sweep with a soft floor shadow under the product.
func backdrop(top, bottom color.RGBA, shadowW float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), grad(func(x, y float64) color.RGBA {
		v := mix(top, bottom, y/H)
		d := math.Hypot((x-W/2)/W, (y-H*0.45)/H)
		return shade(v, 0.12-0.35*d) // a light vignette
	}), image.Point{}, draw.Src)
	sh := grad(func(x, y float64) color.RGBA { return color.RGBA{0, 0, 0, 255} })
	for i := 0; i < 12; i++ {
		a := uint8(7)
		m := image.NewUniform(color.Alpha{a})
		z := vector.NewRasterizer(W, H)
		r := float32(shadowW) * (1 - float32(i)*0.05)
		ellipse(z, W/2, 520, r, r*0.13)
		z.ClosePath()
		tmp := image.NewRGBA(img.Bounds())
		z.Draw(tmp, tmp.Bounds(), uni(color.RGBA{255, 255, 255, 255}), image.Point{})
		draw.DrawMask(img, img.Bounds(), sh, image.Point{}, maskOf(tmp, m), image.Point{}, draw.Over)
	}
	return img
}

// maskOf turns a white-on-transparent drawing into an alpha mask scaled by m.
func maskOf(tmp *image.RGBA, m *image.Uniform) *image.Alpha {
	a := image.NewAlpha(tmp.Bounds())
	_, _, _, ma := m.C.RGBA()
	for i := 0; i < len(a.Pix); i++ {
		a.Pix[i] = uint8(uint32(tmp.Pix[i*4+3]) * ma / 0xffff)
	}
	return a
}

func mug() *image.RGBA {
	img := backdrop(color.RGBA{236, 230, 221, 255}, color.RGBA{214, 204, 190, 255}, 190)
	body := color.RGBA{38, 84, 124, 255}
	// Handle: a thick ring on the right, drawn first so the body covers it.
	fill(img, cylinder(shade(body, -0.1), 480, 640), func(z *vector.Rasterizer) {
		ellipse(z, 545, 330, 95, 105)
		z.ClosePath()
		// inner hole (opposite winding cut by even-odd is not available: draw it over)
	})
	fill(img, grad(func(x, y float64) color.RGBA {
		v := mix(color.RGBA{236, 230, 221, 255}, color.RGBA{214, 204, 190, 255}, y/H)
		return shade(v, 0.05)
	}), func(z *vector.Rasterizer) { ellipse(z, 548, 330, 58, 68) })
	// Body: a cylinder with a rounded bottom edge.
	fill(img, cylinder(body, 250, 550), func(z *vector.Rasterizer) {
		z.MoveTo(250, 170)
		z.LineTo(550, 170)
		z.LineTo(550, 480)
		z.QuadTo(550, 520, 400, 522)
		z.QuadTo(250, 520, 250, 480)
	})
	// Glaze stripe near the foot.
	fill(img, cylinder(color.RGBA{226, 218, 202, 255}, 250, 550), func(z *vector.Rasterizer) {
		z.MoveTo(250, 440)
		z.LineTo(550, 440)
		z.LineTo(550, 480)
		z.QuadTo(550, 520, 400, 522)
		z.QuadTo(250, 520, 250, 480)
	})
	// Rim and the dark inside.
	fill(img, uni(shade(body, 0.25)), func(z *vector.Rasterizer) { ellipse(z, 400, 170, 150, 34) })
	fill(img, grad(func(x, y float64) color.RGBA { return shade(body, -0.55+0.4*(y-140)/60) }), func(z *vector.Rasterizer) { ellipse(z, 400, 172, 138, 27) })
	// A soft highlight down the left of the body.
	fill(img, grad(func(x, y float64) color.RGBA { return shade(body, 0.42) }), func(z *vector.Rasterizer) {
		z.MoveTo(292, 205)
		z.LineTo(306, 205)
		z.LineTo(306, 420)
		z.LineTo(292, 420)
	})
	return img
}

func tee() *image.RGBA {
	img := backdrop(color.RGBA{226, 232, 238, 255}, color.RGBA{196, 205, 215, 255}, 250)
	c := color.RGBA{32, 34, 40, 255}
	cloth := grad(func(x, y float64) color.RGBA {
		// Folds: a few soft vertical waves over a gentle top light.
		k := 0.10*math.Sin(x/37) + 0.06*math.Sin(x/13+y/90) - 0.10*(y-120)/400
		return shade(c, k+0.06)
	})
	fill(img, cloth, func(z *vector.Rasterizer) {
		z.MoveTo(330, 96)
		z.QuadTo(400, 136, 470, 96) // collar front
		z.LineTo(575, 130)
		z.LineTo(660, 250) // right sleeve
		z.LineTo(590, 292)
		z.LineTo(560, 250)
		z.LineTo(565, 520)
		z.QuadTo(400, 535, 235, 520)
		z.LineTo(240, 250)
		z.LineTo(210, 292)
		z.LineTo(140, 250) // left sleeve
		z.LineTo(225, 130)
	})
	// Collar rib and the inside of the neck.
	fill(img, uni(shade(c, -0.35)), func(z *vector.Rasterizer) {
		z.MoveTo(330, 96)
		z.QuadTo(400, 150, 470, 96)
		z.QuadTo(400, 122, 330, 96)
	})
	fill(img, uni(shade(c, 0.18)), func(z *vector.Rasterizer) {
		z.MoveTo(326, 94)
		z.QuadTo(400, 158, 474, 94)
		z.LineTo(470, 96)
		z.QuadTo(400, 148, 330, 96)
	})
	// A small chest print.
	fill(img, uni(color.RGBA{236, 176, 60, 255}), func(z *vector.Rasterizer) { ellipse(z, 470, 220, 22, 22) })
	fill(img, uni(shade(c, 0.05)), func(z *vector.Rasterizer) { ellipse(z, 470, 220, 12, 12) })
	return img
}

func sneaker() *image.RGBA {
	img := backdrop(color.RGBA{240, 236, 230, 255}, color.RGBA{220, 212, 200, 255}, 260)
	upper := color.RGBA{196, 52, 48, 255}
	// Sole.
	fill(img, grad(func(x, y float64) color.RGBA { return shade(color.RGBA{246, 244, 240, 255}, -0.25*(y-440)/70) }), func(z *vector.Rasterizer) {
		z.MoveTo(130, 440)
		z.LineTo(640, 430)
		z.QuadTo(690, 440, 680, 475)
		z.QuadTo(660, 505, 600, 505)
		z.LineTo(170, 505)
		z.QuadTo(120, 500, 125, 465)
	})
	fill(img, uni(color.RGBA{60, 58, 56, 255}), func(z *vector.Rasterizer) {
		z.MoveTo(128, 492)
		z.LineTo(668, 492)
		z.QuadTo(650, 510, 600, 510)
		z.LineTo(170, 510)
		z.QuadTo(138, 508, 128, 492)
	})
	// Upper: heel on the left, toe on the right.
	fill(img, grad(func(x, y float64) color.RGBA { return shade(upper, 0.16-0.3*(y-220)/230) }), func(z *vector.Rasterizer) {
		z.MoveTo(140, 442)
		z.QuadTo(128, 330, 170, 250)
		z.QuadTo(200, 215, 250, 222)
		z.LineTo(300, 235)
		z.QuadTo(320, 300, 370, 280)
		z.LineTo(470, 300)
		z.QuadTo(600, 330, 660, 400)
		z.QuadTo(690, 430, 640, 432)
	})
	// Tongue and opening.
	fill(img, uni(shade(upper, -0.45)), func(z *vector.Rasterizer) {
		z.MoveTo(250, 222)
		z.QuadTo(290, 210, 320, 230)
		z.QuadTo(320, 270, 300, 262)
		z.QuadTo(275, 240, 250, 236)
	})
	// A white side stripe.
	fill(img, uni(color.RGBA{250, 248, 244, 255}), func(z *vector.Rasterizer) {
		z.MoveTo(200, 410)
		z.QuadTo(360, 300, 560, 350)
		z.QuadTo(400, 350, 230, 430)
	})
	// Laces.
	for i := 0; i < 5; i++ {
		x := float32(330 + i*38)
		y := float32(272 + i*12)
		fill(img, uni(color.RGBA{250, 248, 244, 255}), func(z *vector.Rasterizer) {
			z.MoveTo(x-18, y-6)
			z.LineTo(x+20, y+4)
			z.LineTo(x+18, y+12)
			z.LineTo(x-20, y+2)
		})
	}
	// Heel tab.
	fill(img, uni(color.RGBA{30, 30, 34, 255}), func(z *vector.Rasterizer) {
		z.MoveTo(150, 300)
		z.QuadTo(140, 260, 170, 250)
		z.LineTo(180, 300)
	})
	return img
}

func main() {
	out := flag.String("out", "web/static/demo", "output directory")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, img := range map[string]*image.RGBA{"mug.jpg": mug(), "tee.jpg": tee(), "sneaker.jpg": sneaker()} {
		f, err := os.Create(filepath.Join(*out, name))
		if err == nil {
			err = jpeg.Encode(f, img, &jpeg.Options{Quality: 86})
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
