package api

// mCSD (ITI-90): the charter's members as Organizations and Endpoints.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation"
)

// mCSD: every member is an Organization; it is reached over libp2p at
// its charter addresses (an Endpoint each), and this centre over FHIR too.
const (
	centreSystem      = "urn:medfed:centre"
	orgTypeSystem     = "http://terminology.hl7.org/CodeSystem/organization-type"
	connectionSystem  = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	payloadTypeSystem = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
	libp2pConnection  = "urn:medfed:endpoint-connection-type" // no standard code names libp2p
)

// organization is member m as an mCSD Organization.
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

// endpoints are where member m is reached: its first charter address
// over libp2p and, for this centre, its FHIR base.
func (s *Server) endpoints(c *call, m federation.Member) []fhir.Endpoint {
	org := centreRef(m.Name)
	var out []fhir.Endpoint
	if len(m.Addrs) > 0 { // a charter names 1 to 8: none is no endpoint
		out = append(out, fhir.Endpoint{
			Id:                   ptr(m.Name + "-p2p"),
			Status:               fhir.EndpointStatusActive,
			ConnectionType:       fhir.Coding{System: ptr(libp2pConnection), Code: ptr("libp2p"), Display: ptr("libp2p (Noise), medfed's federation protocols")},
			Name:                 ptr(m.Name + " federation protocols"),
			ManagingOrganization: org,
			PayloadType:          []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(payloadTypeSystem), Code: ptr("none"), Display: ptr("None")}}}},
			Address:              m.Addrs[0].String() + "/p2p/" + m.ID.String(),
		})
	}
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

// findOrganizations is mCSD's Organization search (ITI-90).
func (s *Server) findOrganizations(_ context.Context, c *call) (any, error) {
	q, err := c.singleSearch()
	if err != nil {
		return nil, err
	}
	id, name, active := q["_id"], q["name"], q["active"]
	if active != "" && active != "true" && active != "false" {
		return nil, fmt.Errorf("%w: active: true or false", errBadRequest)
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

// readOrganization is a member centre by its name.
func (s *Server) readOrganization(_ context.Context, c *call) (any, error) {
	for _, m := range s.node.Members() {
		if m.Name == c.r.PathValue("id") {
			return resource{marshal(s.organization(m))}, nil
		}
	}
	return nil, errStatus{http.StatusNotFound, fmt.Errorf("no member centre %q", c.r.PathValue("id"))}
}

// findEndpoints is mCSD's Endpoint search (ITI-90).
func (s *Server) findEndpoints(_ context.Context, c *call) (any, error) {
	q, err := c.singleSearch()
	if err != nil {
		return nil, err
	}
	id, org, status := q["_id"], q["organization"], q["status"]
	if status != "" && !slices.Contains([]string{"active", "suspended", "error", "off", "entered-in-error", "test"}, status) {
		return nil, fmt.Errorf("%w: status: an Endpoint status (active, suspended, error, off, entered-in-error, test)", errBadRequest)
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

// readEndpoint is an Endpoint by its id: <centre>-p2p or <centre>-fhir.
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
