package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/medfed/medfed/node"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, its
// size and the root hash of the tree of that many entries.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// SignedCheckpoint is a checkpoint together with its signed note: the bytes
// that travel to witnesses and queriers. Cosignatures may be appended to
// Note; the centre's own signature is always the first.
type SignedCheckpoint struct {
	Checkpoint
	Note []byte
}

// ErrBadCheckpoint is returned for a checkpoint that does not parse or whose
// signature does not verify.
var ErrBadCheckpoint = node.E(node.Invalid, "bad checkpoint")

const maxCheckpointLen = 16 << 10

// Text returns the checkpoint body as C2SP tlog-checkpoint specifies:
// origin, decimal size and base64 root hash, one per line.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint parses a checkpoint body. It accepts no extension lines:
// medfed checkpoints carry none, and a parser that skipped them would let two
// different notes stand for one checkpoint.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if len(text) > maxCheckpointLen {
		return Checkpoint{}, fmt.Errorf("%w: too long", ErrBadCheckpoint)
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want 3 lines", ErrBadCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if !validOrigin(origin) {
		return Checkpoint{}, fmt.Errorf("%w: invalid origin", ErrBadCheckpoint)
	}
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: invalid size", ErrBadCheckpoint)
	}
	rootText := strings.TrimSuffix(lines[2], "\n")
	// Go's decoder skips '\r' even when strict: compare the re-encoding so
	// that a checkpoint has exactly one spelling.
	root, err := base64.StdEncoding.Strict().DecodeString(rootText)
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != rootText {
		return Checkpoint{}, fmt.Errorf("%w: invalid root hash", ErrBadCheckpoint)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// validOrigin accepts what a note key name accepts (no spaces, no '+',
// printable) and is what medfed builds: "medfed/<federation>/<centre>".
func validOrigin(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '+' || r > '~' {
			return false
		}
	}
	return true
}

// Origin returns the checkpoint origin of a centre's ledger.
func Origin(federation, centre string) string {
	return "medfed/" + federation + "/" + centre
}

// NewVerifier returns the note verifier for checkpoints of origin signed
// with the centre's public key.
func NewVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("checkpoint verifier: %w", err)
	}
	return note.NewVerifier(vkey)
}

// OpenCheckpoint verifies a signed checkpoint note with only the centre's
// public key and returns the checkpoint. Signatures by other keys
// (cosignatures) are ignored here; the origin must be the expected one.
func OpenCheckpoint(msg []byte, origin string, pub ed25519.PublicKey) (SignedCheckpoint, error) {
	cp, _, err := OpenCheckpointNote(msg, origin, pub)
	return cp, err
}

// OpenCheckpointNote is OpenCheckpoint that also returns the opened note,
// its one verified signature the log's: what a witness cosigns, without
// verifying the log's signature a second time.
func OpenCheckpointNote(msg []byte, origin string, pub ed25519.PublicKey) (SignedCheckpoint, *note.Note, error) {
	if len(msg) > maxCheckpointLen {
		return SignedCheckpoint{}, nil, fmt.Errorf("%w: note too long", ErrBadCheckpoint)
	}
	v, err := NewVerifier(origin, pub)
	if err != nil {
		return SignedCheckpoint{}, nil, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return SignedCheckpoint{}, nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return SignedCheckpoint{}, nil, err
	}
	if c.Origin != origin {
		return SignedCheckpoint{}, nil, fmt.Errorf("%w: origin %q, want %q", ErrBadCheckpoint, c.Origin, origin)
	}
	return SignedCheckpoint{Checkpoint: c, Note: bytes.Clone(msg)}, n, nil
}

// ed25519Signer signs notes with the centre's key, under the key name that
// C2SP gives a log: its origin.
type ed25519Signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newSigner(origin string, key ed25519.PrivateKey) (*ed25519Signer, error) {
	v, err := NewVerifier(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &ed25519Signer{name: origin, hash: v.KeyHash(), key: key}, nil
}

func (s *ed25519Signer) Name() string    { return s.name }
func (s *ed25519Signer) KeyHash() uint32 { return s.hash }
func (s *ed25519Signer) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

var _ note.Signer = (*ed25519Signer)(nil)

// ErrBadProof is returned when an inclusion or consistency proof does not
// check out.
var ErrBadProof = node.E(node.Invalid, "bad proof")

// VerifyInclusion checks that entry (its canonical encoding) is the leaf at
// index in the tree of checkpoint c. It needs nothing but a checkpoint that
// was opened with the centre's public key.
func VerifyInclusion(c Checkpoint, index int64, entry []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= c.Size {
		return fmt.Errorf("%w: index %d outside a tree of size %d", ErrBadProof, index, c.Size)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Root, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("%w: entry %d: %v", ErrBadProof, index, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of checkpoint newer extends the tree
// of checkpoint older: every entry of older is unchanged in newer.
func VerifyConsistency(older, newer Checkpoint, proof tlog.TreeProof) error {
	switch {
	case older.Origin != newer.Origin:
		return fmt.Errorf("%w: origins differ", ErrBadProof)
	case older.Size > newer.Size:
		return fmt.Errorf("%w: size %d is older than %d", ErrBadProof, newer.Size, older.Size)
	case older.Size == 0:
		return nil // the empty tree is a prefix of every tree
	case older.Size == newer.Size:
		if older.Root != newer.Root {
			return fmt.Errorf("%w: two roots for size %d", ErrBadProof, older.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("%w: size %d to %d: %v", ErrBadProof, older.Size, newer.Size, err)
	}
	return nil
}
