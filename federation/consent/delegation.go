package consent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Scope is what a delegate may do for the patient; a Scope value may hold
// several. Consent and Erasure are checked here, on the documents a
// delegate signs; View and Records are requests the patient's own
// service answers (federation/patient), which asks MayAct or
// Service.AuthenticateDelegate.
type Scope uint8

const (
	// ScopeConsent: sign contracts, tokens, and revocations of either.
	ScopeConsent Scope = 1 << iota
	// ScopeView: see the patient's view (which centres hold what, who
	// accessed it).
	ScopeView
	// ScopeRecords: have the patient's own records sent, sealed.
	ScopeRecords
	// ScopeErasure: have the patient's records erased.
	ScopeErasure
)

var scopes = enum.NewFlags[Scope]("consent", "view", "records", "erasure")

func (s Scope) String() string { return scopes.String(s) }

// ParseScope parses one scope name.
func ParseScope(s string) (Scope, error) { return scopes.Parse("delegation scope", s) }

// Relationship is how a delegate stands to the patient: a code, never
// free text, since it ends on ledgers.
type Relationship uint8

const (
	Parent   Relationship = iota + 1 // a parent of a child
	Guardian                         // a guardian a court or the law appointed
	Carer                            // someone who cares for the patient
	Attorney                         // holds a power of attorney for health decisions
	Relative                         // another relative
)

var relationships = enum.New[Relationship]("relationship", []string{Parent: "parent", Guardian: "guardian", Carer: "carer", Attorney: "attorney", Relative: "relative"})

func (r Relationship) String() string { return relationships.String(r) }

// ParseRelationship parses a relationship code.
func ParseRelationship(s string) (Relationship, error) {
	return relationships.Parse("relationship", s)
}

// Evidence is what a registrar saw before making a delegation for a
// patient who cannot sign one: a code, never free text (the document
// itself stays at the centre, like the identity check behind an
// attestation).
type Evidence uint8

const (
	BirthRecord        Evidence = iota + 1 // a birth record naming the parent
	CourtOrder                             // a court's guardianship or deputyship order
	PowerOfAttorney                        // a registered power of attorney
	CapacityAssessment                     // a clinician's recorded assessment that the patient cannot decide
)

var evidences = enum.New[Evidence]("evidence", []string{BirthRecord: "birth-record", CourtOrder: "court-order", PowerOfAttorney: "power-of-attorney", CapacityAssessment: "capacity-assessment"})

func (e Evidence) String() string { return evidences.String(e) }

// ParseEvidence parses an evidence code.
func ParseEvidence(s string) (Evidence, error) { return evidences.Parse("evidence", s) }

// Delegation names a delegate who acts for the patient within Scope,
// from NotBefore (zero: its issue) until Expires. The patient signs it
// with their key in force; for a patient who cannot (a child, an adult
// who lacks capacity), a member centre signs it for a registrar (Staff)
// who saw the Evidence, and it counts only once a second staff member
// approves it (an Approval naming its hash) and, when the patient has a
// key in force, after the key notice without the patient's veto, as a
// key replacement does. Delegate is a 32-byte key as patients' keys are:
// an Ed25519 public key or a passkey's ID (wire.PasskeyID).
//
// A delegate signs contracts, revocations, tokens and erasures naming
// the delegation (their Delegation field); such a document counts when
// the delegation was in force for its scope at the document's issue
// time. A delegate cannot name another delegate. The patient revokes a
// delegation like a contract (a Revocation naming its ID), and the
// delegate may step down (a Revocation of its own delegation, under it).
type Delegation struct {
	ID           ID
	Federation   string
	Subject      ledger.Pseudonym
	Delegate     ed25519.PublicKey
	Relationship Relationship
	Scope        Scope
	NotBefore    time.Time // zero: from its issue
	Expires      time.Time
	Issued       time.Time
	Staff        ledger.StaffID // the registrar who made it; zero: the patient signed it
	Evidence     Evidence       // what the registrar saw; zero: the patient signed it
}

// Delegation body: [16] id, str federation, [32] subject, [32] delegate,
// u8 relationship, u8 scope, time not-before, time expires, time issued,
// [16] staff, u8 evidence.
func (d *Delegation) write(w *writer) {
	w.Bytes(d.ID[:])
	w.Str(d.Federation)
	w.Bytes(d.Subject[:])
	w.Bytes(d.Delegate)
	w.U8(uint8(d.Relationship))
	w.U8(uint8(d.Scope))
	w.Time(d.NotBefore)
	w.Time(d.Expires)
	w.Time(d.Issued)
	w.Bytes(d.Staff[:])
	w.U8(uint8(d.Evidence))
}

func (d *Delegation) check() error {
	if err := checkHead(d.Federation, d.Subject, d.Issued); err != nil {
		return err
	}
	switch {
	case d.ID.IsZero():
		return malformed("delegation without an ID")
	case len(d.Delegate) != ed25519.PublicKeySize:
		return malformed("delegate key of %d bytes", len(d.Delegate))
	case bytes.Equal(d.Delegate, make([]byte, ed25519.PublicKeySize)):
		return malformed("no delegate key")
	case !relationships.Valid(d.Relationship):
		return malformed("relationship %d", uint8(d.Relationship))
	case d.Scope == 0 || !scopes.Valid(d.Scope):
		return malformed("a delegation's scope is one or more of consent, view, records, erasure")
	case !whole(d.NotBefore) || d.NotBefore.Unix() >= maxUnix:
		return malformed("not-before must be a whole second in UTC from 1970 to 2261")
	case d.Expires.IsZero() || !whole(d.Expires) || d.Expires.Unix() >= maxUnix || !d.Issued.Before(d.Expires):
		return malformed("a delegation expires, after it is issued")
	case !d.NotBefore.IsZero() && !d.NotBefore.Before(d.Expires):
		return malformed("a delegation starts before it expires")
	case d.Staff.IsZero() != (d.Evidence == 0):
		return malformed("a registrar's delegation names the registrar and the evidence seen; the patient's names neither")
	case d.Evidence != 0 && !evidences.Valid(d.Evidence):
		return malformed("evidence %d", uint8(d.Evidence))
	}
	return nil
}

func decodeDelegation(b []byte) (*Delegation, error) {
	r := newReader(b)
	d := &Delegation{}
	r.Fixed(d.ID[:], "id")
	d.Federation = r.Str("federation")
	r.Fixed(d.Subject[:], "subject")
	d.Delegate = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "delegate")))
	d.Relationship = Relationship(r.U8("relationship"))
	d.Scope = Scope(r.U8("scope"))
	d.NotBefore = r.Time("not-before")
	d.Expires = r.Time("expiry")
	d.Issued = r.Time("issue time")
	r.Fixed(d.Staff[:], "staff")
	d.Evidence = Evidence(r.U8("evidence"))
	r.End("delegation")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// SignDelegation returns d signed with the patient's key, or, for a
// registrar's delegation (Staff and Evidence set), with a member centre's
// key (Service.Delegate does that).
func SignDelegation(key ed25519.PrivateKey, d Delegation) ([]byte, error) { return sign(key, &d) }

// DraftDelegation returns d for the patient's key to sign.
func DraftDelegation(key ed25519.PublicKey, passkey bool, d Delegation) (Draft, error) {
	if !d.Staff.IsZero() {
		return Draft{}, malformed("a registrar's delegation is signed by its centre")
	}
	return draft(key, passkey, &d)
}

// DelegationStatus says where a delegation stands.
type DelegationStatus uint8

const (
	DelegationInForce    DelegationStatus = 1 // the delegate may act within its scope
	DelegationUnapproved DelegationStatus = 2 // a registrar's: no second staff member approved it
	DelegationNotice     DelegationStatus = 3 // a registrar's, approved: the patient's key can veto it until it takes effect
	DelegationVetoed     DelegationStatus = 4 // the patient's key refused it
	DelegationVoid       DelegationStatus = 5 // not signed by a key that spoke for the patient (or one since reported lost or stolen)
	DelegationPending    DelegationStatus = 6 // before its not-before
	DelegationExpired    DelegationStatus = 7
	DelegationRevoked    DelegationStatus = 8 // by the patient, or the delegate stepped down
)

var delegationStatuses = enum.New[DelegationStatus]("delegation status", []string{
	DelegationInForce:    "in force",
	DelegationUnapproved: "awaiting a second approval",
	DelegationNotice:     "in its notice period",
	DelegationVetoed:     "vetoed by the patient",
	DelegationVoid:       "not signed by the patient's key",
	DelegationPending:    "not yet in force",
	DelegationExpired:    "expired",
	DelegationRevoked:    "revoked",
})

func (s DelegationStatus) String() string { return delegationStatuses.String(s) }

// maxDelegations bounds the delegations a patient's state holds, revoked
// and expired ones included: they are sent with every document (what a
// delegate signs is weighed against them).
const maxDelegations = 64

// delegTerm is a delegation weighed against the patient's keys and the
// approvals and vetoes that name it.
type delegTerm struct {
	*Delegation
	hash        [32]byte
	signer      ed25519.PublicKey
	made        DelegationStatus // DelegationInForce once made (approved, past its notice); else why not
	effect      time.Time        // when it took or takes effect; zero: never
	compromised bool             // the patient's key that signed it was reported lost or stolen
}

// start is when the delegate may first act.
func (t *delegTerm) start() time.Time { return later(t.effect, t.NotBefore) }

// weighDelegations works out which delegations were made, and when each
// takes effect: the patient's at once, when signed with a key that
// counts at its issue; a registrar's at its second approval, and when the
// patient had a key in force at its issue, the key notice after that,
// unless that key vetoes it first.
func (p *Patient) weighDelegations() []delegTerm {
	terms := make([]delegTerm, 0, len(p.delegations))
	for _, d := range p.delegations {
		t := delegTerm{Delegation: d.Delegation, hash: d.Hash(), signer: d.Signer}
		if t.Staff.IsZero() {
			valid, compromised := p.keyValid(d.Signer, t.Issued)
			t.made, t.compromised = DelegationVoid, compromised
			if valid {
				t.made, t.effect = DelegationInForce, t.Issued
			}
			terms = append(terms, t)
			continue
		}
		keyed := termInForce(p.keys, t.Issued) != nil
		at, ok := p.approvedAt(t.hash, t.signer, t.Staff)
		switch {
		case !ok:
			t.made = DelegationUnapproved
			if p.vetoedIn(p.keys, t.hash, t.Delegate, time.Time{}) {
				t.made = DelegationVetoed
			}
		default:
			t.made, t.effect = DelegationInForce, later(at, t.Issued)
			if keyed {
				t.effect = t.effect.Add(p.notice)
			}
			if p.vetoedIn(p.keys, t.hash, t.Delegate, t.effect) {
				t.made, t.effect = DelegationVetoed, time.Time{}
			}
		}
		terms = append(terms, t)
	}
	return terms
}

// delegationRevoked returns when the first revocation of t that counts
// took effect: the patient's, signed with a key that counted then, or
// the delegate's own under it (stepping down), at its issue; a
// registrar's at its second approval. Zero: none. A delegate never
// revokes another's delegation.
func (p *Patient) delegationRevoked(t *delegTerm) time.Time {
	var first time.Time
	for _, d := range p.revocations {
		r := d.Revocation
		if r.Target != t.ID {
			continue
		}
		counts, at := false, r.Issued
		switch {
		case !r.Staff.IsZero():
			// A member centre signed it (Service.accept checks): it
			// counts once another staff member approved it.
			var approved time.Time
			approved, counts = p.approvedAt(d.Hash(), d.Signer, r.Staff)
			at = later(approved, r.Issued)
		case r.Delegation.IsZero():
			counts, _ = p.keyValid(d.Signer, r.Issued)
		default:
			counts = r.Delegation == t.ID && d.Signer.Equal(t.Delegate)
		}
		if counts && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// registrarRevocation says why d, a registrar's revocation, cannot count
// for patient p whoever holds it, or nil: a member centre signed it, and
// it ends a delegation p holds (a registrar ends no contract or token:
// those are the patient's own to withdraw).
func (s *Service) registrarRevocation(p *Patient, d Document) error {
	switch {
	case !s.memberKey(d.Signer):
		return fmt.Errorf("%w: a registrar's revocation not signed by a member centre", ErrSignature)
	case p.delegation(d.Revocation.Target) == nil:
		return fmt.Errorf("%w: a registrar's revocation ends a delegation, and this centre holds no delegation %s", ErrConflict, d.Revocation.Target)
	case !p.seen[d.Hash()] && len(p.registrarEndings()) >= maxDelegations:
		// Key documents travel with every document of the patient's.
		return fmt.Errorf("%w: the patient has %d registrars' endings of delegations, the most a patient may hold", ErrConflict, maxDelegations)
	}
	return nil
}

// errVoided: the patient's key that signed a delegation was reported lost
// or stolen, which voids it and everything its delegate signed, as it
// voids what the key signed itself.
var errVoided = fmt.Errorf("%w: the delegation was signed with a key since reported lost or stolen", ErrSignature)

// inForceFor says why t did not let its delegate act in scope s at time
// at, or nil when it did.
func (p *Patient) inForceFor(t *delegTerm, s Scope, at time.Time) error {
	now := p.now()
	switch {
	case t.compromised:
		return errVoided
	case t.effect.IsZero():
		return fmt.Errorf("%w: the delegation is %s", ErrSignature, t.made)
	case t.effect.After(now):
		return fmt.Errorf("%w: the delegation is in its notice period until %s", ErrSignature, t.effect.UTC().Format(time.RFC3339))
	case s&^t.Scope != 0:
		return fmt.Errorf("%w: %s is outside the delegation's scope (%s)", ErrSignature, s&^t.Scope, t.Scope)
	case at.Before(t.start()):
		return fmt.Errorf("%w: the delegation is not in force before %s", ErrSignature, t.start().UTC().Format(time.RFC3339))
	case !at.Before(t.Expires):
		return fmt.Errorf("%w: the delegation expired at %s", ErrSignature, t.Expires.UTC().Format(time.RFC3339))
	}
	if r := p.delegationRevoked(t); !r.IsZero() && !at.Before(r) {
		return fmt.Errorf("%w: the delegation was revoked at %s", ErrSignature, r.UTC().Format(time.RFC3339))
	}
	if s&ScopeErasure != 0 && at.Sub(t.start()) < p.notice {
		return fmt.Errorf("%w: a delegate erases only once the delegation has been in force for the key notice (%v)", ErrSignature, p.notice)
	}
	return nil
}

// acting returns the delegation (of ID id; zero: any) under which key
// could act for the patient in scope s at time at, or why none.
func (p *Patient) acting(key ed25519.PublicKey, id ID, s Scope, at time.Time) (*delegTerm, error) {
	var scopeErr, other error
	for i := range p.delegs {
		t := &p.delegs[i]
		if !t.Delegate.Equal(key) || (!id.IsZero() && t.ID != id) {
			continue
		}
		err := p.inForceFor(t, s, at)
		switch {
		case err == nil:
			return t, nil
		case s&^t.Scope != 0 && !t.effect.IsZero() && !t.compromised:
			scopeErr = err
		case other == nil || err == errVoided:
			other = err
		}
	}
	switch {
	case other != nil:
		return nil, other
	case scopeErr != nil:
		return nil, scopeErr
	}
	return nil, ErrNotDelegate
}

// ErrNotDelegate is MayAct's error for a key no delegation of the
// patient names: the key may be the patient's own.
var ErrNotDelegate = fmt.Errorf("%w: not a delegate of the patient", ErrSignature)

// delegatedTo reports whether the patient holds a delegation id naming
// key as its delegate, whatever its state.
func (p *Patient) delegatedTo(id ID, key ed25519.PublicKey) bool {
	for _, d := range p.delegations {
		if d.Delegation.ID == id && d.Delegation.Delegate.Equal(key) {
			return true
		}
	}
	return false
}

// isDelegate reports whether any delegation of the patient names key.
func (p *Patient) isDelegate(key ed25519.PublicKey) bool {
	for _, d := range p.delegations {
		if d.Delegation.Delegate.Equal(key) {
			return true
		}
	}
	return false
}

// delegation returns a delegation of ID id the patient holds, or nil.
func (p *Patient) delegation(id ID) *Document {
	for i := range p.delegations {
		if p.delegations[i].Delegation.ID == id {
			return &p.delegations[i]
		}
	}
	return nil
}

// actScope is the scope a delegate needs to sign d: zero for stepping
// down (a delegate may always end its own delegation).
func actScope(d Document) Scope {
	switch {
	case d.Kind == KindErasure:
		return ScopeErasure
	case d.Kind == KindRevocation && d.Revocation.Target == d.Revocation.Delegation:
		return 0
	}
	return ScopeConsent
}

// signedValid reports whether d's signer spoke for the patient when d
// was issued: the patient's key in force then, or a delegate acting
// within its delegation; and whether a key reported lost or stolen voids
// it.
func (p *Patient) signedValid(d Document) (valid, compromised bool) {
	via := d.Via()
	if via.IsZero() {
		return p.keyValid(d.Signer, d.Issued())
	}
	if actScope(d) == 0 {
		return p.delegatedTo(via, d.Signer), false
	}
	_, err := p.acting(d.Signer, via, actScope(d), d.Issued())
	return err == nil, err == errVoided
}

// Acting is a delegate's authority to act for a patient, as MayAct finds
// it: the ledger entries and the patient's view name the delegation.
type Acting struct {
	Delegation   ID
	Hash         [32]byte // the delegation document's
	Delegate     ed25519.PublicKey
	Relationship Relationship
	Scope        Scope // all the delegation allows
	Expires      time.Time
}

// MayAct reports whether key may act for the patient in every scope of s
// at time at, and under which delegation; or, an error wrapping
// ErrSignature, why not. For ScopeErasure the delegation must have been
// in force for the key notice, as a patient's key must. The caller picks
// at: for a request the patient's own service answers, the later of its
// date and now, as Service.Authenticate does.
func (p *Patient) MayAct(key ed25519.PublicKey, s Scope, at time.Time) (Acting, error) {
	if s == 0 || !scopes.Valid(s) {
		return Acting{}, malformed("scope %d", uint8(s))
	}
	p.refresh()
	t, err := p.acting(key, ID{}, s, at)
	if err != nil {
		return Acting{}, err
	}
	return Acting{Delegation: t.ID, Hash: t.hash, Delegate: t.Delegate, Relationship: t.Relationship, Scope: t.Scope, Expires: t.Expires}, nil
}

// DelegationState is a delegation of the patient and where it stands.
type DelegationState struct {
	Delegation
	Hash    [32]byte
	Signer  ed25519.PublicKey // the patient's key, or the registrar's centre's
	Status  DelegationStatus
	Effect  time.Time // when it took or takes effect; zero: never
	Revoked time.Time // when it was revoked; zero: not
}

// Delegations returns the patient's delegations in the order they
// arrived, with where each stands now.
func (p *Patient) Delegations() []DelegationState {
	p.refresh()
	now := p.now()
	out := make([]DelegationState, 0, len(p.delegs))
	for i := range p.delegs {
		t := &p.delegs[i]
		st := DelegationState{Delegation: *t.Delegation, Hash: t.hash, Signer: t.signer, Effect: t.effect, Revoked: p.delegationRevoked(t)}
		switch {
		case t.compromised:
			st.Status = DelegationVoid
		case t.effect.IsZero():
			st.Status = t.made
		case t.effect.After(now):
			st.Status = DelegationNotice
		case !st.Revoked.IsZero() && !now.Before(st.Revoked):
			st.Status = DelegationRevoked
		case !now.Before(t.Expires):
			st.Status = DelegationExpired
		case now.Before(t.start()):
			st.Status = DelegationPending
		default:
			st.Status = DelegationInForce
		}
		out = append(out, st)
	}
	return out
}

// delegationSigner says why delegation d cannot count for patient p
// whoever holds it, or nil: a registrar's is signed by a member centre; a
// patient's by a key a member attested, never a delegate's.
func (s *Service) delegationSigner(p *Patient, d Document) error {
	switch {
	case len(p.delegations) >= maxDelegations && !p.seen[d.Hash()]:
		return fmt.Errorf("%w: the patient has %d delegations, the most a patient may hold", ErrConflict, maxDelegations)
	case !d.Delegation.Staff.IsZero():
		if !s.memberKey(d.Signer) {
			return fmt.Errorf("%w: a registrar's delegation not signed by a member centre", ErrSignature)
		}
		return nil
	case p.attested(d.Signer):
		return nil
	case p.isDelegate(d.Signer):
		return fmt.Errorf("%w: a delegate cannot name another delegate", ErrSignature)
	case !p.Attested():
		return fmt.Errorf("%w: no key is attested for the patient: their delegation is signed with it, or made by a registrar with a second staff member's approval", ErrSignature)
	}
	return fmt.Errorf("%w: a delegation not signed by a key a member attested for the patient", ErrSignature)
}

// actSigner says why a contract, revocation or erasure cannot count for
// patient p whoever holds it, or nil: the patient's is signed by a key a
// member attested; a delegate's names a delegation p holds that names
// its signer. Whether the key or the delegation was in force is p's to
// weigh.
func actSigner(p *Patient, d Document) error {
	via := d.Via()
	switch {
	case via.IsZero() && p.attested(d.Signer):
		return nil
	case via.IsZero() && p.isDelegate(d.Signer):
		return fmt.Errorf("%w: a delegate's %s names the delegation it acts under", ErrSignature, d.Kind)
	case via.IsZero():
		return fmt.Errorf("%w: a %s not signed by a key a member attested for the patient", ErrSignature, d.Kind)
	case !p.delegatedTo(via, d.Signer):
		return fmt.Errorf("%w: a %s signed under a delegation this centre does not hold, or one naming another delegate", ErrSignature, d.Kind)
	}
	return nil
}

// delegateTakesEffect refuses a delegate's document submitted here that
// would change nothing: its delegation was not in force for its scope
// when it was issued, or is no longer now that it arrives (a delegate
// cannot date its way back into a delegation that ended), or it revokes
// another delegation.
func delegateTakesEffect(p *Patient, d Document) error {
	via := d.Via()
	if d.Kind == KindRevocation && actScope(d) != 0 && p.delegation(d.Revocation.Target) != nil {
		return fmt.Errorf("%w: a delegate cannot revoke a delegation but its own", ErrSignature)
	}
	if actScope(d) == 0 {
		return nil // stepping down
	}
	if _, err := p.acting(d.Signer, via, actScope(d), d.Issued()); err != nil {
		return err
	}
	if _, err := p.acting(d.Signer, via, actScope(d), later(d.Issued(), p.now())); err != nil {
		return fmt.Errorf("as it arrives: %w", err)
	}
	return nil
}

// delegationTakesEffect refuses a delegation submitted here that would
// change nothing, or confuse: an ID the patient uses for another
// delegation, one signed with a key superseded before it was issued, one
// expired already.
func delegationTakesEffect(p *Patient, d Document) error {
	g := d.Delegation
	for _, o := range p.delegations {
		if o.Delegation.ID == g.ID && o.Hash() != d.Hash() {
			return fmt.Errorf("%w: the patient has another delegation of this ID", ErrConflict)
		}
	}
	if g.Staff.IsZero() {
		if ok, _ := p.keyValid(d.Signer, g.Issued); !ok {
			return fmt.Errorf("%w: the delegation is signed by a key superseded before it was issued", ErrConflict)
		}
	}
	if !p.now().Before(g.Expires) {
		return fmt.Errorf("%w: the delegation expired at %s", ErrConflict, g.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// Delegate signs, for the registrar d.Staff, who saw d.Evidence, a
// delegation of patient d.Subject to d.Delegate, and submits it: for a
// patient who cannot sign one. It counts once a second staff member
// approves it (Approve, with its hash from Show's Delegations) and, when
// the patient has a key in force, after the charter's key notice without
// the patient's veto. Its ID is drawn when zero; its federation and issue
// time are this centre's. It returns the delegation made and the hash of
// its document, which the approval names.
func (s *Service) Delegate(ctx context.Context, d Delegation) (Delegation, [32]byte, Delivery, error) {
	if d.Staff.IsZero() || d.Evidence == 0 {
		return d, [32]byte{}, Delivery{}, malformed("a registrar's delegation names the registrar and the evidence seen")
	}
	if d.ID.IsZero() {
		d.ID = NewID()
	}
	d.Federation = s.federation()
	d.Issued = s.now().UTC().Truncate(time.Second)
	raw, err := SignDelegation(s.opts.Key, d)
	if err != nil {
		return d, [32]byte{}, Delivery{}, err
	}
	del, err := s.Submit(ctx, raw)
	return d, sha256.Sum256(raw), del, err // a document's hash is its bytes' (Document.Hash)
}

// EndDelegation has staff, a registrar who saw evidence (a court's order
// ending a guardianship), end the delegation target for a patient who
// cannot revoke it themself: this centre signs the revocation, and it
// counts once a second staff member approves it (Approve, with the hash
// returned), as a registrar's delegation does. The delegate's acts before
// then stand.
func (s *Service) EndDelegation(ctx context.Context, p ledger.Pseudonym, target ID, staff ledger.StaffID, ev Evidence) ([32]byte, Delivery, error) {
	if staff.IsZero() || ev == 0 {
		return [32]byte{}, Delivery{}, malformed("a registrar's revocation names the registrar and the evidence seen")
	}
	raw, err := SignRevocation(s.opts.Key, Revocation{Federation: s.federation(), Subject: p, Target: target, Issued: s.now().UTC().Truncate(time.Second), Staff: staff, Evidence: ev})
	if err != nil {
		return [32]byte{}, Delivery{}, err
	}
	del, err := s.Submit(ctx, raw)
	return sha256.Sum256(raw), del, err
}

// AuthenticateDelegate checks that signed, a request made at issued by
// key for patient p, is a delegate's acting within a delegation in force
// for scope (ScopeView, ScopeRecords, ScopeErasure: what the patient's
// own service asks for) and returns that delegation, for the access entry
// to name (AccessEntry.Ref). It makes sure it knows the patient's
// current documents first, as Authenticate does, and fails with
// ErrStale when it cannot. A delegation that ended since the request's
// date has ended: the date is the signer's to choose.
func (s *Service) AuthenticateDelegate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, scope Scope, signed wire.Opened, issued time.Time) (Acting, error) {
	if len(key) != ed25519.PublicKeySize {
		return Acting{}, malformed("a delegate key of %d bytes", len(key))
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return Acting{}, err
	}
	e.mu.Lock()
	a, err := e.p.MayAct(key, scope, later(issued, s.now()))
	e.mu.Unlock()
	if err != nil {
		return Acting{}, err
	}
	if !signed.Verify(key) {
		return Acting{}, fmt.Errorf("%w: the delegate's signature does not verify", ErrSignature)
	}
	return a, nil
}
