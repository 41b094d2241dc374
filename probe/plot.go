package probe

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi is the resolution figures are drawn at: sizes are given in pixels,
// and text keeps the size it has on a screen.
const dpi = 96

// Colouring gives each sample a value to colour its point by in PlotPCA.
type Colouring struct {
	Name   string
	Values []float64 // one per sample; NaN draws the point grey
}

// PlotPredicted writes a PNG image, width×height pixels, of predicted
// against true values of a continuous property on the test samples: one
// panel per representation that has a probe for it, in the report's order,
// with the diagonal of perfect predictions and the R² in the title.
func PlotPredicted(w io.Writer, res *Result, property string, width, height int) error {
	var plots []*plot.Plot
	for _, rep := range res.Report.Columns {
		p := res.Probe(rep, property)
		if p == nil || p.Ridge == nil {
			continue
		}
		pl := plot.New()
		pl.Title.Text = fmt.Sprintf("%s: R² %s", rep, fixed(R2(p.True, p.Predicted)))
		pl.X.Label.Text = "true " + property
		pl.Y.Label.Text = "predicted " + property
		xy := make(plotter.XYs, len(p.True))
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range xy {
			xy[i].X, xy[i].Y = p.True[i], p.Predicted[i]
			lo, hi = math.Min(lo, math.Min(xy[i].X, xy[i].Y)), math.Max(hi, math.Max(xy[i].X, xy[i].Y))
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("probe: plot %s from %s: %w", property, rep, err)
		}
		sc.GlyphStyle.Radius = vg.Points(2)
		sc.GlyphStyle.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
		diag, err := plotter.NewLine(plotter.XYs{{X: lo, Y: lo}, {X: hi, Y: hi}})
		if err != nil {
			return fmt.Errorf("probe: plot %s from %s: %w", property, rep, err)
		}
		diag.Color = color.Gray{Y: 128}
		diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		pl.Add(plotter.NewGrid(), diag, sc)
		plots = append(plots, pl)
	}
	if len(plots) == 0 {
		return fmt.Errorf("probe: no probe predicts %s by regression", property)
	}
	return writePNG(w, width, height, len(plots), func(dc []draw.Canvas) {
		for i, pl := range plots {
			pl.Draw(dc[i])
		}
	})
}

// PlotPCA writes a PNG image, width×height pixels, of the samples' features
// x [n, p] projected on their first two principal components (centred, not
// scaled, as gonum's stat.PC does it): one panel per colouring, the points
// coloured by its values, with a colour bar underneath.
func PlotPCA(w io.Writer, x mat.Matrix, title string, colourings []Colouring, width, height int) error {
	n, p := x.Dims()
	if n < 2 || p < 2 {
		return fmt.Errorf("probe: PCA of %d×%d features, want at least 2×2", n, p)
	}
	if len(colourings) == 0 {
		return fmt.Errorf("probe: PCA without colourings to draw")
	}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return fmt.Errorf("probe: PCA of %s did not converge", title)
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	vars := pc.VarsTo(nil)
	total := 0.0
	for _, v := range vars {
		total += v
	}
	// Scores on the first two components: centred x times their directions.
	xc := mat.DenseCopyOf(x)
	for j := 0; j < p; j++ {
		col := mat.Col(nil, j, xc)
		m := stat.Mean(col, nil)
		for i := range col {
			col[i] -= m
		}
		xc.SetCol(j, col)
	}
	var scores mat.Dense
	scores.Mul(xc, vecs.Slice(0, p, 0, 2))

	type panel struct{ main, bar *plot.Plot }
	var panels []panel
	for _, c := range colourings {
		if len(c.Values) != n {
			return fmt.Errorf("probe: colouring %s has %d values for %d samples", c.Name, len(c.Values), n)
		}
		cm := colourMap(c.Values)
		pl := plot.New()
		pl.Title.Text = fmt.Sprintf("%s, coloured by %s", title, c.Name)
		pl.X.Label.Text = fmt.Sprintf("PC1 (%.0f%% of variance)", 100*vars[0]/total)
		pl.Y.Label.Text = fmt.Sprintf("PC2 (%.0f%%)", 100*vars[1]/total)
		xy := make(plotter.XYs, n)
		for i := range xy {
			xy[i].X, xy[i].Y = scores.At(i, 0), scores.At(i, 1)
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("probe: PCA of %s: %w", title, err)
		}
		sc.GlyphStyleFunc = func(i int) draw.GlyphStyle {
			g := draw.GlyphStyle{Shape: draw.CircleGlyph{}, Radius: vg.Points(2.5), Color: color.Gray{Y: 160}}
			if col, err := cm.At(c.Values[i]); err == nil {
				g.Color = col
			}
			return g
		}
		pl.Add(plotter.NewGrid(), sc)
		bar := plot.New()
		bar.Add(&plotter.ColorBar{ColorMap: cm, Colors: 128})
		bar.HideY()
		bar.X.Label.Text = c.Name
		panels = append(panels, panel{pl, bar})
	}
	return writePNG(w, width, height, len(panels), func(dc []draw.Canvas) {
		for i, pn := range panels {
			c := dc[i]
			barH := vg.Length(math.Min(float64(c.Max.Y-c.Min.Y)*0.18, 70))
			pn.main.Draw(draw.Crop(c, 0, 0, barH, 0))
			pn.bar.Draw(draw.Crop(c, 0, 0, 0, barH-(c.Max.Y-c.Min.Y)))
		}
	})
}

// colourMap maps the range of the finite values onto a blue-to-red scale.
func colourMap(v []float64) palette.ColorMap {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if lo > hi { // no finite value
		lo, hi = 0, 1
	}
	if lo == hi {
		lo, hi = lo-0.5, hi+0.5
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(lo)
	cm.SetMax(hi)
	return cm
}

// writePNG draws k panels side by side on a width×height canvas and writes
// it as PNG.
func writePNG(w io.Writer, width, height, k int, draw1 func([]draw.Canvas)) error {
	if width < 64*k || height < 64 {
		return fmt.Errorf("probe: figure of %d×%d pixels for %d panels, want at least %d×64", width, height, k, 64*k)
	}
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }
	img := vgimg.NewWith(vgimg.UseWH(px(width), px(height)), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: k, PadX: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := make([]draw.Canvas, k)
	for i := range canvases {
		canvases[i] = tiles.At(dc, i, 0)
	}
	draw1(canvases)
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("probe: write PNG: %w", err)
	}
	return nil
}
