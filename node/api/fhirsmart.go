package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/medfed/medfed/node/smart"
)

// The CapabilityStatement, SMART's discovery document, and its token and
// introspection endpoints.

// profiles are the IHE profiles each resource's answers conform to.
var profiles = map[string][]string{
	"Patient":           {"https://profiles.ihe.net/ITI/PDQm/StructureDefinition/IHE.PDQm.Patient"},
	"DocumentReference": {"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.DocumentReference"},
	"Binary":            nil,
	"Consent": {"https://profiles.ihe.net/ITI/PCF/StructureDefinition/IHE.PCF.consentBasic",
		"https://profiles.ihe.net/ITI/PCF/StructureDefinition/IHE.PCF.consentIntermediate"},
	"AuditEvent": {"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery",
		"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead",
		"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientDelete"},
	"Organization": {"https://profiles.ihe.net/ITI/mCSD/StructureDefinition/IHE.mCSD.Organization"},
	"Endpoint":     {"https://profiles.ihe.net/ITI/mCSD/StructureDefinition/IHE.mCSD.Endpoint"},
}

// searchTypes are the FHIR types of the search parameters served.
var searchTypes = map[string]string{
	"identifier": "token", "patient": "reference", "patient.identifier": "token", "status": "token", "category": "token", "type": "token",
	"date": "date", "period": "date", "_id": "token", "name": "string", "active": "token", "organization": "reference",
	"code": "token",
}

// capability is the CapabilityStatement: built from the routes served,
// so that it names what exists and nothing else.
func (s *Server) capability(_ context.Context, c *call) (any, error) {
	type interaction struct {
		Code string `json:"code"`
	}
	type searchParam struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	type served struct {
		Type             string        `json:"type"`
		SupportedProfile []string      `json:"supportedProfile,omitempty"`
		Documentation    string        `json:"documentation,omitempty"`
		Interaction      []interaction `json:"interaction"`
		SearchParam      []searchParam `json:"searchParam,omitempty"`
	}
	byType := map[string]*served{}
	var order []string
	for _, rt := range s.fhirRoutes {
		rest, ok := strings.CutPrefix(rt.pattern, fhirBase+"/")
		if !ok || strings.HasPrefix(rest, ".") || rest == "metadata" {
			continue
		}
		name, id, _ := strings.Cut(rest, "/")
		if id == "_search" { // the search in a form: the same search-type
			continue
		}
		r := byType[name]
		if r == nil {
			r = &served{Type: name, SupportedProfile: profiles[name]}
			byType[name] = r
			order = append(order, name)
		}
		code := "search-type"
		switch {
		case rt.method == http.MethodPost:
			code = "create"
		case id != "":
			code = "read"
		}
		r.Interaction = append(r.Interaction, interaction{code})
		if r.Documentation == "" || code == "search-type" {
			r.Documentation = rt.summary
		}
		if code == "search-type" {
			for _, p := range rt.params {
				if !strings.Contains(p.name, ".") { // a chain (patient.identifier) is the documentation's
					r.SearchParam = append(r.SearchParam, searchParam{p.name, searchTypes[p.name]})
				}
			}
		}
	}
	var resources []served
	for _, name := range order {
		resources = append(resources, *byType[name])
	}
	smartService := map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}},
		"text": "SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384, ES384); staff bearer tokens for operators"}
	security := map[string]any{"service": []any{smartService}, "extension": []any{map[string]any{
		"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
		"extension": []any{
			map[string]string{"url": "token", "valueUri": baseURL(c.r) + tokenPath},
		},
	}}}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format(time.DateOnly),
		"publisher":    s.node.Name(),
		"kind":         "instance",
		"software":     map[string]string{"name": "medfed"},
		"implementation": map[string]string{"description": "medfed centre " + s.node.Name() + " of the federation " + s.node.Federation(),
			"url": baseURL(c.r) + fhirBase},
		"fhirVersion": "4.0.1",
		"format":      []string{fhirJSON, "json"},
		"rest": []any{map[string]any{
			"mode": "server",
			"documentation": "Every search parameter not listed is refused, never ignored (_format aside). A document search runs the federated query for the token's purpose of use, " +
				"by patient or, for a clinician, by patient.identifier (system|value). " +
				"The transaction is IHE MHD's Provide Document Bundle (ITI-65): one SubmissionSet List, which is not kept, and DocumentReferences with their Binaries, each a record.",
			"security":    security,
			"resource":    resources,
			"interaction": []interaction{{"transaction"}},
		}},
	}, nil
}

// smartConfiguration is SMART's discovery document.
func (s *Server) smartConfiguration(_ context.Context, c *call) (any, error) {
	base := baseURL(c.r)
	return map[string]any{
		"issuer":                                base,
		"token_endpoint":                        base + tokenPath,
		"introspection_endpoint":                base + introspectTo,
		"grant_types_supported":                 []string{smart.GrantType},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": smart.SigningAlgs,
		"scopes_supported": smart.ScopesSupported,
		"capabilities":     []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
	}, nil
}

// token answers an access token request. Its errors are OAuth's (RFC
// 6749, section 5.2), which SMART clients read; a caller that asks for
// FHIR (Accept: application/fhir+json) gets an OperationOutcome instead.
func (s *Server) token(ctx context.Context, c *call) (any, error) {
	if s.smart == nil {
		return nil, errStatus{http.StatusNotFound, errors.New("this centre registers no systems (medfed client add)")}
	}
	if err := s.tokenLimits.admit(c.r); err != nil {
		c.w.Header().Set("Retry-After", "1")
		return nil, err
	}
	form, err := c.form()
	if err != nil {
		return nil, err
	}
	res, err := s.smart.Token(ctx, form, baseURL(c.r)+tokenPath)
	var oe *smart.Error
	if errors.As(err, &oe) {
		if oe.Status >= 500 {
			// The centre's failure: logged with its cause, answered with
			// an incident the operator finds.
			return nil, err
		}
		if wantsFHIR(c.r) {
			return nil, errStatus{oe.Status, fmt.Errorf("%s: %s", oe.Code, oe.Description)}
		}
		c.w.Header().Set("Pragma", "no-cache")
		WriteJSON(c.w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.w.Header().Set("Pragma", "no-cache")
	return res, nil
}

// introspect tells a gateway what an access token allows (RFC 7662).
func (s *Server) introspect(ctx context.Context, c *call) (any, error) {
	if s.smart == nil {
		return nil, errStatus{http.StatusNotFound, errors.New("this centre registers no systems (medfed client add)")}
	}
	form, err := c.form()
	if err != nil {
		return nil, err
	}
	token := form.Get("token")
	if token == "" {
		return nil, fmt.Errorf("%w: give the token to introspect as the form field token", errBadRequest)
	}
	return s.smart.Introspect(ctx, token), nil
}

// form reads a form-encoded body within the route's limit.
func (c *call) form() (url.Values, error) {
	if ct := c.r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, fmt.Errorf("%w: the body must be application/x-www-form-urlencoded, not %q", errBadRequest, ct)
	}
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxBody)
	if err := c.r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, fmt.Errorf("%w: at most %d bytes", errTooLarge, maxBody)
		}
		return nil, fmt.Errorf("%w: the form does not parse: %v", errBadRequest, err)
	}
	return c.r.PostForm, nil
}

// wantsFHIR reports whether the caller asked for FHIR's media type.
func wantsFHIR(r *http.Request) bool {
	return slices.ContainsFunc(strings.Split(r.Header.Get("Accept"), ","), func(t string) bool {
		return strings.HasPrefix(strings.TrimSpace(t), fhirJSON)
	})
}
