package query

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Payloads are sealed with HPKE (RFC 9180), base mode, suite
// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, to a key the
// requester makes for each query and forgets after it: the transport is
// already encrypted, but a sealed payload stays confidential wherever the
// answer is kept or forwarded, and forgetting the key leaves past answers
// unreadable (forward secrecy beyond the session). One encapsulation per
// answer; each payload is sealed with its entry's index as associated
// data, so payloads cannot be swapped between entries, and the info binds
// the answer to the holder and the request's nonce. The plaintext is the
// commitment's opening (u32 length, bytes) and the payload: the requester
// checks the payload against the commitment in the proven ledger entry.
// The suite is the most widely implemented one; a post-quantum hybrid
// (X-Wing) is in Go's crypto/hpke but still a draft, and would need a new
// protocol version.
var (
	kem  = hpke.DHKEM(ecdh.X25519())
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

func sealInfo(holder peer.ID, nonce [16]byte) []byte {
	b := append([]byte("medfed/query/v1 payload\x00"), holder...)
	return append(b, nonce[:]...)
}

func sealAAD(index int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(index)) }

// SealingKey is a requester's key for one query.
type SealingKey struct{ priv hpke.PrivateKey }

// NewSealingKey draws a key for one query.
func NewSealingKey() (*SealingKey, error) {
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &SealingKey{priv: k}, nil
}

// Public returns the key to put in the request.
func (k *SealingKey) Public() []byte { return k.priv.PublicKey().Bytes() }

// sealer seals one answer's payloads.
type sealer struct {
	s   *hpke.Sender
	enc []byte
}

func newSealer(pub []byte, holder peer.ID, nonce [16]byte) (*sealer, error) {
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, malformed("sealing key: %v", err)
	}
	enc, s, err := hpke.NewSender(pk, kdf, aead, sealInfo(holder, nonce))
	if err != nil {
		return nil, err
	}
	return &sealer{s: s, enc: enc}, nil
}

func (s *sealer) seal(index int64, opening, payload []byte) ([]byte, error) {
	pt := binary.BigEndian.AppendUint32(nil, uint32(len(opening)))
	pt = append(pt, opening...)
	return s.s.Seal(sealAAD(index), append(pt, payload...))
}

// opener opens one answer's payloads, in the order they were sealed.
type opener struct{ r *hpke.Recipient }

func (k *SealingKey) opener(enc []byte, holder peer.ID, nonce [16]byte) (*opener, error) {
	r, err := hpke.NewRecipient(enc, k.priv, kdf, aead, sealInfo(holder, nonce))
	if err != nil {
		return nil, malformed("sealed payloads: %v", err)
	}
	return &opener{r: r}, nil
}

func (o *opener) open(index int64, sealed []byte) (opening, payload []byte, err error) {
	pt, err := o.r.Open(sealAAD(index), sealed)
	if err != nil {
		return nil, nil, malformed("payload of entry %d does not open", index)
	}
	if len(pt) < 4 {
		return nil, nil, malformed("sealed payload of entry %d", index)
	}
	n := binary.BigEndian.Uint32(pt)
	if uint64(n) > uint64(len(pt)-4) {
		return nil, nil, malformed("sealed payload of entry %d", index)
	}
	return pt[4 : 4+n], pt[4+n:], nil
}
