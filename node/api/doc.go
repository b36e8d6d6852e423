// Package api is a centre's HTTP API for its EHR, its staff and its
// patients: JSON over HTTP on the address in the config's api.listen.
//
// Staff authenticate with bearer tokens that the centre issues (medfed
// staff add); only a token's SHA-256 is kept, in staff.db in the data
// directory, and every route names the roles it serves. A patient's own
// requests (consent documents, the audit view, erasure) carry no bearer
// token: they are authenticated by the patient's signature, which the
// node checks against the key a member attested.
//
// Answers take FHIR R4 shapes where a resource fits: Patient,
// DocumentReference, Consent, AuditEvent, Bundle, and every error is an
// OperationOutcome. /openapi.json (OpenAPI 3.1) describes every route of
// the table the server routes with, so that it cannot drift from the
// server: tagged, with the patterns and codes of the bodies' fields (their
// struct tags) and the byte layout of what a patient's app signs
// (layout.go), so that a third party can build a patient's app from it
// alone. A test decodes documents the Go code signs by that layout, and
// another lints the document with @redocly/cli. /healthz and /readyz are
// for the centre's orchestration and carry nothing about patients.
//
// Nothing a request carries that names a patient (an identifier, a
// payload) reaches a log: the access log names the route's pattern, the
// status, the time taken and the staff ID, never the path's values.
package api
