package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medfed/medfed/node/smart"
)

// Limits of the API. A request body above its route's limit is refused
// with 413 before it is parsed; the server's timeouts keep a slow client
// from holding a connection.
const (
	maxBody       = 64 << 10 // most routes: a few fields
	maxRecordBody = 24 << 20 // a 16 MiB payload in base64, and the fields around it
	maxHeader     = 16 << 10

	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second // the whole request, a record's payload included
	writeTimeout      = 90 * time.Second // an erasure waits up to 45 s for its holders
	idleTimeout       = 2 * time.Minute
	routeTimeout      = 60 * time.Second
	shutdownGrace     = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	Node  Centre
	Staff *StaffStore
	// SMART is the centre's SMART Backend Services authorization server:
	// the EHRs it registered get access tokens from it (/auth/token).
	// Without one, the FHIR routes take staff tokens only.
	SMART *smart.Server
	// Hosts says which request Hosts (host[:port]) the API answers to:
	// those its certificate covers (Certificate.Serves). A request naming
	// another is refused (421): the URLs the API writes (the token
	// endpoint an assertion's audience must name, every fullUrl) are
	// built from it. Nil: any, for plain HTTP on loopback and for tests.
	Hosts func(host string) bool
	// Pages are served beside the API, by path pattern: the people's
	// pages (node/web), behind the same host check and listener.
	Pages  map[string]http.Handler
	Logger *slog.Logger
}

// Server is a centre's HTTP API.
type Server struct {
	node   Centre
	staff  *StaffStore
	smart  *smart.Server     // nil: no system is registered
	hosts  func(string) bool // the Hosts a request may name; nil: any
	log    *slog.Logger
	routes []route
	mux    *http.ServeMux
	doc    []byte // /openapi.json

	inflight sync.WaitGroup // handlers running, waited for at shutdown
	limits   patientLimits

	fhirRoutes   []route         // the FHIR interface and SMART's endpoints, described by /fhir/metadata
	found        *foundDocuments // documents of other centres a search here found, for their reads
	transactions chan struct{}   // MHD transactions under way: each may hold tens of MiB
	tokenLimits  patientLimits   // the token endpoint's: no caller is known before it answers
}

// auth says how a route's caller proves who they are.
type auth int

const (
	authPublic  auth = iota // anyone who reaches the port: health, readiness, the OpenAPI document
	authStaff               // a bearer token of one of the route's roles
	authPatient             // the patient's signature inside the body
	authSystem              // a SMART Backend Services access token (node/smart), or a staff token, of one of the route's roles (any, when it names none)
)

// route is one operation: the table both the server and /openapi.json are
// built from.
type route struct {
	method, pattern string
	auth            auth
	roles           []string
	summary         string
	body            any   // the request body's type (a zero value), nil when there is none
	limit           int64 // the body's size limit; maxBody when zero
	status          int   // the success status
	answer          any   // a zero value of the answer's Go type, or a fhirResource
	params          []param
	handle          func(ctx context.Context, c *call) (any, error)

	// For the OpenAPI document: the operation's ID, a tag grouping it (see
	// openAPITags) and a description in Markdown, longer than the summary.
	// The ID and the tag are derived from the pattern when empty.
	op, tag, about string
}

// param is a path or query parameter, for the OpenAPI document.
type param struct {
	name, in, about string
}

// call is one request as a handler sees it.
type call struct {
	r     *http.Request
	w     http.ResponseWriter
	staff Staff // zero on public and patient routes
	route *route
	grant *smart.Grant // the access token's grant, when a system's token authenticated the call
}

// New returns the API of a running node.
func New(o Options) (*Server, error) {
	if o.Node == nil || o.Staff == nil {
		return nil, errors.New("api: a node and a staff store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{node: o.Node, staff: o.Staff, smart: o.SMART, hosts: o.Hosts, log: o.Logger.With("component", "api"), mux: http.NewServeMux(), limits: newPatientLimits(),
		found: newFoundDocuments(), transactions: make(chan struct{}, maxTransactions), tokenLimits: newPatientLimits()}
	s.routes = slices.Concat(s.table(), s.prescriptionRoutes(), s.deviceRoutes())
	s.fhirRoutes = slices.Concat(s.fhirTable(), s.medicationRoutes(), s.observationRoutes())
	byPath := map[string][]*route{}
	var order []string
	all := make([]*route, 0, len(s.routes)+len(s.fhirRoutes))
	for i := range s.routes {
		all = append(all, &s.routes[i])
	}
	for i := range s.fhirRoutes {
		all = append(all, &s.fhirRoutes[i])
	}
	for _, rt := range all {
		if _, ok := byPath[rt.pattern]; !ok {
			order = append(order, rt.pattern)
		}
		byPath[rt.pattern] = append(byPath[rt.pattern], rt)
	}
	// One handler per path, which dispatches on the method itself, so that
	// a wrong method gets an OperationOutcome like every other error.
	for _, p := range order {
		rts := byPath[p]
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			for _, rt := range rts {
				// HEAD is not GET here: a record's GET is an audited read.
				if rt.method == r.Method {
					s.serve(w, r, rt)
					return
				}
			}
			var allowed []string
			for _, rt := range rts {
				allowed = append(allowed, rt.method)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed on %s; use %s", r.Method, p, strings.Join(allowed, " or ")))
		})
	}
	for pattern, h := range o.Pages {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			s.inflight.Add(1)
			defer s.inflight.Done()
			h.ServeHTTP(w, r)
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, fhirBase+"/") {
			s.fail(w, r, http.StatusNotFound, errors.New("no such FHIR resource or interaction here; see /fhir/metadata"))
			return
		}
		s.fail(w, r, http.StatusNotFound, errors.New("no such route; see /openapi.json"))
	})
	doc, err := s.openAPI()
	if err != nil {
		return nil, err
	}
	s.doc = doc
	return s, nil
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.route) }

// Operator returns a handler of the API's read-only routes for the
// centre's administrator, for the admin socket (node/admin): holding the
// socket is the credential, so a GET route open to the admin role is
// served without a token, as to a staff member in that role. Nothing that
// writes, and nothing the admin role may not read, is served.
func (s *Server) Operator() http.Handler {
	mux := http.NewServeMux()
	for i := range s.routes {
		rt := &s.routes[i]
		if rt.method != http.MethodGet || rt.auth != authStaff || !slices.Contains(rt.roles, "admin") {
			continue
		}
		mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) { s.answer(w, r, rt, operator) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, errors.New("no such operation on the admin socket"))
	})
	return mux
}

// operator is who the admin socket's caller is to the API's routes.
var operator = Staff{Role: "admin"}

// route refuses a path that is not in its clean form with an
// OperationOutcome, where the mux would redirect (a POST redirected turns
// into a GET), then routes. The FHIR base is served with its slash too.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if s.hosts != nil && !s.hosts(r.Host) {
		s.fail(w, r, http.StatusMisdirectedRequest, errors.New("this centre's API does not answer to the host the request names: use a name its certificate covers"))
		return
	}
	if r.URL.Path == fhirBase+"/" {
		// FHIR clients post a transaction to the base with its slash.
		r.URL.Path = fhirBase
	}
	// A page's path ends in a slash ("/portal/"): clean but for it.
	if p := r.URL.Path; p != "/" && path.Clean(p) != p && path.Clean(p)+"/" != p {
		s.fail(w, r, http.StatusNotFound, errors.New("no such route (the path is not in its clean form); see /openapi.json"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers on ln until ctx ends, then shuts down gracefully:
// requests under way get shutdownGrace to finish; then their contexts are
// cancelled and Serve waits for their handlers, so that the node is never
// closed under a request.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := ServeUntil(ctx, ln, srv, shutdownGrace, s.inflight.Wait); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// serve authenticates, runs and answers one request of the API's own
// listener, counted until it is answered.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	s.answer(w, r, rt, Staff{})
}

// answer runs and answers one request, for a caller known already (as)
// or, when as is zero, authenticated here as the route says, and logs it
// by its route's pattern: never the path's values, the query or the body.
// Whoever serves it counts it in flight.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, rt *route, as Staff) {
	start := time.Now()
	rec := &StatusWriter{ResponseWriter: w}
	c := &call{r: r, w: rec, route: rt, staff: as}
	defer func() {
		attrs := []any{"method", r.Method, "route", rt.pattern, "status", rec.Status, "ms", float64(time.Since(start).Microseconds()) / 1000}
		if c.staff.ID != "" {
			attrs = append(attrs, "staff", c.staff.ID, "role", c.staff.Role)
		}
		if c.grant != nil { // the system that acted (for the person above, if any)
			attrs = append(attrs, "client", c.grant.Client)
		}
		s.log.Info("request", attrs...)
	}()
	if (rt.auth == authStaff || rt.auth == authSystem) && as == (Staff{}) {
		st, status, err := s.authenticate(r, rt, c)
		c.staff = st // logged on a refusal too: who tried
		if err != nil {
			if status == http.StatusUnauthorized {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="medfed"`)
			}
			s.fail(rec, r, status, err)
			return
		}
	}
	if rt.auth == authPatient {
		if err := s.limits.admit(r); err != nil {
			rec.Header().Set("Retry-After", "1")
			s.fail(rec, r, StatusOf(err), err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), routeTimeout)
	defer cancel()
	v, err := rt.handle(ctx, c)
	if err != nil {
		s.fail(rec, r, StatusOf(err), err)
		return
	}
	if v == nil {
		return // the handler answered itself
	}
	status := rt.status
	if status == 0 {
		status = http.StatusOK
	}
	WriteJSON(rec, status, v)
}

// authenticate checks the call's bearer token: a staff token, or on a
// system route a SMART access token too, whose grant goes into c.
func (s *Server) authenticate(r *http.Request, rt *route, c *call) (Staff, int, error) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" { // RFC 7235: the scheme is case-insensitive
		if rt.auth == authSystem {
			return Staff{}, http.StatusUnauthorized, errors.New("this route needs an access token (SMART Backend Services: see /.well-known/smart-configuration) or a staff bearer token")
		}
		return Staff{}, http.StatusUnauthorized, errors.New("this route needs a staff bearer token (Authorization: Bearer …; medfed staff add issues one)")
	}
	token = strings.TrimSpace(token)
	if rt.auth == authSystem && strings.HasPrefix(token, smart.TokenPrefix) {
		return s.authenticateSystem(r, rt, c, token)
	}
	st, err := s.staff.Authenticate(r.Context(), token)
	if errors.Is(err, ErrUnknownStaff) {
		return Staff{}, http.StatusUnauthorized, err
	}
	if errors.Is(err, ErrExpiredStaff) {
		return st, http.StatusUnauthorized, err // logged with who tried
	}
	if errors.Is(err, ErrStaffTampered) {
		// The centre's fault, and nothing for the caller to read.
		return Staff{}, http.StatusInternalServerError, fmt.Errorf("checking the token: %w", err)
	}
	if err != nil {
		return Staff{}, http.StatusServiceUnavailable, fmt.Errorf("checking the token: %w", err)
	}
	if (rt.auth == authStaff || len(rt.roles) > 0) && !slices.Contains(rt.roles, st.Role) {
		return st, http.StatusForbidden, fmt.Errorf("%s %s is for the roles %s; this token is a %s's", rt.method, rt.pattern, strings.Join(rt.roles, ", "), st.Role)
	}
	return st, 0, nil
}

// decode reads the request's JSON body into v within the route's limit.
func (c *call) decode(v any) error {
	limit := c.route.limit
	if limit == 0 {
		limit = maxBody
	}
	return DecodeJSON(c.w, c.r, v, limit)
}

// StatusWriter remembers the status written, for an access log (the
// API's, and the pages').
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

func (w *StatusWriter) WriteHeader(status int) {
	if w.Status == 0 {
		w.Status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// fail answers with an OperationOutcome. Errors from the node never carry
// an identifier or a payload, so their text is safe to return; a 500's
// is logged too.
//
// A 5xx answer carries an incident ID, which the log line of the failure
// names: the caller can quote it, and the operator finds what happened. A
// 503 keeps its own words too (a peer down, a node not ready: they say
// what to wait for); a 500 or a 504 gives nothing of the centre's
// internals to a caller who may not even be authenticated.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg := err.Error()
	if status >= 500 {
		id := incidentID()
		s.log.Warn("request failed", "method", r.Method, "route", r.Pattern, "status", status, "incident", id, "err", err)
		if status == http.StatusServiceUnavailable {
			msg += " (incident " + id + ")"
		} else {
			msg = "the centre could not answer; incident " + id + " in its log"
		}
	}
	WriteJSON(w, status, outcome(status, msg))
}

// incidentID names one failure: random, so that it tells a caller nothing.
func incidentID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
