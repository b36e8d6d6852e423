package api

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// The JSON shapes of the centre's answers, as this API and the admin
// socket (node/admin) send them, and the one conversion of each from the
// centre's typed values. Identifiers are written as they are everywhere
// else: pseudonyms and staff IDs in hex, codes by name, binary in base64.

// Readiness is /readyz's answer.
type Readiness struct {
	Centre    string
	Members   int
	Connected int // other members connected
	Size      int64
	Final     int64 // the latest final checkpoint's size, 0 if none yet
	// AnnounceBacklog counts announcements not yet sent, or sent and not
	// yet checked at their replicas.
	AnnounceBacklog int64
}

// ReadinessOf is r's JSON shape.
func ReadinessOf(r centre.Readiness) Readiness { return Readiness(r) }

// EntryProof is a ledger entry with its inclusion proof.
type EntryProof struct {
	Index      int64
	Kind       string
	Entry      []byte    // the entry's canonical encoding (the leaf)
	Size       int64     // the final checkpoint's size
	Checkpoint string    // its signed note, cosignatures included
	Proof      [][]byte  // the tlog record proof, leaf to root
	Time       time.Time // when the ledger appended the entry
	Subject    string    `json:",omitempty"` // the patient's pseudonym, hex
}

// EntryProofOf is p's JSON shape.
func EntryProofOf(p centre.EntryProof) EntryProof {
	out := EntryProof{Index: p.Index, Kind: p.Kind.String(), Entry: p.Entry, Size: p.Size, Checkpoint: string(p.Checkpoint), Time: p.Time,
		Subject: hexOrEmpty(p.Subject)}
	for _, h := range p.Proof {
		out.Proof = append(out.Proof, h[:])
	}
	return out
}

// RecordMeta is a record or amendment entry, without its payload.
type RecordMeta struct {
	Index     int64
	Kind      string
	Pseudonym string
	Class     string
	Occurred  time.Time
	Location  string `json:",omitempty"`
	Author    string
	// AuthorKind is "device" for a reading a device of the patient's
	// added (Author is then its ID), "patient" for a note of the
	// patient's own (Author: an ID of the key that signed it); empty for
	// staff.
	AuthorKind string `json:",omitempty"`
	Replaces   int64  `json:",omitempty"`
	Recorded   time.Time
}

// RecordMetaOf is m's JSON shape.
func RecordMetaOf(m centre.RecordMeta) RecordMeta {
	return RecordMeta{Index: m.Index, Kind: m.Kind.String(), Pseudonym: m.Pseudonym.String(), Class: m.Record.DataClass, Occurred: m.Record.Occurred,
		Location: m.Record.Location, Author: m.Record.Author.String(), AuthorKind: authorKind(m.Record), Replaces: m.Record.Replaces, Recorded: m.Recorded}
}

// authorKind is a record's author kind as the shapes write it: empty for
// staff, as before there were others.
func authorKind(r ledger.Record) string {
	if r.AuthorKind == ledger.AuthorStaff {
		return ""
	}
	return r.AuthorKind.String()
}

// Notice is an emergency access notification, or one of a change to who
// speaks for the patient: a key's attestation, its approval, a veto.
type Notice struct {
	Index       int64 // the ledger entry's index: the feed's cursor
	Time        time.Time
	Pseudonym   string
	Event       string // emergency-start, emergency-stop, key-attestation, key-approval or key-veto
	Centre      string // the requesting, attesting or approving centre
	Staff       string `json:",omitempty"`
	Role        string `json:",omitempty"`
	Reason      string `json:",omitempty"`
	Attestation string `json:",omitempty"` // the attestation a key event is about
	Permitted   bool
}

// NoticeOf is x's JSON shape.
func NoticeOf(x centre.Notice) Notice {
	if x.Document != 0 {
		return Notice{Index: x.Index, Time: x.Time, Pseudonym: x.Subject.String(), Event: "key-" + x.Document.String(), Centre: x.Centre,
			Staff: staffOrEmpty(x.Staff), Attestation: consent.FormatHash(x.Attestation), Permitted: true}
	}
	return Notice{Index: x.Index, Time: x.Time, Pseudonym: x.Subject.String(), Event: x.Event.String(), Centre: x.Centre, Staff: staffOrEmpty(x.Staff),
		Role: x.Role.String(), Reason: x.Reason.String(), Permitted: x.Permitted}
}

// EmergencyStops says, holder by holder, how many emergency sessions were
// stopped.
type EmergencyStops struct {
	Pseudonym string
	Holders   []EmergencyStop
	Lookup    string `json:",omitempty"` // why the holder list may be incomplete
}

// EmergencyStop is one holder's answer.
type EmergencyStop struct {
	Centre  string
	Stopped int
	Error   string `json:",omitempty"`
}

// EmergencyStopsOf is r's JSON shape.
func EmergencyStopsOf(r centre.EmergencyStops) EmergencyStops {
	out := EmergencyStops{Pseudonym: r.Pseudonym.String(), Holders: []EmergencyStop{}, Lookup: ErrorText(r.Lookup)}
	for _, h := range r.Holders {
		out.Holders = append(out.Holders, EmergencyStop{Centre: h.Name, Stopped: h.Stopped, Error: ErrorText(h.Err)})
	}
	return out
}

// TokenCheck is what a centre makes of a patient's token.
type TokenCheck struct {
	ID         string
	Pseudonym  string
	Grantee    string // a centre's name, "any centre", and /STAFF-ID when for one staff member
	Role       string `json:",omitempty"`
	Purposes   string
	Actions    string
	Classes    []string `json:",omitempty"`
	DataPeriod string
	Issued     time.Time
	Expires    time.Time
	Uses       int
	Used       int
	Valid      bool
	Problem    string `json:",omitempty"` // why it would not be honoured
}

// TokenCheckOf is t's JSON shape.
func TokenCheckOf(t centre.TokenCheck) TokenCheck {
	out := TokenCheck{ID: t.ID.String(), Pseudonym: t.Subject.String(), Grantee: t.Grantee, Purposes: t.Purposes.String(), Actions: t.Actions.String(),
		Classes: t.Classes, DataPeriod: t.DataPeriod.String(), Issued: t.Issued, Expires: t.Expires, Uses: int(t.Uses), Used: t.Used,
		Valid: t.Valid(), Problem: t.Problem}
	if t.Token.Grantee.Role != 0 {
		out.Role = t.Token.Grantee.Role.String()
	}
	return out
}

// LedgerStatus is what an operator sees of the centre's ledger.
type LedgerStatus struct {
	Origin   string
	Size     int64
	Latest   *CheckpointStatus `json:",omitempty"` // the last checkpoint signed
	Final    *CheckpointStatus `json:",omitempty"` // the last one the witness quorum cosigned
	Evidence []EvidenceStatus  // members caught signing two histories
}

// CheckpointStatus describes one checkpoint.
type CheckpointStatus struct {
	Size      int64
	Root      string   // base64, as in the checkpoint
	Cosigners []string `json:",omitempty"` // member names
}

// EvidenceStatus is one pair of conflicting checkpoints a centre holds.
type EvidenceStatus struct {
	Origin string
	Reason string
	Seen   time.Time
}

// EvidenceOf is ev's JSON shape: [] when there is none.
func EvidenceOf(ev []centre.EvidenceStatus) []EvidenceStatus {
	out := []EvidenceStatus{}
	for _, e := range ev {
		out = append(out, EvidenceStatus(e))
	}
	return out
}

// LedgerStatusOf is st's JSON shape.
func LedgerStatusOf(st centre.LedgerStatus) LedgerStatus {
	cp := func(c *centre.CheckpointStatus) *CheckpointStatus {
		if c == nil {
			return nil
		}
		return &CheckpointStatus{Size: c.Size, Root: base64.StdEncoding.EncodeToString(c.Root[:]), Cosigners: c.Cosigners}
	}
	return LedgerStatus{Origin: st.Origin, Size: st.Size, Latest: cp(st.Latest), Final: cp(st.Final), Evidence: EvidenceOf(st.Evidence)}
}

// FederationStatus is the membership as the running node sees it, with
// the evidence of equivocation it holds.
type FederationStatus struct {
	Federation string
	Version    uint64
	Self       peer.ID
	Member     bool
	Members    []MemberStatus
	Pending    []Progress
	Evidence   []EvidenceStatus
	// Council names the members that approve the next version, Quorum of
	// them; KeyHolders, the members holding a share of the pseudonym key,
	// KeyThreshold of them evaluating (empty and 0: no key).
	Council      []string
	Quorum       int
	KeyHolders   []string
	KeyThreshold int
}

// MemberStatus is one member as the centre sees it.
type MemberStatus struct {
	Name      string
	ID        peer.ID
	Connected bool
}

// Progress is a charter change on its way: approvals gathered of the
// quorum, and whether the version was adopted.
type Progress struct {
	Version   uint64
	Approvals int
	Quorum    int
	Adopted   bool
	Draft     string // the hex of the draft's hash
	Change    string // what the draft changes
}

// ProgressOf is p's JSON shape.
func ProgressOf(p federation.Progress) Progress { return Progress(p) }

// FederationStatusOf is st's JSON shape, with the evidence ev.
func FederationStatusOf(st federation.Status, ev []centre.EvidenceStatus) FederationStatus {
	out := FederationStatus{Federation: st.Federation, Version: st.Version, Self: st.Self, Member: st.Member, Members: []MemberStatus{},
		Pending: []Progress{}, Evidence: EvidenceOf(ev), Council: nonNil(st.Council), Quorum: st.Quorum,
		KeyHolders: nonNil(st.KeyHolders), KeyThreshold: st.KeyThreshold}
	for _, m := range st.Members {
		out.Members = append(out.Members, MemberStatus(m))
	}
	for _, p := range st.Pending {
		out.Pending = append(out.Pending, ProgressOf(p))
	}
	return out
}

// DirectoryStatus is the directory as the centre sees it.
type DirectoryStatus struct {
	Announced     int       // keys the centre announces
	Pending       int64     // of those, keys queued to be sent
	Provided      int64     // keys sent since the directory started
	LastReprovide time.Time // zero before the first reprovide
	NextReprovide time.Time // zero when nothing is scheduled
	Stored        int       // announcements by other centres the centre stores
	RoutingTable  int       // members in the routing table
	Connectivity  string    // online, disconnected or offline
	Replication   int
	LookupWidth   int
	RepairBacklog int // announcements sent, yet to be checked at their replicas
	// The last sweep of every announcement at every replica: when it
	// ended (zero before the first), the keys it checked, those it sent
	// again, and the replicas it could not reach.
	LastSweep   time.Time
	SweepKeys   int
	SweepResent int
	SweepFailed int
}

// DirectoryCheck is a directory check's answer.
type DirectoryCheck struct {
	Patients int      // patients this centre holds
	Checked  int      // replicas that answered
	Resent   int      // of those, replicas sent an announcement they lacked
	Failed   []string `json:",omitempty"` // members not reached, by name
}

// DirectoryCheckOf is c's JSON shape.
func DirectoryCheckOf(c centre.DirectoryCheck) DirectoryCheck {
	out := DirectoryCheck{Patients: c.Patients, Checked: c.Report.Checked, Resent: c.Report.Resent}
	for _, m := range c.Failed {
		out.Failed = append(out.Failed, m.Name)
	}
	return out
}

// DirectoryStatusOf is st's JSON shape.
func DirectoryStatusOf(st directory.Status) DirectoryStatus { return DirectoryStatus(st) }

// DirectoryLookup is a lookup's answer: the holders by name.
type DirectoryLookup struct {
	Pseudonym string
	Holders   []DirectoryHolder
	Complete  bool
	Problem   string `json:",omitempty"` // why the lookup is incomplete
	Answered  int
	Failed    []string `json:",omitempty"` // members asked that did not answer
	Millis    float64
}

// DirectoryHolder is one centre holding records.
type DirectoryHolder struct {
	Name string
	ID   peer.ID
}

// DirectoryLookupOf is l's JSON shape.
func DirectoryLookupOf(l centre.Lookup) DirectoryLookup {
	out := DirectoryLookup{Pseudonym: l.Pseudonym.String(), Holders: []DirectoryHolder{}, Complete: l.Problem == nil, Problem: ErrorText(l.Problem),
		Answered: l.Answered, Failed: l.Failed, Millis: millis(l.Elapsed)}
	for _, h := range l.Holders {
		out.Holders = append(out.Holders, DirectoryHolder(h))
	}
	return out
}

// QueryResult is a query's outcome, holder by holder, by name.
type QueryResult struct {
	Pseudonym string
	Holders   []QueryHolder
	Lookup    string `json:",omitempty"` // why holders may be missing
	Millis    float64
}

// QueryHolder is one holder's answer.
type QueryHolder struct {
	Name string
	// Status: "answered" (records released), "denied" (by consent, with
	// the reason), or "failed" (down, too slow, refused, or its answer did
	// not verify: Error says which).
	Status     string
	Error      string `json:",omitempty"`
	Reason     string `json:",omitempty"`
	Basis      string `json:",omitempty"`
	Access     int64  // the access entry on the holder's ledger
	Denied     int    `json:",omitempty"`
	Pending    int    `json:",omitempty"`
	Checkpoint int64  `json:",omitempty"` // the final checkpoint the records are proven in
	Records    []QueryRecord
}

// QueryRecord is one released record, proven.
type QueryRecord struct {
	Index    int64
	Kind     string
	Class    string
	Occurred time.Time
	Location string `json:",omitempty"`
	Author   string
	// AuthorKind is "device" for a reading a device of the patient's
	// added (Author is then its ID), "patient" for a note of the
	// patient's own (Author: an ID of the key that signed it); empty for
	// staff.
	AuthorKind string `json:",omitempty"`
	Replaces   int64  `json:",omitempty"`
	Payload    []byte `json:",omitempty"`
	Erased     bool   `json:",omitempty"`
}

// QueryResultOf is res's JSON shape.
func QueryResultOf(res centre.QueryResult) QueryResult {
	out := QueryResult{Pseudonym: res.Pseudonym.String(), Holders: []QueryHolder{}, Lookup: ErrorText(res.Lookup), Millis: millis(res.Elapsed)}
	for _, a := range res.Holders {
		h := QueryHolder{Name: a.Name, Status: a.Outcome.String(), Error: ErrorText(a.Err), Records: []QueryRecord{}}
		if a.Err == nil {
			h.Reason, h.Basis, h.Access, h.Denied, h.Pending, h.Checkpoint = a.Reason, a.Basis.String(), a.Access, a.Denied, a.Pending, a.Size
		}
		for _, r := range a.Records {
			h.Records = append(h.Records, QueryRecord{
				Index: r.Index, Kind: r.Kind.String(), Class: r.Record.DataClass, Occurred: r.Record.Occurred,
				Location: r.Record.Location, Author: r.Record.Author.String(), AuthorKind: authorKind(r.Record), Replaces: r.Record.Replaces,
				Payload: r.Payload, Erased: r.Erased,
			})
		}
		out.Holders = append(out.Holders, h)
	}
	return out
}

// TransferResult says what was copied from each source, by name.
type TransferResult struct {
	Pseudonym string
	Sources   []TransferSource
	Lookup    string `json:",omitempty"` // why sources may be missing
	// Announced: this centre is in the directory as a holder; otherwise
	// AnnounceError says why not (it announces again at its next start).
	Announced     bool
	AnnounceError string `json:",omitempty"`
}

// TransferSource is one source's part of a transfer.
type TransferSource struct {
	Name string
	// Status: "copied" (records copied, or copied before), "denied" (by
	// consent, with the reason), "failed" (Error says why).
	Status string
	Error  string `json:",omitempty"`
	Reason string `json:",omitempty"`
	Access int64  // the source's access entry for this transfer
	Copies []TransferCopy
	Before int `json:",omitempty"` // of Copies, copied by an earlier transfer
	Erased int `json:",omitempty"` // released without a payload: erased at the source, or lost with its disk
	// Recorded: the source recorded the transfer on its ledger; otherwise
	// RecordError says why not.
	Recorded    bool
	RecordError string `json:",omitempty"`
}

// TransferCopy is one record copied: its index at the source and here.
type TransferCopy struct{ Source, Copy int64 }

// TransferResultOf is res's JSON shape.
func TransferResultOf(res centre.TransferResult) TransferResult {
	out := TransferResult{Pseudonym: res.Pseudonym.String(), Sources: []TransferSource{}, Lookup: ErrorText(res.Lookup),
		Announced: res.Announced, AnnounceError: ErrorText(res.Announce)}
	for _, s := range res.Sources {
		src := TransferSource{Name: s.Name, Status: s.Outcome.String(), Error: ErrorText(s.Err), Reason: s.Reason,
			Access: s.Access, Copies: []TransferCopy{}, Before: s.Before, Erased: s.Erased, Recorded: s.Recorded, RecordError: ErrorText(s.Record)}
		for _, c := range s.Copies {
			src.Copies = append(src.Copies, TransferCopy(c))
		}
		out.Sources = append(out.Sources, src)
	}
	return out
}

// PatientResult is a patient's request's outcome at every centre it went
// to: every centre the directory lists, and every member in a federation
// the relay asks whole.
type PatientResult struct {
	Op        string // view or erase
	Pseudonym string
	// Holders, by name: the centres that answered with their entries
	// about the patient, and those that could not be reached (status
	// failed), which may hold records.
	Holders []PatientHolder
	// Asked is how many centres were asked; HoldNothing, how many of them
	// answered that they hold nothing about the patient (erase: no record).
	Asked       int
	HoldNothing int
	// EveryMember: every member was asked (a federation of up to 64);
	// otherwise the holders the directory lists at every replica were.
	EveryMember bool
	// Lookup: why the directory lookup did not complete. Where every
	// member was asked, a holder is missing only if one failed.
	Lookup string `json:",omitempty"`
	// Nonce (records): the request's, which with each holder's ID opens
	// what it sealed.
	Nonce []byte `json:",omitempty"`
}

// Unreached returns the holders of res that could not be reached.
func (res PatientResult) Unreached() []PatientHolder {
	var out []PatientHolder
	for _, h := range res.Holders {
		if h.Status == centre.Failed.String() {
			out = append(out, h)
		}
	}
	return out
}

// Summary says what became of the request in one line: "asked 12
// centre(s): 3 hold entries about the patient, 8 hold nothing, 1 could
// not be reached: centre-k" (for an erasure: "3 held records, 8 hold
// none").
func (res PatientResult) Summary() string {
	unreached := res.Unreached()
	held, nothing := "hold entries about the patient", "hold nothing"
	if res.Op == patient.Erase.String() {
		held, nothing = "held records", "hold none"
	}
	s := fmt.Sprintf("asked %d centre(s): %d %s, %d %s, %d could not be reached",
		res.Asked, len(res.Holders)-len(unreached), held, res.HoldNothing, nothing, len(unreached))
	for i, h := range unreached {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		s += sep + h.Name
	}
	return s
}

// PatientHolder is one holder's answer: its ledger entries about the
// patient (view), or its erasures (erase).
type PatientHolder struct {
	Name string
	ID   string `json:",omitempty"` // the holder's peer ID
	// Next, when not zero: the holder has more entries from this index
	// on; ask for the next page with a cursor for the holder
	// (federation/patient.Cursor; medfed patient view pages by itself).
	Next int64 `json:",omitempty"`
	// Status: "answered", or "failed" (down, too slow, refused, or its
	// answer did not verify: Error says which).
	Status     string
	Error      string `json:",omitempty"`
	LedgerSize int64  `json:",omitempty"`
	Records    []PatientRecord
	Accesses   []PatientAccess
	Transfers  []PatientTransfer    `json:",omitempty"`
	Erasures   []PatientErasure     `json:",omitempty"`
	Requests   []PatientRequestSeen `json:",omitempty"` // the patient's own views and erasures
	// KeyEvents are the attestations of the patient's key, approvals and
	// vetoes the holder recorded: with the emergency starts and stops in
	// Accesses, the patient's notifications, signed by the holder.
	KeyEvents []PatientKeyEvent `json:",omitempty"`
	// Dispenses and Cancellations are what became of the prescriptions
	// (a dispense at the issuer and at the pharmacy each); Devices and
	// DeviceRevocations, the devices the patient registered there.
	Dispenses         []PatientDispense         `json:",omitempty"`
	Cancellations     []PatientCancellation     `json:",omitempty"`
	Devices           []PatientDevice           `json:",omitempty"`
	DeviceRevocations []PatientDeviceRevocation `json:",omitempty"`
	Withdrawn         bool                      `json:",omitempty"` // erase: out of the directory
	Problem           string                    `json:",omitempty"`
	// Sealed (records): the payloads of Records, sealed to the patient's
	// key (HPKE; federation/patient.SealRecords says how to open them).
	Sealed []byte `json:",omitempty"`
	// Proven: the entries whose Index is below it are proven, by their
	// inclusion proofs, in the holder's final checkpoint, which its
	// witnesses cosigned; zero: none is yet.
	Proven int64 `json:",omitempty"`
}

// PatientKeyEvent is a change to who speaks for the patient.
type PatientKeyEvent struct {
	Index       int64
	Time        time.Time
	Event       string // key-attestation, key-approval or key-veto
	Centre      string // the attesting or approving centre, or "patient"
	Attestation string // the attestation's hash
	Key         string `json:",omitempty"`
	Compromised bool   `json:",omitempty"`
	Staff       string `json:",omitempty"`
}

// PatientDispense is a supply of a prescription dispensed.
type PatientDispense struct {
	Index        int64
	Time         time.Time
	Issuer       string // the issuing centre
	Prescription int64  // the prescription's record entry at the issuer
	Fill         int    // which supply: 1 the first, 2 the first repeat, …
	Pharmacy     string
	Pharmacist   string
	Confirmed    int64 // the issuer's dispense entry
}

// PatientCancellation is a prescription its prescriber cancelled.
type PatientCancellation struct {
	Index        int64
	Time         time.Time
	Prescription int64
	Prescriber   string
	Reason       string
}

// PatientDevice is a device the patient registered.
type PatientDevice struct {
	Index     int64
	Time      time.Time
	Device    string
	Classes   []string
	NotBefore time.Time
	Expires   time.Time
	Statement string // the registration's hash
}

// PatientDeviceRevocation is a device the patient revoked.
type PatientDeviceRevocation struct {
	Index        int64
	Time         time.Time
	Device       string
	Registration int64
	Statement    string // the revocation's hash
}

// PatientRecord is a record a holder keeps about the patient (never its
// payload).
type PatientRecord struct {
	Index    int64
	Kind     string
	Class    string
	Occurred time.Time
	Location string `json:",omitempty"`
	Replaces int64  `json:",omitempty"`
	Erased   bool   `json:",omitempty"`
}

// PatientAccess is one access to the patient's records: who, when, for
// what, and whether it was permitted.
type PatientAccess struct {
	Index     int64
	Time      time.Time
	Event     string // access, emergency-start or emergency-stop
	Centre    string
	Staff     string `json:",omitempty"`
	Role      string `json:",omitempty"`
	Action    string
	Purpose   string
	Permitted bool
	Basis     string
	Emergency bool
	Reason    string `json:",omitempty"` // the emergency reason
	Released  uint32 `json:",omitempty"`
}

// PatientTransfer is a record copied to or from another centre.
type PatientTransfer struct {
	Index     int64
	Time      time.Time
	Direction string // in or out
	Centre    string
	Source    int64 // the record's index at the source
	Copy      int64 // its copy's index at the destination
}

// PatientRequestSeen is one of the patient's own requests, as the holder
// recorded it: which, when, through which centre, and whether a delegate
// made it.
type PatientRequestSeen struct {
	Index      int64
	Time       time.Time
	Event      string // patient-view, patient-erase or patient-records
	Centre     string // the relay
	Delegation string `json:",omitempty"` // the delegation a delegate made it under; absent: the patient
}

// PatientErasure is a record whose payload was erased.
type PatientErasure struct {
	Index  int64
	Time   time.Time
	Record int64
}

// PatientResultOf is res's JSON shape.
func PatientResultOf(res centre.PatientResult) PatientResult {
	out := PatientResult{Op: res.Op.String(), Pseudonym: res.Pseudonym.String(), Holders: []PatientHolder{}, Asked: res.Asked, HoldNothing: res.HoldNothing,
		EveryMember: res.EveryMember, Lookup: ErrorText(res.Lookup)}
	if res.Op == patient.Records {
		out.Nonce = res.Nonce[:]
	}
	for _, a := range res.Holders {
		h := PatientHolder{Name: a.Name, ID: a.ID.String(), Next: a.Next, Status: a.Outcome.String(), Error: ErrorText(a.Err), LedgerSize: a.LedgerSize, Records: []PatientRecord{},
			Accesses: []PatientAccess{}, Withdrawn: a.Withdrawn, Problem: a.Problem, Sealed: a.Sealed, Proven: a.Proven}
		for _, x := range a.Erasures {
			h.Erasures = append(h.Erasures, PatientErasure(x))
		}
		for _, r := range a.Records {
			h.Records = append(h.Records, PatientRecord{Index: r.Index, Kind: r.Kind.String(), Class: r.Record.DataClass, Occurred: r.Record.Occurred,
				Location: r.Record.Location, Replaces: r.Record.Replaces, Erased: r.Erased})
		}
		for _, x := range a.Accesses {
			pa := PatientAccess{Index: x.Index, Time: x.Time, Event: x.Event.String(), Centre: x.Centre, Staff: staffOrEmpty(x.Staff),
				Action: x.Action.String(), Purpose: x.Purpose.String(), Permitted: x.Permitted, Basis: x.Basis.String(),
				Emergency: x.Purpose == consent.Emergency, Released: x.Released}
			if x.Role != 0 {
				pa.Role = x.Role.String()
			}
			if x.Reason != 0 {
				pa.Reason = x.Reason.String()
			}
			h.Accesses = append(h.Accesses, pa)
		}
		for _, t := range a.Transfers {
			h.Transfers = append(h.Transfers, PatientTransfer{Index: t.Index, Time: t.Time, Direction: t.Direction.String(), Centre: t.Centre,
				Source: t.Source, Copy: t.Copy})
		}
		for _, q := range a.Requests {
			seen := PatientRequestSeen{Index: q.Index, Time: q.Time, Event: q.Event.String(), Centre: q.Centre}
			if !q.Delegation.IsZero() {
				seen.Delegation = q.Delegation.String()
			}
			h.Requests = append(h.Requests, seen)
		}
		for _, k := range a.KeyEvents {
			ev := PatientKeyEvent{Index: k.Index, Time: k.Time, Event: "key-" + k.Kind.String(), Centre: k.Centre, Attestation: consent.FormatHash(k.Attestation),
				Compromised: k.Compromised, Staff: staffOrEmpty(k.Staff)}
			if k.Key != nil {
				ev.Key = consent.FormatPublicKey(k.Key)
			}
			h.KeyEvents = append(h.KeyEvents, ev)
		}
		for _, d := range a.Dispenses {
			h.Dispenses = append(h.Dispenses, PatientDispense{Index: d.Index, Time: d.Time, Issuer: d.Issuer, Prescription: d.Prescription, Fill: d.Fill,
				Pharmacy: d.Pharmacy, Pharmacist: staffOrEmpty(d.Pharmacist), Confirmed: d.Confirmed})
		}
		for _, c := range a.Cancellations {
			h.Cancellations = append(h.Cancellations, PatientCancellation{Index: c.Index, Time: c.Time, Prescription: c.Prescription,
				Prescriber: staffOrEmpty(c.Prescriber), Reason: c.Reason.String()})
		}
		for _, d := range a.Devices {
			h.Devices = append(h.Devices, PatientDevice{Index: d.Index, Time: d.Time, Device: d.Device.String(), Classes: d.Classes,
				NotBefore: d.NotBefore, Expires: d.Expires, Statement: consent.FormatHash(d.Statement)})
		}
		for _, r := range a.DeviceRevocations {
			h.DeviceRevocations = append(h.DeviceRevocations, PatientDeviceRevocation{Index: r.Index, Time: r.Time, Device: r.Device.String(),
				Registration: r.Registration, Statement: consent.FormatHash(r.Statement)})
		}
		out.Holders = append(out.Holders, h)
	}
	return out
}

// ConsentDelivery says where a submitted consent document went, by
// centre name.
type ConsentDelivery struct {
	Holders   []string
	Delivered []string
	Failed    []ConsentFailure `json:",omitempty"`
	Lookup    string           `json:",omitempty"` // why the holders may be incomplete
	// Confirmed: a majority of the federation has it, and every centre
	// holding a lease on the patient's consent has it or no longer holds
	// the lease: it is in force everywhere.
	Confirmed bool
	// WaitedMs is how long, in milliseconds, confirmation waited for the
	// lease of a holder that could not be told to run out.
	WaitedMs int64 `json:",omitempty"`
}

// ConsentFailure is a holder the document did not reach.
type ConsentFailure struct {
	Centre string
	Error  string
}

// ConsentDeliveryOf is d's JSON shape.
func ConsentDeliveryOf(d centre.ConsentDelivery) ConsentDelivery {
	out := ConsentDelivery{Holders: nonNil(d.Holders), Delivered: nonNil(d.Delivered), Lookup: ErrorText(d.Lookup), Confirmed: d.Confirmed, WaitedMs: d.Waited.Milliseconds()}
	for _, f := range d.Failed {
		out.Failed = append(out.Failed, ConsentFailure{Centre: f.Centre, Error: ErrorText(f.Err)})
	}
	return out
}

// ConsentView is a patient's consent as a centre holds it.
type ConsentView struct {
	Pseudonym  string
	Federation string
	Attested   bool
	Key        string `json:",omitempty"` // the current patient key
	// Standing: "none" (the charter's default applies), "in force",
	// "withdrawn" or "compromised".
	Standing  string
	Contract  *ConsentContract `json:",omitempty"`
	Documents []ConsentDocument
	// Keys are the attestations of the patient's key: a replacement is
	// pending until a second staff member approves it and KeyNotice has
	// passed, in which time the key in force can veto it.
	Keys []ConsentKey
	// Delegations are the people who may act for the patient (and those
	// who could), with where each stands.
	Delegations []ConsentDelegation `json:",omitempty"`
	TokenUses   map[string]int      `json:",omitempty"`
	// TokenMaxLifetime is the charter's longest token, issue to expiry.
	TokenMaxLifetime time.Duration
	KeyNotice        time.Duration
}

// ConsentDelegation is a delegation of the patient's: who (their public
// key), how they stand to the patient, what they may do and until when.
type ConsentDelegation struct {
	ID           string
	Delegate     string // the delegate's public key, hex
	Relationship string // parent, guardian, carer, attorney or relative
	Scope        []string
	NotBefore    *time.Time `json:",omitempty"`
	Expires      time.Time
	Issued       time.Time
	Registrar    string `json:",omitempty"` // the centre whose registrar made it; empty: the patient signed it
	// Status: in force, awaiting approval, in notice, vetoed, void, not
	// yet in force, expired or revoked.
	Status  string
	Revoked *time.Time `json:",omitempty"`
	Hash    string     // the delegation document's, 64 hex digits: what a registrar's needs approved
}

// DelegationList is a patient's delegations, oldest first.
type DelegationList struct {
	Pseudonym   string
	Delegations []ConsentDelegation
	KeyNotice   time.Duration // how long a registrar's delegation waits, approved, when the patient has a key
}

// DelegationDelivery is a registrar's delegation made: its ID, the hash a
// second staff member's approval names, and how far it reached.
type DelegationDelivery struct {
	ID   string
	Hash string
	ConsentDelivery
}

// KeyList is the attestations of a patient's key: Key is the one in
// force (empty: none), Keys every attestation, oldest first.
type KeyList struct {
	Pseudonym string
	Key       string `json:",omitempty"`
	Keys      []ConsentKey
	KeyNotice time.Duration
}

// ConsentKey is an attestation of the patient's key and where it stands.
type ConsentKey struct {
	Attestation string // its hash: what an approval or a veto names
	Key         string
	Centre      string
	Staff       string `json:",omitempty"`
	Issued      time.Time
	Compromised bool       `json:",omitempty"`
	Replaces    bool       `json:",omitempty"`
	Status      string     // "in effect", "awaiting a second approval", "in its notice period", "vetoed by the patient"
	Effect      *time.Time `json:",omitempty"`
}

// ConsentContract is the contract in force (or the one withdrawn).
type ConsentContract struct {
	ID      string
	Version uint32
	Issued  time.Time
	Terms   consent.Spec
}

// ConsentDocument is one document held about the patient.
type ConsentDocument struct {
	Kind   string
	Issued time.Time
	Signer string // the attesting centre's name, "patient", or "delegate"
	// Delegation is the delegation a delegate signed it under.
	Delegation string `json:",omitempty"`
	Hash       string
}

// ConsentViewOf is v's JSON shape.
func ConsentViewOf(v centre.ConsentView) ConsentView {
	out := ConsentView{Pseudonym: v.Pseudonym.String(), Federation: v.Federation, Attested: v.Attested, Standing: v.Standing.String(),
		Documents: []ConsentDocument{}, Keys: []ConsentKey{}, TokenMaxLifetime: v.TokenMaxLifetime, KeyNotice: v.KeyNotice}
	for _, k := range v.Keys {
		ck := ConsentKey{Attestation: consent.FormatHash(k.Attestation), Key: consent.FormatPublicKey(k.Key), Centre: k.Centre, Staff: staffOrEmpty(k.Staff),
			Issued: k.Issued, Compromised: k.Compromised, Replaces: k.Replaces, Status: k.Status.String()}
		if !k.Effect.IsZero() {
			ck.Effect = &k.Effect
		}
		out.Keys = append(out.Keys, ck)
	}
	if v.Key != nil {
		out.Key = consent.FormatPublicKey(v.Key)
	}
	if c := v.Contract; c != nil {
		out.Contract = &ConsentContract{ID: c.ID.String(), Version: c.Version, Issued: c.Issued, Terms: c.Terms}
	}
	for _, d := range v.Documents {
		cd := ConsentDocument{Kind: d.Kind.String(), Issued: d.Issued, Signer: d.Signer, Hash: hex.EncodeToString(d.Hash[:])}
		if d.Via != (consent.ID{}) {
			cd.Delegation = d.Via.String()
		}
		out.Documents = append(out.Documents, cd)
	}
	for _, g := range v.Delegations {
		cd := ConsentDelegation{ID: g.ID.String(), Delegate: consent.FormatPublicKey(g.Delegate), Relationship: g.Relationship.String(),
			Expires: g.Expires, Issued: g.Issued, Registrar: g.Registrar, Status: g.Status.String(), Hash: hex.EncodeToString(g.Hash[:])}
		for _, sc := range []consent.Scope{consent.ScopeConsent, consent.ScopeView, consent.ScopeRecords, consent.ScopeErasure} {
			if g.Scope&sc != 0 {
				cd.Scope = append(cd.Scope, sc.String())
			}
		}
		if !g.NotBefore.IsZero() {
			cd.NotBefore = &g.NotBefore
		}
		if !g.Revoked.IsZero() {
			cd.Revoked = &g.Revoked
		}
		out.Delegations = append(out.Delegations, cd)
	}
	for id, uses := range v.TokenUses {
		if out.TokenUses == nil {
			out.TokenUses = map[string]int{}
		}
		out.TokenUses[id.String()] = uses
	}
	return out
}

// Decision is a consent decision.
type Decision struct {
	Permit    bool
	Basis     string
	Reason    string
	Provision []int  `json:",omitempty"`
	Contract  string `json:",omitempty"`
	Version   uint32 `json:",omitempty"`
}

// DecisionOf is d's JSON shape.
func DecisionOf(d consent.Decision) Decision {
	out := Decision{Permit: d.Permit, Basis: d.Basis.String(), Reason: d.Reason(), Provision: d.Provision(), Version: d.Version}
	if !d.Ref.IsZero() {
		out.Contract = d.Ref.String()
	}
	return out
}

// nonNil makes an empty list encode as [], as the OpenAPI document says.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ErrorText is err's text, "" for none: an error as a JSON shape writes
// it.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func hexOrEmpty(p ledger.Pseudonym) string {
	if p.IsZero() {
		return ""
	}
	return p.String()
}

func staffOrEmpty(s ledger.StaffID) string {
	if s == (ledger.StaffID{}) {
		return ""
	}
	return s.String()
}
