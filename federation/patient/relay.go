package patient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ErrRejected: a holder's answer that does not verify.
var ErrRejected = node.E(node.Unavailable, "patient answer rejected")

// Result is a patient request's outcome at every holder.
type Result struct {
	Op      Op
	Subject ledger.Pseudonym
	Holders []HolderAnswer
	// Lookup is set when the directory lookup did not complete: holders
	// may be missing.
	Lookup error
}

// HolderAnswer is one holder's part, or why it has none.
type HolderAnswer struct {
	Holder    peer.ID
	Err       error // unreachable, too slow, refused, or rejected
	Size      int64 // the holder's ledger size when it answered
	Entries   []ledger.Entry
	Next      int64 // more entries from this index on: ask again with a cursor
	Withdrawn bool
	Problem   string
}

// Relay authenticates the patient's request raw, which must name this
// centre as its relay, and asks every holder of the patient at once. A
// holder that is down, too slow, refuses, or answers with anything that
// does not verify is in the result with its error.
func (s *Service) Relay(ctx context.Context, raw []byte) (Result, error) {
	q, err := s.check(ctx, raw, s.host.ID(), node.ErrInvalid)
	if err != nil {
		return Result{}, err
	}
	res := Result{Op: q.Op, Subject: q.Subject}
	holders, err := s.opts.Holders(ctx, q.Subject)
	res.Lookup = err
	if len(holders) == 0 && err != nil {
		return res, err
	}
	res.Holders = make([]HolderAnswer, len(holders))
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Go(func() { res.Holders[i] = s.ask(ctx, h, q, raw) })
	}
	wg.Wait()
	return res, nil
}

func (s *Service) ask(ctx context.Context, holder peer.ID, q Request, raw []byte) HolderAnswer {
	out := HolderAnswer{Holder: holder}
	timeout := s.opts.Timeout
	if q.Op == Erase {
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
	if err := verify(&out, q, answer); err != nil {
		return HolderAnswer{Holder: holder, Err: err}
	}
	return out
}

// verify checks a holder's answer to q and fills out.
func verify(out *HolderAnswer, q Request, raw []byte) error {
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
	out.Size, out.Next, out.Withdrawn, out.Problem = a.Size, a.Next, a.Withdrawn, wire.Printable([]byte(a.Problem))
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
		}
		out.Entries = append(out.Entries, e)
	}
	return nil
}
