package centre

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

var _ consent.Ledger = (*ledger.Ledger)(nil)

func (n *Node) startConsent(ctx context.Context) error {
	svc, err := consent.New(n.Host, consent.Options{
		Key:     n.Centre.key,
		Ledger:  n.Centre.Ledger,
		Charter: func() federation.Charter { return n.Membership.Current().Charter },
		Holders: n.holders,
		Holds:   n.holds,
		Logger:  n.base,
	})
	if err != nil {
		return err
	}
	var entries []ledger.Entry
	for _, k := range []ledger.Kind{ledger.KindConsent, ledger.KindRevocation, ledger.KindAccess} {
		es, err := n.Centre.Ledger.EntriesOfKind(ctx, k)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	slices.SortFunc(entries, func(a, b ledger.Entry) int { return int(a.Index - b.Index) })
	if err := svc.Load(entries); err != nil {
		svc.Close()
		return err
	}
	n.Consent = svc
	return nil
}

// holders returns the members the directory lists as holding p's
// records; with an error, those it found.
func (n *Node) holders(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error) {
	res, err := n.Directory.Lookup(ctx, p)
	if self := n.Host.ID(); !slices.Contains(res.Holders, self) {
		// This centre knows whether it holds records without asking
		// anyone: its announcement may not have reached the others yet.
		held, herr := n.holds(ctx, p)
		if herr != nil {
			return res.Holders, errors.Join(err, herr)
		}
		if held {
			res.Holders = append(res.Holders, self)
		}
	}
	return res.Holders, err
}

// holds reports whether the ledger holds records of p: the patients this
// centre announces in the directory.
func (n *Node) holds(ctx context.Context, p ledger.Pseudonym) (bool, error) {
	es, err := n.Centre.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindAmendment, ledger.KindErasure)
	if err != nil {
		return false, err
	}
	erased := map[int64]bool{}
	for _, e := range es {
		if e.Kind == ledger.KindErasure {
			if err := markErased(erased, e); err != nil {
				return false, err
			}
		}
	}
	return slices.ContainsFunc(es, func(e ledger.Entry) bool { return stillHeld(e, erased) }), nil
}

// ConsentDelivery says where a submitted consent document went, by
// centre name.
type ConsentDelivery struct {
	Holders   []string
	Delivered []string
	Failed    []ConsentFailure `json:",omitempty"`
	Lookup    string           `json:",omitempty"` // why the holders may be incomplete
	// Confirmed: a majority of the federation has it, so every centre
	// finds it when it syncs.
	Confirmed bool
}

// ConsentFailure is a holder the document did not reach.
type ConsentFailure struct {
	Centre string
	Error  string
}

func (n *Node) delivery(d consent.Delivery) ConsentDelivery {
	out := ConsentDelivery{Holders: []string{}, Delivered: []string{}, Confirmed: d.Confirmed}
	for _, id := range d.Holders {
		out.Holders = append(out.Holders, n.memberName(id))
	}
	for _, id := range d.Delivered {
		out.Delivered = append(out.Delivered, n.memberName(id))
	}
	for _, f := range d.Failed {
		out.Failed = append(out.Failed, ConsentFailure{Centre: n.memberName(f.Centre), Error: f.Err.Error()})
	}
	if d.Lookup != nil {
		out.Lookup = d.Lookup.Error()
	}
	slices.Sort(out.Holders)
	slices.Sort(out.Delivered)
	return out
}

// memberName names a centre by its charter name, or its peer ID when it
// is not a current member.
func (n *Node) memberName(id peer.ID) string {
	if m, ok := n.Membership.Current().Member(id); ok {
		return m.Name
	}
	return id.String()
}

// memberID resolves a centre name (or peer ID) among the current members.
func (n *Node) memberID(name string) (peer.ID, error) {
	for _, m := range n.Membership.Current().Members {
		if m.Name == name || m.ID.String() == name {
			return m.ID, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not a member centre", consent.ErrMalformed, name)
}

// SubmitConsent accepts a signed consent document and delivers it to the
// patient's holders.
func (n *Node) SubmitConsent(ctx context.Context, doc []byte) (ConsentDelivery, error) {
	d, err := n.Consent.Submit(ctx, doc)
	if err != nil {
		return ConsentDelivery{}, err
	}
	return n.delivery(d), nil
}

// AttestRequest asks this centre to attest a patient's key.
type AttestRequest struct {
	Pseudonym   string
	Key         string // 64 hex digits
	Compromised bool   // the keys it supersedes are lost or stolen
}

// Attest has this centre attest that a key is a patient's.
func (n *Node) Attest(ctx context.Context, r AttestRequest) (ConsentDelivery, error) {
	p, err := ParsePseudonym(r.Pseudonym)
	if err != nil {
		return ConsentDelivery{}, err
	}
	k, err := consent.ParsePublicKey(r.Key)
	if err != nil {
		return ConsentDelivery{}, err
	}
	d, err := n.Consent.Attest(ctx, p, k, r.Compromised)
	if err != nil {
		return ConsentDelivery{}, err
	}
	return n.delivery(d), nil
}

// ConsentView is a patient's consent as this centre holds it.
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
	TokenUses map[string]int `json:",omitempty"`
	// TokenMaxLifetime is the charter's longest token, issue to expiry.
	TokenMaxLifetime time.Duration
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
	Signer string // the attesting centre's name, or "patient"
	Hash   string
}

// ShowConsent returns the consent of the patient given in hex.
func (n *Node) ShowConsent(ctx context.Context, hexPseudonym string) (ConsentView, error) {
	p, err := ParsePseudonym(hexPseudonym)
	if err != nil {
		return ConsentView{}, err
	}
	v, err := n.Consent.Show(ctx, p)
	if err != nil {
		return ConsentView{}, err
	}
	out := ConsentView{Pseudonym: p.String(), Federation: n.Membership.Current().Federation, Attested: v.Attested, Standing: "none", Documents: []ConsentDocument{},
		TokenMaxLifetime: n.Membership.Current().Policy.TokenMaxLifetime}
	if v.Key != nil {
		out.Key = consent.FormatPublicKey(v.Key)
	}
	switch s := v.Standing; {
	case s.Compromised:
		out.Standing = "compromised"
	case s.Contract != nil && s.Withdrawn:
		out.Standing = "withdrawn"
	case s.Contract != nil:
		out.Standing = "in force"
	}
	if c := v.Standing.Contract; c != nil {
		out.Contract = &ConsentContract{ID: c.ID.String(), Version: c.Version, Issued: c.Issued, Terms: consent.SpecOf(c, n.memberName)}
	}
	for _, d := range v.Documents {
		signer := "patient"
		if d.Kind == consent.KindAttestation {
			signer = n.signerName(d.Signer)
		}
		h := d.Hash()
		out.Documents = append(out.Documents, ConsentDocument{Kind: d.Kind.String(), Issued: d.Issued(), Signer: signer, Hash: hex.EncodeToString(h[:])})
	}
	for id, uses := range v.Uses {
		if out.TokenUses == nil {
			out.TokenUses = map[string]int{}
		}
		out.TokenUses[id.String()] = uses
	}
	return out, nil
}

func (n *Node) signerName(k []byte) string {
	for _, m := range n.Membership.Current().Members {
		if pub, err := m.PublicKey(); err == nil && pub.Equal(k) {
			return m.Name
		}
	}
	return "a former member"
}

// DecideRequest asks what this centre would decide for a request.
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

// DecideResponse is a decision.
type DecideResponse struct {
	Permit    bool
	Basis     string
	Reason    string
	Provision []int  `json:",omitempty"`
	Contract  string `json:",omitempty"`
	Version   uint32 `json:",omitempty"`
}

// Decide evaluates a request against the patient's consent as this
// centre holds it, syncing first when it may have missed documents.
func (n *Node) Decide(ctx context.Context, r DecideRequest) (DecideResponse, error) {
	p, err := ParsePseudonym(r.Pseudonym)
	if err != nil {
		return DecideResponse{}, err
	}
	var errs []error
	a := parseAsker(r.Role, r.Staff, r.Purpose, r.Reason, &errs)
	q := consent.Request{Role: a.role, Staff: a.staff, Purpose: a.purpose, Reason: a.reason, Class: r.Class, Recorded: r.Recorded.UTC(), Time: time.Now().UTC()}
	if q.Centre, err = n.memberID(r.Centre); err != nil {
		errs = append(errs, err)
	}
	if q.Action, err = consent.ParseAction(r.Action); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return DecideResponse{}, err
	}
	d, err := n.Consent.Decide(ctx, p, q)
	if err != nil {
		return DecideResponse{}, err
	}
	out := DecideResponse{Permit: d.Permit, Basis: d.Basis.String(), Reason: d.Reason(), Provision: d.Provision(), Version: d.Version}
	if !d.Ref.IsZero() {
		out.Contract = d.Ref.String()
	}
	return out, nil
}

// asker is who asks and why, as a request to the admin socket names them.
type asker struct {
	role    consent.Role
	staff   ledger.StaffID
	purpose consent.Purpose
	reason  consent.Reason
}

// parseAsker parses the fields of a decision or query request that say
// who asks and why, adding what is wrong to errs; staff and reason are
// optional.
func parseAsker(role, staff, purpose, reason string, errs *[]error) asker {
	var a asker
	var err error
	if a.role, err = consent.ParseRole(role); err != nil {
		*errs = append(*errs, err)
	}
	if staff != "" {
		if a.staff, err = consent.ParseStaffID(staff); err != nil {
			*errs = append(*errs, err)
		}
	}
	if a.purpose, err = consent.ParsePurpose(purpose); err != nil {
		*errs = append(*errs, err)
	}
	if reason != "" {
		if a.reason, err = consent.ParseReason(reason); err != nil {
			*errs = append(*errs, err)
		}
	}
	return a
}
