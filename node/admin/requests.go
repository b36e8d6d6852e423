package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// The socket's requests, as the medfed commands write them: identifiers
// in hex, codes by name, a token in base64. Each parses into the centre's
// typed request, naming every field that is wrong.

// RecordRequest registers a record: for a patient named by pseudonym, or
// by an identifier ("system|value") that the centre pseudonymises and
// never stores.
type RecordRequest struct {
	Pseudonym  string    `json:",omitempty"`
	Identifier string    `json:",omitempty"`
	Class      string    // data class, e.g. "lab-result"
	Occurred   time.Time // when the interaction happened
	Location   string    `json:",omitempty"`
	Author     string    `json:",omitempty"` // the author's staff ID, 32 hex digits
	Replaces   int64     `json:",omitempty"` // the index of the record an amendment replaces
	Payload    []byte    // the clinical payload: encrypted at rest, never on the ledger
}

// RecordResponse says where a record went.
type RecordResponse struct {
	Pseudonym string
	Index     int64 // the record entry's ledger index
	// AnnounceError says why the directory announcement failed: the
	// record is stored all the same (a retry would store it twice), and
	// the node announces it again at its next start.
	AnnounceError string `json:",omitempty"`
}

func (r RecordRequest) parse() (centre.RecordRequest, error) {
	out := centre.RecordRequest{Identifier: r.Identifier, Class: r.Class, Occurred: r.Occurred, Location: r.Location, Replaces: r.Replaces, Payload: r.Payload}
	var err error
	if r.Pseudonym != "" {
		if out.Pseudonym, err = parsePseudonym(r.Pseudonym); err != nil {
			return out, err
		}
	}
	if r.Author != "" {
		if out.Author, err = consent.ParseStaffID(r.Author); err != nil {
			return out, fmt.Errorf("%w: author: %v", centre.ErrBadRecord, err)
		}
	}
	return out, nil
}

// QueryRequest is a clinician's query.
type QueryRequest struct {
	Pseudonym string
	Purpose   string // treatment, research or emergency
	Role      string
	Staff     string   `json:",omitempty"` // 32 hex digits
	Classes   []string `json:",omitempty"`
	Token     string   `json:",omitempty"` // a patient's token, base64
	Reason    string   `json:",omitempty"` // the emergency reason
	// Local asks this centre alone (its own records), without a lookup.
	Local bool `json:",omitempty"`
}

func (r QueryRequest) parse() (centre.QueryRequest, error) {
	p, err := parsePseudonym(r.Pseudonym)
	if err != nil {
		return centre.QueryRequest{}, err
	}
	a, aerr := api.ParseAsker(r.Role, r.Staff, r.Purpose, r.Reason)
	token, terr := parseToken(r.Token)
	return centre.QueryRequest{Pseudonym: p, Asker: a, Classes: r.Classes, Token: token, Local: r.Local}, errors.Join(aerr, terr)
}

// TransferRequest asks the centre to copy a patient's records from every
// centre holding them.
type TransferRequest struct {
	Pseudonym string
	Role      string
	Staff     string   `json:",omitempty"` // 32 hex digits
	Classes   []string `json:",omitempty"`
	Token     string   `json:",omitempty"` // a patient's token, base64
}

func (r TransferRequest) parse() (centre.TransferRequest, error) {
	p, err := parsePseudonym(r.Pseudonym)
	if err != nil {
		return centre.TransferRequest{}, err
	}
	a, aerr := api.ParseAsker(r.Role, r.Staff, consent.Treatment.String(), "")
	token, terr := parseToken(r.Token)
	return centre.TransferRequest{Pseudonym: p, Role: a.Role, Staff: a.Staff, Classes: r.Classes, Token: token}, errors.Join(aerr, terr)
}

// AttestRequest asks the centre to attest a patient's key.
type AttestRequest struct {
	Pseudonym   string
	Key         string // 64 hex digits
	Compromised bool   // the keys it supersedes are lost or stolen
}

// StopRequest asks the centre to stop its emergency access to a patient
// at every holder: one staff member's, or (Staff empty) all of it.
type StopRequest struct {
	Pseudonym string
	Staff     string `json:",omitempty"` // 32 hex digits
}

func (r StopRequest) parse() (ledger.Pseudonym, ledger.StaffID, error) {
	p, err := parsePseudonym(r.Pseudonym)
	if err != nil {
		return p, ledger.StaffID{}, err
	}
	var staff ledger.StaffID
	if r.Staff != "" {
		if staff, err = consent.ParseStaffID(r.Staff); err != nil {
			return p, staff, fmt.Errorf("staff: %w", err)
		}
	}
	return p, staff, nil
}

// DecideRequest asks what the centre would decide for a request.
type DecideRequest struct {
	Pseudonym string
	Centre    string // the requesting centre's name
	Role      string
	Staff     string `json:",omitempty"` // 32 hex digits
	Action    string
	Purpose   string
	Class     string
	Recorded  time.Time // when the record was made
	Reason    string    `json:",omitempty"` // emergency reason code
}

func (r DecideRequest) parse() (centre.DecideRequest, error) {
	p, err := parsePseudonym(r.Pseudonym)
	if err != nil {
		return centre.DecideRequest{}, err
	}
	a, aerr := api.ParseAsker(r.Role, r.Staff, r.Purpose, r.Reason)
	action, cerr := consent.ParseAction(r.Action)
	return centre.DecideRequest{Pseudonym: p, Centre: r.Centre, Asker: a, Action: action, Class: r.Class, Recorded: r.Recorded}, errors.Join(aerr, cerr)
}

// parseToken decodes a patient's token written in base64; "" is none.
func parseToken(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: the token is not base64", node.ErrInvalid)
	}
	return b, nil
}

// parsePseudonym parses a request's pseudonym, naming the field when it
// is wrong.
func parsePseudonym(s string) (ledger.Pseudonym, error) {
	p, err := ledger.ParsePseudonym(s)
	if err != nil {
		return p, fmt.Errorf("pseudonym: %w", err)
	}
	return p, nil
}

// BackupRequest asks the node for a backup into Dir, an absolute path to
// a directory that does not exist or is empty.
type BackupRequest struct {
	Dir string
}

// CouncilRequest asks the node to approve a new council: the names of
// the members on it, none for every member.
type CouncilRequest struct {
	Council []string
}

// BlockRequest asks the node to cut a member off for a while.
type BlockRequest struct {
	Centre string
	For    string // a Go duration, 1s to 24h
}

// BlockResponse says until when.
type BlockResponse struct {
	Centre string
	Until  time.Time `json:",omitzero"` // zero: unblocked
}

// KeyCeremonyRequest asks the node to take part in a key ceremony:
// generating the federation's pseudonym key, or resharing it.
type KeyCeremonyRequest struct {
	Committee []string // the members that will hold the key
	Threshold int      `json:",omitempty"` // 0: a majority of the committee
	Attempt   int      `json:",omitempty"` // 0: the first
	Wait      string   `json:",omitempty"` // how long the first round waits for every participant, a Go duration
	Round     string   `json:",omitempty"` // how long each later round waits, a Go duration
}

func (r KeyCeremonyRequest) parse() (centre.KeyCeremony, error) {
	out := centre.KeyCeremony{Committee: r.Committee, Threshold: r.Threshold, Attempt: r.Attempt}
	var errs []error
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"wait", r.Wait, &out.Timeouts.FirstRound}, {"round", r.Round, &out.Timeouts.Round}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf("%w: %s %q: want a positive duration such as 5m", node.ErrInvalid, d.name, d.in))
		}
		*d.out = v
	}
	return out, errors.Join(errs...)
}

// KeyCeremonyResponse is what came of a key ceremony at the node.
type KeyCeremonyResponse struct {
	Holders   []string // the committee, by share index
	Threshold int
	Index     int      // the node's share, 0 if none
	Left      []string `json:",omitempty"` // dealers the ceremony went on without
	Draft     api.Progress
	Approved  bool // false: the node is not on the council
}

func keyCeremonyResponse(r centre.KeyCeremonyResult) KeyCeremonyResponse {
	return KeyCeremonyResponse{Holders: r.Holders, Threshold: r.Threshold, Index: r.Index, Left: r.Left,
		Draft: api.ProgressOf(r.Progress), Approved: r.Approved}
}

// IssueRequest issues a prescription, on behalf of its prescriber.
type IssueRequest struct {
	Pseudonym  string
	Prescriber string // the prescriber's staff ID, 32 hex digits
	System     string // dmd or snomed (or the system's FHIR URI)
	Code       string
	Display    string
	Quantity   uint32
	Unit       string
	Repeats    int
	ValidFrom  time.Time `json:",omitzero"` // zero: now
	ValidUntil time.Time `json:",omitzero"` // zero: six months after ValidFrom
	Dosage     string    `json:",omitempty"`
	Location   string    `json:",omitempty"`
}

func (r IssueRequest) parse() (centre.IssueRequest, error) {
	out := centre.IssueRequest{Quantity: r.Quantity, Unit: r.Unit, Repeats: r.Repeats, ValidFrom: r.ValidFrom, ValidUntil: r.ValidUntil, Dosage: r.Dosage, Location: r.Location}
	var errs []error
	var err error
	if out.Pseudonym, err = parsePseudonym(r.Pseudonym); err != nil {
		errs = append(errs, err)
	}
	if out.Prescriber, err = consent.ParseStaffID(r.Prescriber); err != nil {
		errs = append(errs, fmt.Errorf("prescriber: %w", err))
	}
	if out.Medication, err = api.ParseMedication(r.System, r.Code, r.Display); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// DispenseRequest claims the next supply of a prescription for one of the
// centre's pharmacists.
type DispenseRequest struct {
	Token      string // as the patient brings it: rx1.<centre>.<index>.<secret>
	Pharmacist string // 32 hex digits
}

func (r DispenseRequest) parse() (centre.DispenseRequest, error) {
	tok, terr := prescription.ParseToken(r.Token)
	staff, serr := consent.ParseStaffID(r.Pharmacist)
	if serr != nil {
		serr = fmt.Errorf("pharmacist: %w", serr)
	}
	return centre.DispenseRequest{Token: tok, Pharmacist: staff}, errors.Join(terr, serr)
}

// CancelRequest cancels a prescription the centre issued.
type CancelRequest struct {
	Index      int64
	Prescriber string // 32 hex digits
	Reason     string // error, changed, adverse-reaction, no-longer-needed or patient-request
}

// CancelResponse is the cancellation recorded, and the prescription now.
type CancelResponse = api.PrescriptionCancelled

// PrescriptionsRequest asks for a patient's prescriptions, as the
// federated query releases them to a staff member.
type PrescriptionsRequest struct {
	Pseudonym string
	Role      string
	Staff     string `json:",omitempty"` // 32 hex digits
	Purpose   string
	Local     bool `json:",omitempty"` // this centre's own alone
}

func (r PrescriptionsRequest) parse() (centre.PrescriptionsRequest, error) {
	p, err := parsePseudonym(r.Pseudonym)
	if err != nil {
		return centre.PrescriptionsRequest{}, err
	}
	a, err := api.ParseAsker(r.Role, r.Staff, r.Purpose, "")
	return centre.PrescriptionsRequest{Pseudonym: p, Asker: a, Local: r.Local}, err
}
