package centre

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/pseudonym"
)

// The admin socket is how an operator's medfed commands reach the centre's
// running node: a unix socket in the data directory, mode 0600, so only the
// account that runs the centre can use it.
const AdminSocket = "medfed.sock"

const (
	maxAdminAnswer   = 256 << 20 // a query's records, payloads in base64
	maxRecordBody    = 24 << 20  // a 16 MiB payload in base64, and the fields around it
	maxAdminBody     = 256 << 10
	maxPseudonymBody = 4 << 20 // MaxPseudonymRequest identifiers of up to 512 bytes and more
	maxPatientBody   = 1 << 10 // a patient's signed request
)

type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

// maxSocketPath is what a unix socket address holds (108 bytes with its NUL).
const maxSocketPath = 100

// adminSocketPath is where the admin socket of data directory dir lives:
// in the directory, or, when that path is too long for a socket address,
// in a private directory of the user's under $XDG_RUNTIME_DIR or /tmp,
// named after the data directory's absolute path.
func adminSocketPath(dir string) (path, private string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(abs, AdminSocket)
	if len(path) <= maxSocketPath {
		return path, "", nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = "/tmp"
	}
	private = filepath.Join(base, fmt.Sprintf("medfed-%d", os.Getuid()))
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(private, hex.EncodeToString(sum[:8])+".sock"), private, nil
}

func startAdmin(dir string, n *Node, log *slog.Logger) (*adminServer, error) {
	path, private, err := adminSocketPath(dir)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if private != "" {
		if err := ownPrivateDir(private); err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
	}
	// A socket left by a crashed node: we hold the directory's lock, so
	// nobody else is listening on it.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/federation", func(w http.ResponseWriter, r *http.Request) {
		ls, err := n.Centre.LedgerStatus(r.Context())
		respond(w, FederationStatus{Status: n.Membership.Status(), Evidence: ls.Evidence}, err)
	})
	mux.HandleFunc("GET /v1/ledger", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Centre.LedgerStatus(r.Context())
		respond(w, st, err)
	})
	mux.HandleFunc("POST /v1/federation/approve", func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		p, err := n.Membership.Approve(r.Context(), req)
		respond(w, p, err)
	})
	mux.HandleFunc("POST /v1/pseudonyms", func(w http.ResponseWriter, r *http.Request) {
		var req PseudonymRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPseudonymBody)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, errors.New("pseudonyms: the body is not a JSON object of identifiers"))
			return
		}
		ps, err := n.PseudonymsOf(r.Context(), req.Identifiers)
		respond(w, PseudonymResponse{Pseudonyms: ps}, err)
	})
	mux.HandleFunc("GET /v1/directory", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Directory.Status(r.Context())
		respond(w, st, err)
	})
	mux.HandleFunc("GET /v1/directory/lookup", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.LookupPseudonym(r.Context(), r.URL.Query().Get("pseudonym"))
		respond(w, res, err)
	})
	mux.HandleFunc("POST /v1/records", func(w http.ResponseWriter, r *http.Request) {
		var req RecordRequest
		if !decodeJSONUpTo(w, r, &req, maxRecordBody) {
			return
		}
		res, err := n.AddRecord(r.Context(), req)
		respond(w, res, err)
	})
	mux.HandleFunc("POST /v1/query", func(w http.ResponseWriter, r *http.Request) {
		var req QueryRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		res, err := n.QueryRecords(r.Context(), req)
		respond(w, res, err)
	})
	mux.HandleFunc("POST /v1/transfer", func(w http.ResponseWriter, r *http.Request) {
		var req TransferRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		res, err := n.Transfer(r.Context(), req)
		respond(w, res, err)
	})
	mux.HandleFunc("POST /v1/patient", func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPatientBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("patient: the body is not a signed request of at most %d bytes", maxPatientBody))
			return
		}
		res, err := n.PatientRelay(r.Context(), req)
		respond(w, res, err)
	})
	mux.HandleFunc("POST /v1/consent", func(w http.ResponseWriter, r *http.Request) {
		doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, consent.MaxDocument))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("consent: the body is not a signed document of at most %d bytes", consent.MaxDocument))
			return
		}
		d, err := n.SubmitConsent(r.Context(), doc)
		respond(w, d, err)
	})
	mux.HandleFunc("POST /v1/consent/attest", func(w http.ResponseWriter, r *http.Request) {
		var req AttestRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		d, err := n.Attest(r.Context(), req)
		respond(w, d, err)
	})
	mux.HandleFunc("GET /v1/consent", func(w http.ResponseWriter, r *http.Request) {
		v, err := n.ShowConsent(r.Context(), r.URL.Query().Get("pseudonym"))
		respond(w, v, err)
	})
	mux.HandleFunc("POST /v1/consent/decide", func(w http.ResponseWriter, r *http.Request) {
		var req DecideRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		d, err := n.Decide(r.Context(), req)
		respond(w, d, err)
	})
	mux.HandleFunc("POST /v1/federation/remove", func(w http.ResponseWriter, r *http.Request) {
		p, err := n.Membership.Remove(r.Context(), r.URL.Query().Get("centre"))
		respond(w, p, err)
	})
	s := &adminServer{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *adminServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func respond(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, HTTPStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// HTTPStatus is the HTTP status for an error of this package or of the
// services below it: the one place the admin socket and the API map
// errors to statuses.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, federation.ErrMalformed), errors.Is(err, federation.ErrChain), errors.Is(err, pseudonym.ErrInvalidIdentifier),
		errors.Is(err, ErrBadPseudonym), errors.Is(err, consent.ErrMalformed), errors.Is(err, ErrBadRecord),
		errors.Is(err, patient.ErrMalformed), errors.Is(err, patient.ErrStale):
		return http.StatusBadRequest
	case errors.Is(err, consent.ErrSignature), errors.Is(err, patient.ErrSignature):
		return http.StatusForbidden
	case errors.Is(err, consent.ErrNoSession), errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, federation.ErrSignatures), errors.Is(err, federation.ErrNotMember), errors.Is(err, consent.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, pseudonym.ErrUnavailable), errors.Is(err, ErrNoPseudonymKey), errors.Is(err, consent.ErrStale),
		errors.Is(err, ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// decodeJSON reads one JSON object of at most maxAdminBody bytes into v,
// refusing unknown fields; it answers 400 itself when it cannot.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeJSONUpTo(w, r, v, maxAdminBody)
}

// decodeJSONUpTo is decodeJSON with a size limit of its own.
func decodeJSONUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("the body is not the JSON object expected: %v", err))
		return false
	}
	return true
}

// writeJSON encodes v before it writes anything, so an encoding failure is
// a 500, not half a body; a failed write means the client has gone.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// ownPrivateDir makes sure dir exists, is ours and no one else's.
func ownPrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s must be a directory of this user's with mode 0700", dir)
	}
	return nil
}

// ErrNotRunning is returned when no node is serving a data directory.
var ErrNotRunning = errors.New("the centre's node is not running")

// AdminClient talks to the node running on a data directory.
type AdminClient struct {
	dir string
	c   *http.Client
}

// Admin returns a client for the node running on data directory dir.
func Admin(dir string) *AdminClient {
	path, _, err := adminSocketPath(dir)
	if err != nil {
		path = filepath.Join(dir, AdminSocket)
	}
	return &AdminClient{dir: dir, c: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

func (a *AdminClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://medfed"+path, body)
	if err != nil {
		return err
	}
	resp, err := a.c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("%w on %s: start it with medfed node", ErrNotRunning, a.dir)
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("node answered %s", resp.Status)
	}
	return json.Unmarshal(b, out)
}

// Status returns the running node's view of its federation.
func (a *AdminClient) Status(ctx context.Context) (FederationStatus, error) {
	var st FederationStatus
	err := a.do(ctx, http.MethodGet, "/v1/federation", nil, &st)
	return st, err
}

// LedgerStatus returns the running node's ledger status.
func (a *AdminClient) LedgerStatus(ctx context.Context) (LedgerStatus, error) {
	var st LedgerStatus
	err := a.do(ctx, http.MethodGet, "/v1/ledger", nil, &st)
	return st, err
}

// Approve has the running node approve a join request.
func (a *AdminClient) Approve(ctx context.Context, request []byte) (federation.Progress, error) {
	var p federation.Progress
	err := a.do(ctx, http.MethodPost, "/v1/federation/approve", bytes.NewReader(request), &p)
	return p, err
}

// Remove has the running node approve removing a centre.
func (a *AdminClient) Remove(ctx context.Context, centre string) (federation.Progress, error) {
	var p federation.Progress
	err := a.do(ctx, http.MethodPost, "/v1/federation/remove?centre="+url.QueryEscape(centre), nil, &p)
	return p, err
}

// DirectoryStatus returns the running node's directory status.
func (a *AdminClient) DirectoryStatus(ctx context.Context) (DirectoryStatus, error) {
	var st DirectoryStatus
	err := a.do(ctx, http.MethodGet, "/v1/directory", nil, &st)
	return st, err
}

// Lookup has the running node find every centre holding records of a
// pseudonym given in hex.
func (a *AdminClient) Lookup(ctx context.Context, pseudonym string) (DirectoryLookup, error) {
	var res DirectoryLookup
	err := a.do(ctx, http.MethodGet, "/v1/directory/lookup?pseudonym="+url.QueryEscape(pseudonym), nil, &res)
	return res, err
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

// Pseudonyms has the running node derive the pseudonyms of identifiers.
func (a *AdminClient) Pseudonyms(ctx context.Context, identifiers []string) ([]string, error) {
	body, err := json.Marshal(PseudonymRequest{Identifiers: identifiers})
	if err != nil {
		return nil, err
	}
	var resp PseudonymResponse
	err = a.do(ctx, http.MethodPost, "/v1/pseudonyms", bytes.NewReader(body), &resp)
	return resp.Pseudonyms, err
}

// SubmitConsent has the running node accept a signed consent document and
// deliver it to the patient's holders.
func (a *AdminClient) SubmitConsent(ctx context.Context, doc []byte) (ConsentDelivery, error) {
	var d ConsentDelivery
	err := a.do(ctx, http.MethodPost, "/v1/consent", bytes.NewReader(doc), &d)
	return d, err
}

// Attest has the running node attest a patient's key.
func (a *AdminClient) Attest(ctx context.Context, r AttestRequest) (ConsentDelivery, error) {
	var d ConsentDelivery
	err := a.postJSON(ctx, "/v1/consent/attest", r, &d)
	return d, err
}

// Consent returns a patient's consent as the running node holds it.
func (a *AdminClient) Consent(ctx context.Context, pseudonym string) (ConsentView, error) {
	var v ConsentView
	err := a.do(ctx, http.MethodGet, "/v1/consent?pseudonym="+url.QueryEscape(pseudonym), nil, &v)
	return v, err
}

// Decide asks the running node what it would decide for a request.
func (a *AdminClient) Decide(ctx context.Context, r DecideRequest) (DecideResponse, error) {
	var d DecideResponse
	err := a.postJSON(ctx, "/v1/consent/decide", r, &d)
	return d, err
}

func (a *AdminClient) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return a.do(ctx, http.MethodPost, path, bytes.NewReader(body), out)
}

// AddRecord has the running node register a record.
func (a *AdminClient) AddRecord(ctx context.Context, r RecordRequest) (RecordResponse, error) {
	var res RecordResponse
	err := a.postJSON(ctx, "/v1/records", r, &res)
	return res, err
}

// QueryRecords has the running node query every holder of a patient.
func (a *AdminClient) QueryRecords(ctx context.Context, r QueryRequest) (QueryResult, error) {
	var res QueryResult
	err := a.postJSON(ctx, "/v1/query", r, &res)
	return res, err
}

// Transfer has the running node copy a patient's records from the
// centres holding them.
func (a *AdminClient) Transfer(ctx context.Context, r TransferRequest) (TransferResult, error) {
	var res TransferResult
	err := a.postJSON(ctx, "/v1/transfer", r, &res)
	return res, err
}

// Patient has the running node relay a patient's signed request.
func (a *AdminClient) Patient(ctx context.Context, request []byte) (PatientResult, error) {
	var res PatientResult
	err := a.do(ctx, http.MethodPost, "/v1/patient", bytes.NewReader(request), &res)
	return res, err
}
