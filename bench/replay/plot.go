package main

import (
	"fmt"
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 140, G: 140, B: 140, A: 255}
	purple = color.RGBA{R: 148, G: 103, B: 189, A: 255}
)

// series is one line of a panel.
type series struct {
	name   string
	color  color.Color
	dashed bool
	width  vg.Length
	points plotter.XYs
}

// renderPNG draws one shape's replay as a PNG of two panels sharing the time axis: pods
// (desired, ready, and the load ÷ target they should follow) and latency (p50, p99).
func renderPNG(path, title string, secs []second, target, maxScale int) error {
	var desired, ready, ideal, panicked, p50, p99 plotter.XYs
	for _, s := range secs {
		x := float64(s.t)
		if s.desired >= 0 {
			desired = append(desired, plotter.XY{X: x, Y: float64(s.desired)})
		}
		if s.ready >= 0 {
			ready = append(ready, plotter.XY{X: x, Y: float64(s.ready)})
		}
		want := float64(s.offered) / float64(target)
		if maxScale > 0 {
			want = min(want, float64(maxScale))
		}
		ideal = append(ideal, plotter.XY{X: x, Y: want})
		if s.panic == 1 {
			panicked = append(panicked, plotter.XY{X: x + 0.5, Y: float64(maxScale) + 1})
		}
		if s.ok > 0 {
			p50 = append(p50, plotter.XY{X: x, Y: ms(s.p50)})
			p99 = append(p99, plotter.XY{X: x, Y: ms(s.p99)})
		}
	}
	end := float64(len(secs))

	pods, err := panel(title, "pods", end, []series{
		{name: fmt.Sprintf("load ÷ target (%d), capped at max-scale", target), color: grey, dashed: true, width: 1.5, points: ideal},
		{name: "desired (PodAutoscaler)", color: blue, width: 2, points: desired},
		{name: "ready (Deployment)", color: green, width: 2, points: ready},
	})
	if err != nil {
		return err
	}
	// Room above the lines for the legend.
	if len(panicked) > 0 {
		marks, err := plotter.NewScatter(panicked)
		if err != nil {
			return err
		}
		marks.Shape = draw.BoxGlyph{}
		marks.Color = purple
		marks.Radius = vg.Points(2.5)
		pods.Add(marks)
		pods.Legend.Add("a second read in panic mode", marks)
	}
	pods.Y.Min, pods.Y.Max = 0, 1.45*max(pods.Y.Max, float64(maxScale))
	latency, err := panel("", "latency of the requests begun that second (ms)", end, []series{
		{name: "p50", color: orange, width: 2, points: p50},
		{name: "p99", color: red, width: 2, points: p99},
	})
	if err != nil {
		return err
	}
	latency.Y.Min, latency.Y.Max = 0, 1.3*latency.Y.Max
	latency.X.Label.Text = "seconds since the shape began"

	const width, height = 22 * vg.Centimeter, 18 * vg.Centimeter
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 8, PadY: 6}
	canvases := plot.Align([][]*plot.Plot{{pods}, {latency}}, tiles, dc)
	pods.Draw(canvases[0][0])
	latency.Draw(canvases[1][0])

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// panel is a plot of the series over seconds 0 to end, with a legend at its top left.
func panel(title, ylabel string, end float64, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = 0, end
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	for _, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.points)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		l.Color = s.color
		// A value holds for its whole second.
		l.StepStyle = plotter.PostStep
		l.Width = s.width
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
