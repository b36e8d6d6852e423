package centre

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/durable"
)

// The files of a centre's data directory.
const (
	KeyFile     = "centre.key" // the centre's Ed25519 identity, PEM PKCS#8, mode 0600
	LedgerFile  = "ledger.db"  // the centre's ledger (package ledger)
	LockFile    = "medfed.lock"
	keyPEMBlock = "PRIVATE KEY"
)

// ErrNotDataDir is returned for a directory that holds no centre.
var ErrNotDataDir = node.E(node.Invalid, "not a medfed data directory")

// loadOrCreateKey returns the centre's key, creating it on first use. The
// key is the centre's identity: it signs the ledger's checkpoints and, as a
// libp2p key, names the centre on the network.
func loadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if _, err := os.Stat(filepath.Join(dir, LedgerFile)); err == nil {
		// A new key would orphan the ledger: every checkpoint is signed
		// with the old one.
		return nil, fmt.Errorf("%s is missing but %s exists: restore the centre key from backup", path, LedgerFile)
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: keyPEMBlock, Bytes: der})); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path) // another process created it first
		}
		return nil, fmt.Errorf("creating centre key: %w", err)
	}
	return key, nil
}

// readPrivate reads a secret file of at most limit bytes, refusing one
// that group or others may access. what names it in errors.
func readPrivate(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s has mode %#o: it must not be accessible by group or others (chmod 600 %s)", what, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	return b, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := readPrivate(path, "centre key", 4096)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != keyPEMBlock || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("centre key %s: not a PEM %q block", path, keyPEMBlock)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("centre key %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("centre key %s: not an Ed25519 key", path)
	}
	return key, nil
}

// PublicKey reads a centre's public key from its data directory, opening
// nothing else: what offline verification trusts.
func PublicKey(dir string) (ed25519.PublicKey, error) {
	key, err := readKey(filepath.Join(dir, KeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s)", dir, ErrNotDataDir, KeyFile)
	}
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

// RowKey returns the key that authenticates the rows of file, one of the
// SQLite files of the data directory at dir that no ledger entry vouches
// for (staff.db, directory.db): see Centre.RowKey. It reads centre.key.
func RowKey(dir, file string) ([]byte, error) {
	key, err := readKey(filepath.Join(dir, KeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s)", dir, ErrNotDataDir, KeyFile)
	}
	if err != nil {
		return nil, err
	}
	return rowKey(key, file), nil
}

// RowKey returns the key that authenticates the rows of file, one of the
// centre's SQLite files that no ledger entry vouches for. Each row of such
// a file carries an HMAC under it, so a row written or changed by anyone
// without centre.key (someone with the disk, a restored copy of another
// centre's file) fails its MAC, and the full check names it. The key is
// HKDF-SHA256 of the centre key's seed, one per file: a MAC of one file's
// row never passes for another's.
func (c *Centre) RowKey(file string) []byte { return rowKey(c.key, file) }

// mirrorKey is the key that seals this centre's ledger entries for its
// witnesses' mirrors: theirs to keep, this centre's alone to read.
func mirrorKey(key ed25519.PrivateKey) []byte { return derive(key, "medfed ledger mirror seal v1") }

func rowKey(key ed25519.PrivateKey, file string) []byte {
	return derive(key, "medfed row MAC v1 "+file)
}

// derive returns the 32-byte key for purpose, HKDF-SHA256 of the centre
// key's seed.
func derive(key ed25519.PrivateKey, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, purpose, 32)
	if err != nil {
		panic(err) // HKDF fails only for a length over 255 hashes
	}
	return k
}
