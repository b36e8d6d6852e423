package centre

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// RecordRequest registers a record at this centre: for a patient named by
// pseudonym, or by an identifier ("system|value") that this centre turns
// into the pseudonym through the federation's OPRF and never stores.
type RecordRequest struct {
	Pseudonym  string    `json:",omitempty"`
	Identifier string    `json:",omitempty"`
	Class      string    // data class, e.g. "lab-result"
	Occurred   time.Time // when the interaction happened
	Location   string    `json:",omitempty"`
	Author     string    `json:",omitempty"` // the author's staff ID, 32 hex digits
	Replaces   int64     `json:",omitempty"` // the index of the record an amendment replaces
	Payload    []byte    // the clinical payload: encrypted at rest, never on the ledger
}

// RecordResponse says where a record went.
type RecordResponse struct {
	Pseudonym string
	Index     int64 // the record entry's ledger index
	// AnnounceError says why the directory announcement failed: the
	// record is stored all the same (a retry would store it twice), and
	// the node announces it again at its next start.
	AnnounceError string `json:",omitempty"`
}

// ErrBadRecord is returned for a record request that is not valid.
var ErrBadRecord = errors.New("invalid record")

// AddRecord registers a record: the patient's pseudonym (derived if an
// identifier is given), the payload in the record store, the record (or
// amendment) entry on the ledger, and this centre in the directory as a
// holder of the patient's records.
func (n *Node) AddRecord(ctx context.Context, r RecordRequest) (RecordResponse, error) {
	if (r.Pseudonym == "") == (r.Identifier == "") {
		return RecordResponse{}, fmt.Errorf("%w: give the patient's pseudonym or an identifier, not both", ErrBadRecord)
	}
	if len(r.Payload) == 0 {
		return RecordResponse{}, fmt.Errorf("%w: no payload", ErrBadRecord)
	}
	if r.Replaces < 0 {
		return RecordResponse{}, fmt.Errorf("%w: replaces a negative index", ErrBadRecord)
	}
	meta := ledger.Record{Occurred: r.Occurred.UTC(), DataClass: r.Class, Location: r.Location, Replaces: r.Replaces}
	if r.Author != "" {
		var err error
		if meta.Author, err = consent.ParseStaffID(r.Author); err != nil {
			return RecordResponse{}, fmt.Errorf("%w: author: %v", ErrBadRecord, err)
		}
	}
	// Checked before an identifier is pseudonymised: that costs the
	// other holders an evaluation, counted on their ledgers.
	if err := meta.CheckFields(); err != nil {
		return RecordResponse{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	hexP := r.Pseudonym
	if r.Identifier != "" {
		ps, err := n.PseudonymsOf(ctx, []string{r.Identifier})
		if err != nil {
			return RecordResponse{}, err
		}
		hexP = ps[0]
	}
	p, err := ParsePseudonym(hexP)
	if err != nil {
		return RecordResponse{}, err
	}
	i, err := n.Centre.AddRecord(ctx, p, meta, r.Payload)
	if err != nil {
		if errors.Is(err, ledger.ErrMalformed) || errors.Is(err, ErrOtherPatient) || errors.Is(err, ErrNotARecord) || errors.Is(err, ledger.ErrNotFound) {
			return RecordResponse{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		return RecordResponse{}, err
	}
	// Announcing a patient announced before sends nothing; a failure here
	// leaves the record durable, and the next start announces it.
	res := RecordResponse{Pseudonym: p.String(), Index: i}
	if err := n.Directory.Announce(ctx, p); err != nil {
		res.AnnounceError = err.Error()
	}
	return res, nil
}
