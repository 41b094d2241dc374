package probe

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sampleReport() *Report {
	return &Report{
		Columns: []string{"hyperrep", "stats", "weights"},
		Rows: []Row{
			{TestAcc, MetricR2, []float64{0.949, 0.815, 0.747}},
			{TestAcc, MetricKendallTau, []float64{0.8123456789, 0.70, 0.61}},
			{GenGap, MetricR2, []float64{0.5, -0.25, math.NaN()}},
			{"activation", MetricAccuracy, []float64{1, 0.875, 0.8125}},
		},
	}
}

func TestReportGolden(t *testing.T) {
	r := sampleReport()
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"report.txt", func(b *bytes.Buffer) error { return r.WriteTable(b) }},
		{"report.md", func(b *bytes.Buffer) error { return r.WriteMarkdown(b) }},
		{"report.csv", func(b *bytes.Buffer) error { return r.WriteCSV(b) }},
		{"report.json", func(b *bytes.Buffer) error {
			data, err := json.Marshal(r)
			b.Write(data)
			return err
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("got\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}

// The JSON is exactly the shape the CLI promises, columns in order.
func TestReportJSONShape(t *testing.T) {
	r := &Report{Columns: []string{"hyperrep", "stats"}, Rows: []Row{{TestAcc, MetricR2, []float64{0.95, math.NaN()}}}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"property":"test_acc","metric":"r2","hyperrep":0.95,"stats":null}]}`; string(data) != want {
		t.Errorf("JSON %s, want %s", data, want)
	}
	// Not only through a pointer.
	if data, _ := json.Marshal(struct{ R Report }{*r}); string(data) != `{"R":{"rows":[{"property":"test_acc","metric":"r2","hyperrep":0.95,"stats":null}]}}` {
		t.Errorf("JSON of a Report value %s", data)
	}
	// A missing representation is a missing column, not a null one.
	r = &Report{Columns: []string{"stats", "weights"}, Rows: []Row{{"lr", MetricAccuracy, []float64{0.5, 0.25}}}}
	data, _ = json.Marshal(r)
	if want := `{"rows":[{"property":"lr","metric":"accuracy","stats":0.5,"weights":0.25}]}`; string(data) != want {
		t.Errorf("JSON %s, want %s", data, want)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(&back)
	if string(again) != string(data) || strings.Join(back.Columns, ",") != "hyperrep,stats,weights" {
		t.Errorf("round trip gave %s from %s", again, data)
	}
	if !math.IsNaN(back.Rows[2].Values[2]) {
		t.Errorf("null came back as %v", back.Rows[2].Values[2])
	}
	if err := json.Unmarshal([]byte(`{"rows":[{"property":"a","metric":"r2","x":1},{"property":"b","metric":"r2","y":1}]}`), &back); err == nil {
		t.Error("rows with different representations were accepted")
	}
}

func TestReportBadShape(t *testing.T) {
	for _, r := range []*Report{
		{Columns: []string{"a"}, Rows: []Row{{"p", "r2", []float64{1, 2}}}},
		{Columns: []string{"a", "a"}},
		{Columns: []string{"metric"}},
	} {
		var b bytes.Buffer
		if err := r.WriteTable(&b); err == nil {
			t.Errorf("report %+v written", r)
		}
		if _, err := json.Marshal(r); err == nil {
			t.Errorf("report %+v marshalled", r)
		}
	}
}
