package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The OpenAPI 3.1 document is built from the route table the server
// routes with, and the body and answer types the handlers use, so the two
// cannot drift apart; a test walks the served document against the
// server, and another lints it (@redocly/cli, in e2e/fhirjs).
//
// The body types carry what reflection cannot see in struct tags beside
// their json tags: doc (the field's description), enum (its values,
// comma-separated), pattern (a regular expression its values match) and
// layout (the component schema of a signed document's bytes; see
// layout.go). On a list, enum and pattern are its elements'.

// fhirResource names the FHIR resource a route answers with: described
// by its resourceType (its schema is FHIR R4's). Every other answer is
// described by reflection over its Go type.
type fhirResource string

type openAPIDoc struct {
	OpenAPI    string                               `json:"openapi"`
	Info       map[string]any                       `json:"info"`
	Servers    []map[string]any                     `json:"servers"`
	Tags       []map[string]string                  `json:"tags"`
	Paths      map[string]map[string]map[string]any `json:"paths"`
	Components map[string]any                       `json:"components"`
}

const apiAbout = `One centre's API: its records, its staff's routes and its patients' own requests. Every centre of a federation serves the same API at its own address (see servers).

**Staff** routes take ` + "`Authorization: Bearer <token>`" + `, a token the centre issues to one staff member in one role (medfed staff add). Each operation names the roles it serves in its description and in x-medfed-roles. A missing, unknown, expired or revoked token is refused with 401; a role the route does not serve, with 403.

**Patients** sign what they ask with their own Ed25519 key, which a registrar attested at a member centre after checking who they are (POST /v1/patients/{pseudonym}/keys). Their routes (POST /v1/consent and the patient tag) take no token: the centre checks the signature in the body against the attested key. The byte layouts of what a patient's app signs are in the schemas SignedConsentDocument and SignedPatientRequest, and as data in components.x-medfed-layouts. These routes are rate limited: 429, with Retry-After.

**A patient's app** needs the patient's pseudonym (their registrar reads it from POST /v1/patients), a key pair whose public key a registrar attested, the federation's ID and the libp2p peer ID of the centre it talks to (the centre's operator publishes both: medfed federation status prints them). With them it can give or change consent (a contract, posted to /v1/consent), withdraw it (a revocation), refuse a replacement of its key it did not ask for (a veto), grant a token to a centre or a clinician (handed to them, not posted), see every holder's records and every access to them (POST /v1/patient/view), and have its records erased (POST /v1/patient/erase, and the erasure document to POST /v1/consent). medfed consent grant|revoke|veto --out and medfed patient view|erase --out write the bodies of these routes, signed, for comparison.

**Errors** are FHIR R4 OperationOutcomes (application/fhir+json): the first issue's code says the kind of error (invalid, login, forbidden, not-found, conflict, transient, timeout, throttled, too-long, not-supported, exception) and its diagnostics say why, never repeating an identifier or a payload. A 5xx names an incident in the centre's log.

Request bodies are one JSON object with no unknown fields and nothing after it. Binary fields are base64 (standard alphabet, padded), as FHIR writes an attachment's data. Pseudonyms and keys are hex.`

// openAPITags are the operations' groups, in the document's order.
var openAPITags = []struct{ name, about string }{
	{"health", "Liveness, readiness and this document: public, for the centre's orchestration; they say nothing about patients."},
	{"patients", "Registering patients (a pseudonym derived from an identifier, which is then forgotten), attesting their keys, and finding which centres hold their records."},
	{"records", "This centre's records: adding and amending them, and reading one through the same consent check and audit as a query."},
	{"query", "Asking every centre that holds a patient's records: queries, emergency access (break-glass), transfers to this centre."},
	{"consent", "Patients' consent: submitting the documents they sign (public, authenticated by the signature), showing the contract in force, checking a token."},
	{"patient", "A patient's own requests, signed with their key and relayed by this centre to every holder (and, in a federation of up to 64 members, every member): their view of every holder's records and accesses, and erasure."},
	{"prescriptions", "Prescriptions that cannot be filled twice: issued by a prescriber as a record of this centre, each supply claimed by a pharmacy from the issuing centre, whose ledger alone decides, and cancelled by the prescriber."},
	{"devices", "Devices of the patient's that contribute readings (a glucose meter, a blood pressure monitor...): registered and revoked by statements the patient signs, each posting batches of FHIR Observations signed with its own key, stored as records whose author is the device and released by consent like any record."},
	{"audit", "For privacy officers and auditors: emergency notifications, the ledger's checkpoints and proofs of its entries."},
	{"federation", "The federation: its members and who is connected, the charter chain, and evidence of members signing two histories."},
}

// paramSchemas are the parameters' schemas by name: a name means one
// thing across the API. Any other parameter is a string.
var paramSchemas = map[string]map[string]any{
	"pseudonym": {"type": "string", "pattern": hex64},
	"index":     {"type": "string", "pattern": "^[0-9]+$"},
	"after":     {"type": "integer", "format": "int64", "minimum": -1, "default": -1},
	"purpose":   {"type": "string", "enum": []string{"treatment", "research", "emergency"}, "default": "treatment"},
}

// hex64 is the pattern of a pseudonym, a key or a document's hash:
// hex.DecodeString takes either case; the API writes lower case.
const hex64 = "^[0-9a-fA-F]{64}$"

// failureAbout says what each error status means across the API.
var failureAbout = map[int]string{
	http.StatusBadRequest:            "The request is not valid: a body that is not the JSON object expected (unknown fields, two objects, a wrong type), a bad identifier, pseudonym or code, or a malformed or stale signed document.",
	http.StatusUnauthorized:          "No staff token, or one that is unknown, expired or revoked.",
	http.StatusForbidden:             "The token's role may not use this route; a signature that does not verify or a key no member attested for the patient; or consent denies the request.",
	http.StatusNotFound:              "Nothing by that name here: no such record, no contract, no such entry.",
	http.StatusMethodNotAllowed:      "The path is served with other methods (Allow lists them).",
	http.StatusConflict:              "The request conflicts with what the federation holds, e.g. a contract older than the one in force.",
	http.StatusGone:                  "The record's payload is gone: erased at the patient's request, or lost with its source's disk.",
	http.StatusRequestEntityTooLarge: "The body is over the route's limit.",
	http.StatusTooManyRequests:       "Past the patient routes' rate limit (for all callers, per client address, per patient key): try again after Retry-After.",
	http.StatusInternalServerError:   "The centre failed; the diagnostics name an incident in its log.",
	http.StatusServiceUnavailable:    "The node cannot answer yet: not connected to enough of the federation, a peer down, or a record not final yet (Retry-After when it knows how long).",
	http.StatusGatewayTimeout:        "Other centres took too long to answer.",
}

// failureName is a status's component name: its text without spaces.
func failureName(status int) string {
	return strings.NewReplacer(" ", "", "-", "").Replace(http.StatusText(status))
}

func (s *Server) openAPI() ([]byte, error) {
	schemas := fhirSchemas()
	schemas["SignedConsentDocument"] = signedSchema("A consent document signed with the patient's key, in base64: a contract, a revocation, a token, a veto or an erasure.", consentLayouts)
	schemas["SignedPatientRequest"] = signedSchema("A patient's own request, view or erase, signed with their key, in base64.", requestLayouts)
	schemas["SignedDeviceRegistration"] = signedSchema("A device's registration, signed with the patient's key, in base64.", []string{"device-registration", "data-class"})
	schemas["SignedDeviceRevocation"] = signedSchema("A device's revocation, signed with the patient's key, in base64.", []string{"device-revocation"})
	schemas["SignedDeviceBatch"] = signedSchema("A batch of readings, signed with the device's own key, in base64.", []string{"device-batch", "reading"})
	responses := map[string]any{}
	for status, about := range failureAbout {
		r := map[string]any{"description": about,
			"content": map[string]any{fhirJSON: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/OperationOutcome"}}}}
		switch status {
		case http.StatusUnauthorized:
			r["headers"] = map[string]any{"WWW-Authenticate": header(`Bearer realm="medfed"`)}
		case http.StatusMethodNotAllowed:
			r["headers"] = map[string]any{"Allow": header("the methods the path is served with")}
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			r["headers"] = map[string]any{"Retry-After": header("seconds to wait before asking again")}
		}
		responses[failureName(status)] = r
	}
	doc := openAPIDoc{
		OpenAPI: "3.1.0",
		Info: map[string]any{
			"title":       "medfed centre API",
			"version":     "1",
			"summary":     "A centre of a medfed federation: its records, its staff and its patients",
			"description": apiAbout,
		},
		Servers: []map[string]any{{
			"url":         "{scheme}://{host}",
			"description": "A centre's API, at the address its operator gives (api.listen in its configuration)",
			"variables": map[string]any{
				"scheme": map[string]any{"enum": []string{"https", "http"}, "default": "https",
					"description": "https, with the centre's certificate: one its hospital's CA issued, or one it made itself (api.crt in its data directory, which clients pin). " +
						"http only where the centre serves plain HTTP on a loopback address (api.tls.plain)"},
				"host": map[string]any{"default": "127.0.0.1:8080", "description": "the centre's host and port"},
			},
		}},
		Paths: map[string]map[string]map[string]any{},
		Components: map[string]any{
			"schemas":   schemas,
			"responses": responses,
			"securitySchemes": map[string]any{"staffToken": map[string]any{"type": "http", "scheme": "bearer",
				"description": "A staff token the centre issued (medfed staff add) to one staff member in one role (" + strings.Join(Roles, ", ") +
					"); it expires (api.token-lifetime) unless renewed."}},
			"x-medfed-layouts": wireLayouts,
		},
	}
	tags := map[string]bool{}
	ids := map[string]bool{}
	for _, rt := range s.routes {
		op, err := operation(rt, schemas)
		if err != nil {
			return nil, err
		}
		id := op["operationId"].(string)
		if ids[id] {
			return nil, fmt.Errorf("openapi: two operations named %s", id)
		}
		ids[id] = true
		tags[op["tags"].([]string)[0]] = true
		if doc.Paths[rt.pattern] == nil {
			doc.Paths[rt.pattern] = map[string]map[string]any{}
		}
		doc.Paths[rt.pattern][strings.ToLower(rt.method)] = op
	}
	for _, t := range openAPITags {
		if tags[t.name] {
			doc.Tags = append(doc.Tags, map[string]string{"name": t.name, "description": t.about})
			delete(tags, t.name)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(tags)) { // a tag derived from a new route's path
		doc.Tags = append(doc.Tags, map[string]string{"name": t})
	}
	return json.MarshalIndent(doc, "", "  ")
}

func header(about string) map[string]any {
	return map[string]any{"description": about, "schema": map[string]any{"type": "string"}}
}

// operation is rt's Operation Object.
func operation(rt route, schemas map[string]any) (map[string]any, error) {
	id := rt.op
	if id == "" {
		id = operationID(rt)
	}
	tag := rt.tag
	if tag == "" {
		tag = pathTag(rt.pattern)
	}
	about := rt.about
	switch rt.auth {
	case authStaff:
		roles := "any staff role"
		if len(rt.roles) > 0 {
			roles = "the roles " + strings.Join(rt.roles, ", ")
		}
		about = strings.TrimSpace(about + "\n\nFor " + roles + ".")
	case authPatient:
		about = strings.TrimSpace(about + "\n\nNo token: the patient's signature in the body authenticates the request. Rate limited for all callers, per client address and per patient key.")
	}
	op := map[string]any{"summary": rt.summary, "operationId": id, "tags": []string{tag}}
	if about != "" {
		op["description"] = about
	}
	var params []map[string]any
	for _, p := range rt.params {
		schema, ok := paramSchemas[p.name]
		if !ok {
			schema = map[string]any{"type": "string"}
		}
		params = append(params, map[string]any{"name": p.name, "in": p.in, "required": p.in == "path", "description": p.about, "schema": schema})
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
			"description": "One JSON object of at most " + strconv.FormatInt(limit, 10) + " bytes; unknown fields are refused.",
			"content":     map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.body), schemas)}},
		}
	}
	status := rt.status
	if status == 0 {
		status = http.StatusOK
	}
	answer := map[string]any{"description": http.StatusText(status)}
	if r, ok := rt.answer.(fhirResource); ok {
		if _, ok := schemas[string(r)]; !ok {
			return nil, fmt.Errorf("openapi: %s %s answers a %s, which the document does not describe", rt.method, rt.pattern, r)
		}
		answer["description"] = "A FHIR R4 " + string(r)
		answer["content"] = map[string]any{fhirJSON: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + string(r)}}}
	} else if rt.answer != nil {
		answer["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.answer), schemas)}}
	}
	if status == http.StatusCreated && strings.HasPrefix(rt.pattern, "/v1/records") {
		answer["headers"] = map[string]any{"Location": header("the new record's path, /v1/records/{index}")}
	}
	responses := map[string]any{strconv.Itoa(status): answer}
	failures := []int{http.StatusMethodNotAllowed, http.StatusInternalServerError}
	switch rt.auth {
	case authStaff:
		op["security"] = []map[string][]string{{"staffToken": {}}}
		op["x-medfed-roles"] = rt.roles
		failures = append(failures, http.StatusUnauthorized, http.StatusForbidden)
	case authPatient:
		op["security"] = []map[string][]string{}
		op["x-medfed-auth"] = "the patient's signature in the body"
		failures = append(failures, http.StatusForbidden, http.StatusTooManyRequests)
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
		responses[strconv.Itoa(f)] = map[string]any{"$ref": "#/components/responses/" + failureName(f)}
	}
	op["responses"] = responses
	return op, nil
}

// operationID derives an operation's ID from its method and path.
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

// pathTag derives a tag from a path's first segment after its version.
func pathTag(pattern string) string {
	for _, part := range strings.Split(pattern, "/") {
		if part != "" && part != "v1" {
			return strings.Trim(part, "{}")
		}
	}
	return "health"
}

// signedSchema is the schema of a signed encoding in base64, with its
// layouts in Markdown.
func signedSchema(about string, layouts []string) map[string]any {
	return map[string]any{
		"type":             "string",
		"contentEncoding":  "base64",
		"contentMediaType": "application/octet-stream",
		"description":      about + " Its bytes are laid out as **" + layouts[0] + "** below says.\n\n" + layoutMarkdown(layouts),
		"x-medfed-layout":  layouts[0],
	}
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
		s := map[string]any{"type": "integer"}
		if t.Kind() == reflect.Int64 || t.Kind() == reflect.Uint64 {
			s["format"] = "int64"
		}
		if t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64 {
			s["minimum"] = 0
		}
		return s
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
			props[name] = fieldSchema(f, schemas)
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

// fieldSchema is a struct field's schema, with what its tags say.
func fieldSchema(f reflect.StructField, schemas map[string]any) map[string]any {
	if l := f.Tag.Get("layout"); l != "" {
		ref := map[string]any{"$ref": "#/components/schemas/" + l}
		if doc := f.Tag.Get("doc"); doc != "" {
			ref["description"] = doc
		}
		return ref
	}
	s := schemaOf(f.Type, schemas)
	values := s // where enum and pattern go: a list's elements
	if s["type"] == "array" {
		values = s["items"].(map[string]any)
	}
	if e := f.Tag.Get("enum"); e != "" {
		values["enum"] = strings.Split(e, ",")
	}
	if p := f.Tag.Get("pattern"); p != "" {
		values["pattern"] = p
	}
	if doc := f.Tag.Get("doc"); doc != "" {
		if _, ok := s["$ref"]; ok {
			s = map[string]any{"$ref": s["$ref"], "description": doc}
		} else {
			s["description"] = doc
		}
	}
	return s
}

// fhirSchemas are the FHIR R4 resources the routes answer with, as medfed
// writes them: the elements it fills in, each as FHIR R4 defines it
// (https://hl7.org/fhir/R4/), with the codes of its own systems. A
// resource may hold other elements FHIR defines.
func fhirSchemas() map[string]any {
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	list := func(items map[string]any) map[string]any { return map[string]any{"type": "array", "items": items} }
	str := func(about string) map[string]any { return map[string]any{"type": "string", "description": about} }
	enum := func(about string, values ...string) map[string]any {
		return map[string]any{"type": "string", "enum": values, "description": about}
	}
	object := func(about string, props map[string]any, required ...string) map[string]any {
		o := map[string]any{"type": "object", "description": about, "properties": props}
		if required != nil {
			o["required"] = required
		}
		return o
	}
	resource := func(name, about string, props map[string]any, required ...string) map[string]any {
		props["resourceType"] = map[string]any{"type": "string", "const": name}
		props["id"] = str("the resource's id")
		o := object(about, props, append([]string{"resourceType"}, required...)...)
		o["externalDocs"] = map[string]any{"url": "https://hl7.org/fhir/R4/" + strings.ToLower(name) + ".html", "description": "FHIR R4 " + name}
		return o
	}
	instant := map[string]any{"type": "string", "format": "date-time", "description": "an instant, RFC 3339"}
	return map[string]any{
		"FhirCoding": object("A code in a code system: medfed's own are URNs under urn:medfed (urn:medfed:data-class, urn:medfed:staff-role, urn:medfed:ledger-event, urn:medfed:action).",
			map[string]any{"system": str("the code system"), "code": str("the code"), "display": str("what it means, in words")}),
		"FhirCodeableConcept": object("Codes for one concept.", map[string]any{"coding": list(ref("FhirCoding")), "text": str("the concept in words")}),
		"FhirIdentifier": object("An identifier in a system: a patient's pseudonym is system urn:medfed:pseudonym, value 64 hex digits; a staff member's, urn:medfed:staff.",
			map[string]any{"system": str("the identifier's system"), "value": str("the identifier"), "assigner": ref("FhirReference")}),
		"FhirReference": object("A reference to another resource: a patient by their pseudonym's identifier, a centre (Organization) by its name in display.",
			map[string]any{"reference": str("a relative reference, Type/id"), "type": str("the resource type referred to"), "identifier": ref("FhirIdentifier"), "display": str("the referred resource in words")}),
		"FhirPeriod": object("A period of time.", map[string]any{"start": str("its start, a date or an instant"), "end": str("its end, a date or an instant")}),
		"FhirAttachment": object("A record's payload: in data when it was released, otherwise the title says why not.",
			map[string]any{"contentType": str("its media type"), "data": map[string]any{"type": "string", "contentEncoding": "base64", "description": "the payload"},
				"size": map[string]any{"type": "integer", "description": "the payload's bytes"}, "hash": str("the payload's SHA-1, base64"), "title": str("why there is no payload, or where it stays")}),
		"Patient": resource("Patient", "A patient as the federation knows them: by their pseudonym (the id), never a name or an identifier.",
			map[string]any{"identifier": list(ref("FhirIdentifier"))}),
		"DocumentReference": resource("DocumentReference", "A record on a centre's ledger: its data class (type), patient, date, author, custodian (the holding centre), what it replaces, and its payload when released.",
			map[string]any{
				"identifier": list(ref("FhirIdentifier")),
				"status":     enum("current: medfed replaces a record by an amendment, which relatesTo it", "current", "superseded", "entered-in-error"),
				"type":       ref("FhirCodeableConcept"),
				"subject":    ref("FhirReference"),
				"date":       instant,
				"author":     list(ref("FhirReference")),
				"custodian":  ref("FhirReference"),
				"relatesTo": list(object("A record this one replaces.", map[string]any{"code": enum("the relation", "replaces", "transforms", "signs", "appends"),
					"target": ref("FhirReference")}, "code", "target")),
				"context": object("Where the care happened.", map[string]any{"related": list(ref("FhirReference"))}),
				"content": list(object("The record's payload.", map[string]any{"attachment": ref("FhirAttachment")}, "attachment")),
			}, "status", "content"),
		"FhirConsentProvision": object("A provision of a consent: the root is the base policy (opt-in permits, opt-out denies), its provisions the exceptions, nested as deep as the contract's.",
			map[string]any{
				"type":       enum("what it does when it applies", "deny", "permit"),
				"actor":      list(object("Who it covers.", map[string]any{"role": ref("FhirCodeableConcept"), "reference": ref("FhirReference")}, "role", "reference")),
				"action":     list(ref("FhirCodeableConcept")),
				"purpose":    list(ref("FhirCoding")),
				"class":      list(ref("FhirCoding")),
				"period":     ref("FhirPeriod"),
				"dataPeriod": ref("FhirPeriod"),
				"provision":  list(ref("FhirConsentProvision")),
			}),
		"Consent": resource("Consent", "A patient's consent contract: its ID and version, status, policy (OPTIN or OPTOUT) and provisions.",
			map[string]any{
				"identifier": list(ref("FhirIdentifier")),
				"status":     enum("active: in force; inactive: withdrawn; entered-in-error: signed by a key reported compromised", "draft", "proposed", "active", "rejected", "inactive", "entered-in-error"),
				"scope":      ref("FhirCodeableConcept"),
				"category":   list(ref("FhirCodeableConcept")),
				"patient":    ref("FhirReference"),
				"dateTime":   instant,
				"policyRule": ref("FhirCodeableConcept"),
				"provision":  ref("FhirConsentProvision"),
			}, "status", "scope", "category"),
		"AuditEvent": resource("AuditEvent", "One event on a centre's ledger about a patient: an access, a lookup, a transfer, an erasure, a key's attestation, an emergency access.",
			map[string]any{
				"type":           ref("FhirCoding"),
				"subtype":        list(ref("FhirCoding")),
				"action":         enum("C: a copy, R: a read, U: a key changed, D: an erasure, E: an emergency access", "C", "R", "U", "D", "E"),
				"recorded":       instant,
				"outcome":        enum("0: permitted, 4: denied", "0", "4", "8", "12"),
				"purposeOfEvent": list(ref("FhirCodeableConcept")),
				"agent": list(object("Who asked: the centre, and the staff member (altId) and their role.", map[string]any{"requestor": map[string]any{"type": "boolean"},
					"who": ref("FhirReference"), "altId": str("the staff ID"), "role": list(ref("FhirCodeableConcept"))}, "requestor")),
				"source": object("The centre whose ledger holds the event, and the entry (site: its ledger and index).", map[string]any{"observer": ref("FhirReference"),
					"site": str("urn:medfed:ledger:<centre>#<index>")}, "observer"),
				"entity": list(object("The patient, and the event's details.", map[string]any{"what": ref("FhirReference"), "description": str("the details, key: value; …")})),
			}, "type", "recorded", "agent", "source"),
		"OperationOutcome": resource("OperationOutcome", "What went wrong (an error's answer), or what each centre asked did (in a Bundle).",
			map[string]any{"issue": list(object("One issue.", map[string]any{
				"severity": enum("how bad", "fatal", "error", "warning", "information"),
				"code": enum("the kind of issue (FHIR's issue types)", "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
					"forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
					"too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational"),
				"diagnostics": str("what happened, in words"),
			}, "severity", "code"))}, "issue"),
		"FhirQuantity": object("An amount.", map[string]any{"value": map[string]any{"type": "number", "description": "how much"}, "unit": str("of what, e.g. tablet")}),
		"MedicationRequest": resource("MedicationRequest", "A prescription (a record of class prescription at its issuing centre): the medication (dm+d or SNOMED CT), "+
			"the patient, the prescriber (requester, by staff ID), the dosage, the validity, the quantity and repeats, and its status as the issuing centre's ledger has it "+
			"(unknown at other centres). The issue's answer alone carries the token (identifier of system urn:medfed:prescription-token) and the over-prescription warnings (contained DetectedIssues).",
			map[string]any{
				"identifier":                list(ref("FhirIdentifier")),
				"status":                    enum("where it stands: stopped once expired, or cancelled after a supply", "active", "completed", "cancelled", "stopped", "unknown"),
				"statusReason":              ref("FhirCodeableConcept"),
				"intent":                    enum("always order", "order"),
				"medicationCodeableConcept": ref("FhirCodeableConcept"),
				"subject":                   ref("FhirReference"),
				"authoredOn":                instant,
				"requester":                 ref("FhirReference"),
				"dosageInstruction":         list(object("The dosage, as the prescriber wrote it.", map[string]any{"text": str("the instruction")})),
				"dispenseRequest": object("What may be dispensed.", map[string]any{"validityPeriod": ref("FhirPeriod"),
					"numberOfRepeatsAllowed": map[string]any{"type": "integer", "description": "supplies after the first"}, "quantity": ref("FhirQuantity")}),
				"contained":     list(map[string]any{"type": "object", "description": "a DetectedIssue (DUPTHPY): the same medication active from another prescriber"}),
				"detectedIssue": list(ref("FhirReference")),
			}, "status", "intent", "medicationCodeableConcept", "subject"),
		"MedicationDispense": resource("MedicationDispense", "One supply of a prescription, dispensed: the issuing centre's dispense entry (identifier), the medication, the patient, "+
			"the dispensing centre and pharmacist (performer), the prescription (authorizingPrescription), first fill or refill (type), the quantity and when it was handed over.",
			map[string]any{
				"identifier":                list(ref("FhirIdentifier")),
				"status":                    enum("always completed: a supply is dispensed once its entry is on the issuer's ledger", "completed"),
				"medicationCodeableConcept": ref("FhirCodeableConcept"),
				"subject":                   ref("FhirReference"),
				"performer":                 list(object("Who dispensed it.", map[string]any{"actor": ref("FhirReference")}, "actor")),
				"authorizingPrescription":   list(ref("FhirReference")),
				"type":                      ref("FhirCodeableConcept"),
				"quantity":                  ref("FhirQuantity"),
				"whenHandedOver":            instant,
				"dosageInstruction":         list(object("The dosage.", map[string]any{"text": str("the instruction")})),
			}, "status", "medicationCodeableConcept"),
		"Bundle": resource("Bundle", "A query's answer (searchset: the records released, and an OperationOutcome saying what each holder did), or a collection: the patient's view, the notifications.",
			map[string]any{
				"type":      enum("the kind of bundle", "searchset", "collection"),
				"timestamp": instant,
				"total":     map[string]any{"type": "integer", "description": "the records released (searchset)"},
				"entry": list(object("One resource.", map[string]any{
					"resource": map[string]any{"oneOf": []any{ref("DocumentReference"), ref("AuditEvent"), ref("OperationOutcome"), ref("Patient"), ref("Consent")},
						"discriminator": map[string]any{"propertyName": "resourceType"}},
					"search": object("Why it is in a searchset.", map[string]any{"mode": enum("match: a record; outcome: the OperationOutcome", "match", "include", "outcome")}),
				}, "resource")),
			}, "type"),
	}
}
