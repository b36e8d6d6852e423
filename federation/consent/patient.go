package consent

import (
	"bytes"
	"crypto/ed25519"
	"maps"
	"slices"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// Patient is one patient's consent documents as a centre holds them, and
// what follows from them. It is a function of the set of documents, not
// of the order they arrived in, so every centre holding the same
// documents reaches the same standing.
//
// Keys: a document signed by a patient key counts when an attestation
// names that key and no attestation of another key issued after the
// key's latest one supersedes it before the document was issued. A
// superseding attestation marked compromised voids everything the old
// keys signed; the patient then signs again with the new key (until then
// their consent stands withdrawn).
//
// Contracts: of each contract ID the highest valid version counts; of
// those, the newest (by issue time, then hash) is in force and replaces
// every older one. If a valid revocation names it, the patient's consent
// stands withdrawn.
type Patient struct {
	Subject ledger.Pseudonym

	seen         map[[32]byte]bool
	docs         []Document // in arrival order: what a sync sends
	attestations []Document
	contracts    []Document
	revocations  []Document
	uses         map[ID]int

	standing Standing
}

// NewPatient returns the empty state of patient p.
func NewPatient(p ledger.Pseudonym) *Patient {
	return &Patient{Subject: p, seen: map[[32]byte]bool{}, uses: map[ID]int{}}
}

// Add adds a verified document about the patient and reports whether it
// was new. Attestations are the caller's to check against the charter
// (signed by a member); the patient's documents are weighed against the
// attestations whenever they change.
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
	case KindContract:
		p.contracts = append(p.contracts, d)
	case KindRevocation:
		p.revocations = append(p.revocations, d)
	default:
		return false, malformed("a %s is presented, not kept", d.Kind)
	}
	p.seen[h] = true
	p.docs = append(p.docs, d)
	p.standing = p.compute()
	return true, nil
}

// clone returns a copy that can change without changing p.
func (p *Patient) clone() *Patient {
	c := *p
	c.seen = maps.Clone(p.seen)
	c.docs = slices.Clone(p.docs)
	c.attestations = slices.Clone(p.attestations)
	c.contracts = slices.Clone(p.contracts)
	c.revocations = slices.Clone(p.revocations)
	c.uses = maps.Clone(p.uses)
	return &c
}

// Documents returns the patient's documents in the order they arrived.
func (p *Patient) Documents() []Document { return slices.Clone(p.docs) }

// syncable returns at most n of the patient's documents for a sync: every
// attestation (accept keeps them few), then the newest of the others.
func (p *Patient) syncable(n int) []Document {
	out := slices.Clone(p.attestations)
	var rest []Document
	for _, d := range p.docs {
		if d.Kind != KindAttestation {
			rest = append(rest, d)
		}
	}
	out = out[:min(len(out), n)]
	return append(out, rest[max(0, len(rest)-(n-len(out))):]...)
}

// Standing returns where the patient's consent stands.
func (p *Patient) Standing() Standing { return p.standing }

// Attested reports whether any member attested a key for the patient.
func (p *Patient) Attested() bool { return len(p.attestations) > 0 }

// CurrentKey returns the patient's current key: that of the newest
// attestation, or nil.
func (p *Patient) CurrentKey() ed25519.PublicKey {
	if a := p.current(); a != nil {
		return a.Key
	}
	return nil
}

func (p *Patient) current() *Attestation {
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

// keyValid reports whether a document signed by key and issued at t
// counts, and whether key was compromised. A compromise is for good: an
// attestation marked compromised, of another key, issued after key was
// first attested, voids key whatever comes later.
func (p *Patient) keyValid(key ed25519.PublicKey, t time.Time) (valid, compromised bool) {
	var first, latest *Attestation
	for _, d := range p.attestations {
		a := d.Attestation
		if !a.Key.Equal(key) {
			continue
		}
		if first == nil || a.Issued.Before(first.Issued) {
			first = a
		}
		if latest == nil || a.Issued.After(latest.Issued) {
			latest = a
		}
	}
	if latest == nil {
		return false, false
	}
	valid = true
	for _, d := range p.attestations {
		a := d.Attestation
		if a.Key.Equal(key) {
			continue
		}
		if a.Compromised && a.Issued.After(first.Issued) {
			return false, true
		}
		if a.Issued.After(latest.Issued) && !t.Before(a.Issued) {
			valid = false
		}
	}
	return valid, false
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
		ok, comp := p.keyValid(d.Signer, d.Contract.Issued)
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

// revoked reports whether a valid revocation names id.
func (p *Patient) revoked(id ID) bool {
	for _, d := range p.revocations {
		if d.Revocation.Target == id {
			if ok, _ := p.keyValid(d.Signer, d.Revocation.Issued); ok {
				return true
			}
		}
	}
	return false
}

// Token checks a token presented for the patient: that the patient's
// attested key signed it and it is not revoked. It returns the token with
// its uses spent at this centre, or a refusal.
func (p *Patient) Token(d Document) (*Token, int, Decision, bool) {
	t := d.Token
	switch {
	case d.Kind != KindToken:
		return nil, 0, refused(malformed("a %s is not a token", d.Kind)), false
	case t.Subject != p.Subject:
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenOther}, false
	}
	if ok, _ := p.keyValid(d.Signer, t.Issued); !ok {
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenKey}, false
	}
	if p.revoked(t.ID) {
		return nil, 0, Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenRevoked}, false
	}
	return t, p.uses[t.ID], Decision{}, true
}

// Used records one use of token id.
func (p *Patient) Used(id ID) { p.uses[id]++ }
