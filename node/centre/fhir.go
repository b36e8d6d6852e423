package centre

import (
	"context"
	"fmt"
	"slices"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// What the centre's FHIR interface (node/api) reads beyond the
// operations: its vocabulary of document types, the charter's members as
// a directory of organisations, and its own audit trail of a patient.

// DocumentTypes returns the LOINC document types this centre records and
// the data class each maps to (records.types).
func (n *Node) DocumentTypes() []DocumentType { return slices.Clone(n.vocabulary.Types) }

// Members returns the charter's members, this centre among them.
func (n *Node) Members() []federation.Member {
	return slices.Clone(n.Membership.Current().Charter.Members)
}

// Audit returns every question this centre's ledger recorded about p,
// oldest first: accesses to its records (permitted or not, emergency
// access among them), directory lookups asked here, and the patient's
// own views and erasures. It reads this ledger alone, as an auditor at
// this centre would.
func (n *Node) Audit(ctx context.Context, p ledger.Pseudonym) ([]PatientAccess, error) {
	es, err := n.Centre.Ledger.EntriesForKinds(ctx, p, ledger.KindAccess)
	if err != nil {
		return nil, err
	}
	out := make([]PatientAccess, 0, len(es))
	for _, e := range es {
		x, err := consent.DecodeAccess(e)
		if err != nil {
			return nil, err
		}
		out = append(out, n.patientAccess(e, x))
	}
	return out, nil
}

// AuditAt returns the question entry index of this centre's ledger
// records, and whom it was about; node.ErrNotFound when the entry records
// none (it is not an access entry).
func (n *Node) AuditAt(ctx context.Context, index int64) (ledger.Pseudonym, PatientAccess, error) {
	e, err := n.Centre.Ledger.Entry(ctx, index)
	if err != nil {
		return ledger.Pseudonym{}, PatientAccess{}, err
	}
	if e.Kind != ledger.KindAccess {
		return ledger.Pseudonym{}, PatientAccess{}, fmt.Errorf("%w: entry %d records no question about a patient", node.ErrNotFound, index)
	}
	x, err := consent.DecodeAccess(e)
	if err != nil {
		return ledger.Pseudonym{}, PatientAccess{}, err
	}
	return e.Subject, n.patientAccess(e, x), nil
}

// patientAccess is access entry e, decoded as x, naming its requester.
func (n *Node) patientAccess(e ledger.Entry, x consent.AccessEntry) PatientAccess {
	return PatientAccess{Index: e.Index, Time: e.Time, Centre: n.memberName(x.Requester), AccessEntry: x}
}

// Classes returns the data classes the centre's records use
// (records.classes): what a patient's consent form offers.
func (n *Node) Classes() []string { return slices.Clone(n.vocabulary.Classes) }
