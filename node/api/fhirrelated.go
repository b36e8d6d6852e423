package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// A patient's delegates as FHIR RelatedPersons: each delegation is one,
// its id the delegation's, its identifier the delegate's public key (the
// only thing medfed knows of them: never a name), active while the
// delegation is in force, over the delegation's term.

// delegateKeySystem names the delegates' keys as identifiers.
const delegateKeySystem = "urn:medfed:delegate-key"

// roleCodes are HL7 v3 RoleCodes of the relationships; a carer has none
// and is written in words.
var roleCodes = map[string]string{"parent": "PRN", "guardian": "GUARD", "attorney": "HPOWATT", "relative": "FAMMEMB"}

const roleCodeSystem = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

// relatedPerson is delegation d of the patient with pseudonym p.
func relatedPerson(p string, d ConsentDelegation) fhir.RelatedPerson {
	rel := fhir.CodeableConcept{Text: ptr(d.Relationship)}
	if code, ok := roleCodes[d.Relationship]; ok {
		rel.Coding = []fhir.Coding{{System: ptr(roleCodeSystem), Code: ptr(code), Display: ptr(d.Relationship)}}
	}
	start := d.Issued
	if d.NotBefore != nil {
		start = *d.NotBefore
	}
	return fhir.RelatedPerson{
		Id:           ptr(d.ID),
		Identifier:   []fhir.Identifier{{System: ptr(delegateKeySystem), Value: ptr(d.Delegate)}},
		Active:       ptr(d.Status == "in force"),
		Patient:      *patientRef(p),
		Relationship: []fhir.CodeableConcept{rel},
		Period:       &fhir.Period{Start: ptr(start.UTC().Format(time.RFC3339)), End: ptr(d.Expires.UTC().Format(time.RFC3339))},
	}
}

// findRelatedPersons is the patient's delegates, in force or not.
func (s *Server) findRelatedPersons(ctx context.Context, c *call) (any, error) {
	_, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return nil, err
	}
	view := ConsentViewOf(v)
	ids, out := []string{}, []json.RawMessage{}
	for _, d := range view.Delegations {
		ids = append(ids, d.ID)
		out = append(out, marshal(relatedPerson(view.Pseudonym, d)))
	}
	return searchset(c, "RelatedPerson", ids, out), nil
}
