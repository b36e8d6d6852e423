package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

func prescriptionView(state prescription.State, known bool) centre.PrescriptionView {
	from := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	return centre.PrescriptionView{
		Holder: "centre-a", Index: 12, Pseudonym: ledger.Pseudonym{1}, Issued: from,
		Prescription: prescription.Prescription{Prescriber: ledger.StaffID{2}, Medication: prescription.Medication{System: prescription.SNOMED, Code: "322236009", Display: "Paracetamol 500 mg oral tablet"},
			Quantity: 32, Unit: "tablet", Repeats: 1, ValidFrom: from, ValidUntil: from.AddDate(0, 6, 0), Dosage: "two tablets"},
		Known: known, State: state, Left: 1,
	}
}

// The prescriptions' FHIR shapes: one medication[x] (the samply models
// write both), the token only in the issue's answer, each state its
// status, and a warning as a contained DetectedIssue referred to.
func TestMedicationShapes(t *testing.T) {
	decode := func(raw json.RawMessage) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	v := prescriptionView(prescription.StateActive, true)
	issued := centre.IssueResult{Token: prescription.Token{Issuer: "centre-a", Index: 12, Secret: prescription.Secret{9}},
		Warnings: []centre.OverPrescription{{Holder: "centre-b", Index: 4, Medication: v.Prescription.Medication, ValidUntil: v.Prescription.ValidUntil}}}
	m := decode(medicationRequestOf(v, &issued))
	if _, both := m["medicationReference"]; both || m["medicationCodeableConcept"] == nil || m["status"] != "active" || m["intent"] != "order" {
		t.Fatalf("an issued MedicationRequest: %v", m)
	}
	raw := string(medicationRequestOf(v, &issued))
	if !strings.Contains(raw, issued.Token.String()) || !strings.Contains(raw, `"reference":"#over-prescription-1"`) || !strings.Contains(raw, `"resourceType":"DetectedIssue"`) {
		t.Fatalf("the issue's answer lacks its token or its warning: %s", raw)
	}
	if raw := string(medicationRequestOf(v, nil)); strings.Contains(raw, tokenSystem) || strings.Contains(raw, "DetectedIssue") {
		t.Fatalf("a MedicationRequest read back shows a token or a warning: %s", raw)
	}
	cancelled := prescriptionView(prescription.StateCancelled, true)
	cancelled.Cancelled = &prescription.Cancelled{Index: 20, Cancellation: ledger.Cancellation{Prescription: 12, Prescriber: ledger.StaffID{2}, Reason: ledger.CancelAdverseReaction}}
	for _, tc := range []struct {
		name string
		v    centre.PrescriptionView
		want string
	}{
		{"active", v, "active"},
		{"completed", prescriptionView(prescription.StateCompleted, true), "completed"},
		{"expired", prescriptionView(prescription.StateExpired, true), "stopped"},
		{"cancelled before a supply", cancelled, "cancelled"},
		{"another centre's", prescriptionView(prescription.StateActive, false), "unknown"},
	} {
		if got := decode(medicationRequestOf(tc.v, nil))["status"]; got != tc.want {
			t.Errorf("%s: status %v, want %s", tc.name, got, tc.want)
		}
	}
	cancelled.Dispenses = []centre.DispenseView{{Index: 15, Fill: 1, Pharmacy: "centre-b"}}
	if got := decode(medicationRequestOf(cancelled, nil))["status"]; got != "stopped" {
		t.Errorf("cancelled after a supply: status %v, want stopped", got)
	}
	d := decode(medicationDispenseOf("centre-b", v.Pseudonym, "centre-a", 12, v.Prescription, centre.DispenseView{Index: 15, Time: v.Issued, Fill: 2, Pharmacy: "centre-b", Pharmacist: ledger.StaffID{3}}))
	if _, both := d["medicationReference"]; both || d["status"] != "completed" || len(d["performer"].([]any)) != 2 {
		t.Fatalf("a MedicationDispense: %v", d)
	}
}
