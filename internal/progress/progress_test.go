package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	b := NewTo(&buf, false, "eval", 4, "models")
	b.Add(1) // within the first interval: nothing drawn yet
	if buf.Len() != 0 {
		t.Fatalf("drew %q before the interval passed", buf.String())
	}
	b.Add(3)
	b.Finish()
	b.Finish()
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "eval: 4/4 models (100%)") {
		t.Fatalf("plain output %q", out)
	}
	if strings.Contains(out, "\r") {
		t.Fatal("plain output contains a carriage return")
	}
}

func TestTerminalBar(t *testing.T) {
	var buf bytes.Buffer
	b := NewTo(&buf, true, "train", 10, "steps")
	b.Add(5)
	b.Finish()
	out := buf.String()
	if !strings.HasPrefix(out, "\rtrain [") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "5/10") {
		t.Fatalf("terminal output %q", out)
	}
}
