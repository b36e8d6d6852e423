package pseudonym

import (
	"crypto/sha512"
	"encoding/binary"

	"github.com/gtank/ristretto255"
)

// batch is one request's elements: the blinded elements C and the evaluated
// elements D, with their encodings, which the proof transcript hashes.
type batch struct {
	blinded, evaluated       []*ristretto255.Element
	blindedEnc, evaluatedEnc [][]byte
}

// composites returns RFC 9497's composite scalars d_i for public key pkEnc.
func (s suite) composites(pkEnc []byte, b batch) []*ristretto255.Scalar {
	seedIn := appendPrefixed(nil, pkEnc)
	seedIn = appendPrefixed(seedIn, s.seedDST)
	seed := sha512.Sum512(seedIn)
	ds := make([]*ristretto255.Scalar, len(b.blinded))
	msg := make([]byte, 0, 2+len(seed)+2+2*(2+elementLen)+len("Composite"))
	for i := range ds {
		msg = appendPrefixed(msg[:0], seed[:])
		msg = binary.BigEndian.AppendUint16(msg, uint16(i))
		msg = appendPrefixed(msg, b.blindedEnc[i])
		msg = appendPrefixed(msg, b.evaluatedEnc[i])
		msg = append(msg, "Composite"...)
		ds[i] = s.hashToScalarOf(msg)
	}
	return ds
}

// challenge is RFC 9497's challenge over the public key, the composites and
// the prover's commitments.
func (s suite) challenge(pkEnc []byte, m, z, t2, t3 *ristretto255.Element) *ristretto255.Scalar {
	msg := appendPrefixed(make([]byte, 0, 5*(2+elementLen)+len("Challenge")), pkEnc)
	for _, e := range []*ristretto255.Element{m, z, t2, t3} {
		msg = appendPrefixed(msg, e.Bytes())
	}
	msg = append(msg, "Challenge"...)
	return s.hashToScalarOf(msg)
}

// prove is RFC 9497's GenerateProof for a batch evaluated with key k (public
// key pk), with the composites computed the fast way (Z = k·M). r is the
// proof's random scalar; tests pass the RFC's.
func (s suite) prove(k *ristretto255.Scalar, pkEnc []byte, b batch, r *ristretto255.Scalar) []byte {
	ds := s.composites(pkEnc, b)
	m := varTimeMSM(ds, b.blinded)
	z := ristretto255.NewIdentityElement().ScalarMult(k, m)
	t2 := ristretto255.NewIdentityElement().ScalarBaseMult(r)
	t3 := ristretto255.NewIdentityElement().ScalarMult(r, m)
	c := s.challenge(pkEnc, m, z, t2, t3)
	sc := ristretto255.NewScalar().Multiply(c, k)
	sc.Subtract(r, sc)
	return append(c.Bytes(), sc.Bytes()...)
}

// verify is RFC 9497's VerifyProof of proof for a batch and public key pk.
func (s suite) verify(pk *ristretto255.Element, pkEnc []byte, b batch, proof []byte) bool {
	if len(proof) != proofLen || len(b.blinded) == 0 || len(b.blinded) != len(b.evaluated) {
		return false
	}
	c, err := decodeScalar(proof[:scalarLen])
	if err != nil {
		return false
	}
	sc, err := decodeScalar(proof[scalarLen:])
	if err != nil {
		return false
	}
	ds := s.composites(pkEnc, b)
	m := varTimeMSM(ds, b.blinded)
	z := varTimeMSM(ds, b.evaluated)
	t2 := ristretto255.NewIdentityElement().VarTimeDoubleScalarBaseMult(c, pk, sc)
	t3 := ristretto255.NewIdentityElement().VarTimeMultiScalarMult(
		[]*ristretto255.Scalar{sc, c}, []*ristretto255.Element{m, z})
	return s.challenge(pkEnc, m, z, t2, t3).Equal(c) == 1
}
