package federation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// A centre's ledger can go back in time: restored from a backup, or a
// virtual machine rolled back to a snapshot. Its witnesses still hold the
// checkpoints they cosigned of its newer history, so any entry it appends
// now sits at an index they hold another entry for: signed, that is
// equivocation. So a centre asks each witness what it holds of its own
// log (opHeld) and compares: behind a cosigned checkpoint, or holding
// another root at its size, it halts its ledger rather than fork it.

// opHeld asks a witness for the checkpoint it last cosigned of the
// asker's own log; payload: nothing; answer: the log-signed note, or
// nothing when the witness holds none.
const opHeld byte = 4

// ErrBehind is a ledger behind, or beside, what a witness cosigned of it.
var ErrBehind = node.E(node.Conflict, "ledger behind a checkpoint its witnesses cosigned")

// HistoryError says which witness holds what of the log that the ledger
// does not match.
type HistoryError struct {
	Witness    string // the witness's centre name
	WitnessID  peer.ID
	Held, Size int64     // the size the witness cosigned; the ledger's size
	Root       tlog.Hash // the root the witness cosigned at Held
	Fork       bool      // the ledger has Held entries, but another root for them
}

func (e *HistoryError) Error() string {
	if e.Fork {
		return fmt.Sprintf("%v: %s cosigned another history of the first %d entries than this ledger's", ErrBehind, e.Witness, e.Held)
	}
	return fmt.Sprintf("%v: %s cosigned %d entries, this ledger has %d: restore a newer backup (this centre appends and signs nothing meanwhile)", ErrBehind, e.Witness, e.Held, e.Size)
}

func (e *HistoryError) Unwrap() error { return ErrBehind }

// serveHeld answers opHeld for member from.
func (w *Witness) serveHeld(ctx context.Context, from peer.ID) ([]byte, error) {
	c := w.charter()
	m, ok := c.Member(from)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a member", ErrUnknownLog, from)
	}
	held, err := w.views.WitnessedLogs(ctx)
	if err != nil {
		return nil, err
	}
	return held[ledger.Origin(c.Federation, m.Name)].Note, nil
}

// HistoryLedger is what comparing with the witnesses needs of the
// centre's own ledger.
type HistoryLedger interface {
	Origin() string
	Size() int64
	RootAt(ctx context.Context, size int64) (tlog.Hash, error)
}

// CheckHeld asks member w what it cosigned of l, this centre's ledger,
// and compares: a *HistoryError (ErrBehind) when the witness holds more
// entries than l, or another root for as many; nil when l extends it or
// it holds nothing.
func CheckHeld(ctx context.Context, h host.Host, c Charter, w Member, l HistoryLedger) error {
	self, ok := c.Member(h.ID())
	if !ok {
		return fmt.Errorf("check held: this centre is not a member of the charter")
	}
	msg, err := askOn(ctx, h, WitnessProtocolID, w.ID, opHeld, nil)
	if err != nil || len(msg) == 0 {
		return err
	}
	pub, err := self.PublicKey()
	if err != nil {
		return err
	}
	cp, err := ledger.OpenCheckpoint(msg, l.Origin(), pub)
	if err != nil {
		return fmt.Errorf("check held: %s answered a checkpoint this centre did not sign: %w", w.Name, err)
	}
	size := l.Size()
	if cp.Size > size {
		return &HistoryError{Witness: w.Name, WitnessID: w.ID, Held: cp.Size, Size: size, Root: cp.Root}
	}
	root, err := l.RootAt(ctx, cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return &HistoryError{Witness: w.Name, WitnessID: w.ID, Held: cp.Size, Size: size, Root: cp.Root, Fork: true}
	}
	return nil
}

// CheckHistory compares l with what its witness set under c cosigned of
// it (the set holds the latest final checkpoint: a new set is handed it
// over), asking them all at once within timeout. It returns the first
// *HistoryError found, and the names of the members that could not be
// asked.
func CheckHistory(ctx context.Context, h host.Host, c Charter, l HistoryLedger, timeout time.Duration) (unreached []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		history error
	)
	for _, m := range c.Witnesses(originCentre(c, l.Origin())) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := CheckHeld(ctx, h, c, m, l)
			mu.Lock()
			defer mu.Unlock()
			var he *HistoryError
			switch {
			case errors.As(err, &he):
				if history == nil {
					history = err
				}
			case err != nil:
				unreached = append(unreached, m.Name)
			}
		}()
	}
	wg.Wait()
	return unreached, history
}
