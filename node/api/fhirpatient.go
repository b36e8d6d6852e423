package api

// PDQm (the pseudonymous Patient of an identifier) and PCF (the Consent
// the patient signed), and the searchset Bundle the FHIR searches answer.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

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
	q, err := c.singleSearch()
	if err != nil {
		return nil, err
	}
	id := q["identifier"]
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

// readPatient is PDQm's read: the Patient of a pseudonym.
func (s *Server) readPatient(_ context.Context, c *call) (any, error) {
	p, err := ledger.ParsePseudonym(c.r.PathValue("id"))
	if err != nil {
		return nil, errStatus{http.StatusNotFound, errors.New("no such Patient: a Patient's id is a pseudonym, 64 hex digits (PDQm finds it by identifier)")}
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
		return nil, fmt.Errorf("%w: sourceAttachment: attach the document the patient signed as its data, of content type %s (the document field of what medfed consent grant --out writes)", errBadRequest, signedConsentType)
	}
	doc, err := base64.StdEncoding.DecodeString(*att.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: sourceAttachment.data is not base64", errBadRequest)
	}
	parsed, err := s.patientDocument(doc, consent.KindContract, consent.KindRevocation)
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
	confirmed := "confirmed by a majority of the patient's consent replicas"
	if !d.Confirmed {
		confirmed = "accepted here, not yet confirmed by a majority of the patient's consent replicas: it is delivered on"
		c.w.Header().Set("Warning", `199 medfed "`+confirmed+`"`)
	}
	v, err := s.node.ShowConsent(ctx, subject)
	if err != nil {
		return nil, err
	}
	view := ConsentViewOf(v)
	if view.Contract == nil {
		// A revocation: what is in force is the charter's default.
		WriteJSON(c.w, http.StatusOK, resource{marshal(fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{
			issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational, "the contract is revoked ("+confirmed+"): the charter's default policy applies")}})})
		return nil, nil
	}
	c.w.Header().Set("Location", fhirBase+"/Consent/"+view.Pseudonym)
	return s.pcfConsent(view), nil
}

// pcfConsent is the patient's Consent in force, shaped to PCF: one per
// patient, its id their pseudonym (GET /fhir/Consent/{pseudonym}), the
// contract's ID and version its identifier, the patient its performer.
func (s *Server) pcfConsent(v ConsentView) resource {
	var out fhir.Consent
	if err := json.Unmarshal(consentResource(v).raw, &out); err != nil {
		panic(fmt.Sprintf("api: a Consent of ours does not read back: %v", err))
	}
	out.Id = ptr(v.Pseudonym)
	out.Performer = []fhir.Reference{*patientRef(v.Pseudonym)}
	out.Organization = []fhir.Reference{*centreRef(s.node.Name())}
	out.Policy = []fhir.ConsentPolicy{{Uri: ptr("urn:medfed:consent:" + v.Contract.Terms.Base)}}
	return resource{marshal(out)}
}

// consentOf is a patient's Consent in force, if they have one.
func (s *Server) consentOf(ctx context.Context, p ledger.Pseudonym) (ConsentView, bool, error) {
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return ConsentView{}, false, err
	}
	view := ConsentViewOf(v)
	return view, view.Contract != nil, nil
}

// readConsent is a patient's Consent in force, by their pseudonym.
func (s *Server) readConsent(ctx context.Context, c *call) (any, error) {
	p, err := ledger.ParsePseudonym(c.r.PathValue("id"))
	if err != nil {
		return nil, errStatus{http.StatusNotFound, errors.New("no such Consent: a Consent's id is its patient's pseudonym, 64 hex digits")}
	}
	view, ok, err := s.consentOf(ctx, p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errStatus{http.StatusNotFound, errors.New("the patient has no contract in force: the charter's default policy applies")}
	}
	return s.pcfConsent(view), nil
}

// findConsent is the patient's Consent in force, as a search (PCF).
func (s *Server) findConsent(ctx context.Context, c *call) (any, error) {
	_, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	view, ok, err := s.consentOf(ctx, p)
	if err != nil || !ok {
		return searchset(c, "Consent", nil, nil), err
	}
	return searchset(c, "Consent", []string{view.Pseudonym}, []json.RawMessage{s.pcfConsent(view).raw}), nil
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
