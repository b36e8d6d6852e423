package centre

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

// PrescriptionConfig tunes the prescriptions this centre issues.
type PrescriptionConfig struct {
	// OverPrescription is the rule checked when a prescription is
	// issued, against the prescriptions the federated query releases to
	// the prescriber: same-medication-two-prescribers warns when the
	// same medication is active from another prescriber; off checks
	// nothing. A conflict is a warning in the answer, never a refusal,
	// and is recorded nowhere. Empty is the first.
	OverPrescription string `mapstructure:"over-prescription"`
}

// The over-prescription rules.
const (
	OverPrescriptionOff            = "off"
	OverPrescriptionTwoPrescribers = "same-medication-two-prescribers"
)

var overPrescriptionRules = []string{OverPrescriptionTwoPrescribers, OverPrescriptionOff}

// DefaultValidity is how long a prescription issued without an end stays
// valid: six months, as a prescription of most medicines in England.
const DefaultValidity = 182 * 24 * time.Hour

// PendingClaimsDir, in the data directory, keeps this centre's claims of
// other centres' prescriptions whose outcome is not known yet
// (prescription.PendingClaims). A backup leaves it out (it copies files,
// not directories): a claim restored from one could have been answered,
// and its supply handed over, since.
const PendingClaimsDir = "pending-claims"

// ErrBadPrescription is returned for a prescription request that is not
// valid.
var ErrBadPrescription = node.E(node.Invalid, "invalid prescription")

func (n *Node) startPrescriptions(ctx context.Context, cfg PrescriptionConfig) error {
	charter := func() federation.Charter { return n.Membership.Current().Charter }
	n.overPrescription = cfg.OverPrescription
	var err error
	n.prescriptions, err = prescription.NewIssuer(ctx, n.Host, prescription.IssuerOptions{
		Key:    n.Centre.key,
		Ledger: n.Centre.Ledger,
		Payloads: func(ctx context.Context, r ledger.Record) ([]byte, error) {
			payload, opening, err := n.Centre.Records.Get(ctx, records.ID(r.Payload))
			if err != nil {
				return nil, err
			}
			if !records.Commitment(r.Commitment).Verify(opening, payload) {
				return nil, ErrMismatch
			}
			return payload, nil
		},
		Erased:  func(err error) bool { return errors.Is(err, records.ErrErased) },
		Charter: charter,
		Rate:    n.memberRate,
		Now:     clock.Now,
		Logger:  n.base,
	})
	if err != nil {
		return err
	}
	pending, err := prescription.OpenPendingClaims(filepath.Join(n.Centre.dir, PendingClaimsDir))
	if err != nil {
		return err
	}
	n.Prescription, err = prescription.NewClient(n.Host, prescription.ClientOptions{Key: n.Centre.key, Charter: charter, Local: n.prescriptions.Claim, Now: clock.Now,
		Pending: pending, Logger: n.base})
	return err
}

// IssueRequest is a prescriber's prescription for a patient of this
// centre.
type IssueRequest struct {
	Pseudonym  ledger.Pseudonym
	Prescriber ledger.StaffID // required: a prescription names its prescriber
	Medication prescription.Medication
	Quantity   uint32 // of Unit, each supply
	Unit       string
	Repeats    int       // supplies after the first
	ValidFrom  time.Time // zero: now
	ValidUntil time.Time // zero: ValidFrom + DefaultValidity
	Dosage     string
	Location   string // where it was prescribed: one of records.locations
}

// IssueResult is an issued prescription, with the token the patient
// takes to a pharmacy: the only place its secret is ever shown.
type IssueResult struct {
	Pseudonym    ledger.Pseudonym
	Index        int64 // the prescription's record entry
	Token        prescription.Token
	Issued       time.Time
	Prescription prescription.Prescription
	// Warnings are what the over-prescription rule found: said to the
	// prescriber, recorded nowhere.
	Warnings []OverPrescription
	// Checked says whether the rule ran; Unchecked names the holders it
	// could not ask, or why it could not run at all.
	Checked   bool
	Unchecked []string
	// Announce says why the directory announcement failed: the
	// prescription is issued all the same.
	Announce error
}

// OverPrescription is an active prescription of the same medication from
// another prescriber, found by the federated query.
type OverPrescription struct {
	Holder     string // the centre that issued it
	Index      int64  // its record entry there
	Prescriber ledger.StaffID
	Medication prescription.Medication
	ValidUntil time.Time
}

// IssuePrescription issues a prescription: after the over-prescription
// rule (a warning, never a refusal), its content is stored as the payload
// of a record of class "prescription" and this centre is announced as a
// holder of the patient's records. The secret in the token is not kept:
// only its hash is, in the payload.
func (n *Node) IssuePrescription(ctx context.Context, r IssueRequest) (IssueResult, error) {
	p, err := n.prescriptionOf(r)
	if err != nil {
		return IssueResult{}, err
	}
	if r.Location != "" && !slices.Contains(n.vocabulary.Locations, r.Location) {
		return IssueResult{}, fmt.Errorf("%w: the location is not in this centre's vocabulary (records.locations: %s)", ErrBadPrescription, strings.Join(n.vocabulary.Locations, ", "))
	}
	secret := prescription.NewSecret()
	p.ClaimHash = secret.Hash()
	payload, err := p.Encode()
	if err != nil {
		return IssueResult{}, fmt.Errorf("%w: %w", ErrBadPrescription, err)
	}
	out := IssueResult{Pseudonym: r.Pseudonym, Prescription: p, Issued: clock.Now().UTC()}
	if n.overPrescription != OverPrescriptionOff {
		out.Warnings, out.Unchecked, err = n.overPrescribed(ctx, r.Pseudonym, p)
		if err != nil {
			out.Unchecked = append(out.Unchecked, "the check could not run: "+err.Error())
		}
		out.Checked = err == nil
	}
	meta := ledger.Record{Occurred: out.Issued, DataClass: prescription.Class, Author: r.Prescriber, Location: r.Location}
	if out.Index, err = n.Centre.AddRecord(ctx, r.Pseudonym, meta, payload); err != nil {
		return IssueResult{}, err
	}
	out.Token = prescription.Token{Issuer: n.Centre.Name, Index: out.Index, Secret: secret}
	out.Announce = n.Directory.Announce(ctx, r.Pseudonym)
	n.log.Info("prescription issued", "pseudonym", r.Pseudonym, "prescription", out.Index, "supplies", p.Supplies(), "warnings", len(out.Warnings))
	return out, nil
}

// prescriptionOf checks what a request's fields mean here and returns its
// prescription, without its claim hash; Encode, once the hash is in,
// checks the content itself.
func (n *Node) prescriptionOf(r IssueRequest) (prescription.Prescription, error) {
	bad := func(format string, args ...any) (prescription.Prescription, error) {
		return prescription.Prescription{}, fmt.Errorf("%w: %s", ErrBadPrescription, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Pseudonym.IsZero():
		return bad("no patient")
	case r.Prescriber.IsZero():
		return bad("a prescription names its prescriber (a staff ID)")
	case r.Repeats < 0 || r.Repeats > prescription.MaxRepeats:
		return bad("repeats: 0 to %d", prescription.MaxRepeats)
	}
	from := r.ValidFrom
	if from.IsZero() {
		from = clock.Now()
	}
	from = from.UTC().Truncate(time.Second)
	until := r.ValidUntil
	if until.IsZero() {
		until = from.Add(DefaultValidity)
	}
	until = until.UTC().Truncate(time.Second)
	if !until.After(clock.Now()) {
		return bad("the validity period has ended")
	}
	p := prescription.Prescription{
		Issuer: n.Centre.ID(), Prescriber: r.Prescriber, Medication: r.Medication, Quantity: r.Quantity, Unit: r.Unit,
		Repeats: uint8(r.Repeats), ValidFrom: from, ValidUntil: until, Dosage: r.Dosage,
	}
	return p, nil
}

// overPrescribed applies the over-prescription rule: the prescriptions
// the federated query releases to the prescriber, for treatment, that are
// active and of the same medication from another prescriber. It returns
// them, and the holders it could not ask.
func (n *Node) overPrescribed(ctx context.Context, p ledger.Pseudonym, rx prescription.Prescription) ([]OverPrescription, []string, error) {
	views, err := n.Prescriptions(ctx, PrescriptionsRequest{Pseudonym: p, Asker: Asker{Role: consent.Clinician, Staff: rx.Prescriber, Purpose: consent.Treatment}})
	if err != nil {
		return nil, nil, err
	}
	var out []OverPrescription
	now := clock.Now()
	for _, v := range views.Prescriptions {
		other := v.Prescription
		switch {
		case other.Medication.System != rx.Medication.System || other.Medication.Code != rx.Medication.Code:
		case other.Issuer == rx.Issuer && other.Prescriber == rx.Prescriber:
		case v.Known && v.State != prescription.StateActive:
		case !now.Before(other.ValidUntil):
		default:
			out = append(out, OverPrescription{Holder: v.Holder, Index: v.Index, Prescriber: other.Prescriber, Medication: other.Medication, ValidUntil: other.ValidUntil})
		}
	}
	return out, views.Unchecked, nil
}

// DispenseRequest claims the next supply of a prescription for one of
// this centre's pharmacists.
type DispenseRequest struct {
	Token      prescription.Token
	Pharmacist ledger.StaffID
}

// DispenseResult is a supply the issuing centre confirmed.
type DispenseResult struct {
	Issuer       string // the issuing centre's name
	Pseudonym    ledger.Pseudonym
	Prescription int64 // its record entry at the issuer
	Fill         int   // the supply dispensed: 1 the first
	Supplies     int   // how many the prescription allows
	Dispense     int64 // the dispense entry at the issuer
	Recorded     int64 // the dispense entry here (the same when this centre issued it)
	Time         time.Time
	Content      prescription.Prescription
	// Record says why the dispense, confirmed by the issuer, could not be
	// recorded on this centre's ledger: it is dispensed all the same.
	Record error
	// Renewed: the supply answers an earlier claim from this centre,
	// with the same token, whose outcome was unknown (every answer lost):
	// the one supply dispensed for both, recorded for that claim's
	// pharmacist.
	Renewed bool
}

// ClaimDispense claims the next supply of the prescription the token
// names from its issuing centre, which alone decides, and records the
// confirmed dispense on this centre's ledger too. A refusal (nothing
// left, cancelled, expired, a token that opens nothing) is an error of
// the kind the issuer gave it.
func (n *Node) ClaimDispense(ctx context.Context, r DispenseRequest) (DispenseResult, error) {
	if r.Pharmacist.IsZero() {
		return DispenseResult{}, fmt.Errorf("%w: a dispense names its pharmacist (a staff ID)", ErrBadPrescription)
	}
	issuer, err := n.memberID(r.Token.Issuer)
	if err != nil {
		return DispenseResult{}, fmt.Errorf("the token's issuer: %w", err)
	}
	d, err := n.Prescription.Claim(ctx, issuer, r.Token.Index, r.Token.Secret, r.Pharmacist)
	if err != nil {
		return DispenseResult{}, err
	}
	out := DispenseResult{Issuer: n.memberName(issuer), Pseudonym: d.Subject, Prescription: d.Confirmation.Prescription, Fill: int(d.Fill), Supplies: int(d.Supplies),
		Dispense: d.Dispense, Recorded: d.Dispense, Time: d.Time, Content: d.Prescription, Renewed: d.Renewed}
	if issuer != n.Centre.ID() {
		e, err := ledger.NewDispense(d.Subject, ledger.Dispense{Issuer: []byte(issuer), Prescription: out.Prescription, Fill: d.Fill, Pharmacy: []byte(n.Centre.ID()),
			Pharmacist: d.Pharmacist, Nonce: d.Nonce, Confirmed: d.Dispense})
		if err == nil {
			out.Recorded, err = n.Centre.Ledger.Append(ctx, e)
		}
		if err != nil {
			out.Recorded, out.Record = 0, err
			n.log.Error("a confirmed dispense not recorded here", "issuer", out.Issuer, "pseudonym", d.Subject, "dispense", d.Dispense, "err", err)
		}
	}
	n.log.Info("prescription supply dispensed", "issuer", out.Issuer, "pseudonym", d.Subject, "prescription", out.Prescription, "fill", out.Fill, "of", out.Supplies)
	return out, nil
}

// CancelPrescription cancels a prescription this centre issued, on
// behalf of its prescriber, and returns the cancellation entry's index.
func (n *Node) CancelPrescription(ctx context.Context, index int64, prescriber ledger.StaffID, reason ledger.CancelReason) (int64, error) {
	if prescriber.IsZero() {
		return 0, fmt.Errorf("%w: a cancellation names the prescriber (a staff ID)", ErrBadPrescription)
	}
	return n.prescriptions.Cancel(ctx, index, prescriber, reason)
}

// PrescriptionStatus returns a prescription this centre issued, as its
// ledger has it, without any access check: for the prescriber's own
// answers (issue, cancel), never for a reader.
func (n *Node) PrescriptionStatus(ctx context.Context, index int64) (PrescriptionView, error) {
	st, err := n.prescriptions.Status(ctx, index)
	if err != nil {
		return PrescriptionView{}, err
	}
	rec, err := n.Centre.Ledger.Entry(ctx, index)
	if err != nil {
		return PrescriptionView{}, err
	}
	r, err := rec.Record()
	if err != nil {
		return PrescriptionView{}, err
	}
	return PrescriptionView{Holder: n.Centre.Name, Index: index, Pseudonym: rec.Subject, Issued: r.Occurred, Prescription: st.Prescription, Known: true, State: st.State(clock.Now()),
		Left: st.Left(), Dispenses: n.dispenseViews(st.Dispenses), Cancelled: st.Cancelled}, nil
}

// PrescriptionsRequest asks for a patient's prescriptions: those the
// federated query releases to the asker.
type PrescriptionsRequest struct {
	Pseudonym ledger.Pseudonym
	Asker
	Local bool // this centre's own alone, without a lookup
}

// PrescriptionsResult is a patient's prescriptions as released, in order
// of holder and index.
type PrescriptionsResult struct {
	Pseudonym     ledger.Pseudonym
	Prescriptions []PrescriptionView
	// Unchecked names the holders that did not answer, and why: they may
	// hold prescriptions not listed.
	Unchecked []string
	Query     QueryResult
}

// PrescriptionView is one prescription released by its holder. Its state
// is known where the holder is this centre (its own ledger's dispenses
// and cancellation); another holder's is not shown here.
type PrescriptionView struct {
	Holder       string
	Index        int64
	Pseudonym    ledger.Pseudonym
	Issued       time.Time
	Prescription prescription.Prescription
	Known        bool // State, Left, Dispenses and Cancelled are this ledger's
	State        prescription.State
	Left         int
	Dispenses    []DispenseView
	Cancelled    *prescription.Cancelled
}

// DispenseView is one supply dispensed, as the issuer's ledger has it.
type DispenseView struct {
	Index      int64 // the dispense entry
	Time       time.Time
	Fill       int
	Pharmacy   string // the dispensing member's name
	Pharmacist ledger.StaffID
}

// dispenseViews names the members of a prescription's dispenses.
func (n *Node) dispenseViews(ds []prescription.Dispensed) []DispenseView {
	var out []DispenseView
	for _, d := range ds {
		out = append(out, DispenseView{Index: d.Index, Time: d.Time, Fill: int(d.Fill), Pharmacy: n.memberName(peer.ID(d.Pharmacy)), Pharmacist: d.Pharmacist})
	}
	return out
}

// Prescriptions returns a patient's prescriptions as the federated query
// releases them to the asker (consent decided and the access recorded at
// each holder), each with its state where this centre issued it.
func (n *Node) Prescriptions(ctx context.Context, r PrescriptionsRequest) (PrescriptionsResult, error) {
	res, err := n.QueryRecords(ctx, QueryRequest{Pseudonym: r.Pseudonym, Asker: r.Asker, Classes: []string{prescription.Class}, Local: r.Local})
	if err != nil {
		return PrescriptionsResult{}, err
	}
	out := PrescriptionsResult{Pseudonym: r.Pseudonym, Query: res}
	if res.Lookup != nil {
		out.Unchecked = append(out.Unchecked, "the directory lookup was incomplete: "+res.Lookup.Error())
	}
	now := clock.Now()
	var issued map[int64]prescription.Status // this centre's, read once when first needed
	for _, h := range res.Holders {
		if h.Outcome == Failed {
			out.Unchecked = append(out.Unchecked, h.Name+": "+h.Err.Error())
			continue
		}
		for _, rec := range h.Records {
			if rec.Erased || !prescription.IsPrescription(rec.Payload) {
				continue
			}
			p, err := prescription.Parse(rec.Payload)
			if err != nil || p.Issuer != h.Holder {
				continue // not a prescription this holder issued (a copy, or a document of the class)
			}
			v := PrescriptionView{Holder: h.Name, Index: rec.Index, Pseudonym: r.Pseudonym, Issued: rec.Record.Occurred, Prescription: p}
			if h.Holder == n.Centre.ID() {
				if issued == nil {
					sts, err := n.prescriptions.StatusesOf(ctx, r.Pseudonym)
					if err != nil {
						return PrescriptionsResult{}, err
					}
					issued = make(map[int64]prescription.Status, len(sts))
					for _, st := range sts {
						issued[st.Index] = st
					}
				}
				st, ok := issued[rec.Index]
				if !ok {
					return PrescriptionsResult{}, prescription.ErrNoPrescription
				}
				v.Known, v.State, v.Left, v.Dispenses, v.Cancelled = true, st.State(now), st.Left(), n.dispenseViews(st.Dispenses), st.Cancelled
			}
			out.Prescriptions = append(out.Prescriptions, v)
		}
	}
	return out, nil
}

// isPrescription reports whether the record at index is a prescription
// this centre issued: an amendment may not replace one (cancel it and
// issue another).
func (n *Node) isPrescription(ctx context.Context, index int64) bool {
	_, err := n.prescriptions.Status(ctx, index)
	return err == nil || !errors.Is(err, prescription.ErrNoPrescription)
}

// checkNotPrescription refuses a record whose payload would read as a
// prescription, or that would amend one: prescriptions are issued with
// IssuePrescription alone.
func (n *Node) checkNotPrescription(ctx context.Context, r RecordRequest) error {
	if bytes.HasPrefix(r.Payload, []byte("medfed/prescription/")) {
		return fmt.Errorf("%w: a payload may not begin with the bytes of a medfed prescription: issue one with medfed prescription issue", ErrBadRecord)
	}
	if r.Replaces != 0 && n.isPrescription(ctx, r.Replaces) {
		return fmt.Errorf("%w: record %d is a prescription: cancel it and issue another instead of amending it", ErrBadRecord, r.Replaces)
	}
	return nil
}
