package pseudonym

import (
	"crypto/sha512"

	"github.com/gtank/ristretto255"

	"github.com/medfed/medfed/node"
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
// proven against K, which in medfed it always is. The tests keep the
// multiplicative form for RFC 9497's known-answer vectors.

// output is RFC 9497's Finalize hash of input and its unblinded evaluation.
func output(input []byte, y *ristretto255.Element) [sha512.Size]byte {
	msg := make([]byte, 0, 2+len(input)+2+elementLen+len("Finalize"))
	msg = appendPrefixed(msg, input)
	msg = appendPrefixed(msg, y.Bytes())
	msg = append(msg, "Finalize"...)
	return sha512.Sum512(msg)
}

// errInput is returned for an input RFC 9497 cannot evaluate.
var errInput = node.E(node.Invalid, "input too long or maps to the identity")

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
