package dirlock

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestLockIsExclusiveUntilReleased(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job")
	unlock, err := Lock(dir, "tested")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files, so a second open in this process
	// conflicts just as another process would.
	if _, err := Lock(dir, "tested"); !errors.Is(err, ErrBusy) || err.Error() != dir+" is being tested by another process" {
		t.Fatalf("second Lock: %v, want ErrBusy", err)
	}
	unlock()
	again, err := Lock(dir, "tested")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}
