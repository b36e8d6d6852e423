package federation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the charter protocol: one request and one answer per stream.
//
//	request:  u8 op, u32 length, payload
//	answer:   u8 status (0 ok, 1 refused), u32 length, payload (notes, or the reason)
//
// opChain asks for every adopted version from a given one (payload: u64);
// the answer is the notes, each as u32 length and bytes. opPropose offers a
// draft of the next version with the approvals gathered so far; opAdopt
// announces a version that reached its quorum. Both answer with nothing.
const ProtocolID = "/medfed/charter/1"

const (
	opChain   byte = 1
	opPropose byte = 2
	opAdopt   byte = 3

	statusOK      byte = 0
	statusRefused byte = 1

	maxNoteLen   = 128 << 10
	maxFrameLen  = 16 << 20 // a chain of more than a hundred versions
	maxReasonLen = 1 << 10
)

// ErrWire is returned for a frame that does not follow the protocol.
var ErrWire = errors.New("charter protocol")

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > maxFrameLen {
		return fmt.Errorf("%w: frame of %d bytes", ErrWire, len(payload))
	}
	return wire.Write(w, kind, payload)
}

// readFrame reads one frame of at most limit payload bytes.
func readFrame(r io.Reader, limit int) (byte, []byte, error) {
	kind, payload, err := wire.Read(r, limit)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrWire, err)
	}
	return kind, payload, nil
}

func encodeNotes(notes [][]byte) []byte {
	var b []byte
	for _, n := range notes {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func decodeNotes(b []byte) ([][]byte, error) {
	var notes [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated note length", ErrWire)
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if n == 0 || n > maxNoteLen || uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: note of %d bytes", ErrWire, n)
		}
		notes = append(notes, b[:n:n])
		b = b[n:]
	}
	return notes, nil
}

func encodeVersion(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeVersion(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: version of %d bytes", ErrWire, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
