package generate

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotBench writes a PNG image, width×height pixels, of the benchmark's
// mean test accuracy against the epoch of fine-tuning, one line per group
// with error bars of one standard deviation.
func PlotBench(w io.Writer, r *BenchResult, width, height int) error {
	if width < 64 || height < 64 {
		return fmt.Errorf("generate: figure of %d×%d pixels, want at least 64×64", width, height)
	}
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("fine-tuning %s", r.Template)
	pl.X.Label.Text = "epoch of fine-tuning"
	pl.Y.Label.Text = "test accuracy (%)"
	pl.Y.Min, pl.Y.Max = 0, 100
	pl.Legend.Top = false
	pl.Legend.Left = false
	pl.Add(plotter.NewGrid())
	for gi, g := range r.Groups {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, e := range r.Epochs {
			row := r.Row(g.Name, e)
			if row == nil || row.N == 0 || math.IsNaN(row.Mean) {
				continue
			}
			pts = append(pts, plotter.XY{X: float64(e), Y: 100 * row.Mean})
			errs = append(errs, struct{ Low, High float64 }{100 * row.Std, 100 * row.Std})
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("generate: plot %s: %w", g.Name, err)
		}
		c := plotutil.Color(gi)
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(gi)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return fmt.Errorf("generate: plot %s: %w", g.Name, err)
		}
		eb.Color = c
		pl.Add(line, points, eb)
		pl.Legend.Add(fmt.Sprintf("%s (%d)", g.Name, len(g.Models)), line, points)
	}
	const dpi = 96
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }
	img := vgimg.NewWith(vgimg.UseWH(px(width), px(height)), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	pl.Draw(dc)
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("generate: write PNG: %w", err)
	}
	return nil
}
