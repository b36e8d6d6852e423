package patient

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ErrRejected: a holder's answer that does not verify.
var ErrRejected = node.E(node.Unavailable, "patient answer rejected")

// Result is a patient request's outcome at every centre asked: each
// member of the federation, and any other centre the directory lists as
// a holder.
type Result struct {
	Op      Op
	Subject ledger.Pseudonym
	Nonce   [16]byte // the request's
	// Holders are the centres asked, each with its answer: entries about
	// the patient, that it holds nothing (Nothing), or why it has no
	// answer (Err).
	Holders []HolderAnswer
	// EveryMember says every member was asked, the federation being one
	// the relay asks whole (Options.AskEvery); otherwise the holders the
	// directory lists were.
	EveryMember bool
	// Lookup is set when the directory lookup did not complete. In a
	// federation the relay asks whole (Options.AskEvery), every member is
	// asked all the same, so the result misses no holder when every
	// member answered.
	Lookup error
}

// HolderAnswer is one centre's part, or why it has none.
type HolderAnswer struct {
	Holder    peer.ID
	Err       error // unreachable, too slow, refused, or rejected
	Size      int64 // the holder's ledger size when it answered
	Entries   []ledger.Entry
	Next      int64 // more entries from this index on: ask again with a cursor
	Withdrawn bool
	Problem   string
	Nothing   bool   // it holds nothing about the patient, and recorded nothing
	Sealed    []byte // Records: the payloads, sealed to the patient's key (OpenRecords)
	// Proven: the entries of index below it are proven in the holder's
	// final checkpoint, cosigned by its witnesses (its first entries,
	// as many as the answer had room to prove); zero: none is.
	Proven int64
}

// Relay authenticates the patient's request raw, which must name this
// centre as its relay, and asks at once every centre the directory lists
// as a holder and, in a federation of at most Options.AskEvery members,
// every member too: the directory is then not trusted to list every
// holder, and a member that holds nothing about the patient says so and
// records nothing. In a larger federation asking every member would cost
// each patient request a message to each of thousands of centres, so the
// holders are the directory's, read at every replica of the patient's
// key (Options.Holders). A centre that is down, too slow, refuses, or
// answers with anything that does not verify is in the result with its
// error.
func (s *Service) Relay(ctx context.Context, raw []byte) (Result, error) {
	q, _, err := s.check(ctx, raw, s.host.ID(), node.ErrInvalid)
	if err != nil {
		return Result{}, err
	}
	res := Result{Op: q.Op, Subject: q.Subject, Nonce: q.Nonce}
	holders, err := s.opts.Holders(ctx, q.Subject)
	res.Lookup = err
	asked, every := s.asked(holders)
	res.EveryMember = every
	if len(asked) == 0 && err != nil {
		return res, err
	}
	res.Holders = make([]HolderAnswer, len(asked))
	var wg sync.WaitGroup
	for i, h := range asked {
		wg.Go(func() { res.Holders[i] = s.ask(ctx, h, q, raw) })
	}
	wg.Wait()
	return res, nil
}

// asked is every member of the current charter when it has at most
// AskEvery members (every), then each of holders that is not one, each
// once.
func (s *Service) asked(holders []peer.ID) (ids []peer.ID, every bool) {
	if members := s.opts.Charter().Members; len(members) <= s.askEvery() {
		every = true
		ids = make([]peer.ID, 0, len(members)+len(holders))
		for _, m := range members {
			ids = append(ids, m.ID)
		}
	}
	for _, h := range holders {
		if !slices.Contains(ids, h) {
			ids = append(ids, h)
		}
	}
	return ids, every
}

// askEvery is the largest federation a relay asks whole.
func (s *Service) askEvery() int {
	if s.opts.AskEvery > 0 {
		return s.opts.AskEvery
	}
	return DefaultAskEvery
}

// DefaultAskEvery is the largest federation a relay asks whole, member by
// member, unless Options.AskEvery says otherwise: a regional federation.
const DefaultAskEvery = 64

func (s *Service) ask(ctx context.Context, holder peer.ID, q Request, raw []byte) HolderAnswer {
	out := HolderAnswer{Holder: holder}
	timeout := s.opts.Timeout
	if q.Op == Erase || q.Op == Records {
		timeout = max(timeout, 45*time.Second) // every payload, one by one
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		answer []byte
		err    error
	)
	if holder == s.host.ID() {
		answer, err = s.Answer(ctx, holder, raw)
	} else {
		answer, err = wire.Ask(ctx, s.host, ProtocolID, holder, opRequest, raw, wire.MaxFrame, maxProblem)
	}
	if err != nil {
		out.Err = err
		return out
	}
	if err := verify(&out, s.opts.Charter(), q, answer); err != nil {
		return HolderAnswer{Holder: holder, Err: err}
	}
	return out
}

// verify checks a holder's answer to q and fills out: its signature, that
// it answers q, its entries, and their inclusion proofs in the holder's
// final checkpoint, cosigned by the witnesses of charter ch.
func verify(out *HolderAnswer, ch federation.Charter, q Request, raw []byte) error {
	a, err := ParseAnswer(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	switch {
	case a.Holder != out.Holder:
		return fmt.Errorf("%w: signed by another centre", ErrRejected)
	case a.Op != q.Op || a.Subject != q.Subject || a.Nonce != q.Nonce:
		return fmt.Errorf("%w: an answer to another request", ErrRejected)
	}
	out.Size, out.Next, out.Withdrawn, out.Problem, out.Nothing, out.Sealed = a.Size, a.Next, a.Withdrawn, wire.Printable([]byte(a.Problem)), a.Nothing, a.Sealed
	for _, b := range a.Entries {
		e, err := ledger.Decode(b)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %w", ErrRejected, err)
		case e.Subject != q.Subject:
			return fmt.Errorf("%w: entry %d is about another patient", ErrRejected, e.Index)
		case e.Index >= a.Size:
			return fmt.Errorf("%w: entry %d is beyond the ledger's size %d", ErrRejected, e.Index, a.Size)
		case q.Op == Erase && e.Kind != ledger.KindErasure:
			return fmt.Errorf("%w: entry %d is not an erasure", ErrRejected, e.Index)
		case q.Op == Records && e.Kind != ledger.KindRecord && e.Kind != ledger.KindAmendment:
			return fmt.Errorf("%w: entry %d is not a record", ErrRejected, e.Index)
		case len(out.Entries) > 0 && e.Index <= out.Entries[len(out.Entries)-1].Index:
			// In order, each once: the proven ones are then a prefix, and
			// Proven names them by index.
			return fmt.Errorf("%w: entry %d out of order", ErrRejected, e.Index)
		}
		out.Entries = append(out.Entries, e)
	}
	if len(a.Checkpoint) == 0 {
		return nil
	}
	i := slices.IndexFunc(ch.Members, func(m federation.Member) bool { return m.ID == out.Holder })
	if i < 0 {
		return nil // not a member: its checkpoint has no witnesses to check
	}
	cp, err := federation.OpenFinal(ch, ch.Members[i], a.Checkpoint)
	if err != nil {
		return fmt.Errorf("%w: its checkpoint: %w", ErrRejected, err)
	}
	if len(a.Proofs) > 0 && out.Entries[len(a.Proofs)-1].Index >= cp.Size {
		return fmt.Errorf("%w: a proof of an entry beyond the checkpoint", ErrRejected)
	}
	for k, p := range a.Proofs {
		if err := ledger.VerifyInclusion(cp, out.Entries[k].Index, a.Entries[k], p); err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrRejected, out.Entries[k].Index, err)
		}
	}
	if len(a.Proofs) > 0 {
		out.Proven = out.Entries[len(a.Proofs)-1].Index + 1
	}
	return nil
}
