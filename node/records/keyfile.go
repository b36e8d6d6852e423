package records

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medfed/medfed/node/durable"
)

const keySize = 32 // AES-256

// loadKey reads the centre key from path. It refuses a key that group or
// others can access, as ssh does for private keys: a readable key undoes
// the encryption of every payload.
func loadKey(path string) ([keySize]byte, error) {
	var key [keySize]byte
	f, err := os.Open(path)
	if err != nil {
		return key, fmt.Errorf("records: %w", err) // callers test for fs.ErrNotExist
	}
	defer f.Close()
	// Stat the open file rather than the path, so the checks apply to the
	// bytes actually read.
	fi, err := f.Stat()
	if err != nil {
		return key, fmt.Errorf("records: key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return key, fmt.Errorf("records: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return key, fmt.Errorf("records: permissions %#o for key file %s are too open: it must not be accessible by group or others (chmod 600 %s)", perm, path, path)
	}
	if fi.Size() != keySize {
		return key, fmt.Errorf("records: key file %s is %d bytes, want %d", path, fi.Size(), keySize)
	}
	if _, err := io.ReadFull(f, key[:]); err != nil {
		return key, fmt.Errorf("records: reading key file %s: %w", path, err)
	}
	return key, nil
}

// createKey writes a new random centre key to path. The key is written to a
// temporary file (mode 0600 from os.CreateTemp) and synced before it gets
// its name, so a crash never leaves a half-written key. It gets its name by
// a hard link rather than a rename: link fails if path already exists, so
// two processes opening a fresh store at once cannot overwrite each other's
// key (the loser reads the winner's). The directory is synced so the name
// is durable before any payload is sealed under the key.
func createKey(path string) (key [keySize]byte, err error) {
	if err := fillRandom(key[:]); err != nil {
		return key, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".records.key.tmp-*")
	if err != nil {
		return key, fmt.Errorf("records: creating key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // the link below keeps the key; the temp name goes
	if _, err := tmp.Write(key[:]); err != nil {
		tmp.Close()
		return key, fmt.Errorf("records: writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return key, fmt.Errorf("records: syncing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return key, fmt.Errorf("records: writing key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		return key, fmt.Errorf("records: installing key file %s: %w", path, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return key, fmt.Errorf("records: installing key file %s: %w", path, err)
	}
	return key, nil
}

// newAEAD returns AES-256-GCM under key with a random 96-bit nonce that
// Seal prepends to its output and Open strips.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}
