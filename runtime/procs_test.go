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
	t.Setenv("GOMAXPROCS", "2") // as if run with GOMAXPROCS=2
	goruntime.GOMAXPROCS(2)
	restore := ConcurrentRuns(2)
	if got := goruntime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS %d for 2 workers on 2, want 3", got)
	}
	restore()
	if got := goruntime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS %d after restore, want 2", got)
	}
	goruntime.GOMAXPROCS(5)
	restore = ConcurrentRuns(3)
	if got := goruntime.GOMAXPROCS(0); got != 5 {
		t.Errorf("GOMAXPROCS %d for 3 workers on 5, want 5 left alone", got)
	}
	restore()
	if got := goruntime.GOMAXPROCS(0); got != 5 {
		t.Errorf("GOMAXPROCS %d after a restore that had nothing to do, want 5", got)
	}
	goruntime.GOMAXPROCS(1)
	restore = ConcurrentRuns(1)
	goruntime.GOMAXPROCS(7) // changed by someone else meanwhile
	restore()
	if got := goruntime.GOMAXPROCS(0); got != 7 {
		t.Errorf("GOMAXPROCS %d after a restore over another change, want 7 kept", got)
	}

	os.Unsetenv("GOMAXPROCS") // Go's default, which follows the CPUs available
	goruntime.SetDefaultGOMAXPROCS()
	def := goruntime.GOMAXPROCS(0)
	restore = ConcurrentRuns(def)
	if got := goruntime.GOMAXPROCS(0); got != def+1 {
		t.Errorf("GOMAXPROCS %d for %d workers on %d, want %d", got, def, def, def+1)
	}
	restore()
	if got := goruntime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS %d after restore, want the default %d", got, def)
	}
}
