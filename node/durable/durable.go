// Package durable writes the small files of a data directory so that a
// crash leaves each either as it was or whole: written and synced under a
// temporary name, then linked or renamed into place, and the directory
// synced. A centre's keys and certificate, its share of the pseudonym
// key, its format and cursors, its backups' files and a pharmacy's
// pending claims are written so.
package durable

import (
	"os"
	"path/filepath"
)

// TempPrefix begins the names of the temporary files this package makes:
// a file named so is being written, and what it replaces is the file to
// read (a backup skips it; a directory's owner may remove it at start).
const TempPrefix = ".tmp-"

// WriteNew writes data to a new file at path, mode 0600, so that path
// either does not exist or holds all of data: it is written and synced
// under a temporary name, then linked into place, which fails if path
// exists, and the directory is synced.
func WriteNew(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Replace writes data to path, mode 0600, replacing what is there in one
// rename, so that path holds either what it held or all of data, and
// syncs the directory.
func Replace(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return Rename(tmp, path)
}

// Rename renames from to to, replacing it, and syncs the directory.
func Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(to))
}

// SyncDir makes dir's entries durable: the files created, renamed into
// it or removed from it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeTemp writes data, synced, to a new temporary file (mode 0600) in
// path's directory and returns its name; the caller links or renames it
// into place and removes the name.
func writeTemp(path string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), TempPrefix+"*")
	if err != nil {
		return "", err
	}
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}
