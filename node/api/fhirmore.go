package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// PDQm (the pseudonymous Patient), PCF (Consent), BALP (AuditEvent from
// the ledger) and mCSD (the charter's members as Organizations and
// Endpoints).

// searchset is a Bundle of the resources a search matched, each with
// its fullUrl.
func searchset(c *call, kind string, ids []string, resources []json.RawMessage) resource {
	base := baseURL(c.r)
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now()), Total: ptr(len(resources)), Link: selfLink(c)}
	for i, r := range resources {
		b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/" + kind + "/" + ids[i]), Resource: r,
			Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
	}
	return resource{marshal(b)}
}

// selfLink is a search's self link: the search as it was asked, but
// for an identifier's value, which no answer repeats.
func selfLink(c *call) []fhir.BundleLink {
	q := c.r.URL.Query()
	for _, name := range []string{"identifier", "patient.identifier"} {
		for i, v := range q[name] {
			system, _, _ := strings.Cut(v, "|")
			q[name][i] = system + "|(the value asked)"
		}
	}
	u := baseURL(c.r) + c.r.URL.Path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return []fhir.BundleLink{{Relation: "self", Url: u}}
}

// findPatient is PDQm's Mobile Patient Demographics Query (ITI-78) by
// identifier: the Patient is the pseudonym the federation derives from
// it, with no demographics. The identifier is forgotten.
func (s *Server) findPatient(ctx context.Context, c *call) (any, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	id, err := one(q, "identifier")
	if err != nil {
		return nil, err
	}
	system, value, ok := strings.Cut(id, "|")
	if !ok || system == "" || value == "" {
		return nil, fmt.Errorf("%w: identifier: give system|value, e.g. https://fhir.nhs.uk/Id/nhs-number|9434765919", errBadRequest)
	}
	ps, err := s.node.PseudonymsOf(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	p := ps[0].String()
	return searchset(c, "Patient", []string{p}, []json.RawMessage{patientResource(s.node.Federation(), p).raw}), nil
}

func (s *Server) readPatient(_ context.Context, c *call) (any, error) {
	p, err := ledger.ParsePseudonym(c.r.PathValue("id"))
	if err != nil {
		return nil, errStatus{http.StatusNotFound, fmt.Errorf("no Patient %q: a Patient's id is a pseudonym, 64 hex digits (PDQm finds it by identifier)", c.r.PathValue("id"))}
	}
	return patientResource(s.node.Federation(), p.String()), nil
}

// signedConsentType is the media type of a consent document the patient
// signed (medfed consent grant --out), attached to a Consent.
const signedConsentType = "application/vnd.medfed.consent"

// postConsent takes a Consent whose sourceAttachment is the document the
// patient signed: the signature is what counts, so the resource's other
// elements must agree with the document or be absent.
func (s *Server) postConsent(ctx context.Context, c *call) (any, error) {
	raw, err := ReadBody(c.w, c.r, c.route.limit)
	if err != nil {
		return nil, err
	}
	if kind := resourceType(raw); kind != "Consent" {
		return nil, fmt.Errorf("%w: POST %s/Consent takes a Consent, not %q", errBadRequest, fhirBase, kind)
	}
	var in fhir.Consent
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%w: not a valid Consent: %v", errBadRequest, err)
	}
	att := in.SourceAttachment
	if att == nil || att.Data == nil || att.ContentType == nil || *att.ContentType != signedConsentType {
		return nil, fmt.Errorf("%w: sourceAttachment: attach the document the patient signed, as data of content type %s (medfed consent grant --out writes one)", errBadRequest, signedConsentType)
	}
	doc, err := base64.StdEncoding.DecodeString(*att.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: sourceAttachment.data is not base64", errBadRequest)
	}
	parsed, err := consent.Parse(doc)
	if err != nil {
		return nil, err
	}
	subject := parsed.Subject()
	if in.Patient != nil && in.Patient.Reference != nil {
		p, err := patientOf(*in.Patient.Reference)
		if err != nil || p != subject {
			return nil, fmt.Errorf("%w: patient: the Consent names another patient than the signed document", errBadRequest)
		}
	}
	d, err := s.node.SubmitConsent(ctx, doc)
	if err != nil {
		return nil, err
	}
	if !d.Confirmed {
		c.w.Header().Set("Warning", `199 medfed "accepted here, not yet confirmed by a majority of the patient's consent replicas"`)
	}
	v, err := s.node.ShowConsent(ctx, subject)
	if err != nil {
		return nil, err
	}
	view := ConsentViewOf(v)
	if view.Contract == nil {
		// A revocation: what is in force is the charter's default.
		return outcome(http.StatusOK, "the contract is revoked: the charter's default policy applies"), nil
	}
	c.w.Header().Set("Location", fhirBase+"/Consent/"+view.Contract.ID)
	return pcfConsent(view), nil
}

// pcfConsent is the Consent in force, shaped to PCF.
func pcfConsent(v ConsentView) resource {
	var out fhir.Consent
	if err := json.Unmarshal(consentResource(v).raw, &out); err != nil {
		panic(fmt.Sprintf("api: a Consent of ours does not read back: %v", err))
	}
	out.Patient = &fhir.Reference{Reference: ptr("Patient/" + v.Pseudonym), Type: ptr("Patient")}
	out.Policy = []fhir.ConsentPolicy{{Uri: ptr("urn:medfed:consent:" + v.Contract.Terms.Base)}}
	return resource{marshal(out)}
}

func (s *Server) findConsent(ctx context.Context, c *call) (any, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	p, err := patientParam(q)
	if err != nil {
		return nil, err
	}
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return nil, err
	}
	view := ConsentViewOf(v)
	if view.Contract == nil {
		return searchset(c, "Consent", nil, nil), nil
	}
	return searchset(c, "Consent", []string{view.Contract.ID}, []json.RawMessage{pcfConsent(view).raw}), nil
}

// patientParam reads the patient search parameter: a pseudonym or a
// reference to its Patient.
func patientParam(q map[string][]string) (ledger.Pseudonym, error) {
	v, err := one(q, "patient")
	if err != nil {
		return ledger.Pseudonym{}, err
	}
	if v == "" {
		return ledger.Pseudonym{}, fmt.Errorf("%w: the patient search parameter is required: a pseudonym (PDQm) or Patient/<pseudonym>", errBadRequest)
	}
	if p, err := patientOf(v); err == nil {
		return p, nil
	}
	return ledger.ParsePseudonym(v)
}

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
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	p, err := patientParam(q)
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
			ev := s.balpEvent(p.String(), a)
			ids = append(ids, *ev.Id)
			out = append(out, marshal(ev))
		}
	}
	return searchset(c, "AuditEvent", ids, out), nil
}

// balpEvent is one access entry as BALP shapes it: a search of the
// patient's records (PatientQuery), a directory lookup (Query), or the
// patient's own view or erasure (PatientRead); emergency access carries
// the purpose ETREAT.
func (s *Server) balpEvent(pseudonym string, a centre.PatientAccess) fhir.AuditEvent {
	self := s.node.Name()
	profile, subtype, action := "PatientQuery", "search-type", fhir.AuditEventActionE
	switch a.Event {
	case consent.EventLookup:
		profile = "Query"
	case consent.EventPatientView, consent.EventPatientErase:
		profile, subtype, action = "PatientRead", "read", fhir.AuditEventActionR
	}
	result := fhir.AuditEventOutcome0
	if !a.Permitted {
		result = fhir.AuditEventOutcome4
	}
	org := centreRef
	coding := func(system, code, display string) fhir.Coding {
		return fhir.Coding{System: ptr(system), Code: ptr(code), Display: ptr(display)}
	}
	concept := func(cd fhir.Coding) *fhir.CodeableConcept { return &fhir.CodeableConcept{Coding: []fhir.Coding{cd}} }
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
	if a.Staff != (ledger.StaffID{}) {
		user := fhir.AuditEventAgent{Type: concept(coding(userTypeSystem, "humanuser", "human user")), Requestor: true,
			Who:  &fhir.Reference{Identifier: &fhir.Identifier{System: ptr(staffSystem + ":" + a.Centre), Value: ptr(a.Staff.String())}},
			Role: []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(roleSystem), Code: ptr(a.Role.String())}}}}}
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
	if profile != "PatientRead" {
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

// mCSD: every member is an Organization; it is reached over libp2p at
// its charter addresses (an Endpoint each), and this centre over FHIR too.
const (
	centreSystem      = "urn:medfed:centre"
	orgTypeSystem     = "http://terminology.hl7.org/CodeSystem/organization-type"
	connectionSystem  = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	payloadTypeSystem = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
	libp2pConnection  = "urn:medfed:endpoint-connection-type" // no standard code names libp2p
)

func (s *Server) organization(m federation.Member) fhir.Organization {
	eps := []fhir.Reference{{Reference: ptr("Endpoint/" + m.Name + "-p2p"), Type: ptr("Endpoint")}}
	if m.Name == s.node.Name() {
		eps = append(eps, fhir.Reference{Reference: ptr("Endpoint/" + m.Name + "-fhir"), Type: ptr("Endpoint")})
	}
	return fhir.Organization{
		Id:         ptr(m.Name),
		Identifier: []fhir.Identifier{{System: ptr(centreSystem), Value: ptr(m.Name)}, {System: ptr(uriSystem), Value: ptr("urn:medfed:peer:" + m.ID.String())}},
		Active:     ptr(true),
		Type:       []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(orgTypeSystem), Code: ptr("prov"), Display: ptr("Healthcare Provider")}}}},
		Name:       ptr(m.Name),
		Endpoint:   eps,
	}
}

func (s *Server) endpoints(c *call, m federation.Member) []fhir.Endpoint {
	org := centreRef(m.Name)
	addr := ""
	if len(m.Addrs) > 0 {
		addr = m.Addrs[0].String() + "/p2p/" + m.ID.String()
	}
	out := []fhir.Endpoint{{
		Id:                   ptr(m.Name + "-p2p"),
		Status:               fhir.EndpointStatusActive,
		ConnectionType:       fhir.Coding{System: ptr(libp2pConnection), Code: ptr("libp2p"), Display: ptr("libp2p (Noise), medfed's federation protocols")},
		Name:                 ptr(m.Name + " federation protocols"),
		ManagingOrganization: org,
		PayloadType:          []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(payloadTypeSystem), Code: ptr("none"), Display: ptr("None")}}}},
		Address:              addr,
	}}
	if m.Name == s.node.Name() {
		out = append(out, fhir.Endpoint{
			Id:                   ptr(m.Name + "-fhir"),
			Status:               fhir.EndpointStatusActive,
			ConnectionType:       fhir.Coding{System: ptr(connectionSystem), Code: ptr("hl7-fhir-rest"), Display: ptr("HL7 FHIR")},
			Name:                 ptr(m.Name + " FHIR R4"),
			ManagingOrganization: org,
			PayloadType:          []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(payloadTypeSystem), Code: ptr("any"), Display: ptr("Any")}}}},
			PayloadMimeType:      []string{fhirJSON},
			Address:              baseURL(c.r) + fhirBase,
		})
	}
	return out
}

func (s *Server) findOrganizations(_ context.Context, c *call) (any, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	id, err := one(q, "_id")
	if err != nil {
		return nil, err
	}
	name, err := one(q, "name")
	if err != nil {
		return nil, err
	}
	active, err := one(q, "active")
	if err != nil {
		return nil, err
	}
	var ids []string
	var out []json.RawMessage
	for _, m := range s.node.Members() {
		if (id != "" && !slices.Contains(strings.Split(id, ","), m.Name)) || (name != "" && !strings.HasPrefix(m.Name, strings.ToLower(name))) || active == "false" {
			continue
		}
		ids = append(ids, m.Name)
		out = append(out, marshal(s.organization(m)))
	}
	return searchset(c, "Organization", ids, out), nil
}

func (s *Server) readOrganization(_ context.Context, c *call) (any, error) {
	for _, m := range s.node.Members() {
		if m.Name == c.r.PathValue("id") {
			return resource{marshal(s.organization(m))}, nil
		}
	}
	return nil, errStatus{http.StatusNotFound, fmt.Errorf("no member centre %q", c.r.PathValue("id"))}
}

func (s *Server) findEndpoints(_ context.Context, c *call) (any, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	id, err := one(q, "_id")
	if err != nil {
		return nil, err
	}
	org, err := one(q, "organization")
	if err != nil {
		return nil, err
	}
	status, err := one(q, "status")
	if err != nil {
		return nil, err
	}
	var ids []string
	var out []json.RawMessage
	for _, m := range s.node.Members() {
		if org != "" && strings.TrimPrefix(org, "Organization/") != m.Name {
			continue
		}
		for _, e := range s.endpoints(c, m) {
			if (id != "" && !slices.Contains(strings.Split(id, ","), *e.Id)) || (status != "" && status != "active") {
				continue
			}
			ids = append(ids, *e.Id)
			out = append(out, marshal(e))
		}
	}
	return searchset(c, "Endpoint", ids, out), nil
}

func (s *Server) readEndpoint(_ context.Context, c *call) (any, error) {
	for _, m := range s.node.Members() {
		for _, e := range s.endpoints(c, m) {
			if *e.Id == c.r.PathValue("id") {
				return resource{marshal(e)}, nil
			}
		}
	}
	return nil, errStatus{http.StatusNotFound, fmt.Errorf("no endpoint %q", c.r.PathValue("id"))}
}
