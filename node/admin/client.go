package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

// ErrNotRunning is returned when no node is serving a data directory.
var ErrNotRunning = node.E(node.Unavailable, "the centre's node is not running")

// Client talks to the node running on a data directory.
type Client struct {
	dir  string
	c    *http.Client
	long *http.Client // for key ceremonies: bound by the caller's context only
}

// Dial returns a client for the node running on data directory dir; it
// connects at each request.
func Dial(dir string) *Client {
	path, _, err := socketPath(dir)
	if err != nil {
		path = filepath.Join(dir, Socket)
	}
	// Long enough for the slowest request: a backup of a large centre, or
	// a consent document whose confirmation waits out a lease.
	transport := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{dir: dir, c: &http.Client{Timeout: 10 * time.Minute, Transport: transport},
		long: &http.Client{Transport: transport}}
}

// do sends one request and decodes its answer into out; an error answer
// comes back as an error of the node's error's kind.
func (a *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	return a.doWith(ctx, a.c, method, path, body, out)
}

func (a *Client) doWith(ctx context.Context, c *http.Client, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://medfed"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("%w on %s: start it with medfed node", ErrNotRunning, a.dir)
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return api.ErrorOf(resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// get reads path's answer, of type T.
func get[T any](ctx context.Context, a *Client, path string) (T, error) {
	var out T
	err := a.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// post sends body as it is to path and reads the answer, of type T.
func post[T any](ctx context.Context, a *Client, path string, body []byte) (T, error) {
	var out T
	err := a.do(ctx, http.MethodPost, path, bytes.NewReader(body), &out)
	return out, err
}

// postJSON sends in as JSON to path and reads the answer, of type T.
func postJSON[T any](ctx context.Context, a *Client, path string, in any) (T, error) {
	body, err := json.Marshal(in)
	if err != nil {
		var zero T
		return zero, err
	}
	return post[T](ctx, a, path, body)
}

// Get reads path (one of the HTTP API's read-only routes, which the socket
// serves to the centre's administrator) into out, the route's answer.
func (a *Client) Get(ctx context.Context, path string, out any) error {
	return a.do(ctx, http.MethodGet, path, nil, out)
}

// Status returns the running node's view of its federation.
func (a *Client) Status(ctx context.Context) (api.FederationStatus, error) {
	return get[api.FederationStatus](ctx, a, "/v1/federation")
}

// Charter returns the charter chain the running node adopted.
func (a *Client) Charter(ctx context.Context) (api.CharterChain, error) {
	return get[api.CharterChain](ctx, a, "/v1/federation/charter")
}

// LedgerStatus returns the running node's ledger status.
func (a *Client) LedgerStatus(ctx context.Context) (api.LedgerStatus, error) {
	return get[api.LedgerStatus](ctx, a, "/v1/ledger")
}

// Backup has the running node copy itself into dir (absolute).
func (a *Client) Backup(ctx context.Context, dir string) (centre.Manifest, error) {
	return postJSON[centre.Manifest](ctx, a, "/v1/backup", BackupRequest{Dir: dir})
}

// Approve has the running node approve a join request.
func (a *Client) Approve(ctx context.Context, request []byte) (api.Progress, error) {
	return post[api.Progress](ctx, a, "/v1/federation/approve", request)
}

// Block has the running node cut member centre off for d.
func (a *Client) Block(ctx context.Context, centre string, d time.Duration) (BlockResponse, error) {
	return postJSON[BlockResponse](ctx, a, "/v1/federation/block", BlockRequest{Centre: centre, For: d.String()})
}

// Unblock ends a block of member centre.
func (a *Client) Unblock(ctx context.Context, centre string) (BlockResponse, error) {
	return post[BlockResponse](ctx, a, "/v1/federation/unblock?centre="+url.QueryEscape(centre), nil)
}

// ApproveDraft has the running node approve a pending draft, named by
// the hex of its hash.
func (a *Client) ApproveDraft(ctx context.Context, draft string) (api.Progress, error) {
	return post[api.Progress](ctx, a, "/v1/federation/approve-draft?draft="+url.QueryEscape(draft), nil)
}

// Keygen has the running node take part in generating the federation's
// pseudonym key; it returns when the ceremony has ended, which may take
// as long as the request's first round waits, or ctx ends.
func (a *Client) Keygen(ctx context.Context, r KeyCeremonyRequest) (KeyCeremonyResponse, error) {
	return a.ceremony(ctx, "/v1/federation/keygen", r)
}

// Reshare has the running node take part in resharing the federation's
// pseudonym key, as Keygen.
func (a *Client) Reshare(ctx context.Context, r KeyCeremonyRequest) (KeyCeremonyResponse, error) {
	return a.ceremony(ctx, "/v1/federation/reshare", r)
}

func (a *Client) ceremony(ctx context.Context, path string, r KeyCeremonyRequest) (KeyCeremonyResponse, error) {
	var out KeyCeremonyResponse
	body, err := json.Marshal(r)
	if err != nil {
		return out, err
	}
	err = a.doWith(ctx, a.long, http.MethodPost, path, bytes.NewReader(body), &out)
	return out, err
}

// Council has the running node approve a new council.
func (a *Client) Council(ctx context.Context, names []string) (api.Progress, error) {
	return postJSON[api.Progress](ctx, a, "/v1/federation/council", CouncilRequest{Council: names})
}

// Remove has the running node approve removing a centre.
func (a *Client) Remove(ctx context.Context, centre string) (api.Progress, error) {
	return post[api.Progress](ctx, a, "/v1/federation/remove?centre="+url.QueryEscape(centre), nil)
}

// DirectoryCheck has the running node check the directory against its
// ledger, repairing what is missing.
func (a *Client) DirectoryCheck(ctx context.Context) (api.DirectoryCheck, error) {
	return post[api.DirectoryCheck](ctx, a, "/v1/directory/check", nil)
}

// DirectoryStatus returns the running node's directory status.
func (a *Client) DirectoryStatus(ctx context.Context) (api.DirectoryStatus, error) {
	return get[api.DirectoryStatus](ctx, a, "/v1/directory")
}

// Lookup has the running node find every centre holding records of a
// pseudonym given in hex.
func (a *Client) Lookup(ctx context.Context, pseudonym string) (api.DirectoryLookup, error) {
	return get[api.DirectoryLookup](ctx, a, "/v1/directory/lookup?pseudonym="+url.QueryEscape(pseudonym))
}

// Pseudonyms has the running node derive the pseudonyms of identifiers.
func (a *Client) Pseudonyms(ctx context.Context, identifiers []string) ([]string, error) {
	resp, err := postJSON[PseudonymResponse](ctx, a, "/v1/pseudonyms", PseudonymRequest{Identifiers: identifiers})
	return resp.Pseudonyms, err
}

// SubmitConsent has the running node accept a signed consent document and
// deliver it to the patient's holders.
func (a *Client) SubmitConsent(ctx context.Context, doc []byte) (api.ConsentDelivery, error) {
	return post[api.ConsentDelivery](ctx, a, "/v1/consent", doc)
}

// Attest has the running node attest a patient's key.
func (a *Client) Attest(ctx context.Context, r AttestRequest) (api.ConsentDelivery, error) {
	return postJSON[api.ConsentDelivery](ctx, a, "/v1/consent/attest", r)
}

// StopEmergency has the running node stop its emergency access to a
// patient at every holder.
func (a *Client) StopEmergency(ctx context.Context, r StopRequest) (api.EmergencyStops, error) {
	return postJSON[api.EmergencyStops](ctx, a, "/v1/emergency/stop", r)
}

// Consent returns a patient's consent as the running node holds it.
func (a *Client) Consent(ctx context.Context, pseudonym string) (api.ConsentView, error) {
	return get[api.ConsentView](ctx, a, "/v1/consent?pseudonym="+url.QueryEscape(pseudonym))
}

// Decide asks the running node what it would decide for a request.
func (a *Client) Decide(ctx context.Context, r DecideRequest) (api.Decision, error) {
	return postJSON[api.Decision](ctx, a, "/v1/consent/decide", r)
}

// AddRecord has the running node register a record.
func (a *Client) AddRecord(ctx context.Context, r RecordRequest) (RecordResponse, error) {
	return postJSON[RecordResponse](ctx, a, "/v1/records", r)
}

// QueryRecords has the running node query every holder of a patient.
func (a *Client) QueryRecords(ctx context.Context, r QueryRequest) (api.QueryResult, error) {
	return postJSON[api.QueryResult](ctx, a, "/v1/query", r)
}

// Transfer has the running node copy a patient's records from the
// centres holding them.
func (a *Client) Transfer(ctx context.Context, r TransferRequest) (api.TransferResult, error) {
	return postJSON[api.TransferResult](ctx, a, "/v1/transfer", r)
}

// Patient has the running node relay a patient's signed request.
func (a *Client) Patient(ctx context.Context, request []byte) (api.PatientResult, error) {
	return post[api.PatientResult](ctx, a, "/v1/patient", request)
}

// IssuePrescription has the running node issue a prescription.
func (a *Client) IssuePrescription(ctx context.Context, r IssueRequest) (api.PrescriptionIssued, error) {
	return postJSON[api.PrescriptionIssued](ctx, a, "/v1/prescriptions", r)
}

// Dispense has the running node claim the next supply of a prescription
// from its issuing centre.
func (a *Client) Dispense(ctx context.Context, r DispenseRequest) (api.PrescriptionDispensed, error) {
	return postJSON[api.PrescriptionDispensed](ctx, a, "/v1/prescriptions/dispense", r)
}

// CancelPrescription has the running node cancel a prescription it issued.
func (a *Client) CancelPrescription(ctx context.Context, r CancelRequest) (CancelResponse, error) {
	return postJSON[CancelResponse](ctx, a, "/v1/prescriptions/cancel", r)
}

// Prescriptions has the running node list a patient's prescriptions as
// the federated query releases them.
func (a *Client) Prescriptions(ctx context.Context, r PrescriptionsRequest) (api.PrescriptionList, error) {
	return postJSON[api.PrescriptionList](ctx, a, "/v1/prescriptions/show", r)
}

// RegisterDevice hands the running node a device registration the
// patient signed.
func (a *Client) RegisterDevice(ctx context.Context, statement []byte) (api.DeviceRegistration, error) {
	return post[api.DeviceRegistration](ctx, a, "/v1/devices", statement)
}

// RevokeDevice hands the running node a device revocation the patient
// signed.
func (a *Client) RevokeDevice(ctx context.Context, statement []byte) (api.DeviceRegistration, error) {
	return post[api.DeviceRegistration](ctx, a, "/v1/devices/revoke", statement)
}
