package api

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/smart"
)

// The FHIR R4 shapes of medfed's answers, built with the samply FHIR
// models. Code systems of medfed's own are URNs under urn:medfed.
const (
	pseudonymSystem     = "urn:medfed:pseudonym"  // a patient's federation pseudonym
	classSystem         = "urn:medfed:data-class" // a record's data class
	staffSystem         = "urn:medfed:staff"      // a centre's pseudonymous staff IDs
	roleSystem          = smart.RoleSystem        // the staff roles, as a system's IUA claims name them
	eventSystem         = "urn:medfed:ledger-event"
	actionSystem        = "urn:medfed:action"
	consentActionSystem = "http://terminology.hl7.org/CodeSystem/consentaction"
	actReason           = smart.PurposeSystem
	actCode             = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// noPayload is what a record released without its payload says: the
// source erased it, or lost it with a disk and restored an older backup
// (its ledger entry came back from the witnesses, the payload could not).
const noPayload = "no payload at the source: erased at the patient's request, or lost with the source's disk"

func ptr[T any](v T) *T { return &v }

func ledgerSystem(centre string) string { return "urn:medfed:ledger:" + centre }

// patientRef and centreRef are literal references, which the FHIR
// interface resolves (/fhir/Patient/{pseudonym}, /fhir/Organization/{name}).
func patientRef(pseudonym string) *fhir.Reference {
	return &fhir.Reference{Reference: ptr("Patient/" + pseudonym), Type: ptr("Patient"), Identifier: &fhir.Identifier{System: ptr(pseudonymSystem), Value: ptr(pseudonym)}}
}

func centreRef(name string) *fhir.Reference {
	return &fhir.Reference{Reference: ptr("Organization/" + name), Type: ptr("Organization"), Display: ptr(name)}
}

func instant(t time.Time) *string { return ptr(t.UTC().Format(time.RFC3339Nano)) }

// marshal turns a FHIR model into the raw resource a Bundle entry holds.
func marshal(v interface{ MarshalJSON() ([]byte, error) }) json.RawMessage {
	b, err := v.MarshalJSON()
	if err != nil {
		// The models marshal plain structs of strings and numbers: this
		// cannot fail, and a resource that did would be a bug here.
		panic(fmt.Sprintf("api: marshalling a FHIR resource: %v", err))
	}
	return b
}

// resource wraps a FHIR model so that WriteJSON sends its resourceType.
type resource struct{ raw json.RawMessage }

func (r resource) MarshalJSON() ([]byte, error) { return r.raw, nil }

// isResource reports whether a JSON answer is a FHIR resource.
func isResource(b []byte) bool {
	return bytes.HasPrefix(b, []byte(`{`)) && bytes.Contains(b, []byte(`"resourceType":`))
}

func patientResource(federation, pseudonym string) resource {
	return resource{marshal(fhir.Patient{
		Id:         ptr(pseudonym),
		Identifier: []fhir.Identifier{{System: ptr(pseudonymSystem), Value: ptr(pseudonym), Assigner: &fhir.Reference{Display: ptr(federation)}}},
	})}
}

// documentReference is a record of centre's ledger; with data when its
// payload was released.
func documentReference(centre string, m RecordMeta, payload []byte, withData bool) resource {
	att := fhir.Attachment{ContentType: ptr(octetStream)}
	if withData {
		att = attachment(payload)
	}
	return resource{marshal(docRef(centre, m.Index, m.Kind, m.Pseudonym, m.Class, m.Occurred, m.Location, m.Author, m.AuthorKind, m.Replaces, att))}
}

// attachment is a released payload as an Attachment: a document an EHR
// sent through FHIR with its own content type, its envelope opened.
func attachment(payload []byte) fhir.Attachment {
	contentType, data := OpenDocument(payload)
	sum := sha1.Sum(data) // FHIR's Attachment.hash is SHA-1
	return fhir.Attachment{ContentType: ptr(contentType), Data: ptr(base64.StdEncoding.EncodeToString(data)), Size: ptr(len(data)),
		Hash: ptr(base64.StdEncoding.EncodeToString(sum[:]))}
}

// resourceID is a resource's id for entry index of centre's ledger: FHIR
// ids are at most 64 characters, and a centre's name may take 63.
func resourceID(centre string, index int64) string {
	id := centre + "-" + strconv.FormatInt(index, 10)
	if len(id) > 64 {
		sum := sha256.Sum256([]byte(centre))
		id = hex.EncodeToString(sum[:12]) + "-" + strconv.FormatInt(index, 10)
	}
	return id
}

// docRef is a record as a DocumentReference; its author a staff member of
// the centre (Practitioner), with authorKind "device" a device of the
// patient's, by its ID, or with authorKind "patient" the patient (a note
// of their own).
func docRef(centre string, index int64, kind, pseudonym, class string, occurred time.Time, location, author, authorKind string, replaces int64, att fhir.Attachment) fhir.DocumentReference {
	d := fhir.DocumentReference{
		Id:         ptr(resourceID(centre, index)),
		Identifier: []fhir.Identifier{{System: ptr(ledgerSystem(centre)), Value: ptr(strconv.FormatInt(index, 10))}},
		Status:     fhir.DocumentReferenceStatusCurrent,
		Type:       &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(classSystem), Code: ptr(class)}}},
		Subject:    patientRef(pseudonym),
		Date:       instant(occurred),
		Custodian:  centreRef(centre),
		Content:    []fhir.DocumentReferenceContent{{Attachment: att}},
	}
	switch {
	case authorKind == "device":
		d.Author = []fhir.Reference{{Type: ptr("Device"), Identifier: &fhir.Identifier{System: ptr(deviceSystem), Value: ptr(author)}}}
	case authorKind == "patient":
		d.Author = []fhir.Reference{*patientRef(pseudonym)}
	case author != "":
		d.Author = []fhir.Reference{{Type: ptr("Practitioner"), Identifier: &fhir.Identifier{System: ptr(staffSystem + ":" + centre), Value: ptr(author)}}}
	}
	if location != "" {
		d.Context = &fhir.DocumentReferenceContext{Related: []fhir.Reference{{Type: ptr("Location"), Display: ptr(location)}}}
	}
	if kind == "amendment" {
		d.RelatesTo = []fhir.DocumentReferenceRelatesTo{{Code: fhir.DocumentRelationshipTypeReplaces,
			Target: fhir.Reference{Type: ptr("DocumentReference"), Reference: ptr("DocumentReference/" + resourceID(centre, replaces))}}}
	}
	return d
}

// queryBundle is a query's answer: a searchset of the records released,
// and an OperationOutcome saying what each holder did (answered, denied
// by consent, failed), so that no holder is silently missing.
func queryBundle(res QueryResult) resource {
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now())}
	total := 0
	for _, h := range res.Holders {
		for _, r := range h.Records {
			att := fhir.Attachment{ContentType: ptr(octetStream), Title: ptr(noPayload)}
			if !r.Erased {
				att = attachment(r.Payload)
			}
			d := docRef(h.Name, r.Index, r.Kind, res.Pseudonym, r.Class, r.Occurred, r.Location, r.Author, r.AuthorKind, r.Replaces, att)
			b.Entry = append(b.Entry, fhir.BundleEntry{Resource: marshal(d), Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
			total++
		}
	}
	b.Total = ptr(total)
	oo := fhir.OperationOutcome{Issue: holderIssues(res)}
	b.Entry = append(b.Entry, fhir.BundleEntry{Resource: marshal(oo), Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeOutcome)}})
	return resource{marshal(b)}
}

// holderIssues say what each holder did with a query (answered, denied
// by consent, failed), so that no holder is silently missing.
func holderIssues(res QueryResult) []fhir.OperationOutcomeIssue {
	var issues []fhir.OperationOutcomeIssue
	for _, h := range res.Holders {
		switch h.Status {
		case "answered":
			msg := fmt.Sprintf("%s: %d record(s) released; access entry %d; proven in final checkpoint %d", h.Name, len(h.Records), h.Access, h.Checkpoint)
			if h.Pending > 0 {
				msg += fmt.Sprintf("; %d newer record(s) pending finality", h.Pending)
			}
			issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational, msg))
		case "denied":
			if h.Basis == consent.BasisNotHeld.String() {
				issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational,
					fmt.Sprintf("%s: holds no records of the patient (nothing recorded there)", h.Name)))
				break
			}
			issues = append(issues, issue(fhir.IssueSeverityWarning, fhir.IssueTypeForbidden,
				fmt.Sprintf("%s: denied: %s (%s); access entry %d", h.Name, h.Reason, h.Basis, h.Access)))
		default:
			issues = append(issues, issue(fhir.IssueSeverityError, fhir.IssueTypeTransient, fmt.Sprintf("%s: failed: %s", h.Name, h.Error)))
		}
	}
	if res.Lookup != "" {
		issues = append(issues, issue(fhir.IssueSeverityWarning, fhir.IssueTypeIncomplete, "the directory lookup was incomplete: "+res.Lookup))
	}
	if len(res.Holders) == 0 && res.Lookup == "" {
		issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeNotFound, "no centre holds records of this patient"))
	}
	return issues
}

func issue(sev fhir.IssueSeverity, code fhir.IssueType, msg string) fhir.OperationOutcomeIssue {
	return fhir.OperationOutcomeIssue{Severity: sev, Code: code, Diagnostics: ptr(msg)}
}

// outcome is an error's OperationOutcome.
func outcome(status int, msg string) resource {
	code := fhir.IssueTypeException
	switch status {
	case http.StatusBadRequest:
		code = fhir.IssueTypeInvalid
	case http.StatusUnauthorized:
		code = fhir.IssueTypeLogin
	case http.StatusForbidden:
		code = fhir.IssueTypeForbidden
	case http.StatusNotFound, http.StatusGone:
		code = fhir.IssueTypeNotFound
	case http.StatusMethodNotAllowed, http.StatusMisdirectedRequest:
		code = fhir.IssueTypeNotSupported
	case http.StatusConflict:
		code = fhir.IssueTypeConflict
	case http.StatusRequestEntityTooLarge:
		code = fhir.IssueTypeTooLong
	case http.StatusServiceUnavailable:
		code = fhir.IssueTypeTransient
	case http.StatusTooManyRequests:
		code = fhir.IssueTypeThrottled
	case http.StatusGatewayTimeout:
		code = fhir.IssueTypeTimeout
	}
	return resource{marshal(fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{issue(fhir.IssueSeverityError, code, msg)}})}
}

// consentResource is a patient's contract as a FHIR Consent: the base
// policy is the root provision (opt-in permits, opt-out denies) and the
// contract's provisions its exceptions.
func consentResource(v ConsentView) resource {
	c := v.Contract
	status := fhir.ConsentStateActive
	switch v.Standing {
	case "withdrawn":
		status = fhir.ConsentStateInactive
	case "compromised":
		status = fhir.ConsentStateEnteredInError
	}
	rule, root := "OPTIN", fhir.ConsentProvisionTypePermit
	if c.Terms.Base == "opt-out" {
		rule, root = "OPTOUT", fhir.ConsentProvisionTypeDeny
	}
	out := fhir.Consent{
		Id:         ptr(c.ID),
		Identifier: []fhir.Identifier{{System: ptr("urn:medfed:consent"), Value: ptr(c.ID + "/" + strconv.FormatUint(uint64(c.Version), 10))}},
		Status:     status,
		Scope:      fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr("http://terminology.hl7.org/CodeSystem/consentscope"), Code: ptr("patient-privacy")}}},
		Category:   []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr("http://loinc.org"), Code: ptr("59284-0"), Display: ptr("Patient Consent")}}}},
		Patient:    patientRef(v.Pseudonym),
		DateTime:   instant(c.Issued),
		PolicyRule: &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(actCode), Code: ptr(rule)}}},
		Provision:  &fhir.ConsentProvision{Type: ptr(root), Provision: provisions(c.Terms.Provision)},
	}
	return resource{marshal(out)}
}

// purposeCodes are the HL7 purposes of use for medfed's purposes.
var purposeCodes = map[string]string{"treatment": "TREAT", "research": "HRESCH", "emergency": "ETREAT"}

func provisions(ps []consent.ProvisionSpec) []fhir.ConsentProvision {
	var out []fhir.ConsentProvision
	for _, p := range ps {
		fp := fhir.ConsentProvision{Type: ptr(fhir.ConsentProvisionTypePermit), Provision: provisions(p.Provision)}
		if p.Type == "deny" {
			fp.Type = ptr(fhir.ConsentProvisionTypeDeny)
		}
		for _, a := range p.Actor {
			role := "any"
			if a.Role != "" {
				role = a.Role
			}
			ref := fhir.Reference{}
			switch {
			case a.Staff != "":
				ref = fhir.Reference{Type: ptr("Practitioner"), Identifier: &fhir.Identifier{System: ptr(staffSystem), Value: ptr(a.Staff)}}
				if a.Centre != "" {
					ref.Display = ptr(a.Centre)
				}
			case a.Centre != "":
				ref = *centreRef(a.Centre)
			default:
				ref.Display = ptr("any centre")
			}
			fp.Actor = append(fp.Actor, fhir.ConsentProvisionActor{Role: fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(roleSystem), Code: ptr(role)}}}, Reference: ref})
		}
		for _, a := range p.Action {
			// access is consentaction's; copy (a transfer to another
			// centre) is medfed's own.
			system := actionSystem
			if a == "access" {
				system = consentActionSystem
			}
			fp.Action = append(fp.Action, fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(system), Code: ptr(a)}}})
		}
		for _, pu := range p.Purpose {
			fp.Purpose = append(fp.Purpose, fhir.Coding{System: ptr(actReason), Code: ptr(purposeCodes[pu]), Display: ptr(pu)})
		}
		for _, cl := range p.Class {
			fp.Class = append(fp.Class, fhir.Coding{System: ptr(classSystem), Code: ptr(cl)})
		}
		fp.Period, fp.DataPeriod = period(p.Period), period(p.DataPeriod)
		out = append(out, fp)
	}
	return out
}

func period(p *consent.PeriodSpec) *fhir.Period {
	if p == nil {
		return nil
	}
	out := &fhir.Period{}
	if p.Start != "" {
		out.Start = ptr(p.Start)
	}
	if p.End != "" {
		out.End = ptr(p.End)
	}
	return out
}

// auditEvent is one ledger event about a patient, as IHE ATNA would have
// it: who (centre, staff ID, role), when, for what, and the outcome.
type auditEvent struct {
	index                 int64
	at                    time.Time
	holder, event, action string // action: FHIR's C, R, U, D, E
	centre, staff, role   string
	purpose               string
	permitted             bool
	details               map[string]string
}

var auditActions = map[string]fhir.AuditEventAction{
	"C": fhir.AuditEventActionC, "R": fhir.AuditEventActionR, "D": fhir.AuditEventActionD, "E": fhir.AuditEventActionE,
}

func (a auditEvent) resource(pseudonym string) fhir.AuditEvent {
	outcome := fhir.AuditEventOutcome0
	if !a.permitted {
		outcome = fhir.AuditEventOutcome4
	}
	ev := fhir.AuditEvent{
		Id:       ptr(resourceID(a.holder, a.index)),
		Type:     fhir.Coding{System: ptr("http://dicom.nema.org/resources/ontology/DCM"), Code: ptr("110110"), Display: ptr("Patient Record")},
		Subtype:  []fhir.Coding{{System: ptr(eventSystem), Code: ptr(a.event)}},
		Recorded: a.at.UTC().Format(time.RFC3339Nano),
		Outcome:  &outcome,
		Source:   fhir.AuditEventSource{Observer: *centreRef(a.holder), Site: ptr(ledgerSystem(a.holder) + "#" + strconv.FormatInt(a.index, 10))},
		Entity:   []fhir.AuditEventEntity{{What: patientRef(pseudonym)}},
	}
	if act, ok := auditActions[a.action]; ok {
		ev.Action = &act
	}
	if code, ok := purposeCodes[a.purpose]; ok {
		ev.PurposeOfEvent = []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(actReason), Code: ptr(code), Display: ptr(a.purpose)}}}}
	}
	agent := fhir.AuditEventAgent{Requestor: true, Who: centreRef(a.centre)}
	if a.staff != "" {
		agent.AltId = ptr(a.staff)
	}
	if a.role != "" {
		agent.Role = []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(roleSystem), Code: ptr(a.role)}}}}
	}
	ev.Agent = []fhir.AuditEventAgent{agent}
	// The models write both of a detail's value[x] choices, which FHIR
	// forbids, so the details go into the entity's description.
	if len(a.details) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(a.details)) {
			parts = append(parts, k+": "+a.details[k])
		}
		ev.Entity[0].Description = ptr(strings.Join(parts, "; "))
	}
	return ev
}

// viewBundle is the patient's own view: each holder's records (without
// payloads) as DocumentReferences, and every event on its ledger about
// them as an AuditEvent. The OperationOutcome says how many centres were
// asked and how many hold nothing, and names each that could not be
// reached, with why: it may hold records.
func viewBundle(res PatientResult) resource {
	b := fhir.Bundle{Type: fhir.BundleTypeCollection, Timestamp: instant(time.Now())}
	issues := []fhir.OperationOutcomeIssue{issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational, res.Summary())}
	add := func(raw json.RawMessage) { b.Entry = append(b.Entry, fhir.BundleEntry{Resource: raw}) }
	for _, h := range res.Holders {
		if h.Status == "failed" {
			issues = append(issues, issue(fhir.IssueSeverityError, fhir.IssueTypeTransient, fmt.Sprintf("%s: could not be reached, and may hold records: %s", h.Name, h.Error)))
			continue
		}
		issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational,
			fmt.Sprintf("%s: %d record(s), %d access(es); ledger size %d%s", h.Name, len(h.Records), len(h.Accesses), h.LedgerSize, more(h.Next))))
		for _, r := range h.Records {
			att := fhir.Attachment{Title: ptr("the payload stays at " + h.Name)}
			if r.Erased { // by an erasure entry on the holder's ledger
				att.Title = ptr("erased at the patient's request")
			}
			add(marshal(docRef(h.Name, r.Index, r.Kind, res.Pseudonym, r.Class, r.Occurred, r.Location, "", "", r.Replaces, att)))
		}
		for _, a := range h.Accesses {
			d := map[string]string{"action": a.Action, "basis": a.Basis}
			if a.Event == consent.EventLookup.String() {
				d = map[string]string{"question": "which centres hold the patient's records"}
			}
			if a.Reason != "" {
				d["emergency-reason"] = a.Reason
			}
			if a.Released > 0 {
				d["records-released"] = strconv.FormatUint(uint64(a.Released), 10)
			}
			act := "R"
			if a.Action == "copy" {
				act = "C"
			}
			add(marshal(auditEvent{index: a.Index, at: a.Time, holder: h.Name, event: a.Event, action: act, centre: a.Centre, staff: a.Staff, role: a.Role,
				purpose: a.Purpose, permitted: a.Permitted, details: d}.resource(res.Pseudonym)))
		}
		for _, t := range h.Transfers {
			add(marshal(auditEvent{index: t.Index, at: t.Time, holder: h.Name, event: "transfer-" + t.Direction, action: "C", centre: t.Centre, permitted: true,
				details: map[string]string{"source-index": strconv.FormatInt(t.Source, 10), "copy-index": strconv.FormatInt(t.Copy, 10)}}.resource(res.Pseudonym)))
		}
		for _, e := range h.Erasures {
			add(marshal(auditEvent{index: e.Index, at: e.Time, holder: h.Name, event: "erasure", action: "D", centre: h.Name, permitted: true,
				details: map[string]string{"record-index": strconv.FormatInt(e.Record, 10)}}.resource(res.Pseudonym)))
		}
		for _, q := range h.Requests {
			var d map[string]string
			if q.Delegation != "" {
				d = map[string]string{"delegation": q.Delegation}
			}
			add(marshal(auditEvent{index: q.Index, at: q.Time, holder: h.Name, event: q.Event, action: "R", centre: q.Centre, permitted: true, details: d}.resource(res.Pseudonym)))
		}
		for _, k := range h.KeyEvents {
			d := map[string]string{"attestation": k.Attestation}
			if k.Key != "" {
				d["key"] = k.Key
			}
			if k.Compromised {
				d["earlier-keys"] = "reported lost or stolen"
			}
			add(marshal(auditEvent{index: k.Index, at: k.Time, holder: h.Name, event: k.Event, action: "U", centre: k.Centre, staff: k.Staff, permitted: true,
				details: d}.resource(res.Pseudonym)))
		}
	}
	if res.Lookup != "" {
		// Where every member was asked, the lookup's failure hides a
		// holder only where a member could not be reached, named above.
		severity, kind := fhir.IssueSeverityInformation, fhir.IssueTypeInformational
		if len(res.Unreached()) > 0 || !res.EveryMember {
			severity, kind = fhir.IssueSeverityWarning, fhir.IssueTypeIncomplete
		}
		issues = append(issues, issue(severity, kind, "the directory lookup was incomplete: "+res.Lookup))
	}
	add(marshal(fhir.OperationOutcome{Issue: issues}))
	return resource{marshal(b)}
}

// more says where a holder's next page starts, if it has one.
func more(next int64) string {
	if next == 0 {
		return ""
	}
	return fmt.Sprintf("; more from entry %d: ask again with a cursor for this holder", next)
}

// noticeBundle is the notification feed as AuditEvents: emergency
// accesses (action E), and changes to the patient's key (action U).
func noticeBundle(centre string, ns []Notice) resource {
	b := fhir.Bundle{Type: fhir.BundleTypeCollection, Timestamp: instant(time.Now())} // bdl-1: no total on a collection
	for _, n := range ns {
		ev := auditEvent{index: n.Index, at: n.Time, holder: centre, event: n.Event, action: "E", centre: n.Centre, staff: n.Staff, role: n.Role,
			purpose: "emergency", permitted: n.Permitted, details: map[string]string{"emergency-reason": n.Reason}}
		if n.Attestation != "" {
			ev.action, ev.purpose, ev.details = "U", "", map[string]string{"attestation": n.Attestation}
		}
		b.Entry = append(b.Entry, fhir.BundleEntry{Resource: marshal(ev.resource(n.Pseudonym))})
	}
	return resource{marshal(b)}
}
