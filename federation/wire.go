package federation

import (
	"encoding/binary"
	"fmt"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the charter protocol: one request and one answer per
// stream, each one frame (package node/wire).
//
//	request:  op, payload
//	answer:   status (0 ok, 1 refused), payload (notes, or the reason)
//
// opChain asks for every adopted version from a given one (payload: u64);
// the answer is the notes, each as u32 length and bytes. opPropose offers a
// draft of the next version with the approvals gathered so far; opAdopt
// announces a version that reached its quorum; opOffer gives the council an
// unsigned draft (its text) made by a member off it. All three answer with
// nothing.
const ProtocolID = "/medfed/charter/1"

const (
	opChain   byte = 1
	opPropose byte = 2
	opAdopt   byte = 3
	opOffer   byte = 4

	maxNoteLen   = 128 << 10
	maxFrameLen  = 16 << 20 // a chain of more than a hundred versions
	maxReasonLen = 1 << 10
)

// protocolError is the error of a charter or witness protocol message that
// does not follow the protocol.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: charter protocol: %s", node.ErrInvalid, fmt.Sprintf(format, args...))
}

func encodeNotes(notes [][]byte) []byte {
	var w wire.Writer
	for _, n := range notes {
		w.Blob(n)
	}
	return w.B
}

// decodeNotes reads a list of notes of at most maxNote bytes each: a
// chain's (MaxCharterNote, a founding of a thousand members is a few
// hundred KiB) or checkpoints' (maxNoteLen).
func decodeNotes(b []byte, maxNote int) ([][]byte, error) {
	var notes [][]byte
	r := wire.NewReader(b, "list of notes")
	for r.Len() > 0 && r.Err() == nil {
		if n := r.Blob("note", maxNote); len(n) > 0 {
			notes = append(notes, n)
		} else {
			r.Fail("empty note")
		}
	}
	return notes, r.Err()
}

func encodeVersion(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeVersion(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, protocolError("version of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
