package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// Socket is the admin socket's name in the data directory.
const Socket = "medfed.sock"

// maxSocketPath is what a unix socket address holds (108 bytes with its NUL).
const maxSocketPath = 100

// socketPath is where the admin socket of data directory dir lives: in
// the directory, or, when that path is too long for a socket address, in
// a private directory of the user's under $XDG_RUNTIME_DIR or /tmp, named
// after the data directory's absolute path.
func socketPath(dir string) (path, private string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(abs, Socket)
	if len(path) <= maxSocketPath {
		return path, "", nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = "/tmp"
	}
	private = filepath.Join(base, fmt.Sprintf("medfed-%d", os.Getuid()))
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(private, hex.EncodeToString(sum[:8])+".sock"), private, nil
}

// Listen opens the admin socket of data directory dir, mode 0600. The
// caller must hold the directory (a running centre does, under its lock):
// a socket left behind by a crashed node is removed first.
func Listen(dir string) (net.Listener, error) {
	path, private, err := socketPath(dir)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if private != "" {
		if err := ownPrivateDir(private); err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// ownPrivateDir makes sure dir exists, is ours and no one else's.
func ownPrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s must be a directory of this user's with mode 0700", dir)
	}
	return nil
}
