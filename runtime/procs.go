package runtime

import (
	"os"
	goruntime "runtime"
	"sync"
)

// RunWorkers runs work(0), ..., work(n-1) at once, each in a goroutine
// locked to its own thread, with Go given a P more than n while they run,
// and returns when all have. It is for workers that each run ORT sessions
// back to back (training populations, fine-tuning models): such a worker
// spends nearly all its time in cgo calls of about a millisecond each, and
// with no idle P, Go's sysmon takes a worker's P away from it after every
// 20 µs tick, so sysmon never backs off and wakes thousands of times a
// second, each time taking a core from a worker. On a 2-core machine, with
// one worker per core, GOMAXPROCS 3 instead of 2 took a zoo training run
// (16 cnn-s models, 2 epochs) from 24,500 nanosleeps and 56,000 context
// switches to 14,500 and 32,000 and from 7.13 to 7.70 model-epochs/s
// (medians of 7 alternating runs); locking each worker to its thread as
// well gave 7.78.
func RunWorkers(n int, work func(w int)) {
	defer spareP(n)()
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			work(w)
		}()
	}
	wg.Wait()
}

// spareP makes sure Go has at least n+1 Ps (GOMAXPROCS) until the
// returned function is called, which restores the setting: to Go's
// default where GOMAXPROCS was not set in the environment, and not at all
// where it was changed meanwhile.
func spareP(n int) (restore func()) {
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
