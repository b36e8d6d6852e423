package federation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// A log could show one history to some witnesses and another to the rest;
// no single witness would notice. So witnesses also compare notes: every
// so often each sends the other witnesses of each log it witnesses the
// latest checkpoint it cosigned of it (opViews), and the receiver checks each against its own, asking
// the log for a consistency proof (opProve) when the sizes differ. Two
// checkpoints of one log that no valid proof links are evidence, kept and
// raised like any other equivocation.

const (
	opViews byte = 2 // payload: notes (encodeNotes); answer: nothing
	opProve byte = 3 // payload: u64 older, u64 newer; answer: the proof's hashes
)

// Views is what the split-view check needs of a witness's ledger.
type Views interface {
	WitnessedLogs(ctx context.Context) (map[string]ledger.Witnessed, error)
	ProveConsistency(ctx context.Context, older, newer int64) (tlog.TreeProof, error)
}

// compareView checks a checkpoint another member cosigned of some log
// against the one this witness holds, and records evidence if they conflict.
func (w *Witness) compareView(ctx context.Context, theirs []byte, held map[string]ledger.Witnessed) error {
	c := w.charter()
	origin, logMember, err := w.logOf(c, theirs)
	if err != nil || logMember.ID == w.host.ID() {
		return err // this centre's own log is checked against its ledger, not by view
	}
	y, ok := held[origin]
	// The same view (signed note and all) against the same checkpoint
	// held was found consistent before: views are sent every few
	// seconds, and a log at rest sends the same ones.
	seen := viewSeen{sha256.Sum256(theirs), y.Size, y.Root}
	if ok && w.sameView(origin, seen) {
		return nil
	}
	pub, err := logMember.PublicKey()
	if err != nil {
		return err
	}
	x, err := ledger.OpenCheckpoint(theirs, origin, pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLogSignature, err)
	}
	if !ok || y.Blocked {
		return nil // not witnessed here yet, or caught already
	}
	consistent, err := w.checkView(ctx, origin, logMember, x, theirs, y)
	if consistent {
		w.keepView(origin, seen)
	}
	return err
}

// viewSeen is a view found consistent with the checkpoint held then.
type viewSeen struct {
	view     [32]byte // the hash of the view's note
	heldSize int64
	heldRoot [32]byte
}

func (w *Witness) sameView(origin string, v viewSeen) bool {
	w.viewsMu.Lock()
	defer w.viewsMu.Unlock()
	for _, s := range w.viewsSeen[origin] {
		if s == v {
			return true
		}
	}
	return false
}

// keepView remembers a view found consistent: the last few of each log
// (one from each of its other witnesses).
func (w *Witness) keepView(origin string, v viewSeen) {
	w.viewsMu.Lock()
	defer w.viewsMu.Unlock()
	if w.viewsSeen == nil {
		w.viewsSeen = map[string][]viewSeen{}
	}
	seen := append(w.viewsSeen[origin], v)
	w.viewsSeen[origin] = seen[max(0, len(seen)-maxViewsSeen):]
}

// maxViewsSeen bounds the views remembered of a log.
const maxViewsSeen = 16

// checkView compares x, a view of origin's log (theirs, opened), with y,
// the checkpoint this centre cosigned last, and records the evidence of
// a split view; consistent says the two were shown to be of one history.
func (w *Witness) checkView(ctx context.Context, origin string, logMember Member, x ledger.SignedCheckpoint, theirs []byte, y ledger.Witnessed) (consistent bool, err error) {
	mine := ledger.Checkpoint{Origin: origin, Size: y.Size, Root: y.Root}
	conflict := func(reason string) error {
		w.log.Error("a member showed two histories to different witnesses", "log", origin, "reason", reason)
		return w.state.RecordEvidence(ctx, ledger.Evidence{Origin: origin, Held: y.Note, Offered: theirs, Reason: reason})
	}
	if x.Size == y.Size {
		if x.Root != y.Root {
			return false, conflict(fmt.Sprintf("split view: two roots for size %d", x.Size))
		}
		return true, nil
	}
	older, newer := mine, x.Checkpoint
	if x.Size < y.Size {
		older, newer = x.Checkpoint, mine
	}
	proof, err := askProof(ctx, w, logMember.ID, older.Size, newer.Size)
	if err != nil {
		return false, nil // the log is unreachable now; the next exchange tries again
	}
	if err := ledger.VerifyConsistency(older, newer, proof); err != nil {
		return false, conflict(fmt.Sprintf("split view: size %d does not extend size %d", newer.Size, older.Size))
	}
	return true, nil
}

// logOf finds the member whose log a checkpoint note claims to be.
func (w *Witness) logOf(c Charter, msg []byte) (string, Member, error) {
	body, _, ok := cutNote(msg)
	if !ok {
		return "", Member{}, fmt.Errorf("%w: malformed: not a signed note", node.ErrInvalid)
	}
	cp, err := ledger.ParseCheckpoint(body)
	if err != nil {
		return "", Member{}, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
	}
	if m, ok := c.memberByOrigin(cp.Origin); ok {
		return cp.Origin, m, nil
	}
	return "", Member{}, fmt.Errorf("%w: %s", ErrUnknownLog, cp.Origin)
}

// cutNote splits a signed note into its text and signature block.
func cutNote(msg []byte) (text string, sigs []byte, ok bool) {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == '\n' && msg[i+1] == '\n' {
			return string(msg[:i+1]), msg[i+2:], true
		}
	}
	return "", nil, false
}

func askProof(ctx context.Context, w *Witness, log peer.ID, older, newer int64) (tlog.TreeProof, error) {
	payload := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(older)), uint64(newer))
	b, err := w.ask(ctx, log, opProve, payload)
	if err != nil {
		return nil, err
	}
	if len(b)%tlog.HashSize != 0 || len(b)/tlog.HashSize > maxProofHashes {
		return nil, protocolError("proof of %d bytes", len(b))
	}
	proof := make(tlog.TreeProof, len(b)/tlog.HashSize)
	for i := range proof {
		copy(proof[i][:], b[i*tlog.HashSize:])
	}
	return proof, nil
}

// serveProve answers a consistency-proof request about this centre's log.
func (w *Witness) serveProve(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) != 16 {
		return nil, protocolError("prove request of %d bytes", len(payload))
	}
	older, newer := int64(binary.BigEndian.Uint64(payload)), int64(binary.BigEndian.Uint64(payload[8:]))
	if older < 0 || newer < older {
		return nil, protocolError("prove %d to %d", older, newer)
	}
	proof, err := w.views.ProveConsistency(ctx, older, newer)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, h := range proof {
		b = append(b, h[:]...)
	}
	return b, nil
}

// ExchangeViews sends each log's other witnesses the latest checkpoint
// this centre cosigned of it: the witnesses of a log are the ones who
// cosign its checkpoints, so they are the ones who compare them. A centre
// witnesses about Policy.Witnesses logs, each with as many witnesses, so
// what it sends each interval does not grow with the federation. A
// witness that took the same views from this centre less than
// viewsResend ago is not sent them again: it compared them then, and a
// change on either side is sent by the side it happened to.
func (w *Witness) ExchangeViews(ctx context.Context) error {
	held, err := w.views.WitnessedLogs(ctx)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return nil
	}
	c := w.charter()
	to := map[peer.ID][][]byte{}
	for _, origin := range slices.Sorted(maps.Keys(held)) {
		name := originCentre(c, origin)
		if name == "" {
			continue // a former member's log
		}
		for _, m := range c.Witnesses(name) {
			if m.ID != w.host.ID() {
				to[m.ID] = append(to[m.ID], held[origin].Note)
			}
		}
	}
	now := time.Now()
	w.sentMu.Lock()
	sent, was := w.viewsSent, w.coWitnesses
	w.viewsSent = make(map[peer.ID]viewsSent, len(to))
	w.coWitnesses = make(map[peer.ID]bool, len(to))
	for id := range to {
		w.coWitnesses[id] = true
		if s, ok := sent[id]; ok {
			w.viewsSent[id] = s // co-witnesses no longer are forgotten
		}
	}
	w.sentMu.Unlock()
	// The connection manager keeps co-witnesses connected before other
	// members: they are sent views every minute at least, and a centre
	// trimmed of them would dial them again each time.
	cm := w.host.ConnManager()
	for id := range was {
		if _, still := to[id]; !still {
			cm.UntagPeer(id, coWitnessTag)
		}
	}
	for id := range to {
		if !was[id] {
			cm.TagPeer(id, coWitnessTag, coWitnessValue)
		}
	}
	var wg sync.WaitGroup
	for id, notes := range to {
		payload := encodeNotes(notes)
		sum := sha256.Sum256(payload)
		w.sentMu.Lock()
		last := w.viewsSent[id]
		w.sentMu.Unlock()
		if last.sum == sum && now.Sub(last.at) < viewsResend {
			continue
		}
		wg.Go(func() {
			if _, err := w.ask(ctx, id, opViews, payload); err != nil {
				w.log.Debug("views not delivered", "to", id, "err", err)
				return
			}
			w.sentMu.Lock()
			w.viewsSent[id] = viewsSent{sum: sum, at: now}
			w.sentMu.Unlock()
		})
	}
	wg.Wait()
	return nil
}

// coWitnessTag marks a co-witness in the connection manager, with
// coWitnessValue (kad-dht values a routing-table peer at 5, gossip a mesh
// peer at 20 and more).
const (
	coWitnessTag   = "medfed-co-witness"
	coWitnessValue = 20
)

// viewsSent is what a co-witness last took from this centre, and when.
type viewsSent struct {
	sum [32]byte // of the views message
	at  time.Time
}

// viewsResend is how long views a co-witness took stand for: past it they
// are sent again, so that one that lost them (a restart, a restore)
// compares them again.
const viewsResend = time.Minute

// maxViewsFrom bounds the members whose last views are remembered: past
// it they are forgotten together, and each is answered once more.
const maxViewsFrom = MaxMembers

// RunViews exchanges views every interval until ctx ends.
func (w *Witness) RunViews(ctx context.Context, interval time.Duration) {
	Every(ctx, interval, func() {
		if err := w.ExchangeViews(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("exchanging views", "err", err)
		}
	})
}

// serveViews checks every checkpoint in a views message from a member.
// Views that changed since that member last sent its own have this
// centre send it its own again at the next exchange: the change may be
// the other half of a split view, which only the two together show.
func (w *Witness) serveViews(ctx context.Context, from peer.ID, payload []byte) error {
	notes, err := decodeNotes(payload, maxNoteLen)
	if err != nil {
		return err
	}
	if len(notes) > MaxMembers {
		return protocolError("%d views", len(notes))
	}
	sum := sha256.Sum256(payload)
	w.sentMu.Lock()
	if w.viewsFrom[from] != sum {
		if w.viewsFrom == nil || len(w.viewsFrom) >= maxViewsFrom {
			w.viewsFrom = map[peer.ID][32]byte{}
		}
		w.viewsFrom[from] = sum
		delete(w.viewsSent, from)
	}
	w.sentMu.Unlock()
	held, err := w.views.WitnessedLogs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range notes {
		if err := w.compareView(ctx, n, held); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
