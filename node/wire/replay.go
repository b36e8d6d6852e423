package wire

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ReplayWindow remembers the nonces of the signed requests a protocol
// accepted for as long as a request bearing one could still be accepted
// (keep: twice the protocol's clock skew), so that a replayed request is
// refused. A protocol loads the nonces of the window from its ledger at
// start (Saw), so a replay across a restart is refused too.
type ReplayWindow struct {
	keep time.Duration
	now  func() time.Time

	mu    sync.Mutex
	until map[replayKey]time.Time // seen until
	order []replayKey             // in the order seen: expiries only grow
}

type replayKey struct {
	from  peer.ID
	nonce [16]byte
}

// NewReplayWindow returns a window that keeps each nonce for keep after
// its request was made, by the clock now.
func NewReplayWindow(keep time.Duration, now func() time.Time) *ReplayWindow {
	return &ReplayWindow{keep: keep, now: now, until: map[replayKey]time.Time{}}
}

// Saw records that from's request with nonce was accepted at at. Calls
// come oldest first.
func (w *ReplayWindow) Saw(from peer.ID, nonce [16]byte, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := replayKey{from, nonce}
	w.until[k] = at.Add(w.keep)
	w.order = append(w.order, k)
}

// First records from's nonce and reports whether it is new: false for a
// replay within the window.
func (w *ReplayWindow) First(from peer.ID, nonce [16]byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	// Expiries grow with the order nonces were seen in: drop from the
	// front.
	for len(w.order) > 0 {
		oldest := w.order[0]
		if until, ok := w.until[oldest]; ok && now.Before(until) {
			break
		}
		delete(w.until, oldest)
		w.order = w.order[1:]
	}
	k := replayKey{from, nonce}
	if until, seen := w.until[k]; seen && now.Before(until) {
		return false
	}
	w.until[k] = now.Add(w.keep)
	w.order = append(w.order, k)
	return true
}
