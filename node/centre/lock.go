package centre

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/medfed/medfed/node"
)

// ErrInUse is returned when another process has the data directory open.
var ErrInUse = node.E(node.Conflict, "data directory in use")

// dirLock is an exclusive advisory lock on a data directory, held for as
// long as a process has the centre open. The kernel drops it when the
// process dies, so a crash never leaves a stale lock behind.
type dirLock struct{ f *os.File }

// lockDir refuses a directory of a newer format first: the lock's file
// records this process, and such a directory is left as it was.
func lockDir(dir string) (*dirLock, error) {
	if _, err := readFormat(dir, CurrentFormat); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another medfed process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who += " (pid " + pid + ")"
			}
			return nil, fmt.Errorf("%s: %w by %s", dir, ErrInUse, who)
		}
		return nil, fmt.Errorf("locking data directory %s: %w", dir, err)
	}
	// The pid is only for the message above; the lock is the flock.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking data directory: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking data directory: %w", err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) unlock() error {
	return l.f.Close() // closing the descriptor releases the flock
}
