package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// The FHIR R4 interface an EHR speaks, under /fhir, with the IHE profiles
// it already uses (PDQm, MHD, PCF, BALP, mCSD: see /fhir/metadata), and
// the SMART Backend Services endpoints its integration engine gets access
// tokens from. Each FHIR route names the resource and interaction its
// token's scopes must allow, and the roles the acting person (the IUA
// claims of a system's token, or a staff token's own) may hold.

const (
	fhirBase     = "/fhir"
	tokenPath    = "/auth/token"
	introspectTo = "/auth/introspect"
	fhirJSON     = "application/fhir+json" // FHIR's JSON: every resource answered, every error
)

func (s *Server) fhirTable() []route {
	fhirParam := func(name, about string) param { return param{name, "query", about} }
	id := param{"id", "path", "the resource's id"}
	return []route{
		{method: "GET", pattern: fhirBase + "/metadata", auth: authPublic, summary: "The FHIR CapabilityStatement: every interaction, search parameter and profile", handle: s.capability},
		{method: "GET", pattern: "/.well-known/smart-configuration", auth: authPublic, summary: "SMART Backend Services discovery", handle: s.smartConfiguration},
		{method: "GET", pattern: fhirBase + "/.well-known/smart-configuration", auth: authPublic, summary: "SMART Backend Services discovery, under the FHIR base", handle: s.smartConfiguration},
		{method: "POST", pattern: tokenPath, auth: authPublic, summary: "An access token for a registered system (client_credentials with a private_key_jwt assertion)", handle: s.token},
		{method: "POST", pattern: introspectTo, auth: authStaff, roles: []string{"admin"}, summary: "Introspect an access token (RFC 7662), for the centre's gateways", handle: s.introspect},

		{method: "GET", pattern: fhirBase + "/Patient", auth: authSystem, roles: []string{"registrar", "clinician"}, summary: "PDQm (ITI-78): the pseudonymous Patient of an identifier",
			params: []param{fhirParam("identifier", "system|value, e.g. https://fhir.nhs.uk/Id/nhs-number|9434765919")}, handle: s.scoped("Patient", 's', s.findPatient)},
		{method: "POST", pattern: fhirBase + "/Patient/_search", auth: authSystem, roles: []string{"registrar", "clinician"},
			summary: "PDQm (ITI-78) with the identifier in a form, so that no URL (a proxy's log) holds it",
			params:  []param{fhirParam("identifier", "system|value")}, handle: s.scoped("Patient", 's', s.findPatient)},
		{method: "GET", pattern: fhirBase + "/Patient/{id}", auth: authSystem, roles: []string{"registrar", "clinician"}, summary: "PDQm: a Patient by its pseudonym",
			params: []param{id}, handle: s.scoped("Patient", 'r', s.readPatient)},

		{method: "POST", pattern: fhirBase, auth: authSystem, roles: intake, limit: maxRecordBody, summary: "MHD Provide Document Bundle (ITI-65): a transaction Bundle's documents become records here",
			handle: s.transaction},
		{method: "GET", pattern: fhirBase + "/DocumentReference", auth: authSystem, roles: []string{"clinician", "researcher"},
			summary: "MHD Find Document References (ITI-67): the federated query, for the token's purpose of use",
			params: []param{fhirParam("patient", "the patient's pseudonym"), fhirParam("patient.identifier", "system|value"), fhirParam("status", "current"),
				fhirParam("category", "data classes"), fhirParam("type", "LOINC document types"), fhirParam("date", "when the document was made, with a prefix"),
				fhirParam("period", "when the care it records happened, with a prefix")},
			handle: s.scoped("DocumentReference", 's', s.findDocuments)},
		{method: "GET", pattern: fhirBase + "/DocumentReference/{id}", auth: authSystem, roles: []string{"clinician", "researcher"}, summary: "A DocumentReference, as consent allows (audited at its holder)",
			params: []param{id}, handle: s.scoped("DocumentReference", 'r', s.readDocument)},
		{method: "GET", pattern: fhirBase + "/Binary/{id}", auth: authSystem, roles: []string{"clinician", "researcher"}, summary: "MHD Retrieve Document (ITI-68): a document's bytes, opened here (audited at its holder)",
			params: []param{id}, handle: s.scoped("Binary", 'r', s.retrieve)},

		{method: "POST", pattern: fhirBase + "/Consent", auth: authPatient, limit: 4 * consent.MaxDocument, status: http.StatusCreated,
			summary: "PCF: a consent document the patient signed, attached to a Consent", handle: s.postConsent},
		{method: "GET", pattern: fhirBase + "/Consent", auth: authSystem, roles: []string{"clinician", "registrar", "privacy-officer"}, summary: "PCF: the patient's Consent in force",
			params: []param{fhirParam("patient", "the patient's pseudonym")}, handle: s.scoped("Consent", 's', s.findConsent)},
		{method: "GET", pattern: fhirBase + "/Consent/{id}", auth: authSystem, roles: []string{"clinician", "registrar", "privacy-officer"}, summary: "PCF: a patient's Consent in force, by their pseudonym",
			params: []param{id}, handle: s.scoped("Consent", 'r', s.readConsent)},
		{method: "GET", pattern: fhirBase + "/RelatedPerson", auth: authSystem, roles: []string{"clinician", "registrar", "privacy-officer"}, summary: "The patient's delegates (who may act for them, and who could)",
			params: []param{fhirParam("patient", "the patient's pseudonym")}, handle: s.scoped("RelatedPerson", 's', s.findRelatedPersons)},
		{method: "GET", pattern: fhirBase + "/AuditEvent", auth: authSystem, roles: audit, summary: "BALP (ITI-81): this centre's ledger's entries about a patient as AuditEvents",
			params: []param{fhirParam("patient", "the patient's pseudonym"), fhirParam("date", "when, with a prefix")}, handle: s.scoped("AuditEvent", 's', s.findAudit)},
		{method: "GET", pattern: fhirBase + "/AuditEvent/{id}", auth: authSystem, roles: audit, summary: "BALP: one entry of this centre's ledger as an AuditEvent",
			params: []param{id}, handle: s.scoped("AuditEvent", 'r', s.readAudit)},

		{method: "GET", pattern: fhirBase + "/Organization", auth: authSystem, summary: "mCSD (ITI-90): the federation's member centres",
			params: []param{fhirParam("_id", "a centre's name"), fhirParam("name", "a centre's name"), fhirParam("active", "true")}, handle: s.scoped("Organization", 's', s.findOrganizations)},
		{method: "GET", pattern: fhirBase + "/Organization/{id}", auth: authSystem, summary: "mCSD: a member centre", params: []param{id}, handle: s.scoped("Organization", 'r', s.readOrganization)},
		{method: "GET", pattern: fhirBase + "/Endpoint", auth: authSystem, summary: "mCSD (ITI-90): the members' endpoints",
			params: []param{fhirParam("_id", "an endpoint's id"), fhirParam("organization", "Organization/<centre>"), fhirParam("status", "active")}, handle: s.scoped("Endpoint", 's', s.findEndpoints)},
		{method: "GET", pattern: fhirBase + "/Endpoint/{id}", auth: authSystem, summary: "mCSD: an endpoint", params: []param{id}, handle: s.scoped("Endpoint", 'r', s.readEndpoint)},
	}
}

// scoped lets a call through when its access token's scopes allow the
// interaction on the resource (a staff token is its role's own).
func (s *Server) scoped(resource string, interaction byte, h func(ctx context.Context, c *call) (any, error)) func(ctx context.Context, c *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		if err := c.allows(resource, interaction); err != nil {
			return nil, err
		}
		return h(ctx, c)
	}
}

// allows refuses the call unless its token's scopes allow the
// interaction on the resource.
func (c *call) allows(resource string, interaction byte) error {
	if c.grant == nil || c.grant.Allows(resource, interaction) {
		return nil
	}
	return errStatus{http.StatusForbidden, fmt.Errorf("the access token's scopes (%s) do not allow %s on %s: ask for system/%s.%c",
		strings.Join(c.grant.Scopes, " "), interactions[interaction], resource, resource, interaction)}
}

var interactions = map[byte]string{'c': "create", 'r': "read", 'u': "update", 'd': "delete", 's': "search"}

// authenticateSystem checks a SMART access token. A route that acts on a
// patient names roles: the token must carry the acting person (IUA
// claims) in one of them, for the ledger records who asked.
func (s *Server) authenticateSystem(r *http.Request, rt *route, c *call, token string) (Staff, int, error) {
	if s.smart == nil {
		return Staff{}, http.StatusUnauthorized, errors.New("this centre registers no systems: use a staff bearer token")
	}
	g, err := s.smart.Check(r.Context(), token)
	switch {
	case err == nil:
	case node.KindOf(err) == node.Unauthenticated:
		return Staff{}, http.StatusUnauthorized, err
	case node.KindOf(err) == node.Internal: // a tampered store, a failing disk: the centre's
		return Staff{}, http.StatusInternalServerError, fmt.Errorf("checking the access token: %w", err)
	default:
		return Staff{}, http.StatusServiceUnavailable, fmt.Errorf("checking the access token: %w", err)
	}
	c.grant = &g
	st := Staff{ID: g.Staff, Role: g.Role}
	if len(rt.roles) > 0 && !slices.Contains(rt.roles, g.Role) {
		if g.Role == "" {
			return st, http.StatusForbidden, fmt.Errorf("%s %s acts for a person: the access token must name them (IUA claims subject_id, subject_role, purpose_of_use) in one of the roles %s",
				rt.method, rt.pattern, strings.Join(rt.roles, ", "))
		}
		return st, http.StatusForbidden, fmt.Errorf("%s %s is for the roles %s; this token acts for a %s", rt.method, rt.pattern, strings.Join(rt.roles, ", "), g.Role)
	}
	return st, 0, nil
}

// purpose is why the caller asks: the purpose of use its token carries,
// or for a staff token its role's (research for a researcher).
func (c *call) purpose() string {
	if c.grant != nil && c.grant.Purpose != "" {
		return c.grant.Purpose
	}
	if c.staff.Role == "researcher" {
		return consent.Research.String()
	}
	return consent.Treatment.String()
}

// baseURL is the URL this centre is reached at, as the caller reached it.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// searchParams checks a search's parameters against those the route
// knows: an unknown one is refused, not ignored, so that a filter the
// EHR relied on is never silently dropped.
func (c *call) searchParams() (url.Values, error) {
	q := c.r.URL.Query()
	if c.r.Method == http.MethodPost { // [type]/_search: the parameters in a form, out of the URL
		if len(q) > 0 {
			return nil, fmt.Errorf("%w: POST %s takes its parameters in the form, not the URL", errBadRequest, c.route.pattern)
		}
		form, err := c.form()
		if err != nil {
			return nil, err
		}
		q = form
	}
	var known []string
	for _, p := range c.route.params {
		if p.in == "query" {
			known = append(known, p.name)
		}
	}
	q.Del("_format") // JSON is all there is
	for name := range q {
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%w: unknown search parameter %q: %s %s takes %s", errBadRequest, name, c.route.method, c.route.pattern, strings.Join(known, ", "))
		}
	}
	return q, nil
}

// singleSearch reads a search's parameters, each given at most once.
func (c *call) singleSearch() (map[string]string, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name := range q {
		if out[name], err = one(q, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// patientSearch reads a search's parameters, the patient's among them.
func (c *call) patientSearch() (url.Values, ledger.Pseudonym, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, ledger.Pseudonym{}, err
	}
	p, err := patientParam(q)
	return q, p, err
}

// one is a search parameter given at most once.
func one(q url.Values, name string) (string, error) {
	vs := q[name]
	if len(vs) > 1 {
		return "", fmt.Errorf("%w: the search parameter %s is given %d times; give it once (values separated by commas)", errBadRequest, name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}
