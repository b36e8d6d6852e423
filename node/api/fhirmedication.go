package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Prescriptions in FHIR R4: MedicationRequest and MedicationDispense.
// The samply models write both medication[x] choices (an empty
// medicationReference beside the code), which FHIR refuses, so these two
// resources have shapes of their own, with the models' data types inside.

const (
	tokenSystem        = "urn:medfed:prescription-token"  // a prescription's token: in the issue's answer alone
	cancelReasonSystem = "urn:medfed:cancellation-reason" // ledger.CancelReason's names
	medRequestCategory = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
)

type medicationRequest struct {
	ResourceType              string                 `json:"resourceType"`
	ID                        string                 `json:"id"`
	Contained                 []detectedIssue        `json:"contained,omitempty"`
	Identifier                []fhir.Identifier      `json:"identifier"`
	Status                    string                 `json:"status"`
	StatusReason              *fhir.CodeableConcept  `json:"statusReason,omitempty"`
	Intent                    string                 `json:"intent"`
	Category                  []fhir.CodeableConcept `json:"category,omitempty"`
	MedicationCodeableConcept fhir.CodeableConcept   `json:"medicationCodeableConcept"`
	Subject                   fhir.Reference         `json:"subject"`
	AuthoredOn                string                 `json:"authoredOn,omitempty"`
	Requester                 *fhir.Reference        `json:"requester,omitempty"`
	DosageInstruction         []dosage               `json:"dosageInstruction,omitempty"`
	DispenseRequest           *dispenseRequest       `json:"dispenseRequest,omitempty"`
	DetectedIssue             []fhir.Reference       `json:"detectedIssue,omitempty"`
}

type dosage struct {
	Text string `json:"text"`
}

type dispenseRequest struct {
	ValidityPeriod         *fhir.Period   `json:"validityPeriod,omitempty"`
	NumberOfRepeatsAllowed *int           `json:"numberOfRepeatsAllowed,omitempty"`
	Quantity               *fhir.Quantity `json:"quantity,omitempty"`
}

// detectedIssue is an over-prescription warning, contained in the
// MedicationRequest it was found for.
type detectedIssue struct {
	ResourceType string               `json:"resourceType"`
	ID           string               `json:"id"`
	Status       string               `json:"status"`
	Code         fhir.CodeableConcept `json:"code"`
	Severity     string               `json:"severity"`
	Patient      *fhir.Reference      `json:"patient,omitempty"`
	Implicated   []fhir.Reference     `json:"implicated,omitempty"`
	Detail       string               `json:"detail"`
}

type medicationDispense struct {
	ResourceType              string                `json:"resourceType"`
	ID                        string                `json:"id"`
	Identifier                []fhir.Identifier     `json:"identifier"`
	Status                    string                `json:"status"`
	MedicationCodeableConcept fhir.CodeableConcept  `json:"medicationCodeableConcept"`
	Subject                   *fhir.Reference       `json:"subject,omitempty"`
	Performer                 []dispensePerformer   `json:"performer,omitempty"`
	AuthorizingPrescription   []fhir.Reference      `json:"authorizingPrescription,omitempty"`
	Type                      *fhir.CodeableConcept `json:"type,omitempty"`
	Quantity                  *fhir.Quantity        `json:"quantity,omitempty"`
	WhenHandedOver            string                `json:"whenHandedOver,omitempty"`
	DosageInstruction         []dosage              `json:"dosageInstruction,omitempty"`
	Note                      []fhir.Annotation     `json:"note,omitempty"`
}

type dispensePerformer struct {
	Actor fhir.Reference `json:"actor"`
}

// rawJSON marshals a resource of the shapes above.
func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("api: marshalling a FHIR resource: %v", err)) // plain structs of strings and numbers
	}
	return b
}

func medicationConcept(m prescription.Medication) fhir.CodeableConcept {
	return fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(m.System.URI()), Code: ptr(m.Code), Display: ptr(m.Display)}}, Text: ptr(m.Display)}
}

func quantityOf(p prescription.Prescription) *fhir.Quantity {
	v := json.Number(strconv.FormatUint(uint64(p.Quantity), 10))
	return &fhir.Quantity{Value: &v, Unit: ptr(p.Unit)}
}

func staffRef(id ledger.StaffID) *fhir.Reference {
	return &fhir.Reference{Type: ptr("Practitioner"), Identifier: &fhir.Identifier{System: ptr(staffSystem), Value: ptr(id.String())}}
}

func prescriptionRef(holder string, index int64) fhir.Reference {
	return fhir.Reference{Type: ptr("MedicationRequest"), Identifier: &fhir.Identifier{System: ptr(ledgerSystem(holder)), Value: ptr(strconv.FormatInt(index, 10))}}
}

// requestStatus is a prescription's state as MedicationRequest.status:
// cancelled before any supply, stopped after some or once expired.
func requestStatus(v centre.PrescriptionView) (string, *fhir.CodeableConcept) {
	if !v.Known {
		return "unknown", &fhir.CodeableConcept{Text: ptr("held by its issuing centre, which alone knows what was dispensed")}
	}
	switch v.State {
	case prescription.StateCompleted:
		return "completed", nil
	case prescription.StateCancelled:
		reason := &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(cancelReasonSystem), Code: ptr(v.Cancelled.Reason.String())}}, Text: ptr("cancelled: " + v.Cancelled.Reason.String())}
		if len(v.Dispenses) > 0 {
			return "stopped", reason
		}
		return "cancelled", reason
	case prescription.StateExpired:
		return "stopped", &fhir.CodeableConcept{Text: ptr("expired with supplies left")}
	case prescription.StateActive:
		return "active", nil
	}
	return "unknown", nil
}

// medicationRequestOf is a prescription as a MedicationRequest; issued,
// when given, adds the token and the over-prescription warnings.
func medicationRequestOf(v centre.PrescriptionView, issued *centre.IssueResult) json.RawMessage {
	p := v.Prescription
	status, reason := requestStatus(v)
	repeats := int(p.Repeats)
	r := medicationRequest{
		ResourceType: "MedicationRequest", ID: resourceID(v.Holder, v.Index),
		Identifier: []fhir.Identifier{{System: ptr(ledgerSystem(v.Holder)), Value: ptr(strconv.FormatInt(v.Index, 10))}},
		Status:     status, StatusReason: reason, Intent: "order",
		Category:                  []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(medRequestCategory), Code: ptr("community")}}}},
		MedicationCodeableConcept: medicationConcept(p.Medication),
		Subject:                   *patientRef(v.Pseudonym.String()),
		AuthoredOn:                v.Issued.UTC().Format(time.RFC3339),
		Requester:                 staffRef(p.Prescriber),
		DispenseRequest: &dispenseRequest{
			ValidityPeriod:         &fhir.Period{Start: ptr(p.ValidFrom.UTC().Format(time.RFC3339)), End: ptr(p.ValidUntil.UTC().Format(time.RFC3339))},
			NumberOfRepeatsAllowed: &repeats, Quantity: quantityOf(p),
		},
	}
	if p.Dosage != "" {
		r.DosageInstruction = []dosage{{Text: p.Dosage}}
	}
	if issued != nil {
		r.Identifier = append(r.Identifier, fhir.Identifier{Use: ptr(fhir.IdentifierUseSecondary), System: ptr(tokenSystem), Value: ptr(issued.Token.String())})
		for i, w := range issued.Warnings {
			id := "over-prescription-" + strconv.Itoa(i+1)
			r.Contained = append(r.Contained, detectedIssue{
				ResourceType: "DetectedIssue", ID: id, Status: "preliminary", Severity: "moderate",
				Code:       fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(actCode), Code: ptr("DUPTHPY"), Display: ptr("Duplicate Therapy Alert")}}},
				Patient:    patientRef(v.Pseudonym.String()),
				Implicated: []fhir.Reference{prescriptionRef(w.Holder, w.Index)},
				Detail:     overPrescriptionMessage(w),
			})
			r.DetectedIssue = append(r.DetectedIssue, fhir.Reference{Reference: ptr("#" + id)})
		}
	}
	return rawJSON(r)
}

// medicationDispenseOf is one supply of the prescription at index of
// issuer as a MedicationDispense.
func medicationDispenseOf(here string, pseudonym ledger.Pseudonym, issuer string, index int64, p prescription.Prescription, d centre.DispenseView) json.RawMessage {
	typ := "RF"
	display := "Refill"
	if d.Fill == 1 {
		typ, display = "FF", "First Fill"
	}
	md := medicationDispense{
		ResourceType: "MedicationDispense", ID: resourceID(issuer, d.Index),
		Identifier:                []fhir.Identifier{{System: ptr(ledgerSystem(issuer)), Value: ptr(strconv.FormatInt(d.Index, 10))}},
		Status:                    "completed",
		MedicationCodeableConcept: medicationConcept(p.Medication),
		Subject:                   patientRef(pseudonym.String()),
		Performer:                 []dispensePerformer{{Actor: *centreRef(d.Pharmacy)}},
		AuthorizingPrescription:   []fhir.Reference{prescriptionRef(issuer, index)},
		Type:                      &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(actCode), Code: ptr(typ), Display: ptr(display)}}},
		Quantity:                  quantityOf(p),
		WhenHandedOver:            d.Time.UTC().Format(time.RFC3339Nano),
		Note:                      []fhir.Annotation{{Text: fmt.Sprintf("supply %d of %d", d.Fill, p.Supplies())}},
	}
	if d.Pharmacy == here && !d.Pharmacist.IsZero() {
		// A staff ID means something at its own centre only.
		md.Performer = append([]dispensePerformer{{Actor: *staffRef(d.Pharmacist)}}, md.Performer...)
	}
	if p.Dosage != "" {
		md.DosageInstruction = []dosage{{Text: p.Dosage}}
	}
	return rawJSON(md)
}

func (s *Server) medicationRoutes() []route {
	fhirParam := func(name, about string) param { return param{name, "query", about} }
	return []route{
		{method: "GET", pattern: fhirBase + "/MedicationRequest", auth: authSystem, roles: clinical,
			summary: "The patient's prescriptions across the federation: the federated query for class prescription, for the token's purpose of use",
			params:  []param{fhirParam("patient", "the patient's pseudonym"), fhirParam("status", "active, completed, cancelled, stopped or unknown")},
			handle:  s.scoped("MedicationRequest", 's', s.findMedicationRequests)},
		{method: "GET", pattern: fhirBase + "/MedicationDispense", auth: authSystem, roles: clinical,
			summary: "The supplies dispensed of the patient's prescriptions that this centre issued (as released to the caller)",
			params:  []param{fhirParam("patient", "the patient's pseudonym")},
			handle:  s.scoped("MedicationDispense", 's', s.findMedicationDispenses)},
	}
}

var requestStatuses = []string{"active", "completed", "cancelled", "stopped", "unknown"}

// prescriptionsFor runs the federated query for the patient's
// prescriptions on behalf of the caller.
func (s *Server) prescriptionsFor(ctx context.Context, c *call, p ledger.Pseudonym) (centre.PrescriptionsResult, []fhir.OperationOutcomeIssue, error) {
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, c.purpose(), "")
	if err != nil {
		return centre.PrescriptionsResult{}, nil, err
	}
	res, err := s.node.Prescriptions(ctx, centre.PrescriptionsRequest{Pseudonym: p, Asker: asker})
	if err != nil {
		return centre.PrescriptionsResult{}, nil, err
	}
	// holderIssues says every holder's answer and an incomplete lookup,
	// and that no centre holds the patient when none does.
	return res, holderIssues(QueryResultOf(res.Query)), nil
}

func (s *Server) findMedicationRequests(ctx context.Context, c *call) (any, error) {
	q, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	var statuses []string
	if v, err := one(q, "status"); err != nil {
		return nil, err
	} else if v != "" {
		statuses = strings.Split(v, ",")
		for _, st := range statuses {
			if !slices.Contains(requestStatuses, st) {
				return nil, fmt.Errorf("%w: status: one or more of %s", errBadRequest, strings.Join(requestStatuses, ", "))
			}
		}
	}
	res, issues, err := s.prescriptionsFor(ctx, c, p)
	if err != nil {
		return nil, err
	}
	base := baseURL(c.r)
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now()), Link: selfLink(c)}
	for _, v := range res.Prescriptions {
		if st, _ := requestStatus(v); len(statuses) > 0 && !slices.Contains(statuses, st) {
			continue
		}
		b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/MedicationRequest/" + resourceID(v.Holder, v.Index)), Resource: medicationRequestOf(v, nil),
			Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
	}
	b.Total = ptr(len(b.Entry))
	b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(newUUID()), Resource: marshal(fhir.OperationOutcome{Issue: issues}),
		Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeOutcome)}})
	return resource{marshal(b)}, nil
}

func (s *Server) findMedicationDispenses(ctx context.Context, c *call) (any, error) {
	_, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	res, issues, err := s.prescriptionsFor(ctx, c, p)
	if err != nil {
		return nil, err
	}
	base := baseURL(c.r)
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now()), Link: selfLink(c)}
	others := 0
	for _, v := range res.Prescriptions {
		if !v.Known {
			others++
			continue
		}
		for _, d := range v.Dispenses {
			b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/MedicationDispense/" + resourceID(v.Holder, d.Index)),
				Resource: medicationDispenseOf(s.node.Name(), p, v.Holder, v.Index, v.Prescription, d), Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
		}
	}
	b.Total = ptr(len(b.Entry))
	if others > 0 {
		issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational,
			fmt.Sprintf("%d prescription(s) issued by other centres: their supplies are on their issuers' ledgers", others)))
	}
	b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(newUUID()), Resource: marshal(fhir.OperationOutcome{Issue: issues}),
		Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeOutcome)}})
	return resource{marshal(b)}, nil
}
