package api

// BALP (ITI-81): the ledger's questions about a patient as AuditEvents.

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// BALP's codes.
const (
	dicomSystem      = "http://dicom.nema.org/resources/ontology/DCM"
	auditTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	restSystem       = "http://hl7.org/fhir/restful-interaction"
	entityTypeSystem = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem = "http://terminology.hl7.org/CodeSystem/object-role"
	sourceTypeSystem = "http://terminology.hl7.org/CodeSystem/security-source-type"
	userTypeSystem   = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	balpProfile      = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

// findAudit is BALP's ITI-81: this centre's ledger's entries about a
// patient, each a question someone asked, as AuditEvents.
func (s *Server) findAudit(ctx context.Context, c *call) (any, error) {
	q, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	var dates []dateFilter
	for _, v := range q["date"] {
		f, err := parseDateFilter("date", v)
		if err != nil {
			return nil, err
		}
		dates = append(dates, f)
	}
	accesses, err := s.node.Audit(ctx, p)
	if err != nil {
		return nil, err
	}
	var ids []string
	var out []json.RawMessage
	for _, a := range accesses {
		if !slices.ContainsFunc(dates, func(f dateFilter) bool { return !f.holds(a.Time) }) {
			ev := balpEvent(s.node.Name(), p.String(), a)
			ids = append(ids, *ev.Id)
			out = append(out, marshal(ev))
		}
	}
	return searchset(c, "AuditEvent", ids, out), nil
}

// readAudit is one AuditEvent by its id: an access entry of this
// centre's ledger.
func (s *Server) readAudit(ctx context.Context, c *call) (any, error) {
	idx, ok := s.localIndex(c.r.PathValue("id"))
	if !ok {
		return nil, errStatus{http.StatusNotFound, errors.New("no such AuditEvent: its id is <this centre>-<ledger index>")}
	}
	p, a, err := s.node.AuditAt(ctx, idx)
	if err != nil {
		return nil, err
	}
	return resource{marshal(balpEvent(s.node.Name(), p.String(), a))}, nil
}

// balpEvent is one access entry as BALP shapes it: a search of the
// patient's records or of who holds them (PatientQuery), the patient's
// own view (PatientRead) or erasure (PatientDelete); emergency access
// carries the purpose ETREAT. The query entity holds what the ledger kept
// of the request, not its bytes (which crossed between centres signed,
// and are not kept). self is this centre's name: the observer.
func balpEvent(self, pseudonym string, a centre.PatientAccess) fhir.AuditEvent {
	profile, subtype, action := "PatientQuery", "search-type", fhir.AuditEventActionE
	switch a.Event {
	case consent.EventPatientView:
		profile, subtype, action = "PatientRead", "read", fhir.AuditEventActionR
	case consent.EventPatientErase:
		profile, subtype, action = "PatientDelete", "delete", fhir.AuditEventActionD
	}
	result := fhir.AuditEventOutcome0
	if !a.Permitted {
		result = fhir.AuditEventOutcome4
	}
	org := centreRef
	ev := fhir.AuditEvent{
		Id:       ptr(resourceID(self, a.Index)),
		Meta:     &fhir.Meta{Profile: []string{balpProfile + profile}},
		Type:     coding(auditTypeSystem, "rest", "RESTful Operation"),
		Subtype:  []fhir.Coding{coding(restSystem, subtype, subtype), {System: ptr(eventSystem), Code: ptr(a.Event.String())}},
		Action:   &action,
		Recorded: a.Time.UTC().Format(time.RFC3339Nano),
		Outcome:  &result,
		Source: fhir.AuditEventSource{Observer: *org(self), Site: ptr(ledgerSystem(self) + "#" + strconv.FormatInt(a.Index, 10)),
			Type: []fhir.Coding{coding(sourceTypeSystem, "4", "Application Server")}},
		Agent: []fhir.AuditEventAgent{
			{Type: concept(coding(dicomSystem, "110153", "Source Role ID")), Who: org(a.Centre), Requestor: a.Staff == (ledger.StaffID{})},
			{Type: concept(coding(dicomSystem, "110152", "Destination Role ID")), Who: org(self), Requestor: false},
		},
		Entity: []fhir.AuditEventEntity{{
			What: patientRef(pseudonym),
			Type: ptr(coding(entityTypeSystem, "1", "Person")), Role: ptr(coding(objectRoleSystem, "1", "Patient")),
		}},
	}
	if code, ok := purposeCodes[a.Purpose.String()]; ok {
		ev.PurposeOfEvent = []fhir.CodeableConcept{*concept(coding(actReason, code, a.Purpose.String()))}
	}
	if a.Event.PatientsOwn() && !a.Ref.IsZero() {
		// The patient's delegate asked, named by the delegation (RelatedPerson/<id>).
		ev.Agent = append(ev.Agent, delegateAgent(a.Ref))
	}
	if a.Staff != (ledger.StaffID{}) {
		user := staffAgent(a.Centre, a.Staff, a.Role.String())
		user.PurposeOfUse = ev.PurposeOfEvent
		ev.Agent = append(ev.Agent, user)
	}
	details := []string{"action: " + a.Action.String(), "basis: " + a.Basis.String()}
	if a.Reason != 0 {
		details = append(details, "emergency reason: "+a.Reason.String())
	}
	if a.Released > 0 {
		details = append(details, "records released: "+strconv.FormatUint(uint64(a.Released), 10))
	}
	if profile == "PatientQuery" {
		// BALP's query entity holds the request as it came: here, what
		// the ledger kept of it (the patient is the entity above).
		request := fmt.Sprintf("event=%s&purpose=%s&role=%s", a.Event, a.Purpose, a.Role)
		ev.Entity = append(ev.Entity, fhir.AuditEventEntity{
			Type: ptr(coding(entityTypeSystem, "2", "System Object")), Role: ptr(coding(objectRoleSystem, "24", "Query")),
			Query: ptr(base64.StdEncoding.EncodeToString([]byte(request))), Description: ptr(strings.Join(details, "; ")),
		})
	} else {
		ev.Entity[0].Description = ptr(strings.Join(details, "; "))
	}
	return ev
}

// The codes of the audit trail's events other than accesses.
const (
	kindSystem     = "urn:medfed:ledger-kind"
	documentSystem = "urn:medfed:consent-document" // a consent document, by the SHA-256 of its signed bytes
	// a device's registration or revocation, by the SHA-256 of what the patient signed
	deviceStatementSystem = "urn:medfed:device-statement"
	roleClassSystem       = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
)

// AuditEvent returns entry e of the audit trail of centre self (see
// centre.Node.AuditTrail) as one FHIR R4 AuditEvent in JSON: what
// node/atna sends an audit record repository in its FHIR format. An
// access is the BALP event this interface serves for it, with the same
// id; a consent document, a revocation, an erasure or a transfer is a
// plain AuditEvent after DICOM's events (ledgerEvent). The patient is
// named by pseudonym only, as the ledger names them.
func AuditEvent(self string, e centre.AuditEntry) ([]byte, error) {
	var ev fhir.AuditEvent
	switch {
	case e.Access != nil:
		ev = balpEvent(self, e.Pseudonym.String(), *e.Access)
	case e.Document != nil, e.Erasure != nil, e.Transfer != nil, e.Dispense != nil, e.Cancellation != nil, e.Device != nil, e.DeviceRevocation != nil:
		ev = ledgerEvent(self, e)
	default:
		return nil, fmt.Errorf("audit event of entry %d: %w: a %s entry records nothing audited", e.Index, node.ErrInvalid, e.Kind)
	}
	b, err := ev.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("audit event of entry %d: %w", e.Index, err)
	}
	return b, nil
}

// ledgerEvent is an audited entry other than an access as an AuditEvent
// with DICOM's event types (PS3.15 A.5.3): a consent document accepted is
// a Patient Record event that creates, a revocation one that updates, an
// erasure one that deletes; a record copied to another centre is an
// Export, one copied here an Import; a prescription's supply dispensed,
// or its cancellation, an Order Record event that updates; a device the
// patient registered a Patient Record event that creates, its revocation
// one that updates. The requestor is whoever signed the document (the
// patient, their delegate, or the attesting centre), the centre the
// record went to or came from, the pharmacist who claimed the supply or
// the prescriber who cancelled; this centre is the observer.
func ledgerEvent(self string, e centre.AuditEntry) fhir.AuditEvent {
	pseudonym := e.Pseudonym.String()
	source := func(who *fhir.Reference, requestor bool) fhir.AuditEventAgent {
		return fhir.AuditEventAgent{Type: concept(coding(dicomSystem, "110153", "Source Role ID")), Who: who, Requestor: requestor}
	}
	destination := func(who *fhir.Reference, requestor bool) fhir.AuditEventAgent {
		return fhir.AuditEventAgent{Type: concept(coding(dicomSystem, "110152", "Destination Role ID")), Who: who, Requestor: requestor}
	}
	typ, action := coding(dicomSystem, "110110", "Patient Record"), fhir.AuditEventActionC
	var agents []fhir.AuditEventAgent
	var details []string
	entities := []fhir.AuditEventEntity{{
		What: patientRef(pseudonym),
		Type: ptr(coding(entityTypeSystem, "1", "Person")), Role: ptr(coding(objectRoleSystem, "1", "Patient")),
	}}
	switch {
	case e.Document != nil:
		d := e.Document
		if e.Kind == ledger.KindRevocation {
			action = fhir.AuditEventActionU
		}
		signer := source(centreRef(d.Signer), true)
		switch d.Signer {
		case "patient":
			signer = fhir.AuditEventAgent{Type: concept(coding(roleClassSystem, "PAT", "patient")), Who: patientRef(pseudonym), Requestor: true}
		case "delegate": // named by the delegation they acted under (RelatedPerson/<id>)
			signer = delegateAgent(d.Via)
		}
		agents = append(agents, signer, destination(centreRef(self), false))
		hash := hex.EncodeToString(d.Hash[:])
		entities = append(entities, fhir.AuditEventEntity{
			What: &fhir.Reference{Identifier: &fhir.Identifier{System: ptr(documentSystem), Value: ptr(hash)}},
			Type: ptr(coding(entityTypeSystem, "2", "System Object")), Role: ptr(coding(objectRoleSystem, "4", "Domain Resource")),
			Name: ptr(d.Kind.String()), Description: ptr("consent document: " + d.Kind.String() + "; signed by " + d.Signer + "; issued " + d.Issued.UTC().Format(time.RFC3339)),
		})
	case e.Erasure != nil:
		action = fhir.AuditEventActionD
		agents = append(agents, source(centreRef(self), true))
		details = append(details, "payload erased of record "+strconv.FormatInt(e.Erasure.Record, 10))
	case e.Transfer != nil:
		t := e.Transfer
		if t.Direction == query.Out {
			typ, action = coding(dicomSystem, "110106", "Export"), fhir.AuditEventActionR
			agents = append(agents, source(centreRef(self), false), destination(centreRef(t.Centre), true))
		} else {
			typ, action = coding(dicomSystem, "110107", "Import"), fhir.AuditEventActionC
			agents = append(agents, source(centreRef(t.Centre), false), destination(centreRef(self), true))
		}
		details = append(details, "direction: "+t.Direction.String(),
			"record at the source: "+strconv.FormatInt(t.Source, 10), "copy at the destination: "+strconv.FormatInt(t.Copy, 10))
	case e.Dispense != nil:
		d := e.Dispense
		typ, action = coding(dicomSystem, "110109", "Order Record"), fhir.AuditEventActionU
		agents = append(agents, source(centreRef(d.Pharmacy), false), staffAgent(d.Pharmacy, d.Pharmacist, "pharmacist"), destination(centreRef(d.Issuer), false))
		entities = append(entities, prescriptionEntity(d.Issuer, d.Prescription,
			fmt.Sprintf("supply %d dispensed; the issuer's dispense entry %d", d.Fill, d.Confirmed)))
	case e.Cancellation != nil:
		c := e.Cancellation
		typ, action = coding(dicomSystem, "110109", "Order Record"), fhir.AuditEventActionU
		agents = append(agents, staffAgent(self, c.Prescriber, "prescriber"), destination(centreRef(self), false))
		entities = append(entities, prescriptionEntity(self, c.Prescription, "cancelled: "+c.Reason.String()))
	case e.Device != nil, e.DeviceRevocation != nil:
		var statement [32]byte
		var about string
		if d := e.Device; d != nil {
			statement = d.Statement
			about = fmt.Sprintf("device %s registered for %s from %s until %s", d.Device, strings.Join(d.Classes, ", "),
				d.NotBefore.UTC().Format(time.RFC3339), d.Expires.UTC().Format(time.RFC3339))
		} else {
			r := e.DeviceRevocation
			action, statement = fhir.AuditEventActionU, r.Statement
			about = fmt.Sprintf("device %s revoked; its registration was entry %d", r.Device, r.Registration)
		}
		agents = append(agents, fhir.AuditEventAgent{Type: concept(coding(roleClassSystem, "PAT", "patient")), Who: patientRef(pseudonym), Requestor: true},
			destination(centreRef(self), false))
		entities = append(entities, fhir.AuditEventEntity{
			What: &fhir.Reference{Identifier: &fhir.Identifier{System: ptr(deviceStatementSystem), Value: ptr(consent.FormatHash(statement))}},
			Type: ptr(coding(entityTypeSystem, "2", "System Object")), Role: ptr(coding(objectRoleSystem, "4", "Domain Resource")),
			Description: ptr(about),
		})
	}
	if len(details) > 0 {
		entities[0].Description = ptr(strings.Join(details, "; "))
	}
	outcome := fhir.AuditEventOutcome0
	return fhir.AuditEvent{
		Id:       ptr(resourceID(self, e.Index)),
		Type:     typ,
		Subtype:  []fhir.Coding{{System: ptr(kindSystem), Code: ptr(e.Kind.String())}},
		Action:   &action,
		Recorded: e.Time.UTC().Format(time.RFC3339Nano),
		Outcome:  &outcome,
		Source: fhir.AuditEventSource{Observer: *centreRef(self), Site: ptr(ledgerSystem(self) + "#" + strconv.FormatInt(e.Index, 10)),
			Type: []fhir.Coding{coding(sourceTypeSystem, "4", "Application Server")}},
		Agent:  agents,
		Entity: entities,
	}
}

// coding is a Coding of a code in system.
func coding(system, code, display string) fhir.Coding {
	return fhir.Coding{System: ptr(system), Code: ptr(code), Display: ptr(display)}
}

// concept is a CodeableConcept of one coding.
func concept(cd fhir.Coding) *fhir.CodeableConcept {
	return &fhir.CodeableConcept{Coding: []fhir.Coding{cd}}
}

// staffAgent is a member of staff of centre who acted, by their
// pseudonymous staff ID, in role.
func staffAgent(centre string, staff ledger.StaffID, role string) fhir.AuditEventAgent {
	return fhir.AuditEventAgent{Type: concept(coding(userTypeSystem, "humanuser", "human user")), Requestor: true,
		Who:  &fhir.Reference{Identifier: &fhir.Identifier{System: ptr(staffSystem + ":" + centre), Value: ptr(staff.String())}},
		Role: []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(roleSystem), Code: ptr(role)}}}}}
}

// prescriptionEntity is the prescription of record entry index at its
// issuing centre, the MedicationRequest this interface serves it as.
func prescriptionEntity(issuer string, index int64, about string) fhir.AuditEventEntity {
	return fhir.AuditEventEntity{
		What: &fhir.Reference{Reference: ptr("MedicationRequest/" + resourceID(issuer, index))},
		Type: ptr(coding(entityTypeSystem, "2", "System Object")), Role: ptr(coding(objectRoleSystem, "4", "Domain Resource")),
		Name: ptr("prescription"), Description: ptr(about),
	}
}

// delegateAgent is the patient's delegate who asked or signed, named by
// the delegation they acted under (RelatedPerson/<id>).
func delegateAgent(via consent.ID) fhir.AuditEventAgent {
	return fhir.AuditEventAgent{Type: concept(coding(roleClassSystem, "AGNT", "agent")), Who: &fhir.Reference{Reference: ptr("RelatedPerson/" + via.String())}, Requestor: true}
}
