package probe

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Report holds the test scores of every representation for every property:
// one row per property and metric, one column per representation.
type Report struct {
	Columns []string // the representations, e.g. "hyperrep", "stats", "weights"
	Rows    []Row
}

// Row is the score of each representation, in the order of the report's
// Columns, for one property and metric; NaN where there is none (a
// constant property on the test samples, say).
type Row struct {
	Property string
	Metric   string
	Values   []float64
}

// check reports a row whose length does not fit the columns, or a column
// name that would collide with the row's own fields in JSON.
func (r *Report) check() error {
	seen := map[string]bool{"property": true, "metric": true}
	for _, c := range r.Columns {
		if c == "" || seen[c] {
			return fmt.Errorf("probe: representation name %q is empty, repeated or reserved", c)
		}
		seen[c] = true
	}
	for _, row := range r.Rows {
		if len(row.Values) != len(r.Columns) {
			return fmt.Errorf("probe: row %s/%s has %d values for %d representations", row.Property, row.Metric, len(row.Values), len(r.Columns))
		}
	}
	return nil
}

// fixed formats a score for people: three decimals, "–" for none.
func fixed(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// WriteTable writes the report as a plain-text table for a terminal: names
// left-aligned, scores right-aligned to three decimals.
func (r *Report) WriteTable(w io.Writer) error {
	if err := r.check(); err != nil {
		return err
	}
	cells := [][]string{append([]string{"property", "metric"}, r.Columns...)}
	for _, row := range r.Rows {
		line := []string{row.Property, row.Metric}
		for _, v := range row.Values {
			line = append(line, fixed(v))
		}
		cells = append(cells, line)
	}
	width := make([]int, len(cells[0]))
	for _, line := range cells {
		for j, c := range line {
			width[j] = max(width[j], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		var l strings.Builder
		for j, c := range line {
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(c))
			if j < 2 {
				l.WriteString(c + pad + "  ")
			} else {
				l.WriteString(pad + c + "  ")
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the report as a markdown table, scores to three
// decimals, the best (highest: every metric here grows with quality) of each
// row in bold.
func (r *Report) WriteMarkdown(w io.Writer) error {
	if err := r.check(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("| property | metric |")
	for _, c := range r.Columns {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(r.Columns)) + "\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s |", row.Property, row.Metric)
		best := math.Inf(-1)
		for _, v := range row.Values {
			if !math.IsNaN(v) {
				best = math.Max(best, v)
			}
		}
		for _, v := range row.Values {
			s := fixed(v)
			// Bold only marks a winner among several.
			if v == best && len(row.Values) > 1 {
				s = "**" + s + "**"
			}
			b.WriteString(" " + s + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCSV writes the report as CSV with a header line, scores with full
// precision and empty where there are none.
func (r *Report) WriteCSV(w io.Writer) error {
	if err := r.check(); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Write(append([]string{"property", "metric"}, r.Columns...))
	for _, row := range r.Rows {
		rec := []string{row.Property, row.Metric}
		for _, v := range row.Values {
			s := ""
			if !math.IsNaN(v) {
				s = strconv.FormatFloat(v, 'g', -1, 64)
			}
			rec = append(rec, s)
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// MarshalJSON writes {"rows": [{"property": …, "metric": …, <column>: score,
// …}, …]}, the columns in order, null for no score. Its receiver is a value
// so that a Report encodes this way inside other values too.
func (r Report) MarshalJSON() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"rows":[`)
	for i, row := range r.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"property":`)
		writeJSON(&b, row.Property)
		b.WriteString(`,"metric":`)
		writeJSON(&b, row.Metric)
		for k, c := range r.Columns {
			b.WriteByte(',')
			writeJSON(&b, c)
			b.WriteByte(':')
			if v := row.Values[k]; math.IsNaN(v) || math.IsInf(v, 0) {
				b.WriteString("null")
			} else {
				b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, s string) {
	e, _ := json.Marshal(s)
	b.Write(e)
}

// UnmarshalJSON reads what MarshalJSON writes; the columns are the keys of
// the first row besides property and metric, in their order there.
func (r *Report) UnmarshalJSON(data []byte) error {
	var doc struct {
		Rows []json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("probe: report: %w", err)
	}
	*r = Report{}
	for i, raw := range doc.Rows {
		keys, vals, err := orderedObject(raw)
		if err != nil {
			return fmt.Errorf("probe: report row %d: %w", i, err)
		}
		var row Row
		var cols []string
		for k, key := range keys {
			switch key {
			case "property", "metric":
				var s string
				if err := json.Unmarshal(vals[k], &s); err != nil {
					return fmt.Errorf("probe: report row %d: %s: %w", i, key, err)
				}
				if key == "property" {
					row.Property = s
				} else {
					row.Metric = s
				}
			default:
				var v *float64
				if err := json.Unmarshal(vals[k], &v); err != nil {
					return fmt.Errorf("probe: report row %d: %s: %w", i, key, err)
				}
				cols = append(cols, key)
				row.Values = append(row.Values, math.NaN())
				if v != nil {
					row.Values[len(row.Values)-1] = *v
				}
			}
		}
		if i == 0 {
			r.Columns = cols
		} else if strings.Join(cols, "\x00") != strings.Join(r.Columns, "\x00") {
			return fmt.Errorf("probe: report row %d has representations %v, row 0 %v", i, cols, r.Columns)
		}
		r.Rows = append(r.Rows, row)
	}
	return nil
}

// orderedObject splits a JSON object into its keys and raw values, in order.
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, fmt.Errorf("want an object")
	}
	var (
		keys []string
		vals []json.RawMessage
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, t.(string))
		vals = append(vals, v)
	}
	return keys, vals, nil
}
