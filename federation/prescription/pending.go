package prescription

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/medfed/medfed/node/durable"
)

// PendingClaims are the claims a pharmacy sent whose outcome it does not
// know: every try's answer was lost, or the pharmacy stopped while it
// waited. Each is kept, durably, from before it is first sent until the
// issuer answers it, one file per prescription and token, so that the
// next claim of that prescription with that token, after any time or a
// restart, sends the same claim again first: the issuer confirms the
// supply it dispensed for it (which the pharmacy then hands over, and no
// second one is dispensed), or refuses it so that it is settled, and
// only then is a new claim made.
//
// A file holds the signed claim, its secret among it: the directory is
// the centre's own, readable by it alone (0700, files 0600), like its
// keys beside it. A file's name is a hash of the issuer, the index and
// the secret: it names no one, and only the token's holder finds it.
type PendingClaims struct {
	dir string
}

// OpenPendingClaims opens the pending claims kept in dir, creating it.
// Files left half-written by a crash are removed.
func OpenPendingClaims(dir string) (*PendingClaims, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("prescription: pending claims: %w", err)
	}
	// The directory's own entry durable, before any claim in it is.
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("prescription: pending claims: %w", err)
	}
	temps, err := filepath.Glob(filepath.Join(dir, durable.TempPrefix+"*"))
	for _, t := range temps {
		err = errors.Join(err, os.Remove(t))
	}
	if err != nil {
		return nil, fmt.Errorf("prescription: pending claims: %w", err)
	}
	return &PendingClaims{dir: dir}, nil
}

// path is the file of the claim pending for prescription index of issuer
// with secret.
func (p *PendingClaims) path(issuer peer.ID, index int64, secret Secret) string {
	h := sha256.New()
	h.Write([]byte("medfed/prescription/v1 pending claim\x00"))
	h.Write([]byte(issuer))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(index)))
	h.Write(secret[:])
	return filepath.Join(p.dir, hex.EncodeToString(h.Sum(nil)))
}

// get returns the claim pending for prescription index of issuer with
// secret, nil when there is none. A file that does not hold such a claim,
// signed by pharmacy, is an error that names it: what became of that
// claim is then for the issuer's ledger to say before it is removed.
func (p *PendingClaims) get(pharmacy, issuer peer.ID, index int64, secret Secret) ([]byte, *Claim, error) {
	path := p.path(issuer, index, secret)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("prescription: pending claim %s: %w", path, err)
	}
	c, err := ParseClaim(raw)
	if err == nil && (c.Pharmacy != pharmacy || c.Issuer != issuer || c.Prescription != index || c.Secret != secret) {
		err = errors.New("a claim of another pharmacy or prescription")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("prescription: pending claim %s is unreadable (%v): ask the issuing centre whether it dispensed, then remove the file", path, err)
	}
	return raw, &c, nil
}

// put keeps raw as the claim pending for prescription index of issuer
// with secret, durably when it returns: written whole to a file of its
// own, synced, renamed into place, and the directory synced.
func (p *PendingClaims) put(issuer peer.ID, index int64, secret Secret, raw []byte) error {
	if err := durable.Replace(p.path(issuer, index, secret), raw); err != nil {
		return fmt.Errorf("prescription: keeping a pending claim: %w", err)
	}
	return nil
}

// drop forgets the claim pending for prescription index of issuer with
// secret, once the issuer answered it. removed says whether the file is
// gone, even where err says that its removal could not be synced.
func (p *PendingClaims) drop(issuer peer.ID, index int64, secret Secret) (removed bool, err error) {
	err = os.Remove(p.path(issuer, index, secret))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("prescription: forgetting an answered claim: %w", err)
	}
	if err := durable.SyncDir(p.dir); err != nil {
		return true, fmt.Errorf("prescription: forgetting an answered claim: %w", err)
	}
	return true, nil
}
