package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// The prescriptions' bodies, answers and routes. The answers to issuing,
// dispensing and cancelling are FHIR (MedicationRequest,
// MedicationDispense); the JSON shapes below are the admin socket's, for
// the medfed prescription commands.

// MedicationBody is a medication as a code.
type MedicationBody struct {
	System  string `json:"system" enum:"dmd,snomed,https://dmd.nhs.uk,http://snomed.info/sct" doc:"the code system: dm+d (dmd) or SNOMED CT (snomed), by name or FHIR URI"`
	Code    string `json:"code" pattern:"^[1-9][0-9]{5,17}$" doc:"the code: a SNOMED CT identifier (dm+d's are too), its last digit a Verhoeff check digit"`
	Display string `json:"display" doc:"the code's name as the prescribing system shows it, at most 200 bytes"`
}

// PrescriptionBody issues a prescription.
type PrescriptionBody struct {
	Patient    string         `json:"patient" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits"`
	Medication MedicationBody `json:"medication" doc:"what is prescribed"`
	Quantity   uint32         `json:"quantity" doc:"how much each supply holds, in unit"`
	Unit       string         `json:"unit" pattern:"^[A-Za-z0-9 ./-]{1,32}$" doc:"the unit of the quantity, e.g. tablet or mL"`
	Repeats    int            `json:"repeats,omitempty" doc:"how many supplies may follow the first (FHIR's numberOfRepeatsAllowed), 0 to 100"`
	ValidFrom  string         `json:"validFrom,omitempty" doc:"the first moment a supply may be dispensed: RFC 3339 or a date; default now"`
	ValidUntil string         `json:"validUntil,omitempty" doc:"the moment it ends: RFC 3339 or a date; default six months after validFrom"`
	Dosage     string         `json:"dosage,omitempty" doc:"the dosage instruction, at most 1,000 bytes: in the encrypted payload, never on a ledger"`
	Location   string         `json:"location,omitempty" pattern:"^[A-Za-z0-9 ._/-]{0,64}$" doc:"where it was prescribed: one of the centre's records.locations"`
}

// DispenseBody claims the next supply of a prescription.
type DispenseBody struct {
	Token string `json:"token" pattern:"^rx1\\.[a-z0-9][a-z0-9-]{0,62}\\.[1-9][0-9]*\\.[0-9a-f]{32}$" doc:"the prescription's token, as the patient brings it: rx1.<issuing centre>.<index>.<secret>"`
}

// CancelBody cancels a prescription.
type CancelBody struct {
	Reason string `json:"reason" enum:"error,changed,adverse-reaction,no-longer-needed,patient-request" doc:"why: a code, never free text (it goes onto the ledger)"`
}

// PrescriptionContent is a prescription's content, as its payload has it.
type PrescriptionContent struct {
	Issuer     string // the issuing centre's name
	Prescriber string // the prescriber's staff ID there, 32 hex digits
	System     string // dmd or snomed
	Code       string
	Display    string
	Quantity   uint32
	Unit       string
	Repeats    int
	Supplies   int // Repeats + 1
	ValidFrom  time.Time
	ValidUntil time.Time
	Dosage     string `json:",omitempty"`
}

// PrescriptionContentOf is p's shape, issued by the centre called issuer.
func PrescriptionContentOf(issuer string, p prescription.Prescription) PrescriptionContent {
	return PrescriptionContent{Issuer: issuer, Prescriber: p.Prescriber.String(), System: p.Medication.System.String(), Code: p.Medication.Code,
		Display: p.Medication.Display, Quantity: p.Quantity, Unit: p.Unit, Repeats: int(p.Repeats), Supplies: p.Supplies(),
		ValidFrom: p.ValidFrom, ValidUntil: p.ValidUntil, Dosage: p.Dosage}
}

// OverPrescriptionWarning is an active prescription of the same
// medication from another prescriber.
type OverPrescriptionWarning struct {
	Holder     string
	Index      int64
	Prescriber string
	System     string
	Code       string
	Display    string
	ValidUntil time.Time
	Message    string
}

func overPrescriptionWarnings(ws []centre.OverPrescription) []OverPrescriptionWarning {
	var out []OverPrescriptionWarning
	for _, w := range ws {
		out = append(out, OverPrescriptionWarning{Holder: w.Holder, Index: w.Index, Prescriber: w.Prescriber.String(), System: w.Medication.System.String(),
			Code: w.Medication.Code, Display: w.Medication.Display, ValidUntil: w.ValidUntil, Message: overPrescriptionMessage(w)})
	}
	return out
}

func overPrescriptionMessage(w centre.OverPrescription) string {
	return fmt.Sprintf("the same medication (%s %s) is active from another prescriber: %s's prescription %d, valid until %s",
		w.Medication.System, w.Medication.Code, w.Holder, w.Index, w.ValidUntil.Format(time.DateOnly))
}

// PrescriptionIssued is an issued prescription, with its token: the only
// answer that ever shows it.
type PrescriptionIssued struct {
	Pseudonym     string
	Index         int64
	Token         string
	Issued        time.Time
	Content       PrescriptionContent
	Warnings      []OverPrescriptionWarning `json:",omitempty"`
	Checked       bool                      // the over-prescription rule ran
	Unchecked     []string                  `json:",omitempty"`
	AnnounceError string                    `json:",omitempty"`
}

// PrescriptionIssuedOf is r's shape, issued by the centre called issuer.
func PrescriptionIssuedOf(issuer string, r centre.IssueResult) PrescriptionIssued {
	return PrescriptionIssued{Pseudonym: r.Pseudonym.String(), Index: r.Index, Token: r.Token.String(), Issued: r.Issued,
		Content: PrescriptionContentOf(issuer, r.Prescription), Warnings: overPrescriptionWarnings(r.Warnings), Checked: r.Checked,
		Unchecked: r.Unchecked, AnnounceError: ErrorText(r.Announce)}
}

// PrescriptionDispensed is a supply the issuing centre confirmed.
type PrescriptionDispensed struct {
	Issuer       string
	Pseudonym    string
	Prescription int64 // the prescription's entry at the issuer
	Fill         int
	Supplies     int
	Dispense     int64 // the dispense entry at the issuer
	Recorded     int64 // the dispense entry here
	Time         time.Time
	Content      PrescriptionContent
	RecordError  string `json:",omitempty"`
	// Renewed: the supply answers an earlier claim from this centre, with
	// the same token, whose outcome was unknown: the one supply dispensed
	// for both.
	Renewed bool `json:",omitempty"`
}

// PrescriptionDispensedOf is d's shape.
func PrescriptionDispensedOf(d centre.DispenseResult) PrescriptionDispensed {
	return PrescriptionDispensed{Issuer: d.Issuer, Pseudonym: d.Pseudonym.String(), Prescription: d.Prescription, Fill: d.Fill, Supplies: d.Supplies,
		Dispense: d.Dispense, Recorded: d.Recorded, Time: d.Time, Content: PrescriptionContentOf(d.Issuer, d.Content), RecordError: ErrorText(d.Record), Renewed: d.Renewed}
}

// PrescriptionItem is one prescription released by its holder, with its
// state where this centre issued it ("unknown" elsewhere).
type PrescriptionItem struct {
	Holder    string
	Index     int64
	Issued    time.Time
	Content   PrescriptionContent
	Status    string // active, completed, cancelled, expired, or unknown
	Left      *int   `json:",omitempty"`
	Dispenses []DispenseItem
	Cancelled *CancelItem `json:",omitempty"`
}

// DispenseItem is one supply dispensed.
type DispenseItem struct {
	Index      int64
	Time       time.Time
	Fill       int
	Pharmacy   string
	Pharmacist string
}

// CancelItem is a cancellation.
type CancelItem struct {
	Index      int64
	Time       time.Time
	Prescriber string
	Reason     string
}

// PrescriptionItemOf is v's shape.
func PrescriptionItemOf(v centre.PrescriptionView) PrescriptionItem {
	it := PrescriptionItem{Holder: v.Holder, Index: v.Index, Issued: v.Issued, Content: PrescriptionContentOf(v.Holder, v.Prescription), Status: "unknown", Dispenses: []DispenseItem{}}
	if v.Known {
		it.Status, it.Left = v.State.String(), &v.Left
	}
	for _, d := range v.Dispenses {
		it.Dispenses = append(it.Dispenses, DispenseItem{Index: d.Index, Time: d.Time, Fill: d.Fill, Pharmacy: d.Pharmacy, Pharmacist: d.Pharmacist.String()})
	}
	if c := v.Cancelled; c != nil {
		it.Cancelled = &CancelItem{Index: c.Index, Time: c.Time, Prescriber: c.Prescriber.String(), Reason: c.Reason.String()}
	}
	return it
}

// PrescriptionList is a patient's prescriptions as released.
type PrescriptionList struct {
	Pseudonym     string
	Prescriptions []PrescriptionItem
	Unchecked     []string `json:",omitempty"`
}

// PrescriptionListOf is r's shape.
func PrescriptionListOf(r centre.PrescriptionsResult) PrescriptionList {
	out := PrescriptionList{Pseudonym: r.Pseudonym.String(), Prescriptions: []PrescriptionItem{}, Unchecked: r.Unchecked}
	for _, v := range r.Prescriptions {
		out.Prescriptions = append(out.Prescriptions, PrescriptionItemOf(v))
	}
	return out
}

// PrescriptionCancelled is a cancellation recorded.
type PrescriptionCancelled struct {
	Index        int64 // the cancellation entry
	Prescription PrescriptionItem
}

// ParseMedication reads a medication's system, code and display.
func ParseMedication(system, code, display string) (prescription.Medication, error) {
	sys, err := prescription.ParseSystem(system)
	if err != nil {
		return prescription.Medication{}, fmt.Errorf("medication: %w", err)
	}
	return prescription.Medication{System: sys, Code: code, Display: display}, nil
}

func (s *Server) prescriptionRoutes() []route {
	indexParam := param{"index", "path", "the prescription's index on this centre's ledger"}
	return []route{
		{method: "POST", pattern: "/v1/prescriptions", auth: authStaff, roles: clinical, summary: "Issue a prescription",
			body: PrescriptionBody{}, status: http.StatusCreated, answer: fhirResource("MedicationRequest"), handle: s.issuePrescription,
			op: "issuePrescription", tag: "prescriptions", about: "Stores the prescription as a record of class prescription (its content encrypted at rest, never on a ledger) with the caller as its prescriber, " +
				"and answers a MedicationRequest whose identifier of system urn:medfed:prescription-token is the token the patient takes to a pharmacy: shown here once, never kept. " +
				"Before it is issued, the federated query looks for the same medication active from another prescriber (prescription.over-prescription): each found is a contained DetectedIssue, a warning, not a refusal."},
		{method: "POST", pattern: "/v1/prescriptions/dispense", auth: authStaff, roles: clinical, summary: "Dispense the next supply of a prescription",
			body: DispenseBody{}, answer: fhirResource("MedicationDispense"), handle: s.dispensePrescription,
			op: "dispensePrescription", tag: "prescriptions", about: "Claims the next supply from the issuing centre named in the token, whose ledger alone decides: it records the dispense before it confirms, " +
				"so two pharmacies claiming the last supply get one yes between them. The answer is the MedicationDispense to hand over; " +
				"409 when nothing is left to dispense, the prescription is cancelled, not yet valid or expired; 404 when the token opens no prescription."},
		{method: "POST", pattern: "/v1/prescriptions/{index}/cancel", auth: authStaff, roles: clinical, summary: "Cancel a prescription this centre issued",
			body: CancelBody{}, answer: fhirResource("MedicationRequest"), params: []param{indexParam}, handle: s.cancelPrescription,
			op: "cancelPrescription", tag: "prescriptions", about: "The prescriber cancels, with a coded reason: the cancellation is on the ledger before the answer, and no supply is dispensed after it. " +
				"403 for anyone but the prescriber; 409 when it is cancelled already or nothing is left to dispense."},
	}
}

func (s *Server) issuePrescription(ctx context.Context, c *call) (any, error) {
	var b PrescriptionBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := ledger.ParsePseudonym(b.Patient)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	med, err := ParseMedication(b.Medication.System, b.Medication.Code, b.Medication.Display)
	if err != nil {
		return nil, err
	}
	req := centre.IssueRequest{Pseudonym: p, Prescriber: staff, Medication: med, Quantity: b.Quantity, Unit: b.Unit, Repeats: b.Repeats, Dosage: b.Dosage, Location: b.Location}
	for _, t := range []struct {
		name string
		in   string
		out  *time.Time
	}{{"validFrom", b.ValidFrom, &req.ValidFrom}, {"validUntil", b.ValidUntil, &req.ValidUntil}} {
		if t.in == "" {
			continue
		}
		if *t.out, err = consent.ParseTime(t.in); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errBadRequest, t.name, err)
		}
	}
	res, err := s.node.IssuePrescription(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Announce != nil {
		c.w.Header().Set("Warning", `199 medfed "issued, but not yet announced in the directory; the node announces it again at its next start"`)
	}
	v := centre.PrescriptionView{Holder: s.node.Name(), Index: res.Index, Pseudonym: res.Pseudonym, Issued: res.Issued, Prescription: res.Prescription,
		Known: true, State: prescription.StateActive, Left: res.Prescription.Supplies()}
	return resource{medicationRequestOf(v, &res)}, nil
}

func (s *Server) dispensePrescription(ctx context.Context, c *call) (any, error) {
	var b DispenseBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	tok, err := prescription.ParseToken(b.Token)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	d, err := s.node.ClaimDispense(ctx, centre.DispenseRequest{Token: tok, Pharmacist: staff})
	if err != nil {
		return nil, err
	}
	if d.Record != nil {
		// The centre logged why; the client is told.
		c.w.Header().Set("Warning", `199 medfed "dispensed (the issuing centre recorded it), but not recorded on this centre's ledger"`)
	}
	return resource{medicationDispenseOf(s.node.Name(), d.Pseudonym, d.Issuer, d.Prescription, d.Content,
		centre.DispenseView{Index: d.Dispense, Time: d.Time, Fill: d.Fill, Pharmacy: s.node.Name(), Pharmacist: staff})}, nil
}

func (s *Server) cancelPrescription(ctx context.Context, c *call) (any, error) {
	var b CancelBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	index, err := pathIndex(c.r)
	if err != nil {
		return nil, err
	}
	reason, err := ledger.ParseCancelReason(b.Reason)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	if _, err := s.node.CancelPrescription(ctx, index, staff, reason); err != nil {
		return nil, err
	}
	v, err := s.node.PrescriptionStatus(ctx, index)
	if err != nil {
		return nil, err
	}
	return resource{medicationRequestOf(v, nil)}, nil
}
