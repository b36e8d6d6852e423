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
	"github.com/medfed/medfed/node/records"
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
	// Checked before an identifier is pseudonymised: that costs the
	// other holders an evaluation, counted on their ledgers.
	meta, err := n.recordFields(r)
	if err != nil {
		return RecordResponse{}, err
	}
	if err := n.checkNotPrescription(ctx, r); err != nil {
		return RecordResponse{}, err
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

// recordFields checks what a record request says of itself, and returns
// its ledger record.
func (n *Node) recordFields(r RecordRequest) (ledger.Record, error) {
	switch {
	case r.Pseudonym.IsZero() == (r.Identifier == ""):
		return ledger.Record{}, fmt.Errorf("%w: give the patient's pseudonym or an identifier, not both", ErrBadRecord)
	case len(r.Payload) == 0:
		return ledger.Record{}, fmt.Errorf("%w: no payload", ErrBadRecord)
	case len(r.Payload) > records.DefaultMaxPayload:
		return ledger.Record{}, fmt.Errorf("%w: the payload is over %d bytes", ErrBadRecord, records.DefaultMaxPayload)
	case r.Replaces < 0:
		return ledger.Record{}, fmt.Errorf("%w: replaces a negative index", ErrBadRecord)
	case !slices.Contains(n.vocabulary.Classes, r.Class):
		return ledger.Record{}, fmt.Errorf("%w: the data class is not in this centre's vocabulary (records.classes: %s)", ErrBadRecord, strings.Join(n.vocabulary.Classes, ", "))
	case r.Location != "" && !slices.Contains(n.vocabulary.Locations, r.Location):
		return ledger.Record{}, fmt.Errorf("%w: the location is not in this centre's vocabulary (records.locations: %s)", ErrBadRecord, strings.Join(n.vocabulary.Locations, ", "))
	}
	meta := ledger.Record{Occurred: r.Occurred.UTC(), DataClass: r.Class, Location: r.Location, Author: r.Author, Replaces: r.Replaces}
	if err := meta.CheckFields(); err != nil {
		return ledger.Record{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return meta, nil
}

// CheckRecord checks a record request of a known patient (a pseudonym,
// not an identifier) as AddRecord would, and stores nothing: a batch of
// records (an EHR's transaction) is checked whole before any is stored.
// An amendment must replace a record of the same patient on this ledger.
func (n *Node) CheckRecord(ctx context.Context, r RecordRequest) error {
	if r.Identifier != "" {
		return fmt.Errorf("%w: a record is checked for a pseudonym, not an identifier", ErrBadRecord)
	}
	if _, err := n.recordFields(r); err != nil {
		return err
	}
	if err := n.checkNotPrescription(ctx, r); err != nil {
		return err
	}
	if r.Replaces == 0 {
		return nil
	}
	e, _, err := n.Centre.recordAt(ctx, r.Replaces)
	switch {
	case node.KindOf(err) == node.Invalid || errors.Is(err, node.ErrNotFound):
		return fmt.Errorf("%w: amend record %d: %w", ErrBadRecord, r.Replaces, err)
	case err != nil:
		return err
	case e.Subject != r.Pseudonym:
		return fmt.Errorf("%w: amend record %d: %w", ErrBadRecord, r.Replaces, ErrOtherPatient)
	}
	return nil
}
