// Package progress reports the progress of long operations on standard error:
// a bar with a rate and an ETA redrawn in place on a terminal, and plain lines
// at most every few seconds otherwise, so logs of batch jobs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar reports progress of one operation of Total steps. Its methods are safe
// for concurrent use. The zero Bar is not usable; use New.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	label    string
	unit     string
	total    int64
	done     int64
	start    time.Time
	last     time.Time
	every    time.Duration
	finished bool
}

// New starts a bar on standard error. unit names a step ("models",
// "samples") in the rate.
func New(label string, total int64, unit string) *Bar {
	return NewTo(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), label, total, unit)
}

// NewTo starts a bar on w; tty chooses the in-place bar over plain lines.
func NewTo(w io.Writer, tty bool, label string, total int64, unit string) *Bar {
	now := time.Now()
	every := 5 * time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	return &Bar{w: w, tty: tty, label: label, unit: unit, total: total, start: now, last: now, every: every}
}

// Add records n more steps done.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if now := time.Now(); now.Sub(b.last) >= b.every {
		b.last = now
		b.draw(now)
	}
}

// Finish draws the final state and ends the bar's line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	b.draw(time.Now())
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func (b *Bar) draw(now time.Time) {
	el := now.Sub(b.start)
	rate := float64(b.done) / max(el.Seconds(), 1e-9)
	eta := "?"
	if b.done > 0 && b.total > 0 {
		eta = fmtDuration(time.Duration(float64(el) * float64(b.total-b.done) / float64(b.done)))
	}
	pct := 0.0
	if b.total > 0 {
		pct = 100 * float64(b.done) / float64(b.total)
	}
	if !b.tty {
		fmt.Fprintf(b.w, "%s: %d/%d %s (%.0f%%), %.1f %s/s, elapsed %s, eta %s\n",
			b.label, b.done, b.total, b.unit, pct, rate, b.unit, fmtDuration(el), eta)
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	fill = min(max(fill, 0), width)
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d %.1f %s/s eta %s  ", b.label,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), b.done, b.total, rate, b.unit, eta)
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	if m > 0 {
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
