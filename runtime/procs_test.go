package runtime

import (
	"os"
	goruntime "runtime"
	"sync"
	"testing"
)

// TestSpareP checks that spareP leaves a P spare for n
// workers and restores GOMAXPROCS after, to Go's default where it was not
// set, and that it leaves more Ps, or a later change, alone.
func TestSpareP(t *testing.T) {
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
		restore := spareP(c.n)
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
	restore := spareP(def)
	if got := goruntime.GOMAXPROCS(0); got != def+1 {
		t.Errorf("GOMAXPROCS %d for %d workers on %d, want %d", got, def, def, def+1)
	}
	restore()
	if got := goruntime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS %d after restore, want the default %d", got, def)
	}
}

// TestRunWorkers checks that RunWorkers runs every worker once, at once
// (each waits for all to have started), with a P spare while they run.
func TestRunWorkers(t *testing.T) {
	old := goruntime.GOMAXPROCS(0)
	defer goruntime.GOMAXPROCS(old)
	goruntime.GOMAXPROCS(2)
	const n = 3
	var started sync.WaitGroup
	started.Add(n)
	ran := make([]int, n)
	procs := make([]int, n)
	RunWorkers(n, func(w int) {
		started.Done()
		started.Wait()
		ran[w]++
		procs[w] = goruntime.GOMAXPROCS(0)
	})
	for w := range n {
		if ran[w] != 1 || procs[w] != n+1 {
			t.Errorf("worker %d ran %d times with GOMAXPROCS %d, want once with %d", w, ran[w], procs[w], n+1)
		}
	}
}
