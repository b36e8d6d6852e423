// Package wire frames the messages of medfed's libp2p protocols, and
// encodes the fields inside them. A frame is one byte (an operation in a
// request, a status in an answer), a big-endian u32 length and that many
// bytes of payload. A protocol opens one stream per request, the
// requester writes one frame and closes its side, the other side answers
// with one frame (Server.Handle in serve.go is that side, and Ask the
// requester's); or keeps a stream open for one request after another,
// each answered before the next (Server.HandleKept, and Pool in
// pool.go). Writer and Reader (codec.go) build and parse canonical
// binary messages, and Message signs and opens them, the one way every
// protocol signs what it sends. Errors are of kind node.Invalid for bytes
// that are not what they should be.
package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/medfed/medfed/node"
)

// MaxFrame bounds every frame's payload.
const MaxFrame = 16 << 20

// Write writes one frame.
func Write(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return frameError("%d bytes", len(payload))
	}
	b := make([]byte, 5, 5+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// Read reads one frame of at most limit payload bytes.
func Read(r io.Reader, limit int) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, readError(err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(min(limit, MaxFrame)) {
		return 0, nil, frameError("%d bytes exceeds %d", n, limit)
	}
	payload, err := readPayload(r, int(n))
	if err != nil {
		return 0, nil, readError(err)
	}
	return hdr[0], payload, nil
}

// frameError is the error of bytes that are not a frame within the
// limit: a frame cut short is one.
func frameError(format string, args ...any) error {
	return fmt.Errorf("%w: malformed frame: %s", node.ErrInvalid, fmt.Sprintf(format, args...))
}

// readError is the error of a read that failed: a frame cut short is
// malformed; a stream reset or a deadline passed is the peer or the
// network, and may pass.
func readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return frameError("%v", err)
	}
	return fmt.Errorf("%w: reading a frame: %v", node.ErrUnavailable, err)
}

// readStep is how much of a frame's payload is allocated before any of
// it arrives.
const readStep = 64 << 10

// readPayload reads n bytes into a buffer that grows as they arrive, each
// time by at most as much as arrived: a peer that claims a large frame
// and sends little (or nothing, until the stream's deadline) costs about
// what it sent, not what it claimed.
func readPayload(r io.Reader, n int) ([]byte, error) {
	payload := make([]byte, 0, min(n, readStep))
	for len(payload) < n {
		if len(payload) == cap(payload) {
			payload = slices.Grow(payload, min(n-len(payload), len(payload)))
		}
		k, err := io.ReadFull(r, payload[len(payload):min(cap(payload), n)])
		payload = payload[:len(payload)+k]
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the frame was cut off between two reads
		}
		if err != nil {
			return nil, err
		}
	}
	return payload, nil
}

// Exchange sends one request frame to p on a new stream of protocol proto
// and returns the answer frame, of at most limit bytes. The context
// bounds the whole exchange: its deadline, and its cancellation.
func Exchange(ctx context.Context, h host.Host, proto protocol.ID, p peer.ID, op byte, payload []byte, limit int) (byte, []byte, error) {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return 0, nil, err
	}
	return once(ctx, s, op, payload, limit)
}

// once is Exchange on stream s, which it closes.
func once(ctx context.Context, s network.Stream, op byte, payload []byte, limit int) (byte, []byte, error) {
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := s.SetDeadline(dl); err != nil {
			return 0, nil, err
		}
	}
	// A deadline alone does not end the exchange when ctx is cancelled,
	// nor on a transport that keeps no deadlines (mocknet's).
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := Write(s, op, payload); err != nil {
		return 0, nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return 0, nil, err
	}
	return Read(s, limit)
}

// Refused is a peer's refusal of a request: the answer's status (not
// StatusOK) and its payload, the reason, in words.
type Refused struct {
	Status byte
	Reason string
}

func (e *Refused) Error() string { return "refused: " + e.Reason }

// Ask sends one request as Exchange does and returns the answer's payload
// when its status is StatusOK. Any other status is a *Refused, its reason
// cut to maxReason bytes and made Printable.
func Ask(ctx context.Context, h host.Host, proto protocol.ID, p peer.ID, op byte, payload []byte, limit, maxReason int) ([]byte, error) {
	status, answer, err := Exchange(ctx, h, proto, p, op, payload, limit)
	return answerOf(status, answer, err, maxReason)
}

// answerOf is what Ask returns of an exchange's outcome.
func answerOf(status byte, answer []byte, err error, maxReason int) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if status != StatusOK {
		return nil, &Refused{Status: status, Reason: Printable(answer[:min(len(answer), maxReason)])}
	}
	return answer, nil
}

// Printable makes a peer's reason text safe to print and log: control
// characters and invalid UTF-8 become '?'.
func Printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, string(b))
}
