package centre

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

var _ consent.Ledger = (*ledger.Ledger)(nil)

func (n *Node) startConsent(ctx context.Context, cfg ConsentConfig) error {
	svc, err := consent.New(n.Host, consent.Options{
		Key:       n.Centre.key,
		Ledger:    n.Centre.Ledger,
		Charter:   func() federation.Charter { return n.Membership.Current().Charter },
		Holders:   n.holders,
		Holds:     n.holds,
		Erase:     n.eraseFor,
		Lease:     cfg.Lease,
		LeaseFile: filepath.Join(n.Centre.dir, LeaseFile),
		Logger:    n.base,
		Now:       clock.Now,
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
// records, this centre with them when its own ledger holds some; with an
// error, those it found.
func (n *Node) holders(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error) {
	res, err, own := n.withOwn(ctx, p, n.Directory.Lookup)
	return res.Holders, errors.Join(err, own)
}

// everyHolder is holders read at every replica of p's key, not the
// lookup's closest few: for a patient's own requests, which must miss no
// holder and are rare.
func (n *Node) everyHolder(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error) {
	res, err, own := n.withOwn(ctx, p, n.Directory.LookupEvery)
	return res.Holders, errors.Join(err, own)
}

// withOwn runs lookup for p and, beside it rather than after it, reads
// this centre's own ledger: res lists this centre too when its ledger
// holds records of p and the directory did not list it (this centre knows
// what it holds without asking anyone, and its announcement may not have
// reached the others yet). err is the lookup's error; own the ledger
// read's, when the directory did not list this centre.
func (n *Node) withOwn(ctx context.Context, p ledger.Pseudonym, lookup func(context.Context, ledger.Pseudonym) (directory.Result, error)) (res directory.Result, err, own error) {
	type holding struct {
		held bool
		err  error
	}
	ch := make(chan holding, 1)
	go func() {
		held, err := n.holds(ctx, p)
		ch <- holding{held, err}
	}()
	res, err = lookup(ctx, p)
	h := <-ch
	self := n.Host.ID()
	if slices.Contains(res.Holders, self) {
		return res, err, nil // listed: what the ledger says changes nothing
	}
	if h.held {
		res.Holders = append(res.Holders, self)
	}
	return res, err, h.err
}

// holds reports whether the ledger holds records of p: the patients this
// centre announces in the directory.
func (n *Node) holds(ctx context.Context, p ledger.Pseudonym) (bool, error) {
	_, now, err := n.holding(ctx, p)
	return now, err
}

// holding reports whether this centre ever held records of p, and whether
// it holds any now (some not erased).
func (n *Node) holding(ctx context.Context, p ledger.Pseudonym) (ever, now bool, err error) {
	es, err := n.Centre.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindAmendment, ledger.KindErasure)
	if err != nil {
		return false, false, err
	}
	erased := map[int64]bool{}
	for _, e := range es {
		if e.Kind == ledger.KindErasure {
			if err := markErased(erased, e); err != nil {
				return false, false, err
			}
		} else {
			ever = true
		}
	}
	return ever, slices.ContainsFunc(es, func(e ledger.Entry) bool { return stillHeld(e, erased) }), nil
}

// LeaseFile, in the data directory, says how far the consent leases this
// centre granted may reach (consent.Options.LeaseFile).
const LeaseFile = "consent-leases"

// eraseFor carries out patient p's erasure signed at before: the records
// appended until then are crypto-shredded, and the directory announcement
// withdrawn once nothing is left.
func (n *Node) eraseFor(ctx context.Context, p ledger.Pseudonym, before time.Time) error {
	if _, err := n.Centre.EraseBefore(ctx, p, before); err != nil {
		return err
	}
	// Withdrawn whenever it held records and holds none now, not only
	// when this call erased some: a withdrawal that failed before, or a
	// crash between the erasure and it, is made good on the next call.
	ever, held, err := n.holding(ctx, p)
	if err != nil || !ever || held {
		return err
	}
	return n.Directory.Withdraw(ctx, p)
}

// ConsentDelivery says where a submitted consent document went, by
// centre name.
type ConsentDelivery struct {
	Holders   []string
	Delivered []string
	Failed    []ConsentFailure
	Lookup    error // why the holders may be incomplete
	// Confirmed: a majority of the federation has it, and every centre
	// holding a lease on the patient's consent has it or no longer holds
	// the lease: it is in force everywhere.
	Confirmed bool
	// Waited is how long confirmation waited for the lease of a holder
	// that could not be told to run out.
	Waited time.Duration
}

// ConsentFailure is a holder the document did not reach.
type ConsentFailure struct {
	Centre string
	Err    error
}

func (n *Node) delivery(d consent.Delivery) ConsentDelivery {
	out := ConsentDelivery{Confirmed: d.Confirmed, Waited: d.Waited, Lookup: d.Lookup}
	for _, id := range d.Holders {
		out.Holders = append(out.Holders, n.memberName(id))
	}
	for _, id := range d.Delivered {
		out.Delivered = append(out.Delivered, n.memberName(id))
	}
	for _, f := range d.Failed {
		out.Failed = append(out.Failed, ConsentFailure{Centre: n.memberName(f.Centre), Err: f.Err})
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
	return "", fmt.Errorf("%w: %q is not a member centre", node.ErrNotFound, name)
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

// Attest has this centre attest, on staff's word (zero: the operator's),
// that key is the patient's; compromised says the keys it supersedes are
// lost or stolen. A key that replaces one in force takes effect only once
// another staff member approves it (Approve) and the charter's key notice
// passes without the old key's veto.
func (n *Node) Attest(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, compromised bool, staff ledger.StaffID) (ConsentDelivery, error) {
	d, err := n.Consent.Attest(ctx, p, key, compromised, staff)
	if err != nil {
		return ConsentDelivery{}, err
	}
	return n.delivery(d), nil
}

// Approve has staff approve the attestation att, a replacement of the
// patient's key: the second staff member it needs.
func (n *Node) Approve(ctx context.Context, p ledger.Pseudonym, att [32]byte, staff ledger.StaffID) (ConsentDelivery, error) {
	d, err := n.Consent.Approve(ctx, p, att, staff)
	if err != nil {
		return ConsentDelivery{}, err
	}
	return n.delivery(d), nil
}

// Delegate has staff, a registrar who saw evidence, make a delegation for
// a patient who cannot sign one (a child with no key, an adult who lacks
// capacity): it counts once a second staff member approves it (Approve,
// with the hash returned) and, when the patient has a key in force, after
// the charter's key notice without the patient's veto.
func (n *Node) Delegate(ctx context.Context, d consent.Delegation) (consent.ID, [32]byte, ConsentDelivery, error) {
	made, hash, del, err := n.Consent.Delegate(ctx, d)
	if err != nil {
		return consent.ID{}, [32]byte{}, ConsentDelivery{}, err
	}
	return made.ID, hash, n.delivery(del), nil
}

// EndDelegation has staff, a registrar who saw evidence (a court's order
// ending a guardianship), end delegation target for a patient who cannot
// revoke it themself: it counts once a second staff member approves it
// (Approve, with the hash returned).
func (n *Node) EndDelegation(ctx context.Context, p ledger.Pseudonym, target consent.ID, staff ledger.StaffID, ev consent.Evidence) ([32]byte, ConsentDelivery, error) {
	hash, del, err := n.Consent.EndDelegation(ctx, p, target, staff, ev)
	if err != nil {
		return [32]byte{}, ConsentDelivery{}, err
	}
	return hash, n.delivery(del), nil
}

// Standing is where a patient's consent stands.
type Standing uint8

const (
	// NoContract: the charter's default policy applies.
	NoContract Standing = iota
	// InForce: a contract is in force.
	InForce
	// Withdrawn: the patient withdrew their contract.
	Withdrawn
	// Compromised: the patient reported their key lost or stolen.
	Compromised
)

var standings = enum.New[Standing]("standing", []string{NoContract: "none", InForce: "in force", Withdrawn: "withdrawn", Compromised: "compromised"})

func (s Standing) String() string { return standings.String(s) }

// ConsentView is a patient's consent as this centre holds it.
type ConsentView struct {
	Pseudonym  ledger.Pseudonym
	Federation string
	Attested   bool
	Key        ed25519.PublicKey // the current patient key; nil when none
	Standing   Standing
	Contract   *ConsentContract // the contract in force, or the one withdrawn
	Documents  []ConsentDocument
	Keys       []ConsentKey
	// Delegations are the people who may act for the patient, and those
	// who could, with where each stands.
	Delegations []ConsentDelegation
	TokenUses   map[consent.ID]int
	// TokenMaxLifetime is the charter's longest token, issue to expiry.
	TokenMaxLifetime time.Duration
	// KeyNotice is how long an approved key replacement waits for a veto.
	KeyNotice time.Duration
}

// ConsentKey is an attestation of the patient's key and where it stands:
// a replacement is pending until approved and its notice has passed.
type ConsentKey struct {
	Attestation [32]byte // the hash an approval or a veto names
	Key         ed25519.PublicKey
	Centre      string // the attesting centre's name
	Staff       ledger.StaffID
	Issued      time.Time
	Compromised bool
	Replaces    bool
	Status      consent.KeyStatus
	Effect      time.Time // when it took or takes effect; zero: never
}

// ConsentContract is the contract in force (or the one withdrawn).
type ConsentContract struct {
	ID      consent.ID
	Version uint32
	Issued  time.Time
	Terms   consent.Spec
}

// ConsentDocument is one document held about the patient.
type ConsentDocument struct {
	Kind   consent.Kind
	Issued time.Time
	Signer string     // the attesting centre's name, "patient", or "delegate"
	Via    consent.ID // the delegation a delegate signed under; zero otherwise
	Hash   [32]byte
}

// ConsentDelegation is one delegation of the patient's and where it
// stands.
type ConsentDelegation struct {
	ID           consent.ID
	Delegate     ed25519.PublicKey
	Relationship consent.Relationship
	Scope        consent.Scope
	NotBefore    time.Time // zero: from its issue
	Expires      time.Time
	Issued       time.Time
	Registrar    string // the centre whose registrar made it; "" when the patient signed it
	Status       consent.DelegationStatus
	Revoked      time.Time // zero: not revoked
	Hash         [32]byte  // the delegation document's: what a registrar's needs approved
}

// ShowConsent returns the consent of patient p as this centre holds it.
func (n *Node) ShowConsent(ctx context.Context, p ledger.Pseudonym) (ConsentView, error) {
	v, err := n.Consent.Show(ctx, p)
	if err != nil {
		return ConsentView{}, err
	}
	out := ConsentView{Pseudonym: p, Federation: n.Membership.Current().Federation, Attested: v.Attested, Key: v.Key, Documents: []ConsentDocument{},
		TokenUses: v.Uses, TokenMaxLifetime: n.Membership.Current().Policy.TokenMaxLifetime, KeyNotice: n.Membership.Current().Policy.KeyNoticePeriod()}
	switch s := v.Standing; {
	case s.Compromised:
		out.Standing = Compromised
	case s.Contract != nil && s.Withdrawn:
		out.Standing = Withdrawn
	case s.Contract != nil:
		out.Standing = InForce
	}
	if c := v.Standing.Contract; c != nil {
		out.Contract = &ConsentContract{ID: c.ID, Version: c.Version, Issued: c.Issued, Terms: consent.SpecOf(c, n.memberName)}
	}
	for _, d := range v.Documents {
		out.Documents = append(out.Documents, n.consentDocument(d))
	}
	for _, g := range v.Delegations {
		cd := ConsentDelegation{ID: g.ID, Delegate: g.Delegate, Relationship: g.Relationship, Scope: g.Scope, NotBefore: g.NotBefore,
			Expires: g.Expires, Issued: g.Issued, Status: g.Status, Revoked: g.Revoked, Hash: g.Hash}
		if g.Staff != (ledger.StaffID{}) {
			cd.Registrar = n.signerName(g.Signer)
		}
		out.Delegations = append(out.Delegations, cd)
	}
	for _, k := range v.Keys {
		out.Keys = append(out.Keys, ConsentKey{Attestation: k.Attestation, Key: k.Key, Centre: n.signerName(k.Signer), Staff: k.Staff, Issued: k.Issued,
			Compromised: k.Compromised, Replaces: k.Replaces, Status: k.Status, Effect: k.Effect})
	}
	return out, nil
}

// consentDocument is d as the views and the audit trail show it, with
// who signed it: a member centre (an attestation, an approval, a
// registrar's delegation or ending of one), the patient's delegate, or
// the patient.
func (n *Node) consentDocument(d consent.Document) ConsentDocument {
	signer := "patient"
	switch {
	case d.Kind == consent.KindAttestation || d.Kind == consent.KindApproval || d.Kind == consent.KindDelegation && d.Delegation.Staff != (ledger.StaffID{}) ||
		d.Kind == consent.KindRevocation && d.Revocation.Staff != (ledger.StaffID{}):
		signer = n.signerName(d.Signer)
	case d.Via() != consent.ID{}:
		signer = "delegate"
	}
	return ConsentDocument{Kind: d.Kind, Issued: d.Issued(), Signer: signer, Via: d.Via(), Hash: d.Hash()}
}

func (n *Node) signerName(k ed25519.PublicKey) string {
	for _, m := range n.Membership.Current().Members {
		if pub, err := m.PublicKey(); err == nil && pub.Equal(k) {
			return m.Name
		}
	}
	return "a former member"
}

// DecideRequest asks what this centre would decide for a request.
type DecideRequest struct {
	Pseudonym ledger.Pseudonym
	Centre    string // the requesting centre's name or peer ID
	Asker
	Action   consent.Action
	Class    string
	Recorded time.Time // when the record was made
}

// Decide evaluates a request against the patient's consent as this
// centre holds it, syncing first when it may have missed documents.
func (n *Node) Decide(ctx context.Context, r DecideRequest) (consent.Decision, error) {
	centre, err := n.memberID(r.Centre)
	if err != nil {
		return consent.Decision{}, err
	}
	q := consent.Request{Centre: centre, Role: r.Role, Staff: r.Staff, Purpose: r.Purpose, Reason: r.Reason, Action: r.Action,
		Class: r.Class, Recorded: r.Recorded.UTC(), Time: clock.Now().UTC()}
	return n.Consent.Decide(ctx, r.Pseudonym, q)
}
