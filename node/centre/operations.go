package centre

import (
	"context"
	"fmt"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
)

// The running centre's read operations: readiness, proofs, records,
// notices, tokens, and its name, federation and statuses.

// ErrNotReady is returned while the node cannot serve the federation yet
// (no other member connected), or an entry is not final yet.
var ErrNotReady = node.E(node.Unavailable, "not ready")

// Readiness says whether the node can serve: its services are up (they
// are, once Start returned) and, in a federation of more than one, it is
// connected to at least one other member.
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

// connectedTo reports whether id is another member this centre has a
// connection to.
func (n *Node) connectedTo(id peer.ID) bool {
	return id != n.Centre.ID() && n.Host.Network().Connectedness(id) == network.Connected
}

// Ready returns the node's readiness, and ErrNotReady with it when no
// other member of the federation is connected.
func (n *Node) Ready() (Readiness, error) {
	st := n.Membership.Status()
	r := Readiness{Centre: n.Centre.Name, Members: len(st.Members), Size: n.Centre.Ledger.Size()}
	for _, m := range st.Members {
		if n.connectedTo(m.ID) {
			r.Connected++
		}
	}
	if f, ok := n.Centre.Ledger.LatestFinal(); ok {
		r.Final = f.Size
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := n.Directory.Backlog(ctx)
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	r.AnnounceBacklog = b + int64(n.Directory.RepairBacklog())
	if err := n.Centre.Ledger.Halted(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	if p := n.announceErr.Load(); p != nil && *p != nil {
		return r, fmt.Errorf("%w: the patients this centre holds are not announced in the directory (retrying): %v", ErrNotReady, *p)
	}
	if r.Members > 1 && r.Connected == 0 {
		return r, fmt.Errorf("%w: no other member of the federation is connected", ErrNotReady)
	}
	return r, nil
}

// EntryProof is one ledger entry with its inclusion proof against the
// centre's latest final checkpoint: anyone holding the centre's public key
// and the witnesses' keys can check it offline.
type EntryProof struct {
	Index      int64
	Kind       ledger.Kind
	Entry      []byte           // the entry's canonical encoding (the leaf)
	Size       int64            // the final checkpoint's size
	Checkpoint []byte           // its signed note, cosignatures included
	Proof      tlog.RecordProof // leaf to root
	Time       time.Time        // when the ledger appended the entry
	Subject    ledger.Pseudonym // the patient's pseudonym; zero when none
}

// Prove returns entry index of this centre's ledger with its inclusion
// proof against the latest final checkpoint; an entry newer than that is
// ErrNotReady (it will be final within a few checkpoint intervals).
func (n *Node) Prove(ctx context.Context, index int64) (EntryProof, error) {
	if index < 0 || index >= n.Centre.Ledger.Size() {
		return EntryProof{}, fmt.Errorf("%w: the ledger has no entry %d", node.ErrNotFound, index)
	}
	f, ok := n.Centre.Ledger.LatestFinal()
	if !ok || index >= f.Size {
		return EntryProof{}, fmt.Errorf("%w: entry %d is not in a final checkpoint yet", ErrNotReady, index)
	}
	e, err := n.Centre.Ledger.Entry(ctx, index)
	if err != nil {
		return EntryProof{}, err
	}
	leaf, err := e.Encode()
	if err != nil {
		return EntryProof{}, err
	}
	proof, err := n.Centre.Ledger.ProveInclusion(ctx, index, f.Size)
	if err != nil {
		return EntryProof{}, err
	}
	return EntryProof{Index: index, Kind: e.Kind, Entry: leaf, Size: f.Size, Checkpoint: f.Note, Proof: proof, Time: e.Time, Subject: e.Subject}, nil
}

// RecordMeta is a record or amendment entry of this centre's ledger,
// without its payload.
type RecordMeta struct {
	Index     int64
	Kind      ledger.Kind
	Pseudonym ledger.Pseudonym
	Record    ledger.Record
	Recorded  time.Time
}

// RecordAt returns the record or amendment entry at index.
func (n *Node) RecordAt(ctx context.Context, index int64) (RecordMeta, error) {
	if index < 0 || index >= n.Centre.Ledger.Size() {
		return RecordMeta{}, fmt.Errorf("%w: the ledger has no entry %d", node.ErrNotFound, index)
	}
	e, err := n.Centre.Ledger.Entry(ctx, index)
	if err != nil {
		return RecordMeta{}, err
	}
	if e.Kind != ledger.KindRecord && e.Kind != ledger.KindAmendment {
		return RecordMeta{}, fmt.Errorf("%w: entry %d is not a record", node.ErrNotFound, index)
	}
	r, err := e.Record()
	if err != nil {
		return RecordMeta{}, err
	}
	return RecordMeta{Index: index, Kind: e.Kind, Pseudonym: e.Subject, Record: r, Recorded: e.Time}, nil
}

// Notice is an emergency access notification, for the patient and this
// centre's privacy officer.
type Notice struct {
	Centre string // the requesting centre's name
	consent.Notification
}

// Notices returns the emergency notifications after ledger index after,
// oldest first.
func (n *Node) Notices(after int64) []Notice {
	out := []Notice{}
	for _, x := range n.Consent.Notifications(after) {
		out = append(out, Notice{Centre: n.memberName(x.Requester), Notification: x})
	}
	return out
}

// EmergencyStops is what each holder said to a request to stop this
// centre's emergency access to a patient.
type EmergencyStops struct {
	Pseudonym ledger.Pseudonym
	Holders   []EmergencyStop
	Lookup    error // why the holder list may be incomplete
}

// EmergencyStop is one holder's answer: how many sessions it stopped
// (each on its ledger and in its notification feed).
type EmergencyStop struct {
	Name    string
	Stopped int
	Err     error
}

// StopEmergency stops this centre's emergency access to patient p at
// every holder: staff's sessions, or (zero staff) every one of its staff.
func (n *Node) StopEmergency(ctx context.Context, p ledger.Pseudonym, staff ledger.StaffID) (EmergencyStops, error) {
	l, err := n.Holders(ctx, p)
	if err != nil {
		return EmergencyStops{}, err
	}
	ids := make([]peer.ID, 0, len(l.Holders))
	for _, h := range l.Holders {
		ids = append(ids, h.ID)
	}
	out := EmergencyStops{Pseudonym: p, Lookup: l.Problem}
	for _, st := range n.Consent.StopEmergency(ctx, p, staff, ids) {
		out.Holders = append(out.Holders, EmergencyStop{Name: n.memberName(st.Holder), Stopped: st.Count, Err: st.Err})
		if st.Err != nil {
			n.log.Warn("emergency stop not confirmed", "pseudonym", p, "holder", st.Holder, "err", st.Err)
		}
	}
	return out, nil
}

// TokenCheck is what this centre makes of a patient's token before anyone
// uses it: its terms, and whether it would be honoured here now.
type TokenCheck struct {
	consent.Token
	Grantee string // a centre's name, "any centre", and /STAFF-ID when for one staff member
	Used    int
	Problem string // why it would not be honoured; empty when it would
}

// Valid says whether the token would be honoured here now.
func (t TokenCheck) Valid() bool { return t.Problem == "" }

// CheckToken parses a token, checks its signature, and says whether this
// centre would honour it now: signed by the patient's attested key, for
// this federation and this centre, within its time, with uses left. The
// holders decide again when it is used (and count the use).
func (n *Node) CheckToken(ctx context.Context, raw []byte) (TokenCheck, error) {
	d, err := consent.Parse(raw)
	if err != nil {
		return TokenCheck{}, err
	}
	if d.Kind != consent.KindToken {
		return TokenCheck{}, fmt.Errorf("%w: a %s, not a token", node.ErrInvalid, d.Kind)
	}
	t := d.Token
	v, err := n.ShowConsent(ctx, t.Subject)
	if err != nil {
		return TokenCheck{}, err
	}
	out := TokenCheck{Token: *t, Grantee: "any centre", Used: v.TokenUses[t.ID]}
	if t.Grantee.Centre != "" {
		out.Grantee = n.memberName(t.Grantee.Centre)
	}
	if t.Grantee.Staff != (ledger.StaffID{}) {
		out.Grantee += "/" + t.Grantee.Staff.String()
	}
	now := clock.Now()
	switch {
	case t.Federation != n.Membership.Current().Federation:
		out.Problem = "the token is for another federation"
	case v.Key == nil || !v.Key.Equal(d.Signer):
		out.Problem = "not signed with the key attested for this patient"
	case v.Standing == Compromised:
		out.Problem = "the patient reported their key compromised"
	case t.Grantee.Centre != "" && t.Grantee.Centre != n.Centre.ID():
		out.Problem = "the token is for " + out.Grantee + ", not this centre"
	case now.Before(t.Issued):
		out.Problem = "not valid yet"
	case !now.Before(t.Expires):
		out.Problem = "expired"
	case out.Used >= int(t.Uses):
		out.Problem = "used up"
	}
	return out, nil
}

// corrupt is the error of an entry of this centre's own ledger that does
// not decode: the centre's failure (kind Internal), never the caller's,
// whatever kind the decoder gave it.
func corrupt(what string, index int64, err error) error {
	return fmt.Errorf("%s %d: %v", what, index, err)
}

// Name is the centre's name in the charter.
func (n *Node) Name() string { return n.Centre.Name }

// Federation is the ID of the centre's federation.
func (n *Node) Federation() string { return n.Membership.Current().Federation }

// FederationStatus is the membership as this node sees it.
func (n *Node) FederationStatus() federation.Status { return n.Membership.Status() }

// CharterChain returns every version of the charter this centre adopted,
// version 1 first: the public material a ledger is verified against.
func (n *Node) CharterChain(ctx context.Context) ([][]byte, error) {
	st, err := n.Centre.federationState(ctx)
	return st.Chain, err
}

// LedgerStatus returns the ledger's checkpoints, their cosigners and any
// evidence of equivocation this centre holds as a witness.
func (n *Node) LedgerStatus(ctx context.Context) (LedgerStatus, error) {
	return n.Centre.LedgerStatus(ctx)
}
