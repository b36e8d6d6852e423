package federation

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// Witnessing follows C2SP tlog-witness: a log sends a witness its new
// checkpoint, the size it believes the witness last cosigned, and a
// consistency proof from that size. The witness cosigns only if the proof
// shows the new checkpoint extends what it cosigned before, and stores the
// new state atomically with that check, so no crash or restart can make it
// cosign two histories.

// AddRequest is a C2SP add-checkpoint request.
type AddRequest struct {
	OldSize int64
	Proof   tlog.TreeProof
	Note    []byte // the checkpoint, signed by the log
}

// maxProofHashes bounds a consistency proof: at most two per tree level.
const maxProofHashes = 126

// Encode returns the request in C2SP's text form: "old <size>", one base64
// proof hash per line, an empty line, then the checkpoint note.
func (r AddRequest) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Note)
	return b.Bytes()
}

// ParseAddRequest parses an add-checkpoint request; it accepts exactly what
// Encode produces.
func ParseAddRequest(b []byte) (AddRequest, error) {
	var r AddRequest
	if len(b) > maxNoteLen {
		return r, fmt.Errorf("%w: malformed: add-checkpoint request of %d bytes", node.ErrInvalid, len(b))
	}
	head, note, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok {
		return r, fmt.Errorf("%w: malformed: add-checkpoint request without a checkpoint", node.ErrInvalid)
	}
	lines := strings.Split(string(head), "\n")
	old, found := strings.CutPrefix(lines[0], "old ")
	size, err := strconv.ParseInt(old, 10, 64)
	if !found || err != nil || size < 0 || strconv.FormatInt(size, 10) != old {
		return r, fmt.Errorf("%w: malformed: add-checkpoint request: bad old size", node.ErrInvalid)
	}
	if len(lines)-1 > maxProofHashes {
		return r, fmt.Errorf("%w: malformed: add-checkpoint request: %d proof hashes", node.ErrInvalid, len(lines)-1)
	}
	for _, line := range lines[1:] {
		h, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != line {
			return r, fmt.Errorf("%w: malformed: add-checkpoint request: bad proof hash", node.ErrInvalid)
		}
		r.Proof = append(r.Proof, tlog.Hash(h))
	}
	r.OldSize, r.Note = size, note
	return r, nil
}

// Refusals of a witness, after C2SP tlog-witness's status codes.
var (
	ErrUnknownLog     = node.E(node.NotFound, "unknown log")
	ErrLogSignature   = node.E(node.Forbidden, "checkpoint signature does not verify")
	ErrBadConsistency = node.E(node.Invalid, "consistency proof does not verify")               // C2SP's 422
	ErrLogBlocked     = node.E(node.Conflict, "log blocked: it signed conflicting checkpoints") // after equivocation
)

// OldSizeError refuses a request whose old size is not the one the witness
// holds (C2SP's 409); Held tells the log where to prove from.
type OldSizeError struct{ Held int64 }

func (e *OldSizeError) Error() string {
	return fmt.Sprintf("old size is not the one this witness holds (%d)", e.Held)
}

// Unwrap gives the refusal its kind.
func (e *OldSizeError) Unwrap() error { return node.ErrConflict }

// EquivocationError says the log signed two checkpoints that cannot both be
// true: the same size with two roots, or a newer one that no valid
// consistency proof links to the older one. Both notes are the evidence.
type EquivocationError struct {
	Held, Offered []byte
	Reason        string
}

func (e *EquivocationError) Error() string {
	return "the log signed conflicting checkpoints: " + e.Reason
}

// Unwrap gives the refusal its kind.
func (e *EquivocationError) Unwrap() error { return node.ErrConflict }

// checkAdd decides whether a witness holding prev (found false: nothing
// yet) for a log cosigns checkpoint c, offered with request r.
func checkAdd(prev ledger.Witnessed, found bool, r AddRequest, c ledger.Checkpoint) error {
	var held int64
	if found {
		held = prev.Size
	}
	if r.OldSize != held {
		return &OldSizeError{Held: held}
	}
	if c.Size < held {
		return fmt.Errorf("%w: checkpoint of size %d is older than %d", ErrBadConsistency, c.Size, held)
	}
	if !found {
		return nil // the first checkpoint this witness sees of the log
	}
	if c.Size == prev.Size {
		if c.Root != prev.Root {
			return &EquivocationError{Held: prev.Note, Offered: r.Note, Reason: fmt.Sprintf("two roots for size %d", c.Size)}
		}
		return nil
	}
	old := ledger.Checkpoint{Origin: c.Origin, Size: prev.Size, Root: prev.Root}
	if err := ledger.VerifyConsistency(old, c, r.Proof); err != nil {
		// Both checkpoints carry the log's signature, and a medfed log
		// proves consistency from the size the witness holds: a proof that
		// fails means the log cannot link them.
		return &EquivocationError{Held: prev.Note, Offered: r.Note, Reason: fmt.Sprintf("size %d does not extend size %d", c.Size, prev.Size)}
	}
	return nil
}
