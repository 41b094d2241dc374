// Package atomicfile writes files so that they are either complete or absent:
// the data goes to a temporary file in the same directory, which is synced and
// then renamed over the destination. A crash or an error part-way never leaves
// a partial file under the final name, and never damages what was there.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write creates path with the bytes write puts in the file it is given. On
// any error the temporary file is removed and path is untouched.
func Write(path string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+tempMark+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// WriteBytes is Write for data already in memory.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// tempMark is in the name of every temporary file Write creates, after a
// leading dot and the final name.
const tempMark = ".tmp"

// RemoveTemps deletes, in dir and below, the temporary files that writes
// killed part-way left behind; a resumed job calls it before going on.
func RemoveTemps(dir string) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), tempMark) {
			os.Remove(path)
		}
		return nil
	})
}
