package consent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/wire"
)

// A patient's erasure reaches the holders the directory lists, and the
// members that make a majority of the patient's consent set, when it is
// submitted; a centre holding a lease is told before it is confirmed, and
// one without reads it before it releases anything (fresh carries it out
// first). So that a holder that is none of these still erases the records
// it keeps, every centre also reads the erasures the others accepted,
// from a cursor per member (their ledger index), a few members each pull
// interval (see pullErasures): a holder the directory does not list, down
// during the erasure, or holding no lease, erases once it has read a
// member that has it.

// erasureItem is an erasure on this centre's ledger, at index.
type erasureItem struct {
	index int64
	doc   Document
}

// maxErasures bounds one answer of the erasure feed.
const maxErasures = maxDocs

// feedErasure adds an erasure at ledger index to the feed the others
// read. Called in ledger order (under s.audit, or while loading).
func (s *Service) feedErasure(index int64, d Document) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erasures = append(s.erasures, erasureItem{index, d})
}

// erasuresAfter returns the erasures after ledger index after, oldest
// first, at most maxErasures.
func (s *Service) erasuresAfter(after int64) []erasureItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.erasures, after+1, func(it erasureItem, idx int64) int { return cmp.Compare(it.index, idx) })
	return slices.Clone(s.erasures[i:min(len(s.erasures), i+maxErasures)])
}

// encodeErasures is the feed's answer: per erasure, u64 ledger index and
// the signed document (u32 length).
func encodeErasures(items []erasureItem) []byte {
	var w wire.Writer
	for _, it := range items {
		w.U64(uint64(it.index))
		w.Blob(it.doc.Raw)
	}
	return w.B
}

// decodeErasures parses a feed answer to a read after index after: each
// an erasure, the indices ascending and after it.
func decodeErasures(b []byte, after int64) ([]erasureItem, error) {
	var out []erasureItem
	r := wire.NewReader(b, "erasure feed")
	for r.Len() > 0 {
		if len(out) == maxErasures {
			return nil, malformed("more than %d erasures", maxErasures)
		}
		index := int64(r.U64("index"))
		raw := r.Blob("erasure", MaxDocument)
		if r.Err() != nil {
			return nil, r.Err()
		}
		if index <= after || index < 0 {
			return nil, malformed("an erasure at index %d in a feed after %d", index, after)
		}
		d, err := Parse(raw)
		if err != nil {
			return nil, err
		}
		if d.Kind != KindErasure {
			return nil, malformed("a %s in the erasure feed", d.Kind)
		}
		out = append(out, erasureItem{index, d})
		after = index
	}
	return out, nil
}

// pullErasures reads, every interval until ctx ends, the erasures other
// members accepted since the last read, and accepts those about patients
// this centre holds records of (which carries them out). Each interval it
// reads from the next erasurePullFanout members in name order, round the
// federation: a centre's background load stays bounded whatever the
// federation's size, and a member is read every N/erasurePullFanout
// intervals (in a federation of up to that many others, every interval).
// The members of a round are read at once: one that is down or slow holds
// up none of the others.
func (s *Service) pullErasures(ctx context.Context, interval time.Duration) {
	cursors := map[peer.ID]int64{}
	turn := 0
	federation.Every(ctx, interval, func() {
		var others []peer.ID
		for _, m := range s.opts.Charter().Members {
			if m.ID != s.host.ID() {
				others = append(others, m.ID)
			}
		}
		round := make([]peer.ID, min(erasurePullFanout, len(others)))
		next := make([]int64, len(round))
		var wg sync.WaitGroup
		for i := range round {
			m := others[(turn+i)%len(others)]
			round[i] = m
			after := cursors[m]
			wg.Go(func() {
				var err error
				if next[i], err = s.pullFrom(ctx, m, after); err != nil && ctx.Err() == nil {
					s.log.Debug("erasures not read from a member", "from", m, "err", err)
				}
			})
		}
		wg.Wait()
		for i, m := range round {
			cursors[m] = next[i]
		}
		turn += erasurePullFanout
	})
}

// erasurePullFanout is how many members a centre reads erasures from
// each pull interval.
const erasurePullFanout = 8

// maxErasurePages bounds the pages read from one member in one round: a
// member answering full pages for ever holds up no other.
const maxErasurePages = 16

// pullFrom reads member m's erasures after index after, page by page, and
// returns the index to read from next time.
func (s *Service) pullFrom(ctx context.Context, m peer.ID, after int64) (int64, error) {
	for range maxErasurePages {
		var w wire.Writer
		w.U64(uint64(after))
		b, err := s.exchange(ctx, m, opErasures, w.B)
		if err != nil {
			return after, err
		}
		items, err := decodeErasures(b, after)
		if err != nil {
			return after, err
		}
		for _, it := range items {
			if err := s.takeErasure(ctx, it.doc); err != nil {
				return after, err
			}
			after = it.index
		}
		if len(items) < maxErasures {
			return after, nil
		}
	}
	return after, nil // the rest next round
}

// takeErasure accepts an erasure read from the feed when this centre
// holds records of its patient, with the documents it rests on.
func (s *Service) takeErasure(ctx context.Context, d Document) error {
	p := d.Subject()
	if s.opts.Holds != nil {
		holds, err := s.opts.Holds(ctx, p)
		if err != nil {
			return err
		}
		if !holds {
			return nil
		}
	}
	e := s.acquire(p)
	defer s.release(e)
	e.mu.Lock()
	known := e.p.seen[d.Hash()]
	e.mu.Unlock()
	if known {
		return s.carryOutErasure(ctx, e)
	}
	// The patient's keys, to weigh it against, and the erasure with them.
	err := s.read(ctx, e, true)
	if errors.Is(err, ErrStale) {
		return err
	}
	if _, err := s.accept(ctx, e, []Document{d}, nil); err != nil {
		return fmt.Errorf("erasure from the feed: %w", err)
	}
	return s.carryOutErasure(ctx, e)
}

// readErasures answers the feed: a u64 ledger index, after which the
// erasures are wanted.
func (s *Service) readErasures(payload []byte) ([]byte, error) {
	r := wire.NewReader(payload, "erasure feed request")
	after := int64(r.U64("index"))
	r.End("erasure feed request")
	if r.Err() != nil {
		return nil, r.Err()
	}
	return encodeErasures(s.erasuresAfter(after)), nil
}
