package pseudonym

import (
	"encoding/binary"
	"fmt"

	"github.com/medfed/medfed/node"
)

// ProtocolID is the pseudonym protocol: one evaluation request and one
// answer per stream, each one frame (package node/wire).
//
//	request:  op 1, payload: u16 s, s × u16 evaluating set (increasing),
//	          u32 n, n × 32-byte blinded elements
//	answer:   status 0, payload: n × 32-byte evaluated elements, 64-byte proof
//	refusal:  status (a refusal code below), payload: the reason, at most 1 KiB
//
// The evaluating set names the t (or more) holders whose answers the
// requester will add up; each folds its Lagrange coefficient for that set
// into its share and proves its answer against its public share with the
// same coefficient folded in.
const ProtocolID = "/medfed/oprf/1"

const (
	opEvaluate byte = 1

	// Refusal codes: the answer's status, when not wire.StatusOK.
	refusedMalformed byte = 1 // the request does not parse, or an element is invalid
	refusedLimit     byte = 2 // the requester's rate limit would be exceeded
	refusedNoShare   byte = 3 // this centre holds no share, or is not in the set
	refusedInternal  byte = 4 // the evaluator failed (e.g. its ledger)
	refusedDenied    byte = 5 // the requester is not a member

	// MaxBatch is the most elements one request carries; a larger batch
	// is split.
	MaxBatch     = 4096
	maxReasonLen = 1 << 10
	maxRequest   = 2 + 2*MaxHolders + 4 + MaxBatch*elementLen
	maxAnswer    = MaxBatch*elementLen + proofLen
)

// request is one evaluation request.
type request struct {
	set      []int
	elements [][]byte // encodings, each 32 bytes
}

func (r request) encode() []byte {
	b := make([]byte, 0, 2+2*len(r.set)+4+len(r.elements)*elementLen)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.set)))
	for _, i := range r.set {
		b = binary.BigEndian.AppendUint16(b, uint16(i))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.elements)))
	for _, e := range r.elements {
		b = append(b, e...)
	}
	return b
}

// decodeRequest parses a request; it checks the shape, not the elements.
func decodeRequest(b []byte) (request, error) {
	var r request
	if len(b) < 2 {
		return r, fmt.Errorf("%w: pseudonym protocol: empty request", node.ErrInvalid)
	}
	s := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if s == 0 || s > MaxHolders || len(b) < 2*s+4 {
		return r, fmt.Errorf("%w: pseudonym protocol: evaluating set of %d", node.ErrInvalid, s)
	}
	r.set = make([]int, s)
	for i := range r.set {
		r.set[i] = int(binary.BigEndian.Uint16(b[2*i:]))
	}
	b = b[2*s:]
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if n == 0 || n > MaxBatch || uint64(len(b)) != uint64(n)*elementLen {
		return r, fmt.Errorf("%w: pseudonym protocol: %d elements in %d bytes", node.ErrInvalid, n, len(b))
	}
	r.elements = make([][]byte, n)
	for i := range r.elements {
		r.elements[i] = b[i*elementLen : (i+1)*elementLen : (i+1)*elementLen]
	}
	return r, nil
}

// decodeAnswer splits an answer to a request of n elements.
func decodeAnswer(b []byte, n int) (elements [][]byte, proof []byte, err error) {
	if len(b) != n*elementLen+proofLen {
		return nil, nil, fmt.Errorf("%w: pseudonym protocol: answer of %d bytes for %d elements", node.ErrInvalid, len(b), n)
	}
	elements = make([][]byte, n)
	for i := range elements {
		elements[i] = b[i*elementLen : (i+1)*elementLen : (i+1)*elementLen]
	}
	return elements, b[n*elementLen:], nil
}

// Refusal is an evaluator's refusal, as the requester receives it.
type Refusal struct {
	Code   byte
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// RateLimited reports whether the evaluator refused because the
// requester's rate limit would be exceeded.
func (r *Refusal) RateLimited() bool { return r.Code == refusedLimit }
