package atna_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

var (
	formatPatient = ledger.Pseudonym(sha256.Sum256([]byte("format test patient")))
	formatTime    = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	documentHash  = sha256.Sum256([]byte("a signed document"))
	delegation    = consent.ID{0xde, 0x1e}
)

// formatEntries are one entry of each shape the audit trail has.
func formatEntries() map[string]centre.AuditEntry {
	entry := func(i int64, k ledger.Kind) centre.AuditEntry {
		return centre.AuditEntry{Index: i, Time: formatTime, Kind: k, Pseudonym: formatPatient}
	}
	access := func(i int64, a consent.AccessEntry) centre.AuditEntry {
		e := entry(i, ledger.KindAccess)
		e.Access = &centre.PatientAccess{Index: i, Time: formatTime, Centre: "centre-b", AccessEntry: a}
		return e
	}
	document := func(i int64, k ledger.Kind, d centre.ConsentDocument) centre.AuditEntry {
		e := entry(i, k)
		e.Document = &d
		return e
	}
	erasure := entry(6, ledger.KindErasure)
	erasure.Erasure = &centre.PatientErasure{Index: 6, Time: formatTime, Record: 2}
	out := entry(7, ledger.KindTransfer)
	out.Transfer = &centre.PatientTransfer{Index: 7, Time: formatTime, Direction: query.Out, Centre: "centre-b", Source: 2, Copy: 11}
	in := entry(8, ledger.KindTransfer)
	in.Transfer = &centre.PatientTransfer{Index: 8, Time: formatTime, Direction: query.In, Centre: "centre-b", Source: 4, Copy: 7}
	dispense := entry(10, ledger.KindDispense)
	dispense.Dispense = &centre.PatientDispense{Index: 10, Time: formatTime, Issuer: "centre-a", Prescription: 3, Fill: 2,
		Pharmacy: "pharmacy-b", Pharmacist: ledger.StaffID{0xcd}, Confirmed: 10}
	cancellation := entry(11, ledger.KindCancellation)
	cancellation.Cancellation = &centre.PatientCancellation{Index: 11, Time: formatTime, Prescription: 3, Prescriber: ledger.StaffID{0xef}, Reason: ledger.CancelAdverseReaction}
	device := entry(12, ledger.KindDevice)
	device.Device = &centre.PatientDevice{Index: 12, Time: formatTime, Device: ledger.DeviceID{0xd1}, Classes: []string{"glucose", "heart-rate"},
		NotBefore: formatTime, Expires: formatTime.AddDate(1, 0, 0), Statement: documentHash}
	deviceRevoke := entry(13, ledger.KindDeviceRevoke)
	deviceRevoke.DeviceRevocation = &centre.PatientDeviceRevocation{Index: 13, Time: formatTime, Device: ledger.DeviceID{0xd1}, Registration: 12, Statement: documentHash}
	return map[string]centre.AuditEntry{
		"dispense":      dispense,
		"cancellation":  cancellation,
		"device":        device,
		"device revoke": deviceRevoke,
		"emergency": access(1, consent.AccessEntry{Event: consent.EventEmergencyStart, Staff: ledger.StaffID{0xab}, Role: consent.Clinician,
			Action: consent.Access, Purpose: consent.Emergency, Permitted: true, Basis: consent.BasisEmergency, Reason: consent.Unconscious}),
		"refused": access(2, consent.AccessEntry{Event: consent.EventAccess, Action: consent.Access, Purpose: consent.Research,
			Basis: consent.BasisContract}),
		"contract":    document(3, ledger.KindConsent, centre.ConsentDocument{Kind: consent.KindContract, Issued: formatTime, Signer: "patient", Hash: documentHash}),
		"attestation": document(4, ledger.KindConsent, centre.ConsentDocument{Kind: consent.KindAttestation, Issued: formatTime, Signer: "centre-a", Hash: documentHash}),
		"revocation":  document(5, ledger.KindRevocation, centre.ConsentDocument{Kind: consent.KindRevocation, Issued: formatTime, Signer: "patient", Hash: documentHash}),
		"erasure":     erasure,
		"export":      out,
		"import":      in,
		// The patient's view, asked by their delegate under a delegation.
		"delegate view": access(9, consent.AccessEntry{Event: consent.EventPatientView, Permitted: true, Ref: delegation}),
	}
}

// The DICOM audit message, read back with encoding/xml.
type dicomMessage struct {
	XMLName xml.Name `xml:"AuditMessage"`
	Event   struct {
		Action             string      `xml:"EventActionCode,attr"`
		DateTime           string      `xml:"EventDateTime,attr"`
		Outcome            string      `xml:"EventOutcomeIndicator,attr"`
		ID                 dicomCode   `xml:"EventID"`
		Types              []dicomCode `xml:"EventTypeCode"`
		OutcomeDescription string      `xml:"EventOutcomeDescription"`
		PurposeOfUse       []dicomCode `xml:"PurposeOfUse"`
	} `xml:"EventIdentification"`
	Participants []struct {
		UserID      string    `xml:"UserID,attr"`
		IsRequestor bool      `xml:"UserIsRequestor,attr"`
		Role        dicomCode `xml:"RoleIDCode"`
	} `xml:"ActiveParticipant"`
	Source struct {
		ID   string    `xml:"AuditSourceID,attr"`
		Type dicomCode `xml:"AuditSourceTypeCode"`
	} `xml:"AuditSourceIdentification"`
	Objects []struct {
		ID        string    `xml:"ParticipantObjectID,attr"`
		Type      string    `xml:"ParticipantObjectTypeCode,attr"`
		Role      string    `xml:"ParticipantObjectTypeCodeRole,attr"`
		LifeCycle string    `xml:"ParticipantObjectDataLifeCycle,attr"`
		IDType    dicomCode `xml:"ParticipantObjectIDTypeCode"`
		Name      string    `xml:"ParticipantObjectName"`
		Details   []struct {
			Type  string `xml:"type,attr"`
			Value string `xml:"value,attr"`
		} `xml:"ParticipantObjectDetail"`
	} `xml:"ParticipantObjectIdentification"`
}

type dicomCode struct {
	Code   string `xml:"csd-code,attr"`
	System string `xml:"codeSystemName,attr"`
	Text   string `xml:"originalText,attr"`
}

func parseDICOM(t *testing.T, b []byte) dicomMessage {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) || bytes.ContainsAny(b, "\r\n") {
		t.Fatalf("not one line of XML with its declaration: %s", b)
	}
	var m dicomMessage
	if err := xml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// Each entry is a DICOM audit message with the event, participants,
// source and objects an ATNA repository expects: the patient by
// pseudonym only, a refusal as a minor failure, emergency access as the
// Emergency Override events.
func TestDICOMFormat(t *testing.T) {
	type participant struct {
		user      string
		requestor bool
		role      string
	}
	tests := []struct {
		name         string
		event        string
		action       string
		outcome      string
		types        []string
		purposes     []string
		participants []participant
		object       string // the second object's ID type, if any
		lifecycle    string
	}{
		{name: "emergency", event: "110113", action: "E", outcome: "0", types: []string{"emergency-start", "110127"}, purposes: []string{"ETREAT"},
			participants: []participant{{"centre-b", false, "110153"}, {"ab000000000000000000000000000000@centre-b", true, "clinician"}, {"centre-a", false, "110152"}}},
		{name: "refused", event: "110112", action: "E", outcome: "4", types: []string{"access"}, purposes: []string{"HRESCH"},
			participants: []participant{{"centre-b", true, "110153"}, {"centre-a", false, "110152"}}},
		{name: "contract", event: "110110", action: "C", outcome: "0", types: []string{"consent"},
			participants: []participant{{"patient:" + formatPatient.String(), true, "110153"}, {"centre-a", false, "110152"}}, object: "consent-document"},
		{name: "attestation", event: "110110", action: "C", outcome: "0", types: []string{"consent"},
			participants: []participant{{"centre-a", true, "110153"}, {"centre-a", false, "110152"}}, object: "consent-document"},
		{name: "revocation", event: "110110", action: "U", outcome: "0", types: []string{"revocation"},
			participants: []participant{{"patient:" + formatPatient.String(), true, "110153"}, {"centre-a", false, "110152"}}, object: "consent-document"},
		{name: "erasure", event: "110110", action: "D", outcome: "0", types: []string{"erasure"},
			participants: []participant{{"centre-a", true, "110153"}}, object: "ledger-index", lifecycle: "15"},
		{name: "export", event: "110106", action: "R", outcome: "0", types: []string{"transfer"},
			participants: []participant{{"centre-a", false, "110153"}, {"centre-b", true, "110152"}}, object: "ledger-index", lifecycle: "10"},
		{name: "import", event: "110107", action: "C", outcome: "0", types: []string{"transfer"},
			participants: []participant{{"centre-b", false, "110153"}, {"centre-a", true, "110152"}}, object: "ledger-index", lifecycle: "2"},
		{name: "delegate view", event: "110110", action: "R", outcome: "0", types: []string{"patient-view"},
			participants: []participant{{"centre-b", true, "110153"}, {"delegate:" + delegation.String(), true, "110153"}, {"centre-a", false, "110152"}}},
		{name: "dispense", event: "110109", action: "U", outcome: "0", types: []string{"dispense"},
			participants: []participant{{"pharmacy-b", true, "110153"}, {"cd000000000000000000000000000000@pharmacy-b", true, "pharmacist"}, {"centre-a", false, "110152"}},
			object:       "ledger-index"},
		{name: "cancellation", event: "110109", action: "U", outcome: "0", types: []string{"cancellation"},
			participants: []participant{{"ef000000000000000000000000000000@centre-a", true, "prescriber"}, {"centre-a", false, "110152"}}, object: "ledger-index"},
		{name: "device", event: "110110", action: "C", outcome: "0", types: []string{"device"},
			participants: []participant{{"patient:" + formatPatient.String(), true, "110153"}, {"centre-a", false, "110152"}}, object: "device-statement"},
		{name: "device revoke", event: "110110", action: "U", outcome: "0", types: []string{"device-revocation"},
			participants: []participant{{"patient:" + formatPatient.String(), true, "110153"}, {"centre-a", false, "110152"}}, object: "device-statement"},
	}
	entries := formatEntries()
	f := atna.DICOM("centre-a")
	if f.MsgID != "IHE+RFC-3881" {
		t.Fatalf("MSGID %q", f.MsgID)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entries[tt.name]
			b, err := f.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			m := parseDICOM(t, b)
			ev := m.Event
			if ev.ID.Code != tt.event || ev.ID.System != "DCM" || ev.ID.Text == "" || ev.Action != tt.action || ev.Outcome != tt.outcome {
				t.Fatalf("event %+v, want %s %s outcome %s", ev, tt.event, tt.action, tt.outcome)
			}
			if when, err := time.Parse(time.RFC3339Nano, ev.DateTime); err != nil || !when.Equal(formatTime) {
				t.Fatalf("event time %q, want %v", ev.DateTime, formatTime)
			}
			var types, purposes []string
			for _, c := range ev.Types {
				types = append(types, c.Code)
			}
			for _, c := range ev.PurposeOfUse {
				purposes = append(purposes, c.Code)
			}
			if !slices.Equal(types, tt.types) || !slices.Equal(purposes, tt.purposes) {
				t.Fatalf("event types %v and purposes %v, want %v and %v", types, purposes, tt.types, tt.purposes)
			}
			if (tt.outcome == "4") != (ev.OutcomeDescription != "") {
				t.Fatalf("outcome %s described as %q", ev.Outcome, ev.OutcomeDescription)
			}
			if len(m.Participants) != len(tt.participants) {
				t.Fatalf("participants %+v, want %+v", m.Participants, tt.participants)
			}
			for i, p := range m.Participants {
				if w := tt.participants[i]; p.UserID != w.user || p.IsRequestor != w.requestor || p.Role.Code != w.role {
					t.Fatalf("participant %d: %+v, want %+v", i, p, w)
				}
			}
			if m.Source.ID != "centre-a" || m.Source.Type.Code != "4" {
				t.Fatalf("audit source %+v", m.Source)
			}
			patient := m.Objects[0]
			if patient.ID != formatPatient.String() || patient.Type != "1" || patient.Role != "1" || patient.IDType.Code != "2" || patient.IDType.System != "RFC-3881" {
				t.Fatalf("patient object %+v", patient)
			}
			for _, d := range patient.Details {
				if _, err := base64.StdEncoding.DecodeString(d.Value); err != nil {
					t.Fatalf("detail %s: %v", d.Type, err)
				}
			}
			switch {
			case tt.object == "" && len(m.Objects) != 1:
				t.Fatalf("objects %+v, want the patient alone", m.Objects)
			case tt.object != "" && (len(m.Objects) != 2 || m.Objects[1].IDType.Code != tt.object || m.Objects[1].LifeCycle != tt.lifecycle):
				t.Fatalf("objects %+v, want a %s object with life cycle %q", m.Objects, tt.object, tt.lifecycle)
			case (tt.object == "consent-document" || tt.object == "device-statement") && m.Objects[1].ID != hex.EncodeToString(documentHash[:]):
				t.Fatalf("document object %+v", m.Objects[1])
			case tt.object == "ledger-index" && (tt.name == "dispense" || tt.name == "cancellation") && (m.Objects[1].ID != "3" || m.Objects[1].Name != "prescription"):
				t.Fatalf("prescription object %+v, want entry 3", m.Objects[1])
			}
		})
	}
	e := entries["refused"]
	e.Access = nil
	if _, err := f.Encode(e); err == nil {
		t.Fatal("an access entry without its access was written")
	}
}

// The FHIR format is node/api's AuditEvent: BALP's for accesses, plain
// ones for the rest, all naming the patient by pseudonym, each with the
// id the FHIR interface serves it under.
func TestFHIRFormat(t *testing.T) {
	type coding struct{ System, Code string }
	type entity struct {
		What struct {
			Reference  string
			Identifier struct{ System, Value string }
		}
		Description string
	}
	type event struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         *struct{ Profile []string }
		Type         coding
		Subtype      []coding
		Action       string
		Outcome      string
		Recorded     string
		Source       struct {
			Site     string
			Observer struct{ Display string }
		}
		Agent []struct {
			Requestor bool
			Who       struct {
				Reference  string
				Display    string
				Identifier struct{ Value string }
			}
		}
		Entity []entity
	}
	tests := []struct {
		name    string
		balp    string // the BALP profile, for an access
		typ     string
		action  string
		outcome string
		agent   string // an agent's reference the event must have
		entity  string // an entity's reference the event must have
	}{
		{name: "emergency", balp: "PatientQuery", typ: "rest", action: "E", outcome: "0"},
		{name: "delegate view", balp: "PatientRead", typ: "rest", action: "R", outcome: "0", agent: "RelatedPerson/" + delegation.String()},
		{name: "refused", balp: "PatientQuery", typ: "rest", action: "E", outcome: "4"},
		{name: "contract", typ: "110110", action: "C", outcome: "0"},
		{name: "revocation", typ: "110110", action: "U", outcome: "0"},
		{name: "erasure", typ: "110110", action: "D", outcome: "0"},
		{name: "export", typ: "110106", action: "R", outcome: "0"},
		{name: "import", typ: "110107", action: "C", outcome: "0"},
		{name: "dispense", typ: "110109", action: "U", outcome: "0", entity: "MedicationRequest/centre-a-3"},
		{name: "cancellation", typ: "110109", action: "U", outcome: "0", entity: "MedicationRequest/centre-a-3"},
		{name: "device", typ: "110110", action: "C", outcome: "0"},
		{name: "device revoke", typ: "110110", action: "U", outcome: "0"},
	}
	f := atna.FHIR(func(e centre.AuditEntry) ([]byte, error) { return api.AuditEvent("centre-a", e) })
	if f.MsgID != "FHIR+AuditEvent" {
		t.Fatalf("MSGID %q", f.MsgID)
	}
	entries := formatEntries()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entries[tt.name]
			b, err := f.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(b, "\r\n") {
				t.Fatalf("not one line: %s", b)
			}
			var ev event
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if ev.ResourceType != "AuditEvent" || ev.ID != "centre-a-"+strconv.FormatInt(e.Index, 10) || ev.Type.Code != tt.typ || ev.Action != tt.action || ev.Outcome != tt.outcome {
				t.Fatalf("event %+v, want type %s, action %s, outcome %s", ev, tt.typ, tt.action, tt.outcome)
			}
			if when, err := time.Parse(time.RFC3339Nano, ev.Recorded); err != nil || !when.Equal(formatTime) {
				t.Fatalf("recorded %q", ev.Recorded)
			}
			if ev.Source.Observer.Display != "centre-a" || ev.Source.Site != "urn:medfed:ledger:centre-a#"+strconv.FormatInt(e.Index, 10) {
				t.Fatalf("source %+v", ev.Source)
			}
			if tt.balp != "" && (ev.Meta == nil || len(ev.Meta.Profile) != 1 || ev.Meta.Profile[0] != "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."+tt.balp) {
				t.Fatalf("meta %+v, want BALP's %s", ev.Meta, tt.balp)
			}
			if len(ev.Entity) == 0 || ev.Entity[0].What.Identifier.Value != formatPatient.String() {
				t.Fatalf("entities %+v, want the patient first", ev.Entity)
			}
			requestors, named := 0, tt.agent == ""
			for _, a := range ev.Agent {
				if a.Requestor {
					requestors++
				}
				named = named || (a.Requestor && a.Who.Reference == tt.agent)
			}
			if requestors == 0 || !named {
				t.Fatalf("agents %+v: no requestor, or none at %q", ev.Agent, tt.agent)
			}
			if tt.entity != "" && !slices.ContainsFunc(ev.Entity, func(x entity) bool { return x.What.Reference == tt.entity }) {
				t.Fatalf("entities %+v: none at %q", ev.Entity, tt.entity)
			}
		})
	}
}
