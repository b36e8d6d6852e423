package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The OpenAPI 3.1 document is built from the route table the server
// routes with, and the body and answer types the handlers use, so the two
// cannot drift apart; a test walks the served document against the
// server.

// fhirResource names the FHIR resource a route answers with: described
// by its resourceType (its schema is FHIR R4's). Every other answer is
// described by reflection over its Go type.
type fhirResource string

var fhirResources = []string{"Patient", "DocumentReference", "Consent", "Bundle", "OperationOutcome", "AuditEvent"}

type openAPIDoc struct {
	OpenAPI    string                               `json:"openapi"`
	Info       map[string]string                    `json:"info"`
	Paths      map[string]map[string]map[string]any `json:"paths"`
	Components map[string]any                       `json:"components"`
}

func (s *Server) openAPI() ([]byte, error) {
	schemas := map[string]any{}
	for _, r := range fhirResources {
		schemas[r] = map[string]any{
			"type":        "object",
			"description": "FHIR R4 " + r + " (https://hl7.org/fhir/R4/" + strings.ToLower(r) + ".html)",
			"properties":  map[string]any{"resourceType": map[string]any{"const": r}},
			"required":    []string{"resourceType"},
		}
	}
	doc := openAPIDoc{
		OpenAPI: "3.1.0",
		Info: map[string]string{
			"title":   "medfed centre API",
			"version": "1",
			"description": "One centre's API for its EHR, staff and patients. Staff routes take a bearer token (medfed staff add) " +
				"of one of the roles in x-medfed-roles; patient routes are authenticated by the patient's signature in the body. " +
				"Every error is a FHIR OperationOutcome.",
		},
		Paths: map[string]map[string]map[string]any{},
		Components: map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"staffToken": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
	for _, rt := range s.routes {
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		var params []map[string]any
		for _, p := range rt.params {
			typ := "string"
			if p.name == "index" || p.name == "after" {
				typ = "integer"
			}
			params = append(params, map[string]any{"name": p.name, "in": p.in, "required": p.in == "path", "description": p.about, "schema": map[string]any{"type": typ}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != nil {
			limit := rt.limit
			if limit == 0 {
				limit = maxBody
			}
			op["requestBody"] = map[string]any{
				"required":    true,
				"description": "at most " + strconv.FormatInt(limit, 10) + " bytes; unknown fields are refused",
				"content":     map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.body), schemas)}},
			}
		}
		status := rt.status
		if status == 0 {
			status = http.StatusOK
		}
		var answer any
		ct := "application/json"
		if r, ok := rt.answer.(fhirResource); ok {
			answer = map[string]any{"$ref": "#/components/schemas/" + string(r)}
			ct = "application/fhir+json"
		} else {
			answer = schemaOf(reflect.TypeOf(rt.answer), schemas)
		}
		responses := map[string]any{strconv.Itoa(status): map[string]any{"description": http.StatusText(status), "content": map[string]any{ct: map[string]any{"schema": answer}}}}
		failures := []int{http.StatusMethodNotAllowed, http.StatusInternalServerError}
		switch rt.auth {
		case authStaff:
			op["security"] = []map[string][]string{{"staffToken": {}}}
			op["x-medfed-roles"] = rt.roles
			failures = append(failures, http.StatusUnauthorized, http.StatusForbidden)
		case authPatient:
			op["security"] = []map[string][]string{}
			op["x-medfed-auth"] = "the patient's signature in the body"
			failures = append(failures, http.StatusForbidden)
		default:
			op["security"] = []map[string][]string{}
		}
		if rt.body != nil || rt.params != nil {
			failures = append(failures, http.StatusBadRequest)
		}
		if rt.body != nil {
			failures = append(failures, http.StatusRequestEntityTooLarge)
		}
		if rt.pattern != "/healthz" && rt.pattern != "/openapi.json" {
			failures = append(failures, http.StatusServiceUnavailable)
		}
		if rt.auth != authPublic {
			failures = append(failures, http.StatusNotFound, http.StatusConflict, http.StatusGatewayTimeout)
		}
		if rt.pattern == "/v1/records/{index}" {
			failures = append(failures, http.StatusGone)
		}
		for _, f := range failures {
			responses[strconv.Itoa(f)] = map[string]any{"description": http.StatusText(f),
				"content": map[string]any{"application/fhir+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/OperationOutcome"}}}}
		}
		op["responses"] = responses
		if doc.Paths[rt.pattern] == nil {
			doc.Paths[rt.pattern] = map[string]map[string]any{}
		}
		doc.Paths[rt.pattern][strings.ToLower(rt.method)] = op
	}
	return json.MarshalIndent(doc, "", "  ")
}

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, part := range strings.FieldsFunc(rt.pattern, func(r rune) bool { return r == '/' || r == '.' || r == '{' || r == '}' }) {
		if part == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// schemaOf is the JSON Schema of how encoding/json writes (and reads) t;
// named structs go into schemas and are referred to.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == bytesType:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), schemas)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		if t.Name() == "" {
			return structSchema(t, schemas)
		}
		if _, ok := schemas[t.Name()]; !ok {
			schemas[t.Name()] = map[string]any{} // a placeholder: types may refer to themselves
			schemas[t.Name()] = structSchema(t, schemas)
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, schemas map[string]any) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type) // encoding/json flattens an embedded struct
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type, schemas)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		s["required"] = required
	}
	return s
}
