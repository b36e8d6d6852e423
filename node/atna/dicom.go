package atna

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// The DICOM audit message (PS3.15 A.5.1), the XML schema RFC 3881 began
// and DICOM maintains: the elements this package writes, in the schema's
// order. encoding/xml writes the fields in their order here.
type auditMessage struct {
	XMLName      xml.Name            `xml:"AuditMessage"`
	Event        eventIdentification `xml:"EventIdentification"`
	Participants []activeParticipant `xml:"ActiveParticipant"`
	Source       auditSource         `xml:"AuditSourceIdentification"`
	Objects      []participantObject `xml:"ParticipantObjectIdentification"`
}

// codedValue is the schema's CodedValueType: a code, its system's name
// and its meaning.
type codedValue struct {
	Code   string `xml:"csd-code,attr"`
	System string `xml:"codeSystemName,attr"`
	Text   string `xml:"originalText,attr"`
}

type eventIdentification struct {
	Action             string       `xml:"EventActionCode,attr"`
	DateTime           string       `xml:"EventDateTime,attr"`
	Outcome            string       `xml:"EventOutcomeIndicator,attr"`
	ID                 codedValue   `xml:"EventID"`
	Types              []codedValue `xml:"EventTypeCode"`
	OutcomeDescription string       `xml:"EventOutcomeDescription,omitempty"`
	PurposeOfUse       []codedValue `xml:"PurposeOfUse"`
}

type activeParticipant struct {
	UserID      string       `xml:"UserID,attr"`
	IsRequestor bool         `xml:"UserIsRequestor,attr"`
	Roles       []codedValue `xml:"RoleIDCode"`
}

type auditSource struct {
	SiteID string     `xml:"AuditEnterpriseSiteID,attr,omitempty"`
	ID     string     `xml:"AuditSourceID,attr"`
	Type   codedValue `xml:"AuditSourceTypeCode"`
}

type participantObject struct {
	ID        string         `xml:"ParticipantObjectID,attr"`
	Type      string         `xml:"ParticipantObjectTypeCode,attr"`
	Role      string         `xml:"ParticipantObjectTypeCodeRole,attr"`
	LifeCycle string         `xml:"ParticipantObjectDataLifeCycle,attr,omitempty"`
	IDType    codedValue     `xml:"ParticipantObjectIDTypeCode"`
	Name      string         `xml:"ParticipantObjectName,omitempty"`
	Details   []objectDetail `xml:"ParticipantObjectDetail"`
}

// objectDetail is a name and a value, which the schema holds in base64.
type objectDetail struct {
	Type  string `xml:"type,attr"`
	Value string `xml:"value,attr"`
}

func detail(name, value string) objectDetail {
	return objectDetail{Type: name, Value: base64.StdEncoding.EncodeToString([]byte(value))}
}

// The code systems: DICOM's (DCM), RFC 3881's, HL7's purposes of use, and
// medfed's own for what no standard names.
const (
	dcm          = "DCM"
	rfc3881      = "RFC-3881"
	actReason    = "2.16.840.1.113883.5.8" // HL7 v3 ActReason
	eventSystem  = "urn:medfed:ledger-event"
	kindSystem   = "urn:medfed:ledger-kind"
	roleSystem   = "urn:medfed:staff-role"
	medfedSystem = "urn:medfed"
)

// The codes of DICOM's audit events (PS3.15 A.5.3, PS3.16 CID 400, 401
// and 402).
var (
	eventPatientRecord = codedValue{"110110", dcm, "Patient Record"}
	eventQuery         = codedValue{"110112", dcm, "Query"}
	eventSecurityAlert = codedValue{"110113", dcm, "Security Alert"}
	eventExport        = codedValue{"110106", dcm, "Export"}
	eventImport        = codedValue{"110107", dcm, "Import"}
	eventOrderRecord   = codedValue{"110109", dcm, "Order Record"}
	typeEmergencyStart = codedValue{"110127", dcm, "Emergency Override Started"}
	typeEmergencyStop  = codedValue{"110138", dcm, "Emergency Override Stopped"}
	roleSource         = codedValue{"110153", dcm, "Source Role ID"}
	roleDestination    = codedValue{"110152", dcm, "Destination Role ID"}
	sourceServer       = codedValue{"4", dcm, "Application Server Process Tier in Multi-tier System"}
	idPatientNumber    = codedValue{"2", rfc3881, "Patient Number"}
	idLedgerIndex      = codedValue{"ledger-index", medfedSystem, "Ledger entry index"}
	idDocumentHash     = codedValue{"consent-document", medfedSystem, "SHA-256 of a signed consent document"}
	idDeviceStatement  = codedValue{"device-statement", medfedSystem, "SHA-256 of a patient-signed device registration or revocation"}
)

// purposeCodes are the HL7 purposes of use of medfed's purposes.
var purposeCodes = []struct {
	purpose consent.Purpose
	code    codedValue
}{
	{consent.Treatment, codedValue{"TREAT", actReason, "treatment"}},
	{consent.Research, codedValue{"HRESCH", actReason, "healthcare research"}},
	{consent.Emergency, codedValue{"ETREAT", actReason, "emergency treatment"}},
}

// DICOM is the DICOM audit message format (PS3.15 A.5, which RFC 3881
// began), what ATNA audit record repositories read, for the centre
// named self: the audit source, and the destination of the questions
// other centres ask it.
func DICOM(self string) Format {
	return Format{Name: "dicom", MsgID: "IHE+RFC-3881", Encode: func(e centre.AuditEntry) ([]byte, error) {
		return dicomMessage(self, e)
	}}
}

// dicomMessage is entry e as a DICOM audit message in one line of XML.
//
// An access is a Query (a search of the patient's records or of who holds
// them), a Patient Record read or delete (the patient's own view and
// erasure), an Export (the patient's own records sent to them) or, for
// emergency access starting or stopping, a Security Alert of the
// Emergency Override types. A consent document accepted is a Patient
// Record create, a revocation an update, an erasure a delete; a transfer
// an Export or an Import; a prescription's supply dispensed, or its
// cancellation, an Order Record update; a device the patient registered
// a Patient Record create, its revocation an update. The event type
// always carries medfed's own name of the event as well. A refusal's
// outcome is 4, a minor failure, as BALP's AuditEvent says.
func dicomMessage(self string, e centre.AuditEntry) ([]byte, error) {
	pseudonym := e.Pseudonym.String()
	m := auditMessage{
		Event: eventIdentification{
			DateTime: e.Time.UTC().Format(time.RFC3339Nano),
			Outcome:  "0",
			Types:    []codedValue{{e.Kind.String(), kindSystem, e.Kind.String()}},
		},
		Source: auditSource{ID: self, Type: sourceServer},
		Objects: []participantObject{{
			ID: pseudonym, Type: "1", Role: "1", IDType: idPatientNumber,
		}},
	}
	patient := &m.Objects[0]
	switch {
	case e.Access != nil:
		a := e.Access
		m.Event.Types = []codedValue{{a.Event.String(), eventSystem, a.Event.String()}}
		switch a.Event {
		case consent.EventEmergencyStart:
			m.Event.ID, m.Event.Action = eventSecurityAlert, "E"
			m.Event.Types = append(m.Event.Types, typeEmergencyStart)
		case consent.EventEmergencyStop:
			m.Event.ID, m.Event.Action = eventSecurityAlert, "E"
			m.Event.Types = append(m.Event.Types, typeEmergencyStop)
		case consent.EventPatientView:
			m.Event.ID, m.Event.Action = eventPatientRecord, "R"
		case consent.EventPatientErase:
			m.Event.ID, m.Event.Action = eventPatientRecord, "D"
		case consent.EventPatientRecords:
			m.Event.ID, m.Event.Action = eventExport, "R"
		default:
			m.Event.ID, m.Event.Action = eventQuery, "E"
		}
		if !a.Permitted {
			m.Event.Outcome, m.Event.OutcomeDescription = "4", "refused; basis "+a.Basis.String()
		}
		for _, p := range purposeCodes {
			if a.Purpose&p.purpose != 0 {
				m.Event.PurposeOfUse = append(m.Event.PurposeOfUse, p.code)
			}
		}
		staff := a.Staff != (ledger.StaffID{})
		m.Participants = append(m.Participants, activeParticipant{UserID: a.Centre, IsRequestor: !staff, Roles: []codedValue{roleSource}})
		if staff {
			// A staff ID is unique within its centre, and says who acted
			// without saying who they are.
			role := a.Role.String()
			m.Participants = append(m.Participants, activeParticipant{UserID: a.Staff.String() + "@" + a.Centre, IsRequestor: true,
				Roles: []codedValue{{role, roleSystem, role}}})
		}
		if a.Event.PatientsOwn() && !a.Ref.IsZero() {
			// The patient's delegate asked, under this delegation.
			m.Participants = append(m.Participants, activeParticipant{UserID: delegateUser(a.Ref), IsRequestor: true, Roles: []codedValue{roleSource}})
		}
		m.Participants = append(m.Participants, activeParticipant{UserID: self, Roles: []codedValue{roleDestination}})
		patient.Details = append(patient.Details, detail("action", a.Action.String()), detail("basis", a.Basis.String()))
		if a.Reason != 0 {
			patient.Details = append(patient.Details, detail("emergency-reason", a.Reason.String()))
		}
		if a.Released > 0 {
			patient.Details = append(patient.Details, detail("released", strconv.FormatUint(uint64(a.Released), 10)))
		}
	case e.Document != nil:
		d := e.Document
		m.Event.ID, m.Event.Action = eventPatientRecord, "C"
		if e.Kind == ledger.KindRevocation {
			m.Event.Action = "U"
		}
		signer := d.Signer
		switch signer {
		case "patient":
			signer = "patient:" + pseudonym
		case "delegate":
			signer = delegateUser(d.Via)
		}
		m.Participants = append(m.Participants,
			activeParticipant{UserID: signer, IsRequestor: true, Roles: []codedValue{roleSource}},
			activeParticipant{UserID: self, Roles: []codedValue{roleDestination}})
		m.Objects = append(m.Objects, participantObject{ID: hex.EncodeToString(d.Hash[:]), Type: "2", Role: "4", IDType: idDocumentHash,
			Name: "consent " + d.Kind.String(), Details: []objectDetail{detail("issued", d.Issued.UTC().Format(time.RFC3339))}})
	case e.Erasure != nil:
		m.Event.ID, m.Event.Action = eventPatientRecord, "D"
		m.Participants = append(m.Participants, activeParticipant{UserID: self, IsRequestor: true, Roles: []codedValue{roleSource}})
		// 15: permanent erasure (RFC 3881 5.5.3); the payload is
		// crypto-shredded, its ledger entry stays.
		m.Objects = append(m.Objects, participantObject{ID: strconv.FormatInt(e.Erasure.Record, 10), Type: "2", Role: "3", LifeCycle: "15",
			IDType: idLedgerIndex, Name: "record"})
	case e.Transfer != nil:
		t := e.Transfer
		from, to, lifecycle := self, t.Centre, "10" // export
		m.Event.ID, m.Event.Action = eventExport, "R"
		if t.Direction == query.In {
			from, to, lifecycle = t.Centre, self, "2" // import
			m.Event.ID, m.Event.Action = eventImport, "C"
		}
		// The destination asked for the copy, whichever centre this is.
		m.Participants = append(m.Participants,
			activeParticipant{UserID: from, Roles: []codedValue{roleSource}},
			activeParticipant{UserID: to, IsRequestor: true, Roles: []codedValue{roleDestination}})
		m.Objects = append(m.Objects, participantObject{ID: strconv.FormatInt(t.Source, 10), Type: "2", Role: "3", LifeCycle: lifecycle,
			IDType: idLedgerIndex, Name: "record",
			Details: []objectDetail{detail("direction", t.Direction.String()), detail("copy", strconv.FormatInt(t.Copy, 10))}})
	case e.Dispense != nil:
		// A supply dispensed updates the prescription, an order: the
		// pharmacy asked, the issuer decided.
		d := e.Dispense
		m.Event.ID, m.Event.Action = eventOrderRecord, "U"
		m.Participants = append(m.Participants,
			activeParticipant{UserID: d.Pharmacy, IsRequestor: true, Roles: []codedValue{roleSource}},
			activeParticipant{UserID: d.Pharmacist.String() + "@" + d.Pharmacy, IsRequestor: true, Roles: []codedValue{{"pharmacist", roleSystem, "pharmacist"}}},
			activeParticipant{UserID: d.Issuer, Roles: []codedValue{roleDestination}})
		m.Objects = append(m.Objects, participantObject{ID: strconv.FormatInt(d.Prescription, 10), Type: "2", Role: "3", IDType: idLedgerIndex, Name: "prescription",
			Details: []objectDetail{detail("issuer", d.Issuer), detail("fill", strconv.Itoa(d.Fill)), detail("confirmed", strconv.FormatInt(d.Confirmed, 10))}})
	case e.Cancellation != nil:
		c := e.Cancellation
		m.Event.ID, m.Event.Action = eventOrderRecord, "U"
		m.Participants = append(m.Participants,
			activeParticipant{UserID: c.Prescriber.String() + "@" + self, IsRequestor: true, Roles: []codedValue{{"prescriber", roleSystem, "prescriber"}}},
			activeParticipant{UserID: self, Roles: []codedValue{roleDestination}})
		m.Objects = append(m.Objects, participantObject{ID: strconv.FormatInt(c.Prescription, 10), Type: "2", Role: "3", IDType: idLedgerIndex, Name: "prescription",
			Details: []objectDetail{detail("cancelled", c.Reason.String())}})
	case e.Device != nil, e.DeviceRevocation != nil:
		// The patient signed the registration, or its end, as they sign
		// consent: a Patient Record create, or update.
		statement, name, details := [32]byte{}, "device registration", []objectDetail(nil)
		if d := e.Device; d != nil {
			m.Event.Action = "C"
			statement = d.Statement
			details = []objectDetail{detail("device", d.Device.String()), detail("classes", strings.Join(d.Classes, ",")),
				detail("not-before", d.NotBefore.UTC().Format(time.RFC3339)), detail("expires", d.Expires.UTC().Format(time.RFC3339))}
		} else {
			r := e.DeviceRevocation
			m.Event.Action, name = "U", "device revocation"
			statement = r.Statement
			details = []objectDetail{detail("device", r.Device.String()), detail("registration", strconv.FormatInt(r.Registration, 10))}
		}
		m.Event.ID = eventPatientRecord
		m.Participants = append(m.Participants,
			activeParticipant{UserID: "patient:" + pseudonym, IsRequestor: true, Roles: []codedValue{roleSource}},
			activeParticipant{UserID: self, Roles: []codedValue{roleDestination}})
		m.Objects = append(m.Objects, participantObject{ID: consent.FormatHash(statement), Type: "2", Role: "4", IDType: idDeviceStatement, Name: name, Details: details})
	default:
		return nil, fmt.Errorf("dicom audit message of entry %d: a %s entry records nothing audited", e.Index, e.Kind)
	}
	b, err := xml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("dicom audit message of entry %d: %w", e.Index, err)
	}
	return append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`), b...), nil
}

// delegateUser names the patient's delegate who asked or signed by the
// delegation they acted under.
func delegateUser(via consent.ID) string { return "delegate:" + via.String() }
