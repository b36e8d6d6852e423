package ledger

import "encoding/binary"

// Evaluation is the body of an evaluation entry: one batch of pseudonym
// evaluations this centre performed with its key share for another centre.
// It holds the count alone; the elements are never recorded.
type Evaluation struct {
	Requester []byte // the requesting centre's peer ID, as bytes
	Count     uint32
}

const maxRequesterLen = 64 // an Ed25519 identity-multihash peer ID is 38 bytes

// NewEvaluation returns the entry recording v.
func NewEvaluation(v Evaluation) (Entry, error) {
	if len(v.Requester) == 0 || len(v.Requester) > maxRequesterLen {
		return Entry{}, malformed("requester of %d bytes", len(v.Requester))
	}
	if v.Count == 0 {
		return Entry{}, malformed("an evaluation of nothing")
	}
	b := append([]byte{byte(len(v.Requester))}, v.Requester...)
	return Entry{Kind: KindEvaluation, Body: binary.BigEndian.AppendUint32(b, v.Count)}, nil
}

// Evaluation decodes the body of an evaluation entry.
func (e Entry) Evaluation() (Evaluation, error) {
	if e.Kind != KindEvaluation {
		return Evaluation{}, malformed("a %s entry has no evaluation", e.Kind)
	}
	b := e.Body
	if len(b) < 1 || int(b[0]) == 0 || int(b[0]) > maxRequesterLen || len(b) != 1+int(b[0])+4 {
		return Evaluation{}, malformed("evaluation body of %d bytes", len(b))
	}
	n := int(b[0])
	v := Evaluation{Requester: b[1 : 1+n : 1+n], Count: binary.BigEndian.Uint32(b[1+n:])}
	if v.Count == 0 {
		return Evaluation{}, malformed("an evaluation of nothing")
	}
	return v, nil
}
