package centre

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// What the HTTP API (package node/api) asks of a running node beyond the
// admin socket's operations.

var (
	// ErrNotFound is returned for a ledger entry that is not there or not
	// of the kind asked for.
	ErrNotFound = errors.New("not found")
	// ErrNotReady is returned while the node cannot serve the federation
	// yet: no other member connected.
	ErrNotReady = errors.New("not ready")
)

// Readiness says whether the node can serve: its services are up (they
// are, once Start returned) and, in a federation of more than one, it is
// connected to at least one other member.
type Readiness struct {
	Centre    string
	Members   int
	Connected int // other members connected
	Size      int64
	Final     int64 // the latest final checkpoint's size, 0 if none yet
}

// Ready returns the node's readiness, and ErrNotReady with it when no
// other member of the federation is connected.
func (n *Node) Ready() (Readiness, error) {
	st := n.Membership.Status()
	r := Readiness{Centre: n.Centre.Name, Members: len(st.Members), Size: n.Centre.Ledger.Size()}
	for _, m := range st.Members {
		if m.ID != n.Centre.ID() && n.Host.Network().Connectedness(m.ID) == network.Connected {
			r.Connected++
		}
	}
	if f, ok := n.Centre.Ledger.LatestFinal(); ok {
		r.Final = f.Size
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
	Kind       string
	Entry      []byte    // the entry's canonical encoding (the leaf)
	Size       int64     // the final checkpoint's size
	Checkpoint string    // its signed note, cosignatures included
	Proof      [][]byte  // the tlog record proof, leaf to root
	Time       time.Time // when the ledger appended the entry
	Subject    string    `json:",omitempty"` // the patient's pseudonym, hex
}

// Prove returns entry index of this centre's ledger with its inclusion
// proof against the latest final checkpoint; an entry newer than that is
// ErrNotReady (it will be final within a few checkpoint intervals).
func (n *Node) Prove(ctx context.Context, index int64) (EntryProof, error) {
	if index < 0 || index >= n.Centre.Ledger.Size() {
		return EntryProof{}, fmt.Errorf("%w: the ledger has no entry %d", ErrNotFound, index)
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
	out := EntryProof{Index: index, Kind: e.Kind.String(), Entry: leaf, Size: f.Size, Checkpoint: string(f.Note), Time: e.Time}
	for _, h := range proof {
		out.Proof = append(out.Proof, h[:])
	}
	if !e.Subject.IsZero() {
		out.Subject = e.Subject.String()
	}
	return out, nil
}

// RecordMeta is a record or amendment entry of this centre's ledger,
// without its payload.
type RecordMeta struct {
	Index     int64
	Kind      string
	Pseudonym string
	Class     string
	Occurred  time.Time
	Location  string `json:",omitempty"`
	Author    string
	Replaces  int64 `json:",omitempty"`
	Recorded  time.Time
}

// RecordAt returns the record or amendment entry at index.
func (n *Node) RecordAt(ctx context.Context, index int64) (RecordMeta, error) {
	if index < 0 || index >= n.Centre.Ledger.Size() {
		return RecordMeta{}, fmt.Errorf("%w: the ledger has no entry %d", ErrNotFound, index)
	}
	e, err := n.Centre.Ledger.Entry(ctx, index)
	if err != nil {
		return RecordMeta{}, err
	}
	if e.Kind != ledger.KindRecord && e.Kind != ledger.KindAmendment {
		return RecordMeta{}, fmt.Errorf("%w: entry %d is not a record", ErrNotFound, index)
	}
	r, err := e.Record()
	if err != nil {
		return RecordMeta{}, err
	}
	return RecordMeta{Index: index, Kind: e.Kind.String(), Pseudonym: e.Subject.String(), Class: r.DataClass, Occurred: r.Occurred,
		Location: r.Location, Author: r.Author.String(), Replaces: r.Replaces, Recorded: e.Time}, nil
}

// Notice is an emergency access notification, for the patient and this
// centre's privacy officer.
type Notice struct {
	Index     int64 // the access entry's index: the feed's cursor
	Time      time.Time
	Pseudonym string
	Event     string // emergency-start or emergency-stop
	Centre    string // the requesting centre
	Staff     string `json:",omitempty"`
	Role      string
	Reason    string
	Permitted bool
}

// Notices returns the emergency notifications after ledger index after,
// oldest first.
func (n *Node) Notices(after int64) []Notice {
	out := []Notice{}
	for _, x := range n.Consent.Notifications(after) {
		nt := Notice{Index: x.Index, Time: x.Time, Pseudonym: x.Subject.String(), Event: x.Event.String(), Centre: n.memberName(x.Requester),
			Role: x.Role.String(), Reason: x.Reason.String(), Permitted: x.Permitted}
		if x.Staff != (ledger.StaffID{}) {
			nt.Staff = x.Staff.String()
		}
		out = append(out, nt)
	}
	return out
}

// TokenCheck is what this centre makes of a patient's token before anyone
// uses it: its terms, and whether it would be honoured here now.
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
		return TokenCheck{}, fmt.Errorf("%w: a %s, not a token", consent.ErrMalformed, d.Kind)
	}
	t := d.Token
	v, err := n.ShowConsent(ctx, t.Subject.String())
	if err != nil {
		return TokenCheck{}, err
	}
	out := TokenCheck{ID: t.ID.String(), Pseudonym: t.Subject.String(), Grantee: "any centre", Purposes: t.Purposes.String(), Actions: t.Actions.String(),
		Classes: t.Classes, DataPeriod: t.DataPeriod.String(), Issued: t.Issued, Expires: t.Expires, Uses: int(t.Uses), Used: v.TokenUses[t.ID.String()]}
	if t.Grantee.Centre != "" {
		out.Grantee = n.memberName(t.Grantee.Centre)
	}
	if t.Grantee.Staff != (ledger.StaffID{}) {
		out.Grantee += "/" + t.Grantee.Staff.String()
	}
	if t.Grantee.Role != 0 {
		out.Role = t.Grantee.Role.String()
	}
	now := time.Now()
	switch {
	case t.Federation != n.Membership.Current().Federation:
		out.Problem = "the token is for another federation"
	case v.Key == "" || v.Key != consent.FormatPublicKey(d.Signer):
		out.Problem = "not signed with the key attested for this patient"
	case v.Standing == "compromised":
		out.Problem = "the patient reported their key compromised"
	case t.Grantee.Centre != "" && t.Grantee.Centre != n.Centre.ID():
		out.Problem = "the token is for " + out.Grantee + ", not this centre"
	case now.Before(t.Issued):
		out.Problem = "not valid yet"
	case !now.Before(t.Expires):
		out.Problem = "expired"
	case out.Used >= out.Uses:
		out.Problem = "used up"
	default:
		out.Valid = true
	}
	return out, nil
}
