package query

import (
	"context"
	"slices"
	"sync"

	"github.com/medfed/medfed/node/ledger"
)

// heldKinds are the kinds of entry that say which records a holder holds
// of a patient: records, their amendments and their erasures.
var heldKinds = []ledger.Kind{ledger.KindRecord, ledger.KindAmendment, ledger.KindErasure}

// Bounds of the held-records cache.
const (
	heldPatients = 1 << 14 // patients kept; beyond, one is dropped at random
	heldChunk    = 1 << 10 // entries read at a time when catching up
	heldRecent   = 64      // the latest entries applied, kept for a patient being read
	// heldGap is the most entries a catch-up reads: past it (a holder
	// idle through a bulk import), forgetting every patient is cheaper.
	heldGap = 1 << 16
)

// heldCache keeps the record, amendment and erasure entries of the
// patients asked about lately, so that a query does not read back every
// entry about its patient (the access entries of every earlier query
// among them) to find the few records. It follows the ledger: before each
// use it reads the entries appended since it last looked, whoever
// appended them (a record, an amendment, an erasure, a transfer's copy),
// and adds those of the kinds it keeps to their patient. So a use sees
// every entry durable before it began, as a read of the ledger would.
type heldCache struct {
	ledger Ledger

	mu       sync.Mutex
	seen     int64 // entries below were applied
	patients map[ledger.Pseudonym][]ledger.Entry
	// recent are the latest entries of the kinds kept that were applied,
	// whoever they are about: every one from index recentFrom on. A
	// patient read from the ledger while they were applied gets its own.
	recent     []ledger.Entry
	recentFrom int64
}

func newHeldCache(l Ledger) *heldCache {
	size := l.Size()
	return &heldCache{ledger: l, seen: size, recentFrom: size, patients: map[ledger.Pseudonym][]ledger.Entry{}}
}

// entries returns patient p's record, amendment and erasure entries, in
// ledger order, as of at least the ledger's size when called. The slice
// is shared: the caller only reads it.
func (c *heldCache) entries(ctx context.Context, p ledger.Pseudonym) ([]ledger.Entry, error) {
	c.mu.Lock()
	if err := c.catchUp(ctx); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	es, ok := c.patients[p]
	from := c.seen
	c.mu.Unlock()
	if ok {
		return es, nil
	}
	// Read outside the lock: a patient asked about for the first time
	// does not hold up the others. The read covers at least [0, from).
	es, err := c.ledger.EntriesForKinds(ctx, p, heldKinds...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.catchUp(ctx); err != nil {
		return nil, err
	}
	if _, ok := c.patients[p]; ok || from < c.recentFrom {
		// Kept meanwhile, or too much applied since from to tell what of
		// p's was passed over: p is kept at a later use.
		return es, nil
	}
	es = slices.Clip(es)
	for _, e := range c.recent {
		// Applied while p was not kept yet, and perhaps after the read.
		if e.Subject == p && e.Index >= from && (len(es) == 0 || es[len(es)-1].Index < e.Index) {
			es = append(es, e)
		}
	}
	if len(c.patients) >= heldPatients {
		for q := range c.patients {
			delete(c.patients, q)
			break
		}
	}
	c.patients[p] = slices.Clip(es)
	return es, nil
}

// catchUp applies the entries appended since the last look. c.mu is held.
func (c *heldCache) catchUp(ctx context.Context) error {
	size := c.ledger.Size()
	if size-c.seen > heldGap {
		clear(c.patients)
		c.seen, c.recent, c.recentFrom = size, nil, size
		return nil
	}
	for c.seen < size {
		to := min(size, c.seen+heldChunk)
		es, err := c.ledger.Entries(ctx, c.seen, to)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !slices.Contains(heldKinds, e.Kind) {
				continue
			}
			if len(c.recent) == heldRecent {
				c.recentFrom = c.recent[0].Index + 1
				c.recent = slices.Delete(c.recent, 0, 1)
			}
			c.recent = append(c.recent, e)
			kept, ok := c.patients[e.Subject]
			if !ok || (len(kept) > 0 && kept[len(kept)-1].Index >= e.Index) {
				continue // not kept, or read with the patient already
			}
			// Copied, never appended in place: a caller may be reading
			// the slice handed out before.
			c.patients[e.Subject] = append(slices.Clip(kept), e)
		}
		c.seen = to
	}
	return nil
}
