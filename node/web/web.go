package web

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/limit"
)

// Centre is what the pages need of a running node.
type Centre interface {
	Name() string
	Federation() string
	Members() []federation.Member
	Classes() []string
	PseudonymsOf(ctx context.Context, identifiers []string) ([]ledger.Pseudonym, error)
	Attest(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, compromised bool, staff ledger.StaffID) (centre.ConsentDelivery, error)
	Approve(ctx context.Context, p ledger.Pseudonym, att [32]byte, staff ledger.StaffID) (centre.ConsentDelivery, error)
	Delegate(ctx context.Context, d consent.Delegation) (consent.ID, [32]byte, centre.ConsentDelivery, error)
	SubmitConsent(ctx context.Context, doc []byte) (centre.ConsentDelivery, error)
	ShowConsent(ctx context.Context, p ledger.Pseudonym) (centre.ConsentView, error)
	PatientRelay(ctx context.Context, request []byte) (centre.PatientResult, error)
	AddNote(ctx context.Context, r centre.NoteRequest) (centre.ReadingsResult, error)
	RegisterDevice(ctx context.Context, statement []byte) (centre.DeviceView, error)
	RevokeDevice(ctx context.Context, statement []byte) (centre.DeviceView, error)
	QueryRecords(ctx context.Context, r centre.QueryRequest) (centre.QueryResult, error)
	StopEmergency(ctx context.Context, p ledger.Pseudonym, staff ledger.StaffID) (centre.EmergencyStops, error)
	Notices(after int64) []centre.Notice
}

var _ Centre = (*centre.Node)(nil)

// Staff authenticates staff: their token at sign-in, their role again on
// each request (a revoked credential ends its sessions).
type Staff interface {
	Authenticate(ctx context.Context, token string) (api.Staff, error)
	Role(ctx context.Context, id string) (string, error)
}

// Options configure a Server.
type Options struct {
	Node   Centre
	Staff  Staff
	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the portal, the console and their assets.
type Server struct {
	node     Centre
	staff    Staff
	log      *slog.Logger
	now      func() time.Time
	pages    *template.Template
	assets   http.Handler
	sessions *sessions
	enrol    *enrolments
	// What one address may post (the portal's routes are open to anyone
	// who reaches the port), and what one patient key may have relayed,
	// as the API bounds its patient routes.
	perAddress, perKey *limit.Keyed
}

// The pages' rate limits.
const (
	addressRate  = 20 // posts a second per client address
	keyRate      = 1  // signed submissions a second per patient key
	keyBurst     = 10
	maxAddresses = 65536 // addresses and keys tracked at once
)

// clientAddress is the host of r's client address.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

//go:embed assets
var files embed.FS

// Paths the server answers under, for the API to mount.
var Paths = []string{"/portal/", "/console/", "/assets/"}

// New returns the pages of a running node.
func New(o Options) (*Server, error) {
	if o.Node == nil || o.Staff == nil {
		return nil, errors.New("web: a node and a staff store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(files, "assets/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	static, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	return &Server{
		node: o.Node, staff: o.Staff, log: o.Logger.With("component", "web"), now: o.Now, pages: pages,
		assets:   http.StripPrefix("/assets/", assetServer(static)),
		sessions: newSessions(o.Now), enrol: newEnrolments(o.Now),
		perAddress: limit.New(addressRate, 2*addressRate, maxAddresses), perKey: limit.New(keyRate, keyBurst, maxAddresses),
	}, nil
}

// The Content-Security-Policy of every answer: no inline script or
// style, nothing from another origin, forms posted here only, no frames.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// ServeHTTP routes a request and sets the headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on a form's POST, which sameOrigin must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	start := s.now()
	rec := &api.StatusWriter{ResponseWriter: w}
	defer func() {
		// The path's values never: a pseudonym or a code may be in it.
		s.log.Info("page", "method", r.Method, "route", route(r.URL.Path), "status", rec.Status, "ms", float64(s.now().Sub(start).Microseconds())/1000)
	}()
	if strings.HasPrefix(r.URL.Path, "/assets/") {
		h.Set("Cache-Control", "no-cache")
		s.assets.ServeHTTP(rec, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Another origin's page may not post here, with or without the
		// cookie (SameSite keeps it, this keeps the request).
		if err := sameOrigin(r); err != nil {
			s.problem(rec, r, http.StatusForbidden, err)
			return
		}
		if !s.perAddress.Allow(clientAddress(r)) {
			rec.Header().Set("Retry-After", "1")
			s.problem(rec, r, http.StatusTooManyRequests, errors.New("too many requests from this address: wait a moment"))
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, maxPortalBody)
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/portal/"):
		s.portal(rec, r)
	case strings.HasPrefix(r.URL.Path, "/console/"):
		s.console(rec, r)
	default:
		s.problem(rec, r, http.StatusNotFound, errors.New("no such page"))
	}
}

// route names a path in the log by its page, never its values.
func route(p string) string {
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 3)
	if len(parts) > 2 {
		parts = parts[:2]
	}
	return "/" + strings.Join(parts, "/")
}

// sameOrigin refuses a request that changes something unless the
// browser says it comes from this origin (Origin, or Sec-Fetch-Site:
// same-origin, or none for what the person did in the browser itself).
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("a request from another site (%s) is refused", site)
	}
	o := r.Header.Get("Origin")
	if o == "" {
		if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
			return nil
		}
		return errors.New("a request without its origin is refused")
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme != "https" || u.Host != r.Host {
		return errors.New("a request from another origin is refused")
	}
	return nil
}

// assetServer serves the embedded assets, their types named.
func assetServer(static fs.FS) http.Handler {
	fsrv := http.FileServer(http.FS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") || r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // templates are pages, not files
			return
		}
		fsrv.ServeHTTP(w, r)
	})
}

// problem answers an error: JSON to the portal's script, a page to a
// person.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		// What failed inside stays in the log; the caller gets an
		// incident to quote.
		incident := random(8)
		s.log.Warn("page failed", "route", route(r.URL.Path), "status", code, "incident", incident, "error", err)
		err = fmt.Errorf("the centre could not answer (incident %s, in its log)", incident)
	}
	if wantsJSON(r) {
		api.WriteJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	s.render(w, "error.html", page{Title: http.StatusText(code), Centre: s.node.Name(), Error: err.Error(), Status: code})
}

func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// page is what every template gets.
type page struct {
	Title   string
	Centre  string
	Error   string
	Notice  string
	Status  int
	Session *session
	CSRF    string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, name string, p page) {
	if p.Session != nil {
		p.CSRF = p.Session.csrf
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.pages.ExecuteTemplate(w, name, p); err != nil {
		s.log.Warn("page failed to render", "page", name, "error", err)
	}
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
}
