package runtime

import (
	"os"
	goruntime "runtime"
	"testing"
)

// TestConcurrentRuns checks that ConcurrentRuns leaves a P spare for n
// workers and restores GOMAXPROCS after, to Go's default where it was not
// set, and that it leaves more Ps, or a later change, alone.
func TestConcurrentRuns(t *testing.T) {
	old := goruntime.GOMAXPROCS(0)
	defer goruntime.GOMAXPROCS(old)
	t.Setenv("GOMAXPROCS", "2") // as if the program ran with GOMAXPROCS set
	for _, c := range []struct {
		name              string
		procs, n, changed int // changed: set by someone else meanwhile (0: not)
		during, after     int
	}{
		{"2 workers on 2", 2, 2, 0, 3, 2},
		{"3 workers on 5", 5, 3, 0, 5, 5},
		{"a change meanwhile", 1, 1, 7, 2, 7},
	} {
		goruntime.GOMAXPROCS(c.procs)
		restore := ConcurrentRuns(c.n)
		if got := goruntime.GOMAXPROCS(0); got != c.during {
			t.Errorf("%s: GOMAXPROCS %d, want %d", c.name, got, c.during)
		}
		if c.changed != 0 {
			goruntime.GOMAXPROCS(c.changed)
		}
		restore()
		if got := goruntime.GOMAXPROCS(0); got != c.after {
			t.Errorf("%s: GOMAXPROCS %d after restore, want %d", c.name, got, c.after)
		}
	}

	os.Unsetenv("GOMAXPROCS") // Go's default, which follows the CPUs available
	goruntime.SetDefaultGOMAXPROCS()
	def := goruntime.GOMAXPROCS(0)
	restore := ConcurrentRuns(def)
	if got := goruntime.GOMAXPROCS(0); got != def+1 {
		t.Errorf("GOMAXPROCS %d for %d workers on %d, want %d", got, def, def, def+1)
	}
	restore()
	if got := goruntime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS %d after restore, want the default %d", got, def)
	}
}
