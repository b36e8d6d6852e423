package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// recentChunk is how many entries ScanRecent reads at a time.
const recentChunk = 256

// ScanRecent reads l back from its end, a chunk at a time, for the
// entries of kind appended since since, and visits them oldest first. It
// stops at the first entry older than since, so a protocol that refuses
// replays can load the nonces of its replay window at start without
// reading the whole ledger. It returns the first error of visit.
func ScanRecent(ctx context.Context, l interface {
	Size() int64
	Entries(ctx context.Context, from, to int64) ([]Entry, error)
}, since time.Time, kind Kind, visit func(Entry) error) error {
	var found []Entry
read:
	for to := l.Size(); to > 0; to -= recentChunk {
		es, err := l.Entries(ctx, max(0, to-recentChunk), to)
		if err != nil {
			return fmt.Errorf("ledger scan recent: %w", err)
		}
		for _, e := range slices.Backward(es) {
			if e.Time.Before(since) {
				break read
			}
			if e.Kind == kind {
				found = append(found, e)
			}
		}
	}
	for _, e := range slices.Backward(found) {
		if err := visit(e); err != nil {
			return err
		}
	}
	return nil
}
