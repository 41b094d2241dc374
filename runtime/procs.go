package runtime

import (
	"os"
	goruntime "runtime"
)

// ConcurrentRuns readies Go's scheduler for n goroutines that each run ORT
// sessions back to back, until the returned function is called: it makes
// sure Go has at least n+1 Ps (GOMAXPROCS), and the function restores the
// setting. Such a goroutine spends nearly all its time in cgo calls of
// about a millisecond each; with no idle P, Go's sysmon takes a goroutine's
// P away from it after every 20 µs tick, so sysmon never backs off and
// wakes thousands of times a second, each time taking a core from a
// worker. On a 2-core machine, with one worker per core, GOMAXPROCS 3
// instead of 2 took a zoo training run (16 cnn-s models, 2 epochs) from
// 24,500 nanosleeps and 56,000 context switches to 14,500 and 32,000 and
// from 7.13 to 7.70 model-epochs/s (medians of 7 alternating runs; 7.78
// with each worker's goroutine locked to its thread as well, which the
// callers do too).
func ConcurrentRuns(n int) (restore func()) {
	old := goruntime.GOMAXPROCS(0)
	if old > n {
		return func() {}
	}
	goruntime.GOMAXPROCS(n + 1)
	return func() {
		if goruntime.GOMAXPROCS(0) != n+1 {
			return // changed meanwhile: leave it
		}
		if os.Getenv("GOMAXPROCS") == "" {
			goruntime.SetDefaultGOMAXPROCS()
		} else {
			goruntime.GOMAXPROCS(old)
		}
	}
}
