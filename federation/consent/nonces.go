package consent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// EntryReader reads a ledger's entries by index.
type EntryReader interface {
	Entries(ctx context.Context, from, to int64) ([]ledger.Entry, error)
	Size() int64
}

// RecentNonces reads l back from its end for the access entries of the
// given events appended since since, and calls seen with each one's
// requester, nonce and time, oldest first. A protocol that refuses
// replays loads its nonces so at start: a request replayed across a
// restart is refused too, since the access entry was on the ledger before
// the answer left.
func RecentNonces(ctx context.Context, l EntryReader, since time.Time, events []Event, seen func(requester peer.ID, nonce [16]byte, at time.Time)) error {
	err := ledger.ScanRecent(ctx, l, since, ledger.KindAccess, func(e ledger.Entry) error {
		a, err := DecodeAccess(e)
		if err != nil {
			return fmt.Errorf("entry %d: %v", e.Index, err)
		}
		if slices.Contains(events, a.Event) && a.Nonce != ([16]byte{}) {
			seen(a.Requester, a.Nonce, e.Time)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading recent accesses: %w", err)
	}
	return nil
}
