package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Limits of the socket's requests and answers.
const (
	maxAnswer        = 256 << 20 // a query's records, payloads in base64
	maxRecordBody    = 24 << 20  // a 16 MiB payload in base64, and the fields around it
	maxBody          = 256 << 10
	maxPseudonymBody = 4 << 20 // MaxPseudonymRequest identifiers of up to 512 bytes and more
	maxPatientBody   = 1 << 10 // a patient's signed request

	readHeaderTimeout = 5 * time.Second
	shutdownGrace     = 5 * time.Second
)

// Server answers the admin socket's requests with the operations of a
// running centre.
type Server struct {
	node     *centre.Node
	log      *slog.Logger
	mux      *http.ServeMux
	inflight sync.WaitGroup // requests being answered, waited for at shutdown
}

// New returns the admin socket's server for node n. Besides its own
// operations it serves reads, the HTTP API's read-only routes for the
// centre's administrator (api.Server.Operator): a read added to the API
// is then on the socket too, for the commands.
func New(n *centre.Node, reads http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{node: n, log: log.With("component", "admin"), mux: http.NewServeMux()}
	s.mux.Handle("/", reads)
	for _, rt := range s.routes() {
		s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			v, err := rt.handle(w, r)
			if err != nil {
				api.WriteError(w, err)
				return
			}
			api.WriteJSON(w, http.StatusOK, v)
		})
	}
	return s
}

// route is one operation of the socket.
type route struct {
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request) (any, error)
}

// jsonRoute is a route whose body is a JSON object of type In, decoded
// within limit bytes before op sees it.
func jsonRoute[In, Out any](pattern string, limit int64, op func(ctx context.Context, in In) (Out, error)) route {
	return route{pattern, func(w http.ResponseWriter, r *http.Request) (any, error) {
		var in In
		if err := api.DecodeJSON(w, r, &in, limit); err != nil {
			return nil, err
		}
		return op(r.Context(), in)
	}}
}

// bodyRoute is a route whose body is taken as it is (a signed document),
// within limit bytes, for op to parse.
func bodyRoute[Out any](pattern string, limit int64, op func(ctx context.Context, body []byte) (Out, error)) route {
	return route{pattern, func(w http.ResponseWriter, r *http.Request) (any, error) {
		b, err := api.ReadBody(w, r, limit)
		if err != nil {
			return nil, err
		}
		return op(r.Context(), b)
	}}
}

// queryRoute is a route that takes one query parameter.
func queryRoute[Out any](pattern, param string, op func(ctx context.Context, value string) (Out, error)) route {
	return route{pattern, func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return op(r.Context(), r.URL.Query().Get(param))
	}}
}

func (s *Server) routes() []route {
	n := s.node
	return []route{
		bodyRoute("POST /v1/federation/approve", maxBody, func(ctx context.Context, req []byte) (api.Progress, error) {
			p, err := n.Membership.Approve(ctx, req)
			return api.ProgressOf(p), err
		}),
		queryRoute("POST /v1/federation/remove", "centre", func(ctx context.Context, centre string) (api.Progress, error) {
			p, err := n.Membership.Remove(ctx, centre)
			return api.ProgressOf(p), err
		}),
		queryRoute("POST /v1/federation/approve-draft", "draft", func(ctx context.Context, draft string) (api.Progress, error) {
			p, err := n.Membership.ApproveDraft(ctx, draft)
			return api.ProgressOf(p), err
		}),
		jsonRoute("POST /v1/federation/keygen", maxBody, func(ctx context.Context, req KeyCeremonyRequest) (KeyCeremonyResponse, error) {
			k, err := req.parse()
			if err != nil {
				return KeyCeremonyResponse{}, err
			}
			res, err := n.GenerateKey(ctx, k)
			return keyCeremonyResponse(res), err
		}),
		jsonRoute("POST /v1/federation/reshare", maxBody, func(ctx context.Context, req KeyCeremonyRequest) (KeyCeremonyResponse, error) {
			k, err := req.parse()
			if err != nil {
				return KeyCeremonyResponse{}, err
			}
			res, err := n.ReshareKey(ctx, k)
			return keyCeremonyResponse(res), err
		}),
		jsonRoute("POST /v1/federation/council", maxBody, func(ctx context.Context, req CouncilRequest) (api.Progress, error) {
			p, err := n.Membership.SetCouncil(ctx, req.Council)
			return api.ProgressOf(p), err
		}),
		jsonRoute("POST /v1/federation/block", maxBody, func(ctx context.Context, req BlockRequest) (BlockResponse, error) {
			d, err := time.ParseDuration(req.For)
			if err != nil {
				return BlockResponse{}, fmt.Errorf("%w: block for %q: %v", node.ErrInvalid, req.For, err)
			}
			until, err := n.Block(req.Centre, d)
			return BlockResponse{Centre: req.Centre, Until: until}, err
		}),
		queryRoute("POST /v1/federation/unblock", "centre", func(ctx context.Context, centre string) (BlockResponse, error) {
			return BlockResponse{Centre: centre}, n.Unblock(centre)
		}),
		jsonRoute("POST /v1/pseudonyms", maxPseudonymBody, func(ctx context.Context, req PseudonymRequest) (PseudonymResponse, error) {
			ps, err := n.PseudonymsOf(ctx, req.Identifiers)
			out := PseudonymResponse{Pseudonyms: make([]string, len(ps))}
			for i, p := range ps {
				out.Pseudonyms[i] = p.String()
			}
			return out, err
		}),
		{"GET /v1/directory", func(_ http.ResponseWriter, r *http.Request) (any, error) {
			st, err := n.Directory.Status(r.Context())
			return api.DirectoryStatusOf(st), err
		}},
		{"POST /v1/directory/check", func(_ http.ResponseWriter, r *http.Request) (any, error) {
			c, err := n.CheckDirectory(r.Context())
			return api.DirectoryCheckOf(c), err
		}},
		queryRoute("GET /v1/directory/lookup", "pseudonym", func(ctx context.Context, hex string) (api.DirectoryLookup, error) {
			p, err := parsePseudonym(hex)
			if err != nil {
				return api.DirectoryLookup{}, err
			}
			// The operator's question is audited like staff's.
			if err := n.AuditLookup(ctx, p, centre.Asker{Role: consent.Admin}); err != nil {
				return api.DirectoryLookup{}, err
			}
			l, err := n.Lookup(ctx, p)
			return api.DirectoryLookupOf(l), err
		}),
		jsonRoute("POST /v1/records", maxRecordBody, func(ctx context.Context, req RecordRequest) (RecordResponse, error) {
			r, err := req.parse()
			if err != nil {
				return RecordResponse{}, err
			}
			res, err := n.AddRecord(ctx, r)
			return RecordResponse{Pseudonym: res.Pseudonym.String(), Index: res.Index, AnnounceError: api.ErrorText(res.Announce)}, err
		}),
		jsonRoute("POST /v1/backup", maxBody, func(ctx context.Context, req BackupRequest) (centre.Manifest, error) {
			if !filepath.IsAbs(req.Dir) {
				return centre.Manifest{}, fmt.Errorf("%w: a backup's directory is an absolute path, not %q", node.ErrInvalid, req.Dir)
			}
			return n.Centre.Backup(ctx, req.Dir)
		}),
		jsonRoute("POST /v1/query", maxBody, func(ctx context.Context, req QueryRequest) (api.QueryResult, error) {
			q, err := req.parse()
			if err != nil {
				return api.QueryResult{}, err
			}
			res, err := n.QueryRecords(ctx, q)
			return api.QueryResultOf(res), err
		}),
		jsonRoute("POST /v1/transfer", maxBody, func(ctx context.Context, req TransferRequest) (api.TransferResult, error) {
			t, err := req.parse()
			if err != nil {
				return api.TransferResult{}, err
			}
			res, err := n.Transfer(ctx, t)
			return api.TransferResultOf(res), err
		}),
		bodyRoute("POST /v1/patient", maxPatientBody, func(ctx context.Context, req []byte) (api.PatientResult, error) {
			res, err := n.PatientRelay(ctx, req)
			return api.PatientResultOf(res), err
		}),
		bodyRoute("POST /v1/consent", consent.MaxDocument, func(ctx context.Context, doc []byte) (api.ConsentDelivery, error) {
			d, err := n.SubmitConsent(ctx, doc)
			return api.ConsentDeliveryOf(d), err
		}),
		jsonRoute("POST /v1/consent/attest", maxBody, func(ctx context.Context, req AttestRequest) (api.ConsentDelivery, error) {
			p, err := parsePseudonym(req.Pseudonym)
			if err != nil {
				return api.ConsentDelivery{}, err
			}
			k, err := consent.ParsePublicKey(req.Key)
			if err != nil {
				return api.ConsentDelivery{}, fmt.Errorf("key: %w", err)
			}
			d, err := n.Attest(ctx, p, k, req.Compromised, ledger.StaffID{}) // the operator: no staff member
			return api.ConsentDeliveryOf(d), err
		}),
		jsonRoute("POST /v1/emergency/stop", maxBody, func(ctx context.Context, req StopRequest) (api.EmergencyStops, error) {
			p, staff, err := req.parse()
			if err != nil {
				return api.EmergencyStops{}, err
			}
			res, err := n.StopEmergency(ctx, p, staff)
			return api.EmergencyStopsOf(res), err
		}),
		queryRoute("GET /v1/consent", "pseudonym", func(ctx context.Context, hex string) (api.ConsentView, error) {
			p, err := parsePseudonym(hex)
			if err != nil {
				return api.ConsentView{}, err
			}
			v, err := n.ShowConsent(ctx, p)
			return api.ConsentViewOf(v), err
		}),
		jsonRoute("POST /v1/prescriptions", maxBody, func(ctx context.Context, req IssueRequest) (api.PrescriptionIssued, error) {
			r, err := req.parse()
			if err != nil {
				return api.PrescriptionIssued{}, err
			}
			res, err := n.IssuePrescription(ctx, r)
			if err != nil {
				return api.PrescriptionIssued{}, err
			}
			return api.PrescriptionIssuedOf(n.Centre.Name, res), nil
		}),
		jsonRoute("POST /v1/prescriptions/dispense", maxBody, func(ctx context.Context, req DispenseRequest) (api.PrescriptionDispensed, error) {
			r, err := req.parse()
			if err != nil {
				return api.PrescriptionDispensed{}, err
			}
			res, err := n.ClaimDispense(ctx, r)
			return api.PrescriptionDispensedOf(res), err
		}),
		jsonRoute("POST /v1/prescriptions/cancel", maxBody, func(ctx context.Context, req CancelRequest) (CancelResponse, error) {
			staff, err := consent.ParseStaffID(req.Prescriber)
			if err != nil {
				return CancelResponse{}, fmt.Errorf("prescriber: %w", err)
			}
			reason, err := ledger.ParseCancelReason(req.Reason)
			if err != nil {
				return CancelResponse{}, err
			}
			at, err := n.CancelPrescription(ctx, req.Index, staff, reason)
			if err != nil {
				return CancelResponse{}, err
			}
			v, err := n.PrescriptionStatus(ctx, req.Index)
			return CancelResponse{Index: at, Prescription: api.PrescriptionItemOf(v)}, err
		}),
		jsonRoute("POST /v1/prescriptions/show", maxBody, func(ctx context.Context, req PrescriptionsRequest) (api.PrescriptionList, error) {
			r, err := req.parse()
			if err != nil {
				return api.PrescriptionList{}, err
			}
			res, err := n.Prescriptions(ctx, r)
			return api.PrescriptionListOf(res), err
		}),
		bodyRoute("POST /v1/devices", maxPatientBody*4, func(ctx context.Context, statement []byte) (api.DeviceRegistration, error) {
			v, err := n.RegisterDevice(ctx, statement)
			return api.DeviceRegistrationOf(v), err
		}),
		bodyRoute("POST /v1/devices/revoke", maxPatientBody*4, func(ctx context.Context, statement []byte) (api.DeviceRegistration, error) {
			v, err := n.RevokeDevice(ctx, statement)
			return api.DeviceRegistrationOf(v), err
		}),
		jsonRoute("POST /v1/consent/decide", maxBody, func(ctx context.Context, req DecideRequest) (api.Decision, error) {
			q, err := req.parse()
			if err != nil {
				return api.Decision{}, err
			}
			d, err := n.Decide(ctx, q)
			return api.DecisionOf(d), err
		}),
	}
}

// Serve answers on ln (see [Listen]) until ctx ends, then shuts down,
// giving requests under way a few seconds before they are cancelled, and
// waits for their handlers: the node is never closed under them.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.inflight.Add(1)
			defer s.inflight.Done()
			s.mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := api.ServeUntil(ctx, ln, srv, shutdownGrace, s.inflight.Wait); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}

// PseudonymRequest asks a running node for pseudonyms: identifiers as
// "system|value", the system a configured name (e.g. "nhs") or URI.
type PseudonymRequest struct {
	Identifiers []string
}

// PseudonymResponse holds the pseudonyms in hex, in request order.
type PseudonymResponse struct {
	Pseudonyms []string
}
