// Package dirlock gives one process at a time a directory to write: two runs
// of a long job (a zoo, a fit) writing one directory would clobber each
// other. The lock is an flock on DIR/.lock, which the kernel drops when the
// process dies, so a killed run never leaves its directory locked.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrBusy is returned when another process holds the lock.
var ErrBusy = errors.New("locked by another process")

type busyError struct{ msg string }

func (e *busyError) Error() string        { return e.msg }
func (e *busyError) Is(target error) bool { return target == ErrBusy }

// Name is the lock file's name inside the directory.
const Name = ".lock"

// Lock creates dir if needed and takes its lock. The caller calls unlock
// when done; a process that dies releases it too. doing names the job for
// the error another process gets: "DIR is being DOING by another process".
func Lock(dir, doing string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, Name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &busyError{fmt.Sprintf("%s is being %s by another process", dir, doing)}
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
