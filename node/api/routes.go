package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
	Delegate(ctx context.Context, d consent.Delegation) (consent.ID, [32]byte, centre.ConsentDelivery, error)
	EndDelegation(ctx context.Context, p ledger.Pseudonym, target consent.ID, staff ledger.StaffID, ev consent.Evidence) ([32]byte, centre.ConsentDelivery, error)
	AddRecord(ctx context.Context, r centre.RecordRequest) (centre.RecordResponse, error)
	CheckRecord(ctx context.Context, r centre.RecordRequest) error
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
	// What the FHIR interface reads too.
	DocumentTypes() []centre.DocumentType
	Members() []federation.Member
	Audit(ctx context.Context, p ledger.Pseudonym) ([]centre.PatientAccess, error)
	AuditAt(ctx context.Context, index int64) (ledger.Pseudonym, centre.PatientAccess, error)
	// Prescriptions.
	IssuePrescription(ctx context.Context, r centre.IssueRequest) (centre.IssueResult, error)
	ClaimDispense(ctx context.Context, r centre.DispenseRequest) (centre.DispenseResult, error)
	CancelPrescription(ctx context.Context, index int64, prescriber ledger.StaffID, reason ledger.CancelReason) (int64, error)
	PrescriptionStatus(ctx context.Context, index int64) (centre.PrescriptionView, error)
	Prescriptions(ctx context.Context, r centre.PrescriptionsRequest) (centre.PrescriptionsResult, error)
	// Devices that contribute readings.
	DeviceAddress() centre.DeviceAddress
	RegisterDevice(ctx context.Context, statement []byte) (centre.DeviceView, error)
	RevokeDevice(ctx context.Context, statement []byte) (centre.DeviceView, error)
	Devices(ctx context.Context, p ledger.Pseudonym) ([]centre.DeviceView, error)
	AddReadings(ctx context.Context, r centre.ReadingsRequest) (centre.ReadingsResult, error)
}

var _ Centre = (*centre.Node)(nil)

// The bodies the routes take. Binary fields ([]byte) are base64, as FHIR
// writes an attachment's data. Their tags besides json describe them in
// /openapi.json (see openapi.go): doc, enum, pattern and layout.

// IdentifierBody is a patient identifier: a configured system's name
// ("nhs") or URI, and its value.
type IdentifierBody struct {
	System string `json:"system" pattern:"^[^|]+$" doc:"the identifier's system: a name the federation configured (nhs, or one of pseudonym.systems) or its URI (https://fhir.nhs.uk/Id/nhs-number)"`
	Value  string `json:"value" doc:"the identifier, as the system writes it (an NHS number with or without spaces); checked (a check digit) before anything is sent"`
}

// RegisterBody registers a patient: their pseudonym is derived from the
// identifier (through the federation's OPRF) and the identifier forgotten.
type RegisterBody struct {
	Identifier IdentifierBody `json:"identifier" doc:"the patient's identifier: forgotten once the pseudonym is derived"`
}

// KeyBody attests a patient's public key.
type KeyBody struct {
	PublicKey   string `json:"publicKey" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's Ed25519 public key, 64 hex digits (medfed patient keygen prints it)"`
	Compromised bool   `json:"compromised,omitempty" doc:"the keys it supersedes were lost or stolen: nothing they signed counts any more"`
}

// ApprovalBody approves an attestation that replaces a patient's key.
type ApprovalBody struct {
	Attestation string `json:"attestation" pattern:"^[0-9a-fA-F]{64}$" doc:"the attestation's hash, 64 hex digits, as GET /v1/patients/{pseudonym}/keys and the notifications list it"`
}

// DelegationBody is a registrar's delegation, for a patient who cannot
// sign one.
type DelegationBody struct {
	DelegateKey  string    `json:"delegateKey" pattern:"^[0-9a-fA-F]{64}$" doc:"the delegate's public key, 64 hex digits (medfed patient keygen prints it)"`
	Relationship string    `json:"relationship" doc:"how the delegate stands to the patient: parent, guardian, carer, attorney or relative"`
	Scope        []string  `json:"scope" doc:"what the delegate may do: consent, view, records, erasure"`
	Evidence     string    `json:"evidence" doc:"what the registrar saw: birth-record, court-order, power-of-attorney or capacity-assessment"`
	Expires      time.Time `json:"expires" doc:"when the delegation ends, RFC 3339"`
}

// DelegationApprovalBody approves a registrar's delegation, or a
// registrar's ending of one.
type DelegationApprovalBody struct {
	Delegation string `json:"delegation" pattern:"^[0-9a-fA-F]{64}$" doc:"the hash, 64 hex digits, of the delegation as its creation answered and GET /v1/patients/{pseudonym}/delegations lists it, or of its ending as that answered"`
}

// DelegationEndingBody ends a delegation for a patient who cannot.
type DelegationEndingBody struct {
	Delegation string `json:"delegation" pattern:"^[0-9a-fA-F]{32}$" doc:"the delegation's ID, 32 hex digits, as GET /v1/patients/{pseudonym}/delegations lists it"`
	Evidence   string `json:"evidence" doc:"what the registrar saw: court-order, power-of-attorney, capacity-assessment or birth-record"`
}

// RecordBody adds a record, or an amendment of one.
type RecordBody struct {
	Patient    string          `json:"patient,omitempty" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits; or give identifier"`
	Identifier *IdentifierBody `json:"identifier,omitempty" doc:"or the patient's identifier, pseudonymised and forgotten"`
	Class      string          `json:"class" pattern:"^[a-z0-9][a-z0-9._-]{0,63}$" doc:"the data class, one of the centre's records.classes (e.g. lab-result)"`
	Occurred   string          `json:"occurred,omitempty" doc:"when the care it records happened: RFC 3339 (2026-11-01T09:30:00Z) or a date (2026-11-01); default now"`
	Location   string          `json:"location,omitempty" pattern:"^[A-Za-z0-9 ._/-]{0,64}$" doc:"where the care happened: one of the centre's records.locations, never free text"`
	Data       []byte          `json:"data" doc:"the payload, base64: at most 16 MiB, encrypted at rest and released only as consent allows"`
}

// QueryBody asks every holder of a patient for their records.
type QueryBody struct {
	Patient string   `json:"patient" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits"`
	Purpose string   `json:"purpose" enum:"treatment,research" doc:"why: a researcher asks for research only; emergency access is POST /v1/emergency"`
	Classes []string `json:"classes,omitempty" pattern:"^[a-z0-9][a-z0-9._-]{0,63}$" doc:"the data classes asked for; default all"`
	Token   []byte   `json:"token,omitempty" layout:"SignedConsentDocument" doc:"a token the patient signed for the caller or their centre (a consent document of kind 4)"`
}

// EmergencyBody asks for emergency access (break-glass).
type EmergencyBody struct {
	Patient string   `json:"patient" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits"`
	Reason  string   `json:"reason" enum:"unconscious,life-threatening,urgent-treatment,public-health" doc:"why: a coded reason, never free text (it goes onto ledgers)"`
	Classes []string `json:"classes,omitempty" pattern:"^[a-z0-9][a-z0-9._-]{0,63}$" doc:"the data classes asked for; default all"`
}

// StopBody stops the caller's emergency access to a patient.
type StopBody struct {
	Patient string `json:"patient" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits"`
}

// TransferBody copies a patient's records to this centre.
type TransferBody struct {
	Patient string   `json:"patient" pattern:"^[0-9a-fA-F]{64}$" doc:"the patient's pseudonym, 64 hex digits"`
	Token   []byte   `json:"token,omitempty" layout:"SignedConsentDocument" doc:"a token the patient signed for copying (action copy), when their contract does not allow it"`
	Classes []string `json:"classes,omitempty" pattern:"^[a-z0-9][a-z0-9._-]{0,63}$" doc:"the data classes to copy; default all"`
}

// DocumentBody is a consent document signed with the patient's key: a
// contract, a revocation, a veto or an erasure (medfed consent
// grant|revoke|veto --out and medfed patient erase --out write one).
type DocumentBody struct {
	Document []byte `json:"document" layout:"SignedConsentDocument" doc:"the signed document, base64: a contract (kind 2), a revocation (3), a veto (6) or an erasure (7)"`
}

// TokenBody is a patient's token, to check before using it.
type TokenBody struct {
	Token []byte `json:"token" layout:"SignedConsentDocument" doc:"the token, base64 (a consent document of kind 4), as medfed consent token prints it"`
}

// PatientRequestBody is a patient's own request, signed with their key
// (medfed patient view|erase --out writes one).
type PatientRequestBody struct {
	Request []byte `json:"request" layout:"SignedPatientRequest" doc:"the signed request, base64: op view for POST /v1/patient/view, erase for POST /v1/patient/erase"`
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
		{method: "GET", pattern: "/healthz", auth: authPublic, summary: "Say whether the process is alive", answer: map[string]string{}, handle: s.healthz,
			op: "checkHealth", tag: "health", about: `Answers {"status": "ok"} while the process serves: for a liveness probe.`},
		{method: "GET", pattern: "/readyz", auth: authPublic, summary: "Say whether the node can serve the federation", answer: Readiness{}, handle: s.readyz,
			op: "checkReadiness", tag: "health", about: "Answers 200 with the centre's name, members, connections and ledger size once another member is connected; 503 before: for a readiness probe."},
		{method: "GET", pattern: "/openapi.json", auth: authPublic, summary: "Describe this API", answer: map[string]any{}, handle: s.openapi,
			op: "getOpenAPI", tag: "health", about: "This document: built from the table the server routes with, so it describes exactly the routes served."},

		{method: "POST", pattern: "/v1/patients", auth: authStaff, roles: []string{"registrar"}, summary: "Register a patient: derive their pseudonym from an identifier",
			body: RegisterBody{}, answer: fhirResource("Patient"), handle: s.register,
			op: "registerPatient", tag: "patients", about: "Derives the patient's pseudonym from their identifier with the federation's OPRF (no single centre can compute it alone) and forgets the identifier: " +
				"the same identifier gives the same pseudonym at every member. The answer is a Patient whose id is the pseudonym."},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/holders", auth: authStaff, roles: []string{"clinician", "registrar", "admin"},
			summary: "List the centres holding a patient's records", answer: DirectoryLookup{},
			params: []param{pseudonymParam, {"purpose", "query", "why: treatment (the default), research or emergency"}}, handle: s.holders,
			op: "listHolders", tag: "patients", about: "Looks the patient up in the federation's directory. The lookup is itself recorded on this centre's ledger (who asked, for what purpose), " +
				"and the patient sees it in their view; Complete says whether every replica of the directory answered."},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/keys", auth: authStaff, roles: []string{"registrar"}, summary: "Attest a patient's public key, having checked who they are",
			body: KeyBody{}, answer: ConsentDelivery{}, params: []param{pseudonymParam}, handle: s.attest,
			op: "attestKey", tag: "patients", about: "This centre signs that the key is the patient's and delivers the attestation to the federation. The patient's first key counts at once; " +
				"a key that replaces another waits for a second staff member's approval and the charter's key notice, during which the key in force can veto it. " +
				"With compromised, nothing the earlier keys signed counts any more, and the patient's consent stands withdrawn until they sign a contract with the new key."},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/keys", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "List the attestations of a patient's key and where each stands",
			answer:  KeyList{}, params: []param{pseudonymParam}, handle: s.keys,
			op: "listKeys", tag: "patients", about: "Each attestation of the patient's keys with its hash, the centre and staff member who made it, and its status: in force, superseded, " +
				"or a replacement awaiting its second approval or its notice."},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/delegations", auth: authStaff, roles: []string{"registrar"},
			summary: "Make a delegation for a patient who cannot sign one, having seen the evidence",
			body:    DelegationBody{}, answer: DelegationDelivery{}, params: []param{pseudonymParam}, handle: s.delegate,
			op: "delegate", tag: "patients", about: "For a child with no key, or an adult who lacks capacity: this centre signs, on the registrar's word and the evidence named, " +
				"that the delegate's key may act for the patient within the scope until the expiry. It counts once a second staff member approves it " +
				"(POST .../delegations/approvals with the hash answered) and, when the patient has a key in force, after the charter's key notice, in which that key can veto it."},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/delegations", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "List a patient's delegations and where each stands",
			answer:  DelegationList{}, params: []param{pseudonymParam}, handle: s.delegations,
			op: "listDelegations", tag: "patients", about: "Each delegation of the patient's, the patient's own and registrars', with its ID, hash, delegate key, relationship, scope, term " +
				"and status: in force, awaiting a second approval, in its notice period, vetoed, void, not yet in force, expired or revoked."},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/delegations/endings", auth: authStaff, roles: []string{"registrar"},
			summary: "End a delegation for a patient who cannot revoke it, having seen the evidence",
			body:    DelegationEndingBody{}, answer: DelegationDelivery{}, params: []param{pseudonymParam}, handle: s.endDelegation,
			op: "endDelegation", tag: "patients", about: "A court ends a guardianship, a power of attorney is revoked: this centre signs, on the registrar's word and the evidence named, " +
				"a revocation of the delegation. It counts once a second staff member approves it (POST .../delegations/approvals with the hash answered), from that approval: " +
				"what the delegate signed before stands. A registrar ends delegations only, never a contract or a token."},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/delegations/approvals", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "Approve a registrar's delegation, or a registrar's ending of one",
			body:    DelegationApprovalBody{}, answer: ConsentDelivery{}, params: []param{pseudonymParam}, handle: s.approveDelegation,
			op: "approveDelegation", tag: "patients", about: "The second staff member a registrar's delegation, or its ending, needs, having checked the evidence: someone other than the registrar who made it."},
		{method: "POST", pattern: "/v1/patients/{pseudonym}/keys/approvals", auth: authStaff, roles: []string{"registrar", "privacy-officer"},
			summary: "Approve an attestation that replaces a patient's key",
			body:    ApprovalBody{}, answer: ConsentDelivery{}, params: []param{pseudonymParam}, handle: s.approve,
			op: "approveKey", tag: "patients", about: "The second staff member a key replacement needs, having checked who the patient is: someone other than the registrar who attested it " +
				"(at another centre, or another named staff member here). The replacement then takes effect after the charter's key notice, unless the key in force vetoes it."},

		{method: "POST", pattern: "/v1/records", auth: authStaff, roles: intake, summary: "Add a record",
			body: RecordBody{}, limit: maxRecordBody, status: http.StatusCreated, answer: fhirResource("DocumentReference"), handle: s.addRecord,
			op: "addRecord", tag: "records", about: "Stores the payload here, appends the record (never the payload) to this centre's ledger and announces this centre in the directory as a holder of the patient's records. " +
				"The answer's Location is the record's path. A Warning header says when the record is stored but not yet announced (the node announces it at its next start): do not send it again."},
		{method: "POST", pattern: "/v1/records/{index}/amendments", auth: authStaff, roles: intake, summary: "Amend a record: a new version that replaces it",
			body: RecordBody{}, limit: maxRecordBody, status: http.StatusCreated, answer: fhirResource("DocumentReference"), params: []param{indexParam}, handle: s.amendRecord,
			op: "amendRecord", tag: "records", about: "Adds a record that replaces the one at index (its relatesTo says so): queries release the newest version only; the old one stays on the ledger."},
		{method: "GET", pattern: "/v1/records/{index}", auth: authStaff, roles: clinical, summary: "Fetch a record of this centre with its payload, as consent allows",
			answer: fhirResource("DocumentReference"), params: []param{indexParam}, handle: s.getRecord,
			op: "getRecord", tag: "records", about: "Reads the record through the same consent decision as a query from any centre, for treatment, and records the access on this centre's ledger. " +
				"403 when consent denies it (the access entry is recorded all the same), 410 when its payload was erased, 503 with Retry-After while it is not in a final checkpoint yet."},

		{method: "POST", pattern: "/v1/query", auth: authStaff, roles: []string{"clinician", "researcher"}, summary: "Query every centre holding a patient's records",
			body: QueryBody{}, answer: fhirResource("Bundle"), handle: s.query,
			op: "queryRecords", tag: "query", about: "Asks every holder the directory lists; each decides by the patient's consent (or the token), records the access on its own ledger and releases what consent allows, " +
				"proven in its final checkpoint. The answer is a searchset Bundle of DocumentReferences with their payloads, and an OperationOutcome with one issue per holder: " +
				"released, denied and why, or failed. A researcher queries for research only."},
		{method: "POST", pattern: "/v1/emergency", auth: authStaff, roles: clinical, summary: "Emergency access to a patient's records (break-glass)",
			body: EmergencyBody{}, answer: fhirResource("Bundle"), handle: s.emergency,
			op: "emergencyAccess", tag: "query", about: "A query for the emergency purpose with a coded reason: allowed where the charter allows it, unless the patient's contract denies emergency access. " +
				"Each holder records it, and it is notified to the patient and to each holder's privacy officer (GET /v1/notifications). It ends with POST /v1/emergency/stop, or after the charter's emergency-duration."},
		{method: "POST", pattern: "/v1/emergency/stop", auth: authStaff, roles: clinical, summary: "Stop the caller's emergency access to a patient at every holder",
			body: StopBody{}, answer: EmergencyStops{}, handle: s.stopEmergency,
			op: "stopEmergency", tag: "query", about: "Each holder records the stop and notifies it, as it did the start; the access also ends on its own after the charter's emergency-duration."},
		{method: "POST", pattern: "/v1/transfer", auth: authStaff, roles: intake, summary: "Copy a patient's records to this centre (switching provider)",
			body: TransferBody{}, answer: TransferResult{}, handle: s.transfer,
			op: "transferRecords", tag: "query", about: "Asks every holder for the records consent lets this centre copy (action copy, purpose treatment; or a token) and stores each here with its provenance: " +
				"the source, its index there, and its entry with the inclusion proof. Each source records the transfer; records copied before are not copied again."},

		{method: "POST", pattern: "/v1/consent", auth: authPatient, summary: "Submit a consent document signed with the patient's key",
			body: DocumentBody{}, limit: 2 * consent.MaxDocument, answer: ConsentDelivery{}, handle: s.submitConsent,
			op: "submitConsent", tag: "consent", about: "Takes a contract, a revocation, a veto of a key replacement, an erasure or a delegation (SignedConsentDocument says how to make one), checks its signature against the patient's attested key (or, for a document naming a delegation, the delegate's key within its scope and term), " +
				"appends it to this centre's ledger and delivers it to every centre holding the patient's records and to a majority of the federation. " +
				"Confirmed says that a majority holds it: from then on no centre decides without it. When Confirmed is false, submit it again later (a second submission changes nothing else)."},
		{method: "GET", pattern: "/v1/consent/{pseudonym}", auth: authStaff, roles: []string{"clinician", "registrar", "privacy-officer"}, summary: "Show a patient's consent contract",
			answer: fhirResource("Consent"), params: []param{pseudonymParam}, handle: s.showConsent,
			op: "showConsent", tag: "consent", about: "The contract in force as a FHIR Consent (its id is the contract's ID, its identifier ID/version); 404 when the patient has none, " +
				"and the charter's default policy applies."},
		{method: "POST", pattern: "/v1/consent/tokens/check", auth: authStaff, roles: []string{"clinician", "registrar", "researcher"}, summary: "Check a patient's token before using it",
			body: TokenBody{}, limit: 2 * consent.MaxDocument, answer: TokenCheck{}, handle: s.checkToken,
			op: "checkToken", tag: "consent", about: "Says whether the token verifies, whom it grants what, until when, and how many uses are left here; nothing is used."},

		{method: "POST", pattern: "/v1/patient/view", auth: authPatient, summary: "The patient's own view of every holder's records and accesses",
			body: PatientRequestBody{}, answer: fhirResource("Bundle"), handle: s.patientView,
			op: "patientView", tag: "patient", about: "Relays the patient's signed view request (SignedPatientRequest, op view, relay this centre) to every holder the directory lists at any replica of the patient's key and, in a federation of up to 64 members, every member besides. " +
				"The answer is a collection Bundle: each holder's records (DocumentReferences without payloads) and every event about them on its ledger (AuditEvents: accesses, lookups, transfers, erasures, key changes), " +
				"and an OperationOutcome that says how many centres were asked, how many hold nothing, and names each that could not be reached, with why: it may hold records. " +
				"A holder with more entries than a page says where it goes on from: ask again with a cursor for it."},
		{method: "POST", pattern: "/v1/patient/erase", auth: authPatient, summary: "The patient's erasure at every holder",
			body: PatientRequestBody{}, answer: PatientResult{}, handle: s.patientErase,
			op: "patientErase", tag: "patient", about: "Relays the patient's signed erase request (SignedPatientRequest, op erase, relay this centre) to the centres a view goes to: each holding records crypto-shreds their payloads, " +
				"records an erasure entry for each and withdraws from the directory; the ledger entries stay, so every proof stays valid. " +
				"Submit the patient's erasure document (a SignedConsentDocument of kind 7) to POST /v1/consent too: it reaches the holders this request could not, which erase before they release anything. Erasing again changes nothing."},

		{method: "GET", pattern: "/v1/notifications", auth: authStaff, roles: []string{"privacy-officer"}, summary: "List emergency access notifications",
			answer: fhirResource("Bundle"), params: []param{{"after", "query", "the ledger index of the last notification seen (default -1: all)"}}, handle: s.notifications,
			op: "listNotifications", tag: "audit", about: "The emergency accesses to patients whose records this centre holds (AuditEvent action E) and the changes to their keys (action U), as a collection Bundle, oldest first."},
		{method: "GET", pattern: "/v1/ledger", auth: authStaff, roles: audit, summary: "Show the ledger's checkpoints and cosigners",
			answer: LedgerStatus{}, handle: s.ledger,
			op: "ledgerStatus", tag: "audit", about: "The ledger's size, its latest checkpoints and which witnesses cosigned them, and any evidence of members signing two histories."},
		{method: "GET", pattern: "/v1/ledger/entries/{index}/proof", auth: authStaff, roles: audit,
			summary: "Prove an entry in the latest final checkpoint", answer: EntryProof{}, params: []param{{"index", "path", "the entry's ledger index"}}, handle: s.proof,
			op: "proveEntry", tag: "audit", about: "The entry with its inclusion proof in the latest final checkpoint, for auditors; clinicians read records through the consent-checked, audited GET /v1/records/{index}."},
		{method: "GET", pattern: "/v1/federation", auth: authStaff, roles: audit, summary: "Show the federation's members and who is connected",
			answer: FederationStatus{}, handle: s.federation,
			op: "federationStatus", tag: "federation", about: "The federation's ID, its charter's version, each member's name and libp2p peer ID and whether it is connected, and charter changes pending."},
		{method: "GET", pattern: "/v1/federation/charter", auth: authStaff, roles: audit, summary: "The charter chain this centre adopted",
			answer: CharterChain{}, handle: s.charter,
			op: "getCharter", tag: "federation", about: "Every version of the charter, version 1 first, as one text: what medfed ledger verify --charter checks a ledger against."},
		{method: "GET", pattern: "/v1/federation/evidence", auth: authStaff, roles: audit, summary: "List evidence of members signing two histories",
			answer: evidenceList{}, handle: s.evidence,
			op: "listEvidence", tag: "federation", about: "Each member caught signing two checkpoints that cannot both be true, with the reason and when it was seen: this centre no longer witnesses it."},
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

// consentView is the consent of the route's patient, as this centre holds it.
func (s *Server) consentView(ctx context.Context, c *call) (ConsentView, error) {
	p, err := c.pseudonym()
	if err != nil {
		return ConsentView{}, err
	}
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return ConsentView{}, err
	}
	return ConsentViewOf(v), nil
}

func (s *Server) keys(ctx context.Context, c *call) (any, error) {
	cv, err := s.consentView(ctx, c)
	if err != nil {
		return nil, err
	}
	return KeyList{Pseudonym: cv.Pseudonym, Key: cv.Key, Keys: cv.Keys, KeyNotice: cv.KeyNotice}, nil
}

func (s *Server) approve(ctx context.Context, c *call) (any, error) {
	var b ApprovalBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	return s.approveHash(ctx, c, b.Attestation)
}

// approveHash has the caller approve the attestation or the registrar's
// delegation of the route's patient whose hash is hash, in hex.
func (s *Server) approveHash(ctx context.Context, c *call, hash string) (any, error) {
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	h, err := consent.ParseHash(hash)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	d, err := s.node.Approve(ctx, p, h, staff)
	if err != nil {
		return nil, err
	}
	return ConsentDeliveryOf(d), nil
}

func (s *Server) delegate(ctx context.Context, c *call) (any, error) {
	var b DelegationBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	d := consent.Delegation{Subject: p, Expires: b.Expires}
	if d.Delegate, err = consent.ParsePublicKey(b.DelegateKey); err != nil {
		return nil, err
	}
	if d.Relationship, err = consent.ParseRelationship(b.Relationship); err != nil {
		return nil, err
	}
	if d.Evidence, err = consent.ParseEvidence(b.Evidence); err != nil {
		return nil, err
	}
	for _, name := range b.Scope {
		sc, err := consent.ParseScope(name)
		if err != nil {
			return nil, err
		}
		d.Scope |= sc
	}
	if d.Staff, err = c.staffID(); err != nil {
		return nil, err
	}
	id, hash, del, err := s.node.Delegate(ctx, d)
	if err != nil {
		return nil, err
	}
	return DelegationDelivery{ID: id.String(), Hash: consent.FormatHash(hash), ConsentDelivery: ConsentDeliveryOf(del)}, nil
}

func (s *Server) endDelegation(ctx context.Context, c *call) (any, error) {
	var b DelegationEndingBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	target, err := consent.ParseID(b.Delegation)
	if err != nil {
		return nil, err
	}
	ev, err := consent.ParseEvidence(b.Evidence)
	if err != nil {
		return nil, err
	}
	staff, err := c.staffID()
	if err != nil {
		return nil, err
	}
	hash, del, err := s.node.EndDelegation(ctx, p, target, staff, ev)
	if err != nil {
		return nil, err
	}
	return DelegationDelivery{ID: target.String(), Hash: consent.FormatHash(hash), ConsentDelivery: ConsentDeliveryOf(del)}, nil
}

func (s *Server) delegations(ctx context.Context, c *call) (any, error) {
	cv, err := s.consentView(ctx, c)
	if err != nil {
		return nil, err
	}
	out := DelegationList{Pseudonym: cv.Pseudonym, Delegations: cv.Delegations, KeyNotice: cv.KeyNotice}
	if out.Delegations == nil {
		out.Delegations = []ConsentDelegation{} // none: an empty list, not null
	}
	return out, nil
}

func (s *Server) approveDelegation(ctx context.Context, c *call) (any, error) {
	var b DelegationApprovalBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	return s.approveHash(ctx, c, b.Delegation)
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
	if bytes.HasPrefix(b.Data, documentMagic) {
		return nil, fmt.Errorf("%w: data: a payload may not begin with the bytes of medfed's document envelope (what FHIR's documents are kept in)", errBadRequest)
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
	_, r, err := oneReleased(c, QueryResultOf(res), index)
	if err != nil {
		return nil, err
	}
	if r.Erased {
		return nil, errStatus{http.StatusGone, fmt.Errorf("record %d: %s", index, noPayload)}
	}
	return documentReference(s.node.Name(), RecordMetaOf(meta), r.Payload, true), nil
}

// oneReleased is record index of a query's one holder, or why it was not
// released: the holder failed (503), denied it (403), has not finalised
// it yet (503, with Retry-After), or released others but not it (403).
func oneReleased(c *call, res QueryResult, index int64) (QueryHolder, QueryRecord, error) {
	if len(res.Holders) != 1 {
		return QueryHolder{}, QueryRecord{}, errors.New("the holder did not answer the query")
	}
	h := res.Holders[0]
	switch h.Status {
	case "failed":
		return h, QueryRecord{}, fmt.Errorf("%w: %s could not answer: %s", node.ErrUnavailable, h.Name, h.Error)
	case "denied":
		return h, QueryRecord{}, errStatus{http.StatusForbidden, fmt.Errorf("%s denied it by consent: %s (%s); access entry %d", h.Name, h.Reason, h.Basis, h.Access)}
	}
	for _, r := range h.Records {
		if r.Index == index {
			return h, r, nil
		}
	}
	if h.Pending > 0 {
		c.w.Header().Set("Retry-After", "2")
		return h, QueryRecord{}, fmt.Errorf("%w: record %d is not in a final checkpoint yet; ask again in a few seconds", centre.ErrNotReady, index)
	}
	return h, QueryRecord{}, errStatus{http.StatusForbidden, fmt.Errorf("record %d was not released: an amendment replaced it, or consent does not allow it (access entry %d)", index, h.Access)}
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
	if _, err := s.patientDocument(b.Document, consent.KindContract, consent.KindRevocation, consent.KindVeto, consent.KindErasure, consent.KindDelegation); err != nil {
		return nil, err
	}
	del, err := s.node.SubmitConsent(ctx, b.Document)
	if err != nil {
		return nil, err
	}
	return ConsentDeliveryOf(del), nil
}

// patientDocument parses a document a patient signed and submits
// through a public route, of one of the kinds the route takes, within the
// rate of the patient's key.
func (s *Server) patientDocument(raw []byte, kinds ...consent.Kind) (consent.Document, error) {
	d, err := consent.Parse(raw)
	if err != nil {
		return d, err
	}
	if !slices.Contains(kinds, d.Kind) {
		var names []string
		for _, k := range kinds {
			names = append(names, k.String()+"s")
		}
		return d, fmt.Errorf("%w: a %s is not submitted here (%s are; a key's attestation and approval are POST /v1/patients/{pseudonym}/keys and .../keys/approvals)",
			errBadRequest, d.Kind, strings.Join(names, ", "))
	}
	return d, s.limits.admitKey(d.Signer)
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
