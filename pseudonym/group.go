package pseudonym

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gtank/ristretto255"

	"github.com/medfed/medfed/node"
)

// The RFC 9497 suite: ristretto255 with SHA-512.
const (
	suiteID     = "ristretto255-SHA512"
	elementLen  = 32
	scalarLen   = 32
	proofLen    = 2 * scalarLen
	modeVOPRF   = 0x01 // every evaluation in medfed is verifiable
	maxDSTLen   = 255
	hashLen     = sha512.Size
	sha512Block = 128
)

// suite holds the domain-separation tags of one RFC 9497 mode.
type suite struct {
	mode           byte
	hashToGroupDST []byte
	hashToScalar   []byte
	seedDST        []byte
	contextString  []byte
}

func newSuite(mode byte) suite {
	ctx := append([]byte("OPRFV1-"), mode, '-')
	ctx = append(ctx, suiteID...)
	cat := func(prefix string) []byte { return append([]byte(prefix), ctx...) }
	return suite{
		mode:           mode,
		hashToGroupDST: cat("HashToGroup-"),
		hashToScalar:   cat("HashToScalar-"),
		seedDST:        cat("Seed-"),
		contextString:  ctx,
	}
}

// voprf is the suite every medfed evaluation uses.
var voprf = newSuite(modeVOPRF)

// expandXMD is expand_message_xmd of RFC 9380 with SHA-512 and an output of
// 64 bytes (one block).
func expandXMD(msg, dst []byte) [hashLen]byte {
	if len(dst) > maxDSTLen {
		panic("pseudonym: domain separation tag too long") // our tags are constants
	}
	h := sha512.New()
	var zpad [sha512Block]byte
	h.Write(zpad[:])
	h.Write(msg)
	h.Write([]byte{0, hashLen, 0}) // I2OSP(len_in_bytes, 2) || I2OSP(0, 1)
	h.Write(dst)
	h.Write([]byte{byte(len(dst))})
	var b0 [hashLen]byte
	h.Sum(b0[:0])
	h.Reset()
	h.Write(b0[:])
	h.Write([]byte{1})
	h.Write(dst)
	h.Write([]byte{byte(len(dst))})
	var b1 [hashLen]byte
	h.Sum(b1[:0])
	return b1
}

// hashToGroup is RFC 9497's HashToGroup: hash_to_ristretto255 of RFC 9380.
func (s suite) hashToGroup(input []byte) *ristretto255.Element {
	u := expandXMD(input, s.hashToGroupDST)
	e, err := ristretto255.NewIdentityElement().SetUniformBytes(u[:])
	if err != nil {
		panic(err) // u is always 64 bytes
	}
	return e
}

// hashToScalar is RFC 9497's HashToScalar with the suite's default tag.
func (s suite) hashToScalarOf(msg []byte) *ristretto255.Scalar {
	u := expandXMD(msg, s.hashToScalar)
	return uniformScalar(u[:])
}

// appendPrefixed appends I2OSP(len(b), 2) || b.
func appendPrefixed(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// errElement is returned for bytes that are not a valid, non-identity
// ristretto255 element.
var errElement = node.E(node.Invalid, "not a valid group element")

// decodeElement decodes a canonical ristretto255 encoding and refuses the
// identity, which RFC 9497 never sends.
func decodeElement(b []byte) (*ristretto255.Element, error) {
	e, err := ristretto255.NewIdentityElement().SetCanonicalBytes(b)
	if err != nil {
		return nil, errElement
	}
	if e.Equal(ristretto255.NewIdentityElement()) == 1 {
		return nil, errElement
	}
	return e, nil
}

// decodeScalar decodes a canonical 32-byte little-endian scalar.
func decodeScalar(b []byte) (*ristretto255.Scalar, error) {
	if len(b) != scalarLen {
		return nil, fmt.Errorf("scalar of %d bytes", len(b))
	}
	s, err := ristretto255.NewScalar().SetCanonicalBytes(b)
	if err != nil {
		return nil, errors.New("not a canonical scalar")
	}
	return s, nil
}

// randomScalar returns a uniformly random non-zero scalar.
func randomScalar() *ristretto255.Scalar {
	var b [64]byte
	zero := ristretto255.NewScalar()
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		s := uniformScalar(b[:])
		if s.Equal(zero) == 0 {
			return s
		}
	}
}

// uniformScalar reduces 64 uniform bytes to a scalar.
func uniformScalar(b []byte) *ristretto255.Scalar {
	s, err := ristretto255.NewScalar().SetUniformBytes(b)
	if err != nil {
		panic(err) // callers pass 64 bytes
	}
	return s
}

// scalarOf returns the scalar n.
func scalarOf(n uint64) *ristretto255.Scalar {
	var b [scalarLen]byte
	binary.LittleEndian.PutUint64(b[:], n)
	s, err := ristretto255.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic(err) // small values are canonical
	}
	return s
}
