package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Centre is what the routes ask of a running centre (node/centre's Node
// is one): its typed operations, nothing of libp2p's, so that a handler
// test can serve the routes from a centre of its own.
type Centre interface {
	Name() string
	Federation() string
	Ready() (centre.Readiness, error)
	PseudonymsOf(ctx context.Context, identifiers []string) ([]ledger.Pseudonym, error)
	Attest(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, compromised bool, staff ledger.StaffID) (centre.ConsentDelivery, error)
	Approve(ctx context.Context, p ledger.Pseudonym, att [32]byte, staff ledger.StaffID) (centre.ConsentDelivery, error)
	AddRecord(ctx context.Context, r centre.RecordRequest) (centre.RecordResponse, error)
	RecordAt(ctx context.Context, index int64) (centre.RecordMeta, error)
	QueryRecords(ctx context.Context, r centre.QueryRequest) (centre.QueryResult, error)
	Transfer(ctx context.Context, r centre.TransferRequest) (centre.TransferResult, error)
	SubmitConsent(ctx context.Context, doc []byte) (centre.ConsentDelivery, error)
	ShowConsent(ctx context.Context, p ledger.Pseudonym) (centre.ConsentView, error)
	CheckToken(ctx context.Context, token []byte) (centre.TokenCheck, error)
	PatientRelay(ctx context.Context, request []byte) (centre.PatientResult, error)
	Notices(after int64) []centre.Notice
	LedgerStatus(ctx context.Context) (centre.LedgerStatus, error)
	Prove(ctx context.Context, index int64) (centre.EntryProof, error)
	FederationStatus() federation.Status
	LookupFor(ctx context.Context, p ledger.Pseudonym, asker centre.Asker) (centre.Lookup, error)
	StopEmergency(ctx context.Context, p ledger.Pseudonym, staff ledger.StaffID) (centre.EmergencyStops, error)
	CharterChain(ctx context.Context) ([][]byte, error)
}

var _ Centre = (*centre.Node)(nil)

// The bodies the routes take. Binary fields ([]byte) are base64, as FHIR
// writes an attachment's data.

// IdentifierBody is a patient identifier: a configured system's name
// ("nhs") or URI, and its value.
type IdentifierBody struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// RegisterBody registers a patient: their pseudonym is derived from the
// identifier (through the federation's OPRF) and the identifier forgotten.
type RegisterBody struct {
	Identifier IdentifierBody `json:"identifier"`
}

// KeyBody attests a patient's public key.
type KeyBody struct {
	PublicKey   string `json:"publicKey"`             // 64 hex digits (medfed patient keygen)
	Compromised bool   `json:"compromised,omitempty"` // the keys it supersedes were lost or stolen
}

// ApprovalBody approves an attestation that replaces a patient's key.
type ApprovalBody struct {
	Attestation string `json:"attestation"` // the attestation's hash, 64 hex digits (in the consent view and the notifications)
}

// RecordBody adds a record, or an amendment of one.
type RecordBody struct {
	Patient    string          `json:"patient,omitempty"`    // the pseudonym, 64 hex digits
	Identifier *IdentifierBody `json:"identifier,omitempty"` // or an identifier, pseudonymised and forgotten
	Class      string          `json:"class"`                // the data class, e.g. lab-result
	Occurred   string          `json:"occurred,omitempty"`   // RFC 3339 or a date; default now
	Location   string          `json:"location,omitempty"`
	Data       []byte          `json:"data"` // the payload, base64
}

// QueryBody asks every holder of a patient for their records.
type QueryBody struct {
	Patient string   `json:"patient"`
	Purpose string   `json:"purpose"`           // treatment or research
	Classes []string `json:"classes,omitempty"` // default all
	Token   []byte   `json:"token,omitempty"`   // a patient's token, base64
}

// EmergencyBody asks for emergency access (break-glass).
type EmergencyBody struct {
	Patient string   `json:"patient"`
	Reason  string   `json:"reason"` // unconscious, life-threatening, urgent-treatment or public-health
	Classes []string `json:"classes,omitempty"`
}

// StopBody stops the caller's emergency access to a patient.
type StopBody struct {
	Patient string `json:"patient"`
}

// TransferBody copies a patient's records to this centre.
type TransferBody struct {
	Patient string   `json:"patient"`
	Token   []byte   `json:"token,omitempty"`
	Classes []string `json:"classes,omitempty"`
}

// DocumentBody is a consent document signed with the patient's key: a
// contract or a revocation (medfed consent grant/revoke --out writes one).
type DocumentBody struct {
	Document []byte `json:"document"`
}

// TokenBody is a patient's token, to check before using it.
type TokenBody struct {
	Token []byte `json:"token"`
}

// PatientRequestBody is a patient's own request, signed with their key
// (medfed patient view/erase --out writes one).
type PatientRequestBody struct {
	Request []byte `json:"request"`
}

var (
	clinical = []string{"clinician"}
	intake   = []string{"clinician", "registrar"}
	audit    = []string{"admin", "privacy-officer"}
)

func (s *Server) table() []route {
	pseudonymParam := param{"pseudonym", "path", "the patient's pseudonym, 64 hex digits"}
	indexParam := param{"index", "path", "the record's index on this centre's ledger"}
	return []route{
		{method: "GET", pattern: "/healthz", auth: authPublic, summary: "Say whether the process is alive", answer: map[string]string{}, handle: s.healthz},
		{method: "GET", pattern: "/readyz", auth: authPublic, summary: "Say whether the node can serve the federation", answer: Readiness{}, handle: s.readyz},
		{method: "GET", pattern: "/openapi.json", auth: authPublic, summary: "Describe this API", answer: map[string]any{}, handle: s.openapi},

		{method: "POST", pattern: "/v1/patients", auth: authStaff, roles: []string{"registrar"}, summary: "Register a patient: derive their pseudonym from an identifier",
			body: RegisterBody{}, answer: fhirResource("Patient"), handle: s.register},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/holders", auth: authStaff, roles: []string{"clinician", "registrar", "admin"},
			summary: "List the centres holding a patient's records (the lookup is on this centre's ledger: who asked, for what)", answer: DirectoryLookup{},
			params: []param{pseudonymParam, {"purpose", "query", "why: treatment (the default), research or emergency"}}, handle: s.holders},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/keys", auth: authStaff, roles: []string{"registrar"}, summary: "Attest a patient's public key, having checked who they are",
			body: KeyBody{}, answer: ConsentDelivery{}, params: []param{pseudonymParam}, handle: s.attest},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/keys", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "List the attestations of a patient's key and where each stands (a replacement waits for a second approval and the notice)",
			answer:  KeyList{}, params: []param{pseudonymParam}, handle: s.keys},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/keys/approvals", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "Approve an attestation that replaces a patient's key: the second staff member it needs, having checked who the patient is",
			body:    ApprovalBody{}, answer: ConsentDelivery{}, params: []param{pseudonymParam}, handle: s.approve},

		{method: "POST", pattern: "/v1/records", auth: authStaff, roles: intake, summary: "Add a record",
			body: RecordBody{}, limit: maxRecordBody, status: http.StatusCreated, answer: fhirResource("DocumentReference"), handle: s.addRecord},
		{method: "POST", pattern: "/v1/records/{index}/amendments", auth: authStaff, roles: intake, summary: "Amend a record: a new version that replaces it",
			body: RecordBody{}, limit: maxRecordBody, status: http.StatusCreated, answer: fhirResource("DocumentReference"), params: []param{indexParam}, handle: s.amendRecord},
		{method: "GET", pattern: "/v1/records/{index}", auth: authStaff, roles: clinical, summary: "Fetch a record of this centre with its payload, as consent allows (audited)",
			answer: fhirResource("DocumentReference"), params: []param{indexParam}, handle: s.getRecord},

		{method: "POST", pattern: "/v1/query", auth: authStaff, roles: []string{"clinician", "researcher"}, summary: "Query every centre holding a patient's records",
			body: QueryBody{}, answer: fhirResource("Bundle"), handle: s.query},
		{method: "POST", pattern: "/v1/emergency", auth: authStaff, roles: clinical, summary: "Emergency access to a patient's records (break-glass, audited and notified)",
			body: EmergencyBody{}, answer: fhirResource("Bundle"), handle: s.emergency},
		{method: "POST", pattern: "/v1/emergency/stop", auth: authStaff, roles: clinical, summary: "Stop the caller's emergency access to a patient at every holder (audited and notified; it also ends on its own after the charter's emergency-duration)",
			body: StopBody{}, answer: EmergencyStops{}, handle: s.stopEmergency},
		{method: "POST", pattern: "/v1/transfer", auth: authStaff, roles: intake, summary: "Copy a patient's records to this centre (switching provider)",
			body: TransferBody{}, answer: TransferResult{}, handle: s.transfer},

		{method: "POST", pattern: "/v1/consent", auth: authPatient, summary: "Submit a consent contract, revocation or veto of a key replacement, signed with the patient's key",
			body: DocumentBody{}, limit: 2 * consent.MaxDocument, answer: ConsentDelivery{}, handle: s.submitConsent},
		{method: "GET", pattern: "/v1/consent/{pseudonym}", auth: authStaff, roles: []string{"clinician", "registrar", "privacy-officer"}, summary: "Show a patient's consent contract",
			answer: fhirResource("Consent"), params: []param{pseudonymParam}, handle: s.showConsent},
		{method: "POST", pattern: "/v1/consent/tokens/check", auth: authStaff, roles: []string{"clinician", "registrar", "researcher"}, summary: "Check a patient's token before using it",
			body: TokenBody{}, limit: 2 * consent.MaxDocument, answer: TokenCheck{}, handle: s.checkToken},

		{method: "POST", pattern: "/v1/patient/view", auth: authPatient, summary: "The patient's own view, from every member: each holder's records and accesses, how many hold nothing, and each that could not be reached (signed by the patient)",
			body: PatientRequestBody{}, answer: fhirResource("Bundle"), handle: s.patientView},
		{method: "POST", pattern: "/v1/patient/erase", auth: authPatient, summary: "The patient's erasure at every member (signed by the patient)",
			body: PatientRequestBody{}, answer: PatientResult{}, handle: s.patientErase},

		{method: "GET", pattern: "/v1/notifications", auth: authStaff, roles: []string{"privacy-officer"}, summary: "List emergency access notifications",
			answer: fhirResource("Bundle"), params: []param{{"after", "query", "the ledger index of the last notification seen (default -1: all)"}}, handle: s.notifications},
		{method: "GET", pattern: "/v1/ledger", auth: authStaff, roles: audit, summary: "Show the ledger's checkpoints and cosigners",
			answer: LedgerStatus{}, handle: s.ledger},
		{method: "GET", pattern: "/v1/ledger/entries/{index}/proof", auth: authStaff, roles: audit,
			summary: "Prove an entry in the latest final checkpoint (auditors; clinicians read records through the consent-checked, audited /v1/records/{index})", answer: EntryProof{}, params: []param{{"index", "path", "the entry's ledger index"}}, handle: s.proof},
		{method: "GET", pattern: "/v1/federation", auth: authStaff, roles: audit, summary: "Show the federation's members and who is connected",
			answer: FederationStatus{}, handle: s.federation},
		{method: "GET", pattern: "/v1/federation/charter", auth: authStaff, roles: audit, summary: "The charter chain this centre adopted, version 1 first: what medfed ledger verify --charter checks a ledger against",
			answer: CharterChain{}, handle: s.charter},
		{method: "GET", pattern: "/v1/federation/evidence", auth: authStaff, roles: audit, summary: "List evidence of members signing two histories",
			answer: evidenceList{}, handle: s.evidence},
	}
}

func (s *Server) healthz(context.Context, *call) (any, error) {
	return map[string]string{"status": "ok"}, nil
}

func (s *Server) readyz(context.Context, *call) (any, error) {
	r, err := s.node.Ready()
	if err != nil {
		return nil, err
	}
	return ReadinessOf(r), nil
}

func (s *Server) openapi(_ context.Context, c *call) (any, error) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(s.doc)
	return nil, nil
}

func (s *Server) register(ctx context.Context, c *call) (any, error) {
	var b RegisterBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	id, err := identifier(b.Identifier)
	if err != nil {
		return nil, err
	}
	ps, err := s.node.PseudonymsOf(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return patientResource(s.node.Federation(), ps[0].String()), nil
}

func identifier(b IdentifierBody) (string, error) {
	if b.System == "" || b.Value == "" || strings.Contains(b.System, "|") {
		return "", fmt.Errorf("%w: an identifier needs a system (e.g. nhs) and a value", errBadRequest)
	}
	return b.System + "|" + b.Value, nil
}

func (s *Server) holders(ctx context.Context, c *call) (any, error) {
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	purpose := c.r.URL.Query().Get("purpose")
	if purpose == "" {
		purpose = consent.Treatment.String()
	}
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, purpose, "")
	if err != nil {
		return nil, err
	}
	l, err := s.node.LookupFor(ctx, p, asker)
	if err != nil {
		return nil, err
	}
	return DirectoryLookupOf(l), nil
}

func (s *Server) attest(ctx context.Context, c *call) (any, error) {
	var b KeyBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	key, err := consent.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	d, err := s.node.Attest(ctx, p, key, b.Compromised, staff)
	if err != nil {
		return nil, err
	}
	return ConsentDeliveryOf(d), nil
}

// pseudonym is the patient the route's path names.
func (c *call) pseudonym() (ledger.Pseudonym, error) {
	return ledger.ParsePseudonym(c.r.PathValue("pseudonym"))
}

// staffID is the caller's staff ID; zero on public and patient routes.
func (c *call) staffID() (ledger.StaffID, error) {
	if c.staff.ID == "" {
		return ledger.StaffID{}, nil
	}
	return consent.ParseStaffID(c.staff.ID)
}

func (s *Server) keys(ctx context.Context, c *call) (any, error) {
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return nil, err
	}
	cv := ConsentViewOf(v)
	return KeyList{Pseudonym: cv.Pseudonym, Key: cv.Key, Keys: cv.Keys, KeyNotice: cv.KeyNotice}, nil
}

func (s *Server) approve(ctx context.Context, c *call) (any, error) {
	var b ApprovalBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	att, err := consent.ParseHash(b.Attestation)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	d, err := s.node.Approve(ctx, p, att, staff)
	if err != nil {
		return nil, err
	}
	return ConsentDeliveryOf(d), nil
}

func (s *Server) addRecord(ctx context.Context, c *call) (any, error) {
	return s.record(ctx, c, 0)
}

func (s *Server) amendRecord(ctx context.Context, c *call) (any, error) {
	index, err := pathIndex(c.r)
	if err != nil {
		return nil, err
	}
	if index == 0 {
		return nil, fmt.Errorf("%w: entry 0 is the charter, not a record", node.ErrNotFound)
	}
	return s.record(ctx, c, index)
}

func (s *Server) record(ctx context.Context, c *call, replaces int64) (any, error) {
	var b RecordBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	req := centre.RecordRequest{Class: b.Class, Location: b.Location, Replaces: replaces, Payload: b.Data}
	var err error
	if req.Author, err = c.staffID(); err != nil {
		return nil, fmt.Errorf("%w: author: %v", centre.ErrBadRecord, err)
	}
	if b.Patient != "" {
		if req.Pseudonym, err = ledger.ParsePseudonym(b.Patient); err != nil {
			return nil, err
		}
	}
	if b.Identifier != nil {
		id, err := identifier(*b.Identifier)
		if err != nil {
			return nil, err
		}
		req.Identifier = id
	}
	req.Occurred = time.Now().UTC().Truncate(time.Second)
	if b.Occurred != "" {
		t, err := consent.ParseTime(b.Occurred)
		if err != nil {
			return nil, fmt.Errorf("%w: occurred: %v", errBadRequest, err)
		}
		req.Occurred = t
	}
	res, err := s.node.AddRecord(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Announce != nil {
		// Stored all the same: a retry would store it twice.
		c.w.Header().Set("Warning", `199 medfed "stored, but not yet announced in the directory; the node announces it again at its next start"`)
		s.log.Warn("announcing a record failed", "index", res.Index, "err", res.Announce)
	}
	// The record is stored: answer from the request, so that nothing
	// after this point can turn a stored record into an error (and a retry
	// into a duplicate).
	meta := RecordMeta{Index: res.Index, Kind: ledger.KindRecord.String(), Pseudonym: res.Pseudonym.String(), Class: req.Class, Occurred: req.Occurred,
		Location: req.Location, Author: c.staff.ID, Replaces: replaces}
	if replaces > 0 {
		meta.Kind = ledger.KindAmendment.String()
	}
	c.w.Header().Set("Location", "/v1/records/"+strconv.FormatInt(res.Index, 10))
	return documentReference(s.node.Name(), meta, nil, false), nil
}

func pathIndex(r *http.Request) (int64, error) {
	i, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("%w: the index must be a ledger index, a whole number", errBadRequest)
	}
	return i, nil
}

// getRecord reads a record of this centre's through the query path with
// this centre as the only holder: the same consent decision and access
// entry as a query from any other centre. The access entry covers every
// record of the patient in the record's class that consent releases.
func (s *Server) getRecord(ctx context.Context, c *call) (any, error) {
	index, err := pathIndex(c.r)
	if err != nil {
		return nil, err
	}
	meta, err := s.node.RecordAt(ctx, index)
	if err != nil {
		return nil, err
	}
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, consent.Treatment.String(), "")
	if err != nil {
		return nil, err
	}
	res, err := s.node.QueryRecords(ctx, centre.QueryRequest{Pseudonym: meta.Pseudonym, Asker: asker, Classes: []string{meta.Record.DataClass}, Local: true})
	if err != nil {
		return nil, err
	}
	if len(res.Holders) != 1 {
		return nil, fmt.Errorf("this centre did not answer its own query")
	}
	h := res.Holders[0]
	switch h.Outcome {
	case centre.Failed:
		return nil, fmt.Errorf("reading the record: %v", h.Err)
	case centre.Denied:
		return nil, errStatus{http.StatusForbidden, fmt.Errorf("denied by consent: %s (%s); access entry %d", h.Reason, h.Basis, h.Access)}
	}
	for _, r := range h.Records {
		if r.Index == index {
			if r.Erased {
				return nil, errStatus{http.StatusGone, fmt.Errorf("record %d: %s", index, noPayload)}
			}
			return documentReference(s.node.Name(), RecordMetaOf(meta), r.Payload, true), nil
		}
	}
	if h.Pending > 0 {
		c.w.Header().Set("Retry-After", "2")
		return nil, fmt.Errorf("%w: record %d is not in a final checkpoint yet; ask again in a few seconds", centre.ErrNotReady, index)
	}
	return nil, errStatus{http.StatusForbidden, fmt.Errorf("record %d was not released: an amendment replaced it, or consent does not allow it (access entry %d)", index, h.Access)}
}

func (s *Server) query(ctx context.Context, c *call) (any, error) {
	var b QueryBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	if b.Purpose == "emergency" {
		return nil, fmt.Errorf("%w: emergency access is POST /v1/emergency, with a reason", errBadRequest)
	}
	// A role asks for what it is for: consent decides by purpose, so a
	// researcher claiming treatment would get what the patient keeps from
	// research.
	if c.staff.Role == "researcher" && b.Purpose != "research" {
		return nil, errStatus{http.StatusForbidden, fmt.Errorf("a researcher queries for research only, not %q", b.Purpose)}
	}
	return s.runQuery(ctx, c, b.Patient, b.Purpose, "", centre.QueryRequest{Classes: b.Classes, Token: b.Token})
}

func (s *Server) emergency(ctx context.Context, c *call) (any, error) {
	var b EmergencyBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	if b.Reason == "" {
		return nil, fmt.Errorf("%w: emergency access needs a reason: unconscious, life-threatening, urgent-treatment or public-health", errBadRequest)
	}
	return s.runQuery(ctx, c, b.Patient, consent.Emergency.String(), b.Reason, centre.QueryRequest{Classes: b.Classes})
}

func (s *Server) stopEmergency(ctx context.Context, c *call) (any, error) {
	var b StopBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := ledger.ParsePseudonym(b.Patient)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	res, err := s.node.StopEmergency(ctx, p, staff)
	if err != nil {
		return nil, err
	}
	return EmergencyStopsOf(res), nil
}

// runQuery runs q for patient, asked by the caller for purpose (and
// reason), and answers it as a Bundle.
func (s *Server) runQuery(ctx context.Context, c *call, patient, purpose, reason string, q centre.QueryRequest) (any, error) {
	var err error
	if q.Pseudonym, err = ledger.ParsePseudonym(patient); err != nil {
		return nil, err
	}
	if q.Asker, err = ParseAsker(c.staff.Role, c.staff.ID, purpose, reason); err != nil {
		return nil, err
	}
	res, err := s.node.QueryRecords(ctx, q)
	if err != nil {
		return nil, err
	}
	return queryBundle(QueryResultOf(res)), nil
}

func (s *Server) transfer(ctx context.Context, c *call) (any, error) {
	var b TransferBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := ledger.ParsePseudonym(b.Patient)
	if err != nil {
		return nil, err
	}
	a, err := ParseAsker(c.staff.Role, c.staff.ID, consent.Treatment.String(), "")
	if err != nil {
		return nil, err
	}
	res, err := s.node.Transfer(ctx, centre.TransferRequest{Pseudonym: p, Role: a.Role, Staff: a.Staff, Classes: b.Classes, Token: b.Token})
	if err != nil {
		return nil, err
	}
	return TransferResultOf(res), nil
}

func (s *Server) submitConsent(ctx context.Context, c *call) (any, error) {
	var b DocumentBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	d, err := consent.Parse(b.Document)
	if err != nil {
		return nil, err
	}
	if d.Kind != consent.KindContract && d.Kind != consent.KindRevocation && d.Kind != consent.KindVeto && d.Kind != consent.KindErasure {
		return nil, fmt.Errorf("%w: a %s is not submitted here (contracts, revocations, vetoes and erasures are; attestations and approvals are POST /v1/patients/{pseudonym}/keys and .../keys/approvals)", errBadRequest, d.Kind)
	}
	if err := s.limits.admitKey(d.Signer); err != nil {
		return nil, err
	}
	del, err := s.node.SubmitConsent(ctx, b.Document)
	if err != nil {
		return nil, err
	}
	return ConsentDeliveryOf(del), nil
}

func (s *Server) showConsent(ctx context.Context, c *call) (any, error) {
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return nil, err
	}
	if v.Contract == nil {
		return nil, errStatus{http.StatusNotFound, fmt.Errorf("no consent contract for this patient (key attested: %t); the charter's default policy applies", v.Attested)}
	}
	return consentResource(ConsentViewOf(v)), nil
}

func (s *Server) checkToken(ctx context.Context, c *call) (any, error) {
	var b TokenBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	t, err := s.node.CheckToken(ctx, b.Token)
	if err != nil {
		return nil, err
	}
	return TokenCheckOf(t), nil
}

func (s *Server) patientRequest(ctx context.Context, c *call, op patient.Op) (centre.PatientResult, error) {
	var b PatientRequestBody
	if err := c.decode(&b); err != nil {
		return centre.PatientResult{}, err
	}
	q, err := patient.ParseRequest(b.Request)
	if err != nil {
		return centre.PatientResult{}, err
	}
	if q.Op != op {
		return centre.PatientResult{}, fmt.Errorf("%w: this route takes a signed %s request, not %s", errBadRequest, op, q.Op)
	}
	if err := s.limits.admitKey(q.Key); err != nil {
		return centre.PatientResult{}, err
	}
	return s.node.PatientRelay(ctx, b.Request)
}

func (s *Server) patientView(ctx context.Context, c *call) (any, error) {
	res, err := s.patientRequest(ctx, c, patient.View)
	if err != nil {
		return nil, err
	}
	return viewBundle(PatientResultOf(res)), nil
}

func (s *Server) patientErase(ctx context.Context, c *call) (any, error) {
	res, err := s.patientRequest(ctx, c, patient.Erase)
	if err != nil {
		return nil, err
	}
	return PatientResultOf(res), nil
}

func (s *Server) notifications(_ context.Context, c *call) (any, error) {
	after := int64(-1)
	if v := c.r.URL.Query().Get("after"); v != "" {
		var err error
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < -1 {
			return nil, fmt.Errorf("%w: after must be a ledger index or -1", errBadRequest)
		}
	}
	var ns []Notice
	for _, n := range s.node.Notices(after) {
		ns = append(ns, NoticeOf(n))
	}
	return noticeBundle(s.node.Name(), ns), nil
}

func (s *Server) ledger(ctx context.Context, _ *call) (any, error) {
	st, err := s.node.LedgerStatus(ctx)
	if err != nil {
		return nil, err
	}
	return LedgerStatusOf(st), nil
}

// evidenceList is GET /v1/federation/evidence's answer.
type evidenceList struct {
	Evidence []EvidenceStatus
}

func (s *Server) proof(ctx context.Context, c *call) (any, error) {
	index, err := pathIndex(c.r)
	if err != nil {
		return nil, err
	}
	p, err := s.node.Prove(ctx, index)
	if err != nil {
		return nil, err
	}
	return EntryProofOf(p), nil
}

func (s *Server) federation(ctx context.Context, _ *call) (any, error) {
	st, err := s.node.LedgerStatus(ctx)
	if err != nil {
		return nil, err
	}
	return FederationStatusOf(s.node.FederationStatus(), st.Evidence), nil
}

func (s *Server) charter(ctx context.Context, _ *call) (any, error) {
	chain, err := s.node.CharterChain(ctx)
	if err != nil {
		return nil, err
	}
	return CharterChain{Versions: len(chain), Text: string(federation.EncodeChain(chain))}, nil
}

// CharterChain is the charter's versions as one text (federation.ParseChain
// reads it).
type CharterChain struct {
	Versions int
	Text     string
}

func (s *Server) evidence(ctx context.Context, _ *call) (any, error) {
	st, err := s.node.LedgerStatus(ctx)
	if err != nil {
		return nil, err
	}
	return evidenceList{Evidence: EvidenceOf(st.Evidence)}, nil
}
