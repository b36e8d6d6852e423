package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// WitnessProtocolID is the witness protocol: one add-checkpoint request per
// stream (a frame of op 1 holding AddRequest.Encode()), answered by a frame
// whose status is 0 and payload the cosigned note, or a refusal code below
// with a reason (for an old-size refusal, the size the witness holds).
const WitnessProtocolID = "/medfed/witness/1"

const opAddCheckpoint byte = 1

// maxWitnessFrame bounds a witness request: an add-checkpoint request, or
// views of up to MaxMembers checkpoints.
const maxWitnessFrame = 1 << 20

// Refusal codes on the wire, after C2SP tlog-witness's HTTP statuses.
const (
	refuseMalformed    byte = 1 // 400
	refuseUnknownLog   byte = 2 // 404
	refuseSignature    byte = 3 // 403
	refuseOldSize      byte = 4 // 409 with the held size
	refuseConsistency  byte = 5 // 422
	refuseEquivocation byte = 6 // 409, conflicting checkpoints
	refuseBlocked      byte = 7 // the log is blocked
)

// WitnessState is what a witness needs of its ledger.
type WitnessState interface {
	Witness(ctx context.Context, origin string, check func(prev ledger.Witnessed, found bool) (ledger.Witnessed, error)) error
	RecordEvidence(ctx context.Context, e ledger.Evidence) error
	Views
	Mirrors
}

// Witness cosigns the members' checkpoints.
type Witness struct {
	host     host.Host
	cosigner *Cosigner
	state    WitnessState
	views    Views
	charter  func() Charter
	log      *slog.Logger

	viewsMu   sync.Mutex
	viewsSeen map[string][]viewSeen // by log origin: views found consistent (splitview.go)

	sentMu      sync.Mutex
	viewsSent   map[peer.ID]viewsSent // by co-witness: the views it last took (splitview.go)
	viewsFrom   map[peer.ID][32]byte  // by co-witness: the hash of the views it last sent
	coWitnesses map[peer.ID]bool      // tagged in the connection manager
}

// NewWitness starts witnessing on h for the members of the charter that
// charter returns at each request.
func NewWitness(h host.Host, key ed25519.PrivateKey, state WitnessState, charter func() Charter, log *slog.Logger) (*Witness, error) {
	c, err := NewCosigner(key, nil)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Witness{host: h, cosigner: c, state: state, views: state, charter: charter, log: log.With("component", "witness")}
	srv := &wire.Server{
		Name: "witness", Limit: maxWitnessFrame, Timeout: 15 * time.Second, Work: 10 * time.Second, MaxReason: maxReasonLen,
		Serve: w.serve, Refuse: refusal, Log: w.log,
	}
	h.SetStreamHandler(WitnessProtocolID, srv.Handle)
	return w, nil
}

// Add handles one add-checkpoint request from peer from and returns the
// cosigned note. A centre submits only its own log's checkpoints, and
// only to its witness set: a witness outside it refuses, so no centre
// picks its own witnesses and none witnesses more than its share.
func (w *Witness) Add(ctx context.Context, from peer.ID, body []byte) ([]byte, error) {
	r, err := ParseAddRequest(body)
	if err != nil {
		return nil, err
	}
	c := w.charter()
	m, ok := c.Member(from)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a member", ErrUnknownLog, from)
	}
	origin := ledger.Origin(c.Federation, m.Name)
	if !c.InWitnessSet(m.Name, w.host.ID()) {
		return nil, fmt.Errorf("%w: this centre is not in %s's witness set under charter version %d", ErrUnknownLog, m.Name, c.Version)
	}
	pub, err := m.PublicKey()
	if err != nil {
		return nil, err
	}
	cp, n, err := ledger.OpenCheckpointNote(r.Note, origin, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLogSignature, err)
	}
	var cosigned []byte
	err = w.state.Witness(ctx, origin, func(prev ledger.Witnessed, found bool) (ledger.Witnessed, error) {
		if err := checkAdd(prev, found, r, cp.Checkpoint); err != nil {
			return prev, err
		}
		// Cosign over the log's own signature only; the answer carries it and ours.
		n.Sigs, n.UnverifiedSigs = n.Sigs[:1], nil
		if cosigned, err = note.Sign(n, w.cosigner); err != nil {
			return prev, err
		}
		return ledger.Witnessed{Size: cp.Size, Root: cp.Root, Note: r.Note}, nil
	})
	var eq *EquivocationError
	if errors.As(err, &eq) {
		w.log.Error("a member signed conflicting checkpoints; no longer witnessing its log", "log", origin, "reason", eq.Reason)
		if rerr := w.state.RecordEvidence(ctx, ledger.Evidence{Origin: origin, Held: eq.Held, Offered: eq.Offered, Reason: eq.Reason}); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
	}
	if err != nil {
		return nil, err
	}
	return cosigned, nil
}

// serve answers one witness-protocol request from member from.
func (w *Witness) serve(ctx context.Context, from peer.ID, op byte, body []byte) ([]byte, error) {
	switch op {
	case opAddCheckpoint:
		return w.Add(ctx, from, body)
	case opViews:
		if _, member := w.charter().Member(from); !member {
			return nil, fmt.Errorf("%w: %s is not a member", ErrUnknownLog, from)
		}
		return nil, w.serveViews(ctx, from, body)
	case opProve:
		return w.serveProve(ctx, body)
	case opHeld:
		if len(body) != 0 {
			return nil, protocolError("held request of %d bytes", len(body))
		}
		return w.serveHeld(ctx, from)
	case opMirror:
		return w.serveMirror(ctx, from, body)
	case opMirrorRead:
		return w.serveMirrorRead(ctx, from, body)
	}
	return nil, fmt.Errorf("%w: malformed: unknown operation %d", node.ErrInvalid, op)
}

// ask sends one request of the witness protocol to p.
func (w *Witness) ask(ctx context.Context, p peer.ID, op byte, payload []byte) ([]byte, error) {
	return askOn(ctx, w.host, WitnessProtocolID, p, op, payload)
}

// refusal is the code and the reason a witness answers err with. The
// reason is the error's own words (a witness's errors name logs, sizes and
// what did not verify, never a patient), so that the log's owner can see
// why; a failure of the witness itself is only "internal error".
func refusal(err error) (byte, string) {
	var old *OldSizeError
	var eq *EquivocationError
	switch {
	case errors.As(err, &old):
		return refuseOldSize, strconv.FormatInt(old.Held, 10)
	case errors.As(err, &eq):
		return refuseEquivocation, eq.Reason
	case errors.Is(err, ledger.ErrBlocked):
		return refuseBlocked, err.Error()
	case errors.Is(err, ErrUnknownLog):
		return refuseUnknownLog, err.Error()
	case errors.Is(err, ErrLogSignature):
		return refuseSignature, err.Error()
	case errors.Is(err, ErrBadConsistency):
		return refuseConsistency, err.Error()
	case errors.Is(err, node.ErrInvalid):
		return refuseMalformed, err.Error()
	}
	return refuseMalformed, "internal error"
}

// ErrRefused wraps every refusal a witness answers with.
var ErrRefused = node.E(node.Unavailable, "witness refused")

// RequestCosignature asks witness p to cosign the checkpoint in r and
// returns the note with the witness's cosignature. Refusals come back as
// the witness's typed errors: *OldSizeError (retry from its Held size),
// ErrLogBlocked, ErrBadConsistency, ...
func RequestCosignature(ctx context.Context, h host.Host, p peer.ID, r AddRequest) ([]byte, error) {
	note, err := wire.Ask(ctx, h, WitnessProtocolID, p, opAddCheckpoint, r.Encode(), maxFrameLen, maxReasonLen)
	var refused *wire.Refused
	if !errors.As(err, &refused) {
		return note, err
	}
	// The witness's own words, when it gave any, follow what they mean.
	says := ""
	if refused.Reason != "" {
		says = " (the witness says: " + refused.Reason + ")"
	}
	switch refused.Status {
	case refuseOldSize:
		held, err := strconv.ParseInt(refused.Reason, 10, 64)
		if err != nil || held < 0 {
			return nil, protocolError("malformed old-size refusal")
		}
		return nil, fmt.Errorf("%w: %w", ErrRefused, &OldSizeError{Held: held})
	case refuseBlocked, refuseEquivocation:
		return nil, fmt.Errorf("%w: %w%s", ErrRefused, ErrLogBlocked, says)
	case refuseConsistency:
		return nil, fmt.Errorf("%w: %w%s", ErrRefused, ErrBadConsistency, says)
	case refuseSignature:
		return nil, fmt.Errorf("%w: %w%s", ErrRefused, ErrLogSignature, says)
	case refuseUnknownLog:
		return nil, fmt.Errorf("%w: %w%s", ErrRefused, ErrUnknownLog, says)
	case refuseMalformed:
		return nil, fmt.Errorf("%w: a malformed request%s", ErrRefused, says)
	}
	return nil, fmt.Errorf("%w: status %d%s", ErrRefused, refused.Status, says)
}
