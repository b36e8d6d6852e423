package consent

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"slices"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

// Patient is one patient's consent documents as a centre holds them, and
// what follows from them. It is a function of the set of documents (and
// of the clock, for key replacements in their notice period), not of the
// order they arrived in, so every centre holding the same documents
// reaches the same standing.
//
// Keys: the first key a member attests for the patient is in force at
// once: one registrar, having checked who the patient is. An attestation
// that replaces the key in force is pending until it takes effect: it
// needs an approval by a second staff member (at another centre, or
// another named staff member at the same one), and then a notice period
// (the charter's key-notice) from the approval, during which the key in
// force can veto it. So no single insider can hand a patient's consent,
// view or erasure to a key of their own choosing, and the patient hears
// of it (the attestation is in their notifications) in time to refuse.
//
// A document signed by a patient key counts when the key is in force at
// the document's issue time: from the attestation's effect (the first
// key: from any time) until another key's attestation takes effect. An
// attestation marked compromised, once in effect, voids everything the
// keys it supersedes signed; the patient then signs again with the new
// key (until then their consent stands withdrawn).
//
// Contracts: of each contract ID the highest valid version counts; of
// those, the newest (by issue time, then hash) is in force and replaces
// every older one. If a valid revocation names it, the patient's consent
// stands withdrawn.
//
// Delegates: a document a delegate signs (naming its delegation) counts
// as the patient's when the delegation was in force for the document's
// scope at its issue time (see Delegation, MayAct). What it signed then
// stays when the delegation later expires or is revoked, as the patient's
// own documents stay when their key is rotated; a key reported lost or
// stolen voids the delegations it signed and all their delegates signed.
type Patient struct {
	Subject ledger.Pseudonym

	notice time.Duration
	now    func() time.Time

	seen         map[[32]byte]bool
	docs         []Document // in arrival order: what a sync sends
	attestations []Document
	approvals    []Document
	vetoes       []Document
	contracts    []Document
	revocations  []Document
	erasures     []Document
	delegations  []Document
	uses         map[ID]int

	keys     []keyTerm   // the attestations in issue order, with their effect
	delegs   []delegTerm // the delegations in arrival order, weighed against the keys
	standing Standing
	erased   time.Time // records before it are to be erased: the newest erasure that counts
	// changes is when a pending attestation takes effect: the standing is
	// computed again then. Zero: nothing pending.
	changes time.Time
}

// DefaultKeyNotice is how long a replacement of a patient's key waits,
// once approved, for the key in force to veto it, unless the charter says
// otherwise.
const DefaultKeyNotice = federation.DefaultKeyNotice

// NewPatient returns the empty state of patient p, with the default key
// notice period and the system clock.
func NewPatient(p ledger.Pseudonym) *Patient { return NewPatientWith(p, DefaultKeyNotice, time.Now) }

// NewPatientWith returns the empty state of patient p under the key
// notice period notice (the charter's), reading the time from now.
func NewPatientWith(p ledger.Pseudonym, notice time.Duration, now func() time.Time) *Patient {
	return &Patient{Subject: p, notice: notice, now: now, seen: map[[32]byte]bool{}, uses: map[ID]int{}}
}

// Add adds a verified document about the patient and reports whether it
// was new. Attestations and approvals are the caller's to check against
// the charter (signed by a member); the patient's documents are weighed
// against the attestations whenever they change.
func (p *Patient) Add(d Document) (bool, error) {
	if d.Subject() != p.Subject {
		return false, malformed("document about another patient")
	}
	h := d.Hash()
	if p.seen[h] {
		return false, nil
	}
	switch d.Kind {
	case KindAttestation:
		p.attestations = append(p.attestations, d)
	case KindApproval:
		p.approvals = append(p.approvals, d)
	case KindVeto:
		p.vetoes = append(p.vetoes, d)
	case KindContract:
		p.contracts = append(p.contracts, d)
	case KindRevocation:
		p.revocations = append(p.revocations, d)
	case KindErasure:
		p.erasures = append(p.erasures, d)
	case KindDelegation:
		p.delegations = append(p.delegations, d)
	default:
		return false, malformed("a %s is presented, not kept", d.Kind)
	}
	p.seen[h] = true
	p.docs = append(p.docs, d)
	if d.Kind == KindAttestation || d.Kind == KindApproval || d.Kind == KindVeto {
		p.keys = p.weighKeys()
	}
	p.recompute()
	return true, nil
}

// withNotice returns p under another notice period (the charter changed).
func (p *Patient) withNotice(notice time.Duration) *Patient {
	c := p.clone()
	c.notice = notice
	c.keys = c.weighKeys()
	c.recompute()
	return c
}

// clone returns a copy that can change without changing p.
func (p *Patient) clone() *Patient {
	c := *p
	c.seen = maps.Clone(p.seen)
	c.docs = slices.Clone(p.docs)
	c.attestations = slices.Clone(p.attestations)
	c.approvals = slices.Clone(p.approvals)
	c.vetoes = slices.Clone(p.vetoes)
	c.contracts = slices.Clone(p.contracts)
	c.revocations = slices.Clone(p.revocations)
	c.erasures = slices.Clone(p.erasures)
	c.delegations = slices.Clone(p.delegations)
	c.delegs = slices.Clone(p.delegs)
	c.uses = maps.Clone(p.uses)
	c.keys = slices.Clone(p.keys)
	return &c
}

// Documents returns the patient's documents in the order they arrived.
func (p *Patient) Documents() []Document { return slices.Clone(p.docs) }

// keyDocuments are the attestations, delegations, registrars' endings
// of delegations, approvals and vetoes: what every other document of the
// patient is weighed against, and what an approval names.
func (p *Patient) keyDocuments() []Document {
	return slices.Concat(p.attestations, p.delegations, p.registrarEndings(), p.approvals, p.vetoes)
}

// registrarEndings are the revocations registrars made: endings of
// delegations, each waiting for or counting from its approval.
func (p *Patient) registrarEndings() []Document {
	return slices.DeleteFunc(slices.Clone(p.revocations), func(d Document) bool { return !isKeyDocument(d) })
}

// isKeyDocument reports whether d is one of keyDocuments'.
func isKeyDocument(d Document) bool {
	switch d.Kind {
	case KindAttestation, KindDelegation, KindApproval, KindVeto:
		return true
	case KindRevocation:
		return !d.Revocation.Staff.IsZero()
	}
	return false
}

// syncable returns at most n of the patient's documents for a sync: every
// key document (accept keeps them few), then the newest of the others.
func (p *Patient) syncable(n int) []Document {
	out := p.keyDocuments()
	var rest []Document
	for _, d := range p.docs {
		if !isKeyDocument(d) {
			rest = append(rest, d)
		}
	}
	out = out[:min(len(out), n)]
	return append(out, rest[max(0, len(rest)-(n-len(out))):]...)
}

// Standing returns where the patient's consent stands now.
func (p *Patient) Standing() Standing {
	p.refresh()
	return p.standing
}

// refresh computes the standing again when a pending attestation or
// delegation has taken effect since it was last computed.
func (p *Patient) refresh() {
	if !p.changes.IsZero() && !p.now().Before(p.changes) {
		p.recompute()
	}
}

func (p *Patient) recompute() {
	p.delegs = p.weighDelegations()
	p.standing = p.compute()
	p.erased = time.Time{}
	for _, d := range p.erasures {
		if p.erasureCounts(d) && d.Issued().After(p.erased) {
			p.erased = d.Issued()
		}
	}
	p.changes = time.Time{}
	now := p.now()
	pending := func(at time.Time) {
		if !at.IsZero() && at.After(now) && (p.changes.IsZero() || at.Before(p.changes)) {
			p.changes = at
		}
	}
	for _, k := range p.keys {
		pending(k.effect)
	}
	for _, t := range p.delegs {
		pending(t.effect)
	}
}

// Attested reports whether any member attested a key for the patient.
func (p *Patient) Attested() bool { return len(p.attestations) > 0 }

// CurrentKey returns the key in force now, or nil.
func (p *Patient) CurrentKey() ed25519.PublicKey {
	if k := p.inForce(p.now()); k != nil {
		return k.Key
	}
	return nil
}

// newest returns the attestation issued last, in effect or not.
func (p *Patient) newest() *Attestation {
	var cur *Attestation
	for _, d := range p.attestations {
		if a := d.Attestation; cur == nil || newerAttestation(a, cur) {
			cur = a
		}
	}
	return cur
}

func newerAttestation(a, b *Attestation) bool {
	if !a.Issued.Equal(b.Issued) {
		return a.Issued.After(b.Issued)
	}
	if c := bytes.Compare(a.Key, b.Key); c != 0 {
		return c > 0
	}
	return a.Compromised && !b.Compromised
}

// attested reports whether a member ever attested key for the patient.
func (p *Patient) attested(key ed25519.PublicKey) bool {
	return slices.ContainsFunc(p.attestations, func(d Document) bool { return d.Attestation.Key.Equal(key) })
}

// keyTerm is an attestation weighed against those before it.
type keyTerm struct {
	*Attestation
	hash    [32]byte
	signer  ed25519.PublicKey
	replace bool      // it replaces another key in force
	from    time.Time // documents the key signs count from then; zero: any time (the first key)
	effect  time.Time // when it took or takes effect; zero: never (unapproved or vetoed)
	status  KeyStatus
}

// KeyStatus says where an attestation stands.
type KeyStatus uint8

const (
	KeyInEffect   KeyStatus = 1 // took effect (another may have replaced it since)
	KeyUnapproved KeyStatus = 2 // replaces a key; no second staff member approved it
	KeyNotice     KeyStatus = 3 // approved; the key in force can veto it until it takes effect
	KeyVetoed     KeyStatus = 4 // the key in force refused it
)

var keyStatuses = enum.New[KeyStatus]("key status", []string{KeyInEffect: "in effect", KeyUnapproved: "awaiting a second approval", KeyNotice: "in its notice period", KeyVetoed: "vetoed by the patient"})

func (s KeyStatus) String() string { return keyStatuses.String(s) }

// weighKeys works out, oldest first, which attestations replace a key
// and when each takes effect.
func (p *Patient) weighKeys() []keyTerm {
	docs := slices.Clone(p.attestations)
	slices.SortFunc(docs, func(a, b Document) int {
		if c := a.Attestation.Issued.Compare(b.Attestation.Issued); c != 0 {
			return c
		}
		ha, hb := a.Hash(), b.Hash()
		return bytes.Compare(ha[:], hb[:])
	})
	var terms []keyTerm
	for _, d := range docs {
		a := d.Attestation
		t := keyTerm{Attestation: a, hash: d.Hash(), signer: d.Signer}
		cur := termInForce(terms, a.Issued)
		switch {
		case cur == nil && len(terms) == 0:
			t.effect, t.status = a.Issued, KeyInEffect // the first key: from any time
		case cur == nil || cur.Key.Equal(a.Key):
			t.from, t.effect, t.status = a.Issued, a.Issued, KeyInEffect // nothing is replaced
		default:
			t.replace = true
			t.status = KeyUnapproved
			if at, ok := p.approved(t); ok {
				t.status = KeyNotice
				t.effect = later(at, a.Issued).Add(p.notice)
				if p.vetoed(terms, t) {
					t.status, t.effect = KeyVetoed, time.Time{}
				} else {
					t.from = t.effect
				}
			} else if p.vetoed(terms, t) {
				t.status = KeyVetoed
			}
		}
		terms = append(terms, t)
	}
	return terms
}

// approved returns when a second staff member first approved t: an
// approval from another centre, or from another named staff member at the
// same one.
func (p *Patient) approved(t keyTerm) (time.Time, bool) {
	return p.approvedAt(t.hash, t.signer, t.Staff)
}

// approvedAt returns when a second staff member first approved the
// document whose hash is h, which the centre whose key is signer made for
// staff (zero: its operator).
func (p *Patient) approvedAt(h [32]byte, signer ed25519.PublicKey, staff ledger.StaffID) (time.Time, bool) {
	var first time.Time
	for _, d := range p.approvals {
		a := d.Approval
		if a.Attestation != h {
			continue
		}
		second := !d.Signer.Equal(signer) || (!staff.IsZero() && a.Staff != staff)
		if second && (first.IsZero() || a.Issued.Before(first)) {
			first = a.Issued
		}
	}
	return first, !first.IsZero()
}

// vetoed reports whether a key in force before t refused it before it
// took effect (t.effect zero: at any time).
func (p *Patient) vetoed(before []keyTerm, t keyTerm) bool {
	return p.vetoedIn(before, t.hash, t.Key, t.effect)
}

// vetoedIn reports whether a key in force in before, other than not,
// refused the document whose hash is h before effect (zero: at any
// time).
func (p *Patient) vetoedIn(before []keyTerm, h [32]byte, not ed25519.PublicKey, effect time.Time) bool {
	for _, d := range p.vetoes {
		v := d.Veto
		if v.Attestation != h || d.Signer.Equal(not) || (!effect.IsZero() && !v.Issued.Before(effect)) {
			continue
		}
		if ok, _ := validIn(before, d.Signer, v.Issued, p.now()); ok {
			return true
		}
	}
	return false
}

// termInForce returns the attestation in force at t: of those in effect
// by t, the one that took effect last.
func termInForce(terms []keyTerm, t time.Time) *keyTerm {
	var cur *keyTerm
	for i := range terms {
		k := &terms[i]
		if k.effect.IsZero() || k.effect.After(t) {
			continue
		}
		if cur == nil || !k.effect.Before(cur.effect) {
			cur = k
		}
	}
	return cur
}

func (p *Patient) inForce(t time.Time) *keyTerm { return termInForce(p.keys, t) }

// keyValid reports whether a document signed by key and issued at t
// counts, and whether key was compromised.
func (p *Patient) keyValid(key ed25519.PublicKey, t time.Time) (valid, compromised bool) {
	return validIn(p.keys, key, t, p.now())
}

// validIn is keyValid over terms, counting only the attestations in
// effect by now: key is in force at t (see Patient), and no attestation
// of another key marked compromised took effect after key's first term
// began. A compromise is for good: it voids key
// whatever comes later.
func validIn(terms []keyTerm, key ed25519.PublicKey, t, now time.Time) (valid, compromised bool) {
	var first, latest *keyTerm
	for i := range terms {
		k := &terms[i]
		if !k.Key.Equal(key) || k.effect.IsZero() || k.effect.After(now) || k.from.After(t) {
			continue
		}
		if first == nil || k.from.Before(first.from) {
			first = k
		}
		if latest == nil || !k.from.Before(latest.from) {
			latest = k
		}
	}
	if latest == nil {
		return false, false
	}
	valid = true
	for i := range terms {
		k := &terms[i]
		if k.Key.Equal(key) || k.effect.IsZero() || k.effect.After(now) || !k.replace {
			continue
		}
		if k.Compromised && k.effect.After(first.from) {
			return false, true
		}
		if k.effect.After(latest.from) && !t.Before(k.effect) {
			valid = false
		}
	}
	return valid, false
}

// inForceSince returns since when key has been in force without a break,
// as of now; false when it is not in force now.
func (p *Patient) inForceSince(key ed25519.PublicKey) (time.Time, bool) {
	return p.inForceSinceAt(key, p.now())
}

// inForceSinceAt returns since when key had been in force without a
// break at t; false when it was not in force then.
func (p *Patient) inForceSinceAt(key ed25519.PublicKey, t time.Time) (time.Time, bool) {
	if ok, _ := p.keyValid(key, t); !ok {
		return time.Time{}, false
	}
	cur := p.inForce(t)
	if cur == nil || !cur.Key.Equal(key) {
		return time.Time{}, false
	}
	// Walk back over the terms of key in force without another key's
	// taking effect in between.
	since := cur.effect
	for {
		prev := termInForce(p.keys, since.Add(-time.Second))
		if prev == nil || !prev.Key.Equal(key) || !prev.effect.Before(since) {
			return since, true
		}
		since = prev.effect
	}
}

// erasureCounts reports whether an erasure was signed with a key that had
// been in force for the key notice when it was issued: what Settled asks
// of an erasure now, decided on the document alone, so that every centre
// holding the same documents agrees. A delegate's counts when its
// delegation, with the erasure scope, had been in force that long.
func (p *Patient) erasureCounts(d Document) bool {
	if via := d.Via(); !via.IsZero() {
		_, err := p.acting(d.Signer, via, ScopeErasure, d.Issued())
		return err == nil
	}
	since, ok := p.inForceSinceAt(d.Signer, d.Issued())
	return ok && d.Issued().Sub(since) >= p.notice
}

// ErasedBefore returns the issue time of the newest erasure that counts:
// every record recorded before it is to be erased. Zero: none.
func (p *Patient) ErasedBefore() time.Time { return p.erased }

// KeyState is an attestation of the patient's key and where it stands.
type KeyState struct {
	Attestation [32]byte
	Key         ed25519.PublicKey
	Signer      ed25519.PublicKey // the attesting centre's key
	Staff       ledger.StaffID
	Issued      time.Time
	Compromised bool
	Replaces    bool
	Status      KeyStatus
	Effect      time.Time // when it took or takes effect; zero: never
}

// Keys returns the patient's attestations in issue order, with where each
// stands.
func (p *Patient) Keys() []KeyState {
	out := make([]KeyState, 0, len(p.keys))
	now := p.now()
	for _, k := range p.keys {
		st := k.status
		if st == KeyNotice && !k.effect.After(now) {
			st = KeyInEffect
		}
		out = append(out, KeyState{Attestation: k.hash, Key: k.Key, Signer: k.signer, Staff: k.Staff, Issued: k.Issued,
			Compromised: k.Compromised, Replaces: k.replace, Status: st, Effect: k.effect})
	}
	return out
}

func (p *Patient) compute() Standing {
	var (
		s      Standing
		voided bool
	)
	// The newest version of each contract ID, then the newest contract.
	latest := map[ID]*Document{}
	for i := range p.contracts {
		d := &p.contracts[i]
		ok, comp := p.signedValid(*d)
		voided = voided || comp
		if !ok {
			continue
		}
		if cur := latest[d.Contract.ID]; cur == nil || newerVersion(d, cur) {
			latest[d.Contract.ID] = d
		}
	}
	var best *Document
	for _, d := range latest {
		if best == nil || newerContract(d, best) {
			best = d
		}
	}
	if best == nil {
		// A compromised key voided what the patient had signed: nothing
		// stands until they sign again.
		s.Compromised = voided
		s.Withdrawn = voided
		return s
	}
	s.Contract = best.Contract
	s.Withdrawn = p.revoked(best.Contract.ID)
	return s
}

// newerVersion orders the versions of one contract: by version, then
// issue time, then hash.
func newerVersion(a, b *Document) bool {
	ca, cb := a.Contract, b.Contract
	switch {
	case ca.Version != cb.Version:
		return ca.Version > cb.Version
	case !ca.Issued.Equal(cb.Issued):
		return ca.Issued.After(cb.Issued)
	}
	ha, hb := a.Hash(), b.Hash()
	return bytes.Compare(ha[:], hb[:]) > 0
}

// newerContract orders contracts of different IDs: by issue time, then
// hash.
func newerContract(a, b *Document) bool {
	ca, cb := a.Contract, b.Contract
	if !ca.Issued.Equal(cb.Issued) {
		return ca.Issued.After(cb.Issued)
	}
	ha, hb := a.Hash(), b.Hash()
	return bytes.Compare(ha[:], hb[:]) > 0
}

// revoked reports whether a valid revocation names id: the patient's, or
// a delegate's within its consent scope.
func (p *Patient) revoked(id ID) bool {
	for _, d := range p.revocations {
		if d.Revocation.Target == id {
			if ok, _ := p.signedValid(d); ok {
				return true
			}
		}
	}
	return false
}

// Token checks a token presented for the patient: that the patient's
// attested key signed it, or a delegate within its consent scope, and it
// is not revoked. A delegate's token lasts no longer than its delegation,
// and ends with its revocation. It returns the token with its uses spent
// at this centre, or a refusal.
func (p *Patient) Token(d Document) (*Token, int, Decision, bool) {
	t := d.Token
	switch {
	case d.Kind != KindToken:
		return nil, 0, refused(malformed("a %s is not a token", d.Kind)), false
	case t.Subject != p.Subject:
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenOther}, false
	}
	if via := d.Via(); !via.IsZero() {
		p.refresh()
		g, err := p.acting(d.Signer, via, ScopeConsent, t.Issued)
		if err != nil || t.Expires.After(g.Expires) || !p.delegationRevoked(g).IsZero() {
			return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenDelegate}, false
		}
	} else if ok, _ := p.keyValid(d.Signer, t.Issued); !ok {
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenKey}, false
	}
	if p.revoked(t.ID) {
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenRevoked}, false
	}
	return t, p.uses[t.ID], Decision{}, true
}

// Used records one use of token id.
func (p *Patient) Used(id ID) { p.uses[id]++ }
