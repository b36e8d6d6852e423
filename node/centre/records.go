package centre

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// RecordRequest registers a record at this centre: for a patient named by
// pseudonym, or by an identifier ("system|value") that this centre turns
// into the pseudonym through the federation's OPRF and never stores.
type RecordRequest struct {
	Pseudonym  ledger.Pseudonym // zero when Identifier is given
	Identifier string
	Class      string    // data class, e.g. "lab-result"
	Occurred   time.Time // when the interaction happened
	Location   string
	Author     ledger.StaffID // zero when not named
	Replaces   int64          // the index of the record an amendment replaces
	Payload    []byte         // the clinical payload: encrypted at rest, never on the ledger
}

// RecordResponse says where a record went.
type RecordResponse struct {
	Pseudonym ledger.Pseudonym
	Index     int64 // the record entry's ledger index
	// Announce says why the directory announcement failed: the record is
	// stored all the same (a retry would store it twice), and the node
	// announces it again at its next start.
	Announce error
}

// ErrBadRecord is returned for a record request that is not valid.
var ErrBadRecord = node.E(node.Invalid, "invalid record")

// AddRecord registers a record: the patient's pseudonym (derived if an
// identifier is given), the payload in the record store, the record (or
// amendment) entry on the ledger, and this centre in the directory as a
// holder of the patient's records.
func (n *Node) AddRecord(ctx context.Context, r RecordRequest) (RecordResponse, error) {
	if r.Pseudonym.IsZero() == (r.Identifier == "") {
		return RecordResponse{}, fmt.Errorf("%w: give the patient's pseudonym or an identifier, not both", ErrBadRecord)
	}
	if len(r.Payload) == 0 {
		return RecordResponse{}, fmt.Errorf("%w: no payload", ErrBadRecord)
	}
	if r.Replaces < 0 {
		return RecordResponse{}, fmt.Errorf("%w: replaces a negative index", ErrBadRecord)
	}
	if !slices.Contains(n.vocabulary.Classes, r.Class) {
		return RecordResponse{}, fmt.Errorf("%w: the data class is not in this centre's vocabulary (records.classes: %s)", ErrBadRecord, strings.Join(n.vocabulary.Classes, ", "))
	}
	if r.Location != "" && !slices.Contains(n.vocabulary.Locations, r.Location) {
		return RecordResponse{}, fmt.Errorf("%w: the location is not in this centre's vocabulary (records.locations: %s)", ErrBadRecord, strings.Join(n.vocabulary.Locations, ", "))
	}
	meta := ledger.Record{Occurred: r.Occurred.UTC(), DataClass: r.Class, Location: r.Location, Author: r.Author, Replaces: r.Replaces}
	// Checked before an identifier is pseudonymised: that costs the
	// other holders an evaluation, counted on their ledgers.
	if err := meta.CheckFields(); err != nil {
		return RecordResponse{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	p := r.Pseudonym
	if r.Identifier != "" {
		ps, err := n.PseudonymsOf(ctx, []string{r.Identifier})
		if err != nil {
			return RecordResponse{}, err
		}
		p = ps[0]
	}
	i, err := n.Centre.AddRecord(ctx, p, meta, r.Payload)
	if err != nil {
		if node.KindOf(err) == node.Invalid || errors.Is(err, node.ErrNotFound) {
			return RecordResponse{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		return RecordResponse{}, err
	}
	// Announcing a patient announced before sends nothing; a failure here
	// leaves the record durable, and the next start announces it.
	return RecordResponse{Pseudonym: p, Index: i, Announce: n.Directory.Announce(ctx, p)}, nil
}
