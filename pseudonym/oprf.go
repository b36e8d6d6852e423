package pseudonym

import (
	"crypto/sha512"
	"errors"

	"github.com/gtank/ristretto255"
)

// The OPRF of RFC 9497 in the shape medfed runs it.
//
// RFC 9497 blinds multiplicatively: B = r·H(x), and unblinds with r⁻¹,
// which costs two variable-base scalar multiplications per element. A
// client that knows the evaluating key's public key K may blind additively
// instead: B = H(x) + r·G, so that k·B = k·H(x) + r·K and unblinding
// subtracts r·K. The blinded element is as uniform as before, the output
// is the same k·H(x), and r·G is a fixed-base multiplication, about three
// times cheaper. Additive blinding is safe only when every evaluation is
// proven against K, which in medfed it always is. The multiplicative form
// stays here for RFC 9497's known-answer tests.

// output is RFC 9497's Finalize hash of input and its unblinded evaluation.
func output(input []byte, y *ristretto255.Element) [sha512.Size]byte {
	msg := make([]byte, 0, 2+len(input)+2+elementLen+len("Finalize"))
	msg = appendPrefixed(msg, input)
	msg = appendPrefixed(msg, y.Bytes())
	msg = append(msg, "Finalize"...)
	return sha512.Sum512(msg)
}

// errInput is returned for an input RFC 9497 cannot evaluate.
var errInput = errors.New("input too long or maps to the identity")

// inputPoint maps an input to the group, refusing what RFC 9497 refuses.
func (s suite) inputPoint(input []byte) (*ristretto255.Element, error) {
	if len(input) > 0xffff {
		return nil, errInput
	}
	p := s.hashToGroup(input)
	if p.Equal(ristretto255.NewIdentityElement()) == 1 {
		return nil, errInput
	}
	return p, nil
}

// blindMul is RFC 9497's Blind with a given blind: r·H(input).
func (s suite) blindMul(input []byte, r *ristretto255.Scalar) (*ristretto255.Element, error) {
	p, err := s.inputPoint(input)
	if err != nil {
		return nil, err
	}
	return ristretto255.NewIdentityElement().ScalarMult(r, p), nil
}

// finalizeMul is RFC 9497's Finalize for a multiplicative blind.
func finalizeMul(input []byte, r *ristretto255.Scalar, evaluated *ristretto255.Element) [sha512.Size]byte {
	inv := ristretto255.NewScalar().Invert(r)
	return output(input, ristretto255.NewIdentityElement().ScalarMult(inv, evaluated))
}

// evaluateDirect returns the OPRF output of input under key k without
// blinding: what one party holding the whole key computes (RFC 9497's
// FullEvaluate). medfed never holds the whole key; tests use this as the
// reference.
func (s suite) evaluateDirect(k *ristretto255.Scalar, input []byte) ([sha512.Size]byte, error) {
	p, err := s.inputPoint(input)
	if err != nil {
		return [sha512.Size]byte{}, err
	}
	return output(input, ristretto255.NewIdentityElement().ScalarMult(k, p)), nil
}
