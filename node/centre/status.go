package centre

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
)

// LedgerStatus is what an operator sees of the centre's ledger.
type LedgerStatus struct {
	Origin   string
	Size     int64
	Latest   *CheckpointStatus // the last checkpoint signed; nil when none
	Final    *CheckpointStatus // the last one the witness quorum cosigned; nil when none
	Evidence []EvidenceStatus  // members caught signing two histories
}

// CheckpointStatus describes one checkpoint.
type CheckpointStatus struct {
	Size      int64
	Root      tlog.Hash
	Cosigners []string // member names
}

// EvidenceStatus is one pair of conflicting checkpoints this centre holds.
type EvidenceStatus struct {
	Origin string
	Reason string
	Seen   time.Time
}

// LedgerStatus returns the ledger's checkpoints, their cosigners and any
// evidence of equivocation this centre holds as a witness.
func (c *Centre) LedgerStatus(ctx context.Context) (LedgerStatus, error) {
	st := LedgerStatus{Origin: c.Ledger.Origin(), Size: c.Ledger.Size()}
	if sc, ok := c.Ledger.LatestCheckpoint(); ok {
		st.Latest = &CheckpointStatus{Size: sc.Size, Root: sc.Root}
	}
	if sc, ok := c.Ledger.LatestFinal(); ok {
		st.Final = &CheckpointStatus{Size: sc.Size, Root: sc.Root}
		ch, err := c.Charter(ctx)
		if err != nil && !errors.Is(err, ErrNoCharter) {
			return st, err
		}
		for _, m := range ch.Members {
			v, err := federation.NewCosignatureVerifier(m)
			if err != nil {
				return st, err
			}
			if _, err := note.Open(sc.Note, note.VerifierList(v)); err == nil {
				st.Final.Cosigners = append(st.Final.Cosigners, m.Name)
			}
		}
	}
	ev, err := c.Ledger.Evidence(ctx)
	if err != nil {
		return st, err
	}
	for _, e := range ev {
		st.Evidence = append(st.Evidence, EvidenceStatus{Origin: e.Origin, Reason: e.Reason, Seen: e.Seen})
	}
	return st, nil
}
