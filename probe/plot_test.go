package probe

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
)

func TestPlots(t *testing.T) {
	z := newSynthZoo(24, 6)
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := z.data.Targets[3].Values
	for _, tc := range []struct {
		name          string
		width, height int
		draw          func(*bytes.Buffer, int, int) error
	}{
		{"predicted", 900, 400, func(b *bytes.Buffer, w, h int) error { return PlotPredicted(b, res, TestAcc, w, h) }},
		{"pca", 1000, 520, func(b *bytes.Buffer, w, h int) error {
			return PlotPCA(b, z.data.Features[0].X, "good", []Colouring{{TestAcc, z.data.Targets[0].Values}, {Epoch, epoch}}, w, h)
		}},
		// Unknown values draw grey points instead of failing.
		{"pca with unknowns", 500, 500, func(b *bytes.Buffer, w, h int) error {
			return PlotPCA(b, z.data.Features[0].X, "good", []Colouring{{TrainAcc, z.data.Targets[1].Values}}, w, h)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.draw(&b, tc.width, tc.height); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&b)
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			if got := img.Bounds().Size(); got.X != tc.width || got.Y != tc.height {
				t.Errorf("image %v, want %d×%d", got, tc.width, tc.height)
			}
			// Something was drawn: not every pixel is the background.
			bg := img.At(0, 0)
			drawn := false
			for y := 0; y < tc.height && !drawn; y += 3 {
				for x := 0; x < tc.width; x += 3 {
					if img.At(x, y) != bg {
						drawn = true
						break
					}
				}
			}
			if !drawn {
				t.Error("blank image")
			}
		})
	}
}

func TestPlotErrors(t *testing.T) {
	z := newSynthZoo(24, 3)
	res, err := Run(&z.data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, tc := range []struct {
		err  error
		want string
	}{
		{PlotPredicted(&b, res, "activation", 800, 400), "no probe predicts activation by regression"},
		{PlotPredicted(&b, res, TestAcc, 100, 400), "figure of 100×400 pixels for 2 panels"},
		{PlotPCA(&b, z.data.Features[0].X, "good", []Colouring{{TestAcc, []float64{1}}}, 400, 400), "colouring test_acc has 1 values for 72 samples"},
		{PlotPCA(&b, z.data.Features[0].X, "good", nil, 400, 400), "without colourings"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", tc.err, tc.want)
		}
	}
}
