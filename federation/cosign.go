package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Cosignatures follow C2SP tlog-cosignature v1: a witness signs
//
//	"cosignature/v1\ntime <unix seconds>\n" + the checkpoint body
//
// with Ed25519, and the note signature is the 8-byte big-endian time
// followed by the 64-byte signature. Its key ID is the first four bytes of
// SHA-256(name || "\n" || 0x04 || public key), 0x04 marking the algorithm,
// so a cosignature can never pass for the log's own signature. A witness's
// key name is its peer ID, as on the charter.
const algCosignatureV1 = 0x04

func cosignKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func cosignedMessage(t uint64, text []byte) []byte {
	return append(fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t), text...)
}

// Cosigner signs checkpoints as a witness.
type Cosigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

var _ note.Signer = (*Cosigner)(nil)

// NewCosigner returns the cosigner of the member whose key is key; now
// gives the cosignature's time (time.Now when nil).
func NewCosigner(key ed25519.PrivateKey, now func() time.Time) (*Cosigner, error) {
	id, err := PeerIDFromKey(key)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	name := id.String()
	return &Cosigner{name: name, hash: cosignKeyHash(name, key.Public().(ed25519.PublicKey)), key: key, now: now}, nil
}

func (c *Cosigner) Name() string    { return c.name }
func (c *Cosigner) KeyHash() uint32 { return c.hash }
func (c *Cosigner) Sign(text []byte) ([]byte, error) {
	t := c.now().Unix()
	if t < 0 {
		return nil, fmt.Errorf("cosign: clock before 1970")
	}
	sig := ed25519.Sign(c.key, cosignedMessage(uint64(t), text))
	return append(binary.BigEndian.AppendUint64(nil, uint64(t)), sig...), nil
}

// CosignatureVerifier verifies one member's cosignatures.
type CosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

var _ note.Verifier = (*CosignatureVerifier)(nil)

// NewCosignatureVerifier returns the verifier of m's cosignatures.
func NewCosignatureVerifier(m Member) (*CosignatureVerifier, error) {
	pub, err := m.PublicKey()
	if err != nil {
		return nil, err
	}
	name := m.ID.String()
	return &CosignatureVerifier{name: name, hash: cosignKeyHash(name, pub), pub: pub}, nil
}

func (v *CosignatureVerifier) Name() string    { return v.name }
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *CosignatureVerifier) Verify(text, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	return ed25519.Verify(v.pub, cosignedMessage(t, text), sig[8:])
}
