package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
)

// What every HTTP front door of a centre shares (this API and the admin
// socket, node/admin): one mapping of error kinds to statuses, one JSON
// decoder with its limits, one writer, one error answer.

// errBadRequest marks a request the API itself refuses before the node
// sees it.
var errBadRequest = node.E(node.Invalid, "bad request")

// errTooLarge marks a body over its route's limit: invalid, and 413.
var errTooLarge = node.E(node.Invalid, "request body too large")

// errStatus carries a status of its own (410 for an erased payload, 403
// for a query's denial).
type errStatus struct {
	status int
	err    error
}

func (e errStatus) Error() string { return e.err.Error() }
func (e errStatus) Unwrap() error { return e.err }

// kindStatus is the one table from an error's kind to an HTTP status.
var kindStatus = map[node.Kind]int{
	node.Invalid:         http.StatusBadRequest,
	node.Unauthenticated: http.StatusUnauthorized,
	node.Forbidden:       http.StatusForbidden,
	node.NotFound:        http.StatusNotFound,
	node.Conflict:        http.StatusConflict,
	node.Unavailable:     http.StatusServiceUnavailable,
	node.Internal:        http.StatusInternalServerError,
}

// StatusOf is the HTTP status of an error: by its kind, but for a status
// a route gave it, a body too large (413), and a deadline passed (504)
// where the error has no kind.
func StatusOf(err error) int {
	var es errStatus
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &es):
		return es.status
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case node.KindOf(err) == node.Internal && errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return kindStatus[node.KindOf(err)]
}

// issueKind is the kind an OperationOutcome's issue code stands for: the
// inverse of outcome's choice, so that a kind crosses HTTP and back.
var issueKind = map[fhir.IssueType]node.Kind{
	fhir.IssueTypeInvalid:      node.Invalid,
	fhir.IssueTypeTooLong:      node.Invalid,
	fhir.IssueTypeNotSupported: node.Invalid,
	fhir.IssueTypeLogin:        node.Unauthenticated,
	fhir.IssueTypeForbidden:    node.Forbidden,
	fhir.IssueTypeNotFound:     node.NotFound,
	fhir.IssueTypeConflict:     node.Conflict,
	fhir.IssueTypeTransient:    node.Unavailable,
	fhir.IssueTypeThrottled:    node.Unavailable,
	fhir.IssueTypeTimeout:      node.Unavailable,
}

// ErrorOf turns an error answer (an OperationOutcome) back into an error
// of the kind the server's error had, with its text; an answer that is
// not an OperationOutcome gets the kind of its status.
func ErrorOf(status int, body []byte) error {
	var oo fhir.OperationOutcome
	if err := json.Unmarshal(body, &oo); err == nil && len(oo.Issue) > 0 && oo.Issue[0].Diagnostics != nil {
		return node.E(issueKind[oo.Issue[0].Code], *oo.Issue[0].Diagnostics)
	}
	for k, s := range kindStatus {
		if s == status {
			return node.E(k, fmt.Sprintf("answered %d %s", status, http.StatusText(status)))
		}
	}
	return node.E(node.Internal, fmt.Sprintf("answered %d %s", status, http.StatusText(status)))
}

// DecodeJSON reads r's JSON body into v: one object, no unknown fields,
// nothing after it, within limit bytes. Its errors are Invalid (too large:
// 413).
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, fhirJSON) &&
		!strings.HasPrefix(ct, "application/x-www-form-urlencoded") { // curl -d's default
		return fmt.Errorf("%w: the body must be JSON, not %s", errBadRequest, ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return fmt.Errorf("%w: at most %d bytes", errTooLarge, limit)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the body is empty; it must be a JSON object", errBadRequest)
		}
		return fmt.Errorf("%w: the body is not the JSON object expected: %v", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return fmt.Errorf("%w: at most %d bytes", errTooLarge, limit)
		}
		return fmt.Errorf("%w: the body holds more than one JSON value", errBadRequest)
	}
	return nil
}

// ReadBody reads r's body of at most limit bytes as it is (a signed
// document, a join request): what is wrong with it is for its parser.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, fmt.Errorf("%w: at most %d bytes", errTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
	}
	return b, nil
}

// WriteJSON encodes v before it writes anything, so that an encoding
// failure is a clean 500; a failed write means the client has gone.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(outcome(http.StatusInternalServerError, "encoding the answer: "+err.Error()))
		status = http.StatusInternalServerError
	}
	ct := "application/json"
	if isResource(b) {
		ct = fhirJSON
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError answers err as an OperationOutcome with its status. Errors
// of medfed never carry an identifier or a payload, so their text is safe
// to return.
func WriteError(w http.ResponseWriter, err error) {
	status := StatusOf(err)
	WriteJSON(w, status, outcome(status, err.Error()))
}

// ParseAsker parses who asks and why, as a request names them (a role, a
// staff ID in hex, a purpose, an emergency reason); staff and reason are
// optional. The error names every field that is wrong.
func ParseAsker(role, staff, purpose, reason string) (centre.Asker, error) {
	var a centre.Asker
	var errs []error
	var err error
	if a.Role, err = consent.ParseRole(role); err != nil {
		errs = append(errs, err)
	}
	if staff != "" {
		if a.Staff, err = consent.ParseStaffID(staff); err != nil {
			errs = append(errs, err)
		}
	}
	if a.Purpose, err = consent.ParsePurpose(purpose); err != nil {
		errs = append(errs, err)
	}
	if reason != "" {
		if a.Reason, err = consent.ParseReason(reason); err != nil {
			errs = append(errs, err)
		}
	}
	return a, errors.Join(errs...)
}

// ServeUntil serves srv on ln until ctx ends, then shuts it down
// gracefully: requests under way get grace to finish; then their contexts
// are cancelled (ServeUntil sets srv.BaseContext) and the server closed,
// and wait, when not nil, waits for their handlers, so that what they
// use is never closed under them.
func ServeUntil(ctx context.Context, ln net.Listener, srv *http.Server, grace time.Duration, wait func()) error {
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(shut)
	if errors.Is(err, context.DeadlineExceeded) {
		cancelRequests()
		err = srv.Close()
	}
	if wait != nil {
		wait()
	}
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
