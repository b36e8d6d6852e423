package consent_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// pub is the public key of key(name).
func pub(name string) ed25519.PublicKey { return key(name).Public().(ed25519.PublicKey) }

var delegationID = consent.ID{0xd1}

// delegation returns a delegation of the patient signed by signer, with
// defaults for what g leaves zero: ID delegationID, the delegate "parent"
// as a parent, the consent scope, issued at t0, expiring 30 days later.
func delegation(t testing.TB, signer string, g consent.Delegation) consent.Document {
	t.Helper()
	if g.ID.IsZero() {
		g.ID = delegationID
	}
	if g.Delegate == nil {
		g.Delegate = pub("parent")
	}
	if g.Relationship == 0 {
		g.Relationship = consent.Parent
	}
	if g.Scope == 0 {
		g.Scope = consent.ScopeConsent
	}
	if g.Issued.IsZero() {
		g.Issued = t0
	}
	if g.Expires.IsZero() {
		g.Expires = g.Issued.Add(30 * day)
	}
	g.Federation, g.Subject = fed, patient
	raw, err := consent.SignDelegation(key(signer), g)
	return mustParse(t, raw, err)
}

// registrarDelegation is a delegation centre-a made for registrar 1, who
// saw a birth record.
func registrarDelegation(t testing.TB, g consent.Delegation) consent.Document {
	t.Helper()
	g.Staff, g.Evidence = ledger.StaffID{1}, consent.BirthRecord
	return delegation(t, "centre-a", g)
}

// under returns c signed by signer under delegation id.
func under(t testing.TB, signer string, id consent.ID, c consent.Contract) consent.Document {
	t.Helper()
	c.Delegation = id
	return contract(t, signer, c)
}

func revocationUnder(t testing.TB, signer string, id, target consent.ID, issued time.Time) consent.Document {
	t.Helper()
	raw, err := consent.SignRevocation(key(signer), consent.Revocation{Federation: fed, Subject: patient, Target: target, Issued: issued, Delegation: id})
	return mustParse(t, raw, err)
}

func erasureUnder(t testing.TB, signer string, id consent.ID, issued time.Time) consent.Document {
	t.Helper()
	raw, err := consent.SignErasure(key(signer), consent.Erasure{Federation: fed, Subject: patient, Issued: issued, Delegation: id})
	return mustParse(t, raw, err)
}

// patientAt returns the patient's state after docs, its clock reading
// *now.
func patientAt(t testing.TB, now *time.Time, docs ...consent.Document) *consent.Patient {
	t.Helper()
	p := consent.NewPatientWith(patient, consent.DefaultKeyNotice, func() time.Time { return *now })
	for _, d := range docs {
		if _, err := p.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestMayAct: a delegate acts within its delegation's scope and term,
// until the patient revokes it; anyone else never.
func TestMayAct(t *testing.T) {
	now := t0.Add(time.Hour)
	attested := attestation(t, "patient", t0.Add(-day), false)
	carer := delegation(t, "patient", consent.Delegation{
		Delegate: pub("carer"), Relationship: consent.Carer, Scope: consent.ScopeConsent | consent.ScopeView,
		NotBefore: t0.Add(time.Hour), Expires: t0.Add(10 * day),
	})
	revoked := revocation(t, "patient", delegationID, t0.Add(3*day))
	tests := []struct {
		name  string
		key   string
		scope consent.Scope
		at    time.Time
		docs  []consent.Document
		want  string // in the refusal; "" when it may act
	}{
		{"in scope, in its term", "carer", consent.ScopeConsent, t0.Add(2 * time.Hour), nil, ""},
		{"two scopes it holds", "carer", consent.ScopeConsent | consent.ScopeView, t0.Add(2 * time.Hour), nil, ""},
		{"a scope it does not hold", "carer", consent.ScopeErasure, t0.Add(2 * time.Hour), nil, "outside the delegation's scope"},
		{"records, not granted", "carer", consent.ScopeRecords | consent.ScopeView, t0.Add(2 * time.Hour), nil, "records is outside"},
		{"before its not-before", "carer", consent.ScopeConsent, t0.Add(30 * time.Minute), nil, "not in force before"},
		{"at its expiry", "carer", consent.ScopeConsent, t0.Add(10 * day), nil, "expired"},
		{"before its revocation", "carer", consent.ScopeConsent, t0.Add(2 * day), []consent.Document{revoked}, ""},
		{"after its revocation", "carer", consent.ScopeConsent, t0.Add(3 * day), []consent.Document{revoked}, "revoked"},
		{"revoked by a stranger", "carer", consent.ScopeConsent, t0.Add(4 * day), []consent.Document{revocation(t, "mallory", delegationID, t0.Add(3*day))}, ""},
		{"stepped down", "carer", consent.ScopeView, t0.Add(5 * day), []consent.Document{revocationUnder(t, "carer", delegationID, delegationID, t0.Add(4*day))}, "revoked"},
		{"a stranger", "mallory", consent.ScopeConsent, t0.Add(2 * time.Hour), nil, "not a delegate"},
		{"the patient's own key is no delegate", "patient", consent.ScopeConsent, t0.Add(2 * time.Hour), nil, "not a delegate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := patientAt(t, &now, append([]consent.Document{attested, carer}, tc.docs...)...)
			a, err := p.MayAct(pub(tc.key), tc.scope, tc.at)
			if tc.want == "" {
				if err != nil || a.Delegation != delegationID || a.Relationship != consent.Carer || a.Hash != carer.Hash() {
					t.Fatalf("MayAct = %+v, %v; want the carer's delegation", a, err)
				}
				return
			}
			if !errors.Is(err, consent.ErrSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("MayAct = %+v, %v; want ErrSignature saying %q", a, err, tc.want)
			}
		})
	}
}

// TestParentDelegateForAChild: a child with no key of their own; a
// registrar makes their parent a delegate, a second staff member approves
// it; the parent's contract is the child's consent; once the delegation
// has expired, the parent's revocation does not count and the contract
// stays in force.
func TestParentDelegateForAChild(t *testing.T) {
	now := t0
	made := registrarDelegation(t, consent.Delegation{Expires: t0.Add(10 * day)})
	optOut := under(t, "parent", delegationID, consent.Contract{ID: consent.ID{5}, Base: consent.OptOut, Issued: t0.Add(time.Hour)})
	treat := req{centre: "centre-b", at: t0.Add(2 * time.Hour)}

	// One registrar alone, or the same one approving: the parent speaks
	// for no one.
	for _, docs := range [][]consent.Document{{made}, {made, approval(t, "centre-a", 1, made, t0)}} {
		p := patientAt(t, &now, append(docs, optOut)...)
		if s := p.Standing(); s.Contract != nil {
			t.Fatalf("unapproved delegation: the parent's contract is in force")
		}
		if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, t0.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "awaiting a second approval") {
			t.Fatalf("unapproved: MayAct = %v", err)
		}
		if g := p.Delegations(); len(g) != 1 || g[0].Status != consent.DelegationUnapproved {
			t.Fatalf("delegations %+v, want one awaiting approval", g)
		}
	}

	// Approved by another centre: the child has no key to wait for, so
	// it is in force at the approval.
	approved := approval(t, "centre-b", 2, made, t0)
	p := patientAt(t, &now, made, approved, optOut)
	d := consent.Decide(p.Standing(), policy, treat.request(t))
	if d.Permit || d.Basis != consent.BasisContract || d.Ref != (consent.ID{5}) {
		t.Fatalf("after the parent's opt-out: %v, want the contract's denial", d)
	}
	if g := p.Delegations(); len(g) != 1 || g[0].Status != consent.DelegationInForce || !g[0].Effect.Equal(t0) {
		t.Fatalf("delegations %+v, want one in force from t0", g)
	}

	// After the expiry: the parent's revocation does not count, the
	// contract stays in force; the same revocation in the term would.
	now = t0.Add(11 * day)
	late := revocationUnder(t, "parent", delegationID, consent.ID{5}, t0.Add(10*day))
	if _, err := p.Add(late); err != nil {
		t.Fatal(err)
	}
	if s := p.Standing(); s.Withdrawn || s.Contract == nil || s.Contract.ID != (consent.ID{5}) {
		t.Fatalf("after a revocation past the delegation's expiry: %+v, want the contract in force", s)
	}
	if g := p.Delegations(); g[0].Status != consent.DelegationExpired {
		t.Fatalf("status %v, want expired", g[0].Status)
	}
	inTerm := revocationUnder(t, "parent", delegationID, consent.ID{5}, t0.Add(9*day))
	if _, err := p.Add(inTerm); err != nil {
		t.Fatal(err)
	}
	if s := p.Standing(); !s.Withdrawn {
		t.Fatal("a revocation in the delegation's term did not count")
	}
}

// registrarEnding is centre's revocation of target, by registrar staff,
// who saw a court order.
func registrarEnding(t testing.TB, centre string, staff byte, target consent.ID, issued time.Time) consent.Document {
	t.Helper()
	raw, err := consent.SignRevocation(key(centre), consent.Revocation{Federation: fed, Subject: patient, Target: target, Issued: issued,
		Staff: ledger.StaffID{staff}, Evidence: consent.CourtOrder})
	return mustParse(t, raw, err)
}

// A registrar ends a delegation for a patient who cannot (a court ending
// a guardianship): it counts from a second staff member's approval, not
// the same registrar's; what the delegate did before then stands, after
// it the delegate speaks for no one. A registrar's revocation of a
// contract withdraws nothing.
func TestARegistrarEndsADelegation(t *testing.T) {
	now := t0.Add(5 * day)
	made := registrarDelegation(t, consent.Delegation{})
	approved := approval(t, "centre-b", 2, made, t0)
	end := registrarEnding(t, "centre-a", 3, delegationID, t0.Add(day))
	optOut := under(t, "parent", delegationID, consent.Contract{ID: consent.ID{5}, Base: consent.OptOut, Issued: t0.Add(time.Hour)})
	for name, docs := range map[string][]consent.Document{
		"not approved":                   {made, approved, end, optOut},
		"approved by the same registrar": {made, approved, end, approval(t, "centre-a", 3, end, t0.Add(2*day)), optOut},
	} {
		p := patientAt(t, &now, docs...)
		if g := p.Delegations(); len(g) != 1 || g[0].Status != consent.DelegationInForce {
			t.Fatalf("%s: delegations %+v, want one in force", name, g)
		}
		if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, now); err != nil {
			t.Fatalf("%s: the parent may not act: %v", name, err)
		}
	}

	p := patientAt(t, &now, made, approved, end, approval(t, "centre-b", 4, end, t0.Add(3*day)), optOut)
	if g := p.Delegations(); len(g) != 1 || g[0].Status != consent.DelegationRevoked || !g[0].Revoked.Equal(t0.Add(3*day)) {
		t.Fatalf("delegations %+v, want one revoked at its approval", g)
	}
	if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, t0.Add(2*day)); err != nil {
		t.Fatalf("before the ending's approval: %v", err)
	}
	if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, t0.Add(4*day)); err == nil {
		t.Fatal("after the ending's approval the parent may still act")
	}
	if s := p.Standing(); s.Contract == nil || s.Contract.ID != (consent.ID{5}) {
		t.Fatalf("the contract the parent signed before: %+v, want it in force", s)
	}

	// The same, of the parent's contract: withdraws nothing.
	p = patientAt(t, &now, made, approved, optOut, registrarEnding(t, "centre-a", 3, consent.ID{5}, t0.Add(day)))
	if s := p.Standing(); s.Withdrawn || s.Contract == nil {
		t.Fatalf("a registrar's revocation of a contract: %+v, want the contract in force", s)
	}

	// The encoding refuses a registrar's revocation under a delegation,
	// without evidence, or with evidence and no registrar.
	for name, r := range map[string]consent.Revocation{
		"under a delegation":        {Staff: ledger.StaffID{3}, Evidence: consent.CourtOrder, Delegation: delegationID},
		"without evidence":          {Staff: ledger.StaffID{3}},
		"evidence and no registrar": {Evidence: consent.CourtOrder},
	} {
		r.Federation, r.Subject, r.Target, r.Issued = fed, patient, delegationID, t0
		if _, err := consent.SignRevocation(key("centre-a"), r); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

// TestRegistrarDelegationWaitsForAPatientWithAKey: a registrar's delegation
// of a patient who has a key waits the key notice after its approval, and
// the patient's key can veto it until then, as a key replacement.
func TestRegistrarDelegationWaitsForAPatientWithAKey(t *testing.T) {
	now := t0.Add(time.Hour)
	attested := attestation(t, "patient", t0.Add(-day), false)
	made := registrarDelegation(t, consent.Delegation{Relationship: consent.Attorney, Evidence: consent.PowerOfAttorney, Expires: t0.Add(100 * day)})
	approved := approval(t, "centre-b", 2, made, t0)
	effect := t0.Add(consent.DefaultKeyNotice)

	p := patientAt(t, &now, attested, made, approved)
	if g := p.Delegations(); g[0].Status != consent.DelegationNotice || !g[0].Effect.Equal(effect) {
		t.Fatalf("delegations %+v, want in its notice until %s", g, effect)
	}
	if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, now); err == nil || !strings.Contains(err.Error(), "notice") {
		t.Fatalf("in the notice: MayAct = %v", err)
	}
	now = effect
	if _, err := p.MayAct(pub("parent"), consent.ScopeConsent, now); err != nil {
		t.Fatalf("after the notice: MayAct = %v", err)
	}

	// Vetoed in the notice by the patient's key: never in force. A veto by
	// the delegate, or too late, does not count.
	for _, c := range []struct {
		name   string
		veto   consent.Document
		status consent.DelegationStatus
	}{
		{"vetoed by the patient", veto(t, "patient", made, t0.Add(time.Hour)), consent.DelegationVetoed},
		{"vetoed by the delegate", veto(t, "parent", made, t0.Add(time.Hour)), consent.DelegationInForce},
		{"vetoed too late", veto(t, "patient", made, effect), consent.DelegationInForce},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := effect.Add(time.Hour)
			p := patientAt(t, &now, attested, made, approved, c.veto)
			if g := p.Delegations(); g[0].Status != c.status {
				t.Fatalf("status %v, want %v", g[0].Status, c.status)
			}
		})
	}
}

// TestDelegateDocuments: what a delegate signs counts within its scope
// and term, and the patient's own key keeps working throughout.
func TestDelegateDocuments(t *testing.T) {
	now := t0.Add(time.Hour)
	attested := attestation(t, "patient", t0.Add(-day), false)
	carer := delegation(t, "patient", consent.Delegation{Delegate: pub("carer"), Relationship: consent.Carer, Expires: t0.Add(10 * day)})
	byCarer := under(t, "carer", delegationID, consent.Contract{ID: consent.ID{1}, Base: consent.OptOut, Issued: t0.Add(time.Hour)})
	treat := req{centre: "centre-b", at: t0.Add(2 * time.Hour)}

	tests := []struct {
		name   string
		docs   []consent.Document
		permit bool
		basis  consent.Basis
		ref    consent.ID
	}{
		{"the carer's contract", []consent.Document{byCarer}, false, consent.BasisContract, consent.ID{1}},
		{"the patient's newer contract replaces it", []consent.Document{byCarer, contract(t, "patient", consent.Contract{ID: consent.ID{2}, Base: consent.OptIn, Issued: t0.Add(2 * time.Hour)})}, true, consent.BasisContract, consent.ID{2}},
		{"the carer revokes the patient's contract", []consent.Document{
			contract(t, "patient", consent.Contract{ID: consent.ID{2}, Base: consent.OptIn, Issued: t0.Add(2 * time.Hour)}),
			revocationUnder(t, "carer", delegationID, consent.ID{2}, t0.Add(3*time.Hour)),
		}, false, consent.BasisWithdrawn, consent.ID{2}},
		{"a contract signed before the delegation's term", []consent.Document{under(t, "carer", delegationID, consent.Contract{ID: consent.ID{3}, Base: consent.OptOut, Issued: t0.Add(-time.Hour)})}, true, consent.BasisCharter, consent.ID{}},
		{"a contract signed after its expiry", []consent.Document{under(t, "carer", delegationID, consent.Contract{ID: consent.ID{3}, Base: consent.OptOut, Issued: t0.Add(10 * day)})}, true, consent.BasisCharter, consent.ID{}},
		{"a contract the carer signed without naming the delegation", []consent.Document{contract(t, "carer", consent.Contract{ID: consent.ID{3}, Base: consent.OptOut})}, true, consent.BasisCharter, consent.ID{}},
		{"a stranger's contract naming the delegation", []consent.Document{under(t, "mallory", delegationID, consent.Contract{ID: consent.ID{3}, Base: consent.OptOut, Issued: t0.Add(time.Hour)})}, true, consent.BasisCharter, consent.ID{}},
		{"the carer's contract after the patient revoked the delegation", []consent.Document{
			revocation(t, "patient", delegationID, t0.Add(30*time.Minute)), byCarer,
		}, true, consent.BasisCharter, consent.ID{}},
		{"the carer's contract stands when the patient revokes the delegation later", []consent.Document{
			byCarer, revocation(t, "patient", delegationID, t0.Add(3*time.Hour)),
		}, false, consent.BasisContract, consent.ID{1}},
		{"the patient's revocation of the carer's contract", []consent.Document{
			byCarer, revocation(t, "patient", consent.ID{1}, t0.Add(3*time.Hour)),
		}, false, consent.BasisWithdrawn, consent.ID{1}},
		{"another delegate's revocation of the carer's delegation does not count", []consent.Document{
			delegation(t, "patient", consent.Delegation{ID: consent.ID{0xd2}, Delegate: pub("parent")}),
			revocationUnder(t, "parent", consent.ID{0xd2}, delegationID, t0.Add(30*time.Minute)),
			byCarer,
		}, false, consent.BasisContract, consent.ID{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := patientAt(t, &now, append([]consent.Document{attested, carer}, tc.docs...)...)
			d := consent.Decide(p.Standing(), policy, treat.request(t))
			if d.Permit != tc.permit || d.Basis != tc.basis || d.Ref != tc.ref {
				t.Fatalf("%v (basis %v, ref %v); want permit %v, basis %v, ref %v", d, d.Basis, d.Ref, tc.permit, tc.basis, tc.ref)
			}
		})
	}
}

// TestLostKeyVoidsItsDelegations: the patient's key, reported lost and
// replaced, voids the delegations it signed and what their delegates
// signed, as it voids what it signed itself.
func TestLostKeyVoidsItsDelegations(t *testing.T) {
	now := t0.Add(time.Hour)
	first := attestation(t, "patient", t0.Add(-day), false)
	carer := delegation(t, "patient", consent.Delegation{Delegate: pub("carer"), Relationship: consent.Carer})
	byCarer := under(t, "carer", delegationID, consent.Contract{ID: consent.ID{1}, Base: consent.OptOut, Issued: t0.Add(time.Hour)})
	lost := attestationBy(t, "centre-a", 1, "patient-2", t0.Add(2*time.Hour), true)
	lostOK := approval(t, "centre-b", 2, lost, t0.Add(2*time.Hour))

	p := patientAt(t, &now, first, carer, byCarer, lost, lostOK)
	if s := p.Standing(); s.Contract == nil || s.Withdrawn {
		t.Fatalf("before the replacement takes effect: %+v", s)
	}
	now = t0.Add(2*time.Hour + consent.DefaultKeyNotice)
	if s := p.Standing(); s.Contract != nil || !s.Compromised || !s.Withdrawn {
		t.Fatalf("after the lost key's replacement: %+v, want withdrawn, compromised", s)
	}
	if g := p.Delegations(); g[0].Status != consent.DelegationVoid {
		t.Fatalf("the lost key's delegation: %v, want void", g[0].Status)
	}
	if _, err := p.MayAct(pub("carer"), consent.ScopeConsent, now); err == nil || !strings.Contains(err.Error(), "lost or stolen") {
		t.Fatalf("MayAct = %v", err)
	}
}

// TestDelegateTokens: a delegate's token counts within its consent scope,
// lasts no longer than its delegation and ends with its revocation.
func TestDelegateTokens(t *testing.T) {
	now := t0.Add(time.Hour)
	attested := attestation(t, "patient", t0.Add(-day), false)
	carer := delegation(t, "patient", consent.Delegation{Delegate: pub("carer"), Relationship: consent.Carer, Expires: t0.Add(10 * day)})
	viewer := delegation(t, "patient", consent.Delegation{ID: consent.ID{0xd2}, Delegate: pub("viewer"), Relationship: consent.Relative, Scope: consent.ScopeView})
	tok := func(signer string, via consent.ID, expires time.Time) consent.Document {
		raw, err := consent.SignToken(key(signer), consent.Token{
			ID: consent.ID{0x70}, Federation: fed, Subject: patient, Grantee: consent.Actor{Centre: centre(t, "centre-b")},
			Issued: t0.Add(time.Hour), Expires: expires, Uses: 1, Delegation: via,
		})
		return mustParse(t, raw, err)
	}
	tests := []struct {
		name  string
		token consent.Document
		docs  []consent.Document
		ok    bool
	}{
		{"the carer's", tok("carer", delegationID, t0.Add(5*time.Hour)), nil, true},
		{"outliving the delegation", tok("carer", delegationID, t0.Add(11*day)), nil, false},
		{"after the delegation was revoked", tok("carer", delegationID, t0.Add(5*time.Hour)), []consent.Document{revocation(t, "patient", delegationID, t0.Add(2*time.Hour))}, false},
		{"by a delegate without the consent scope", tok("viewer", consent.ID{0xd2}, t0.Add(5*time.Hour)), nil, false},
		{"naming another delegate's delegation", tok("viewer", delegationID, t0.Add(5*time.Hour)), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := patientAt(t, &now, append([]consent.Document{attested, carer, viewer}, tc.docs...)...)
			_, _, refusal, ok := p.Token(tc.token)
			if ok != tc.ok {
				t.Fatalf("Token: ok %v (%v), want %v", ok, refusal, tc.ok)
			}
			if !ok && (refusal.Basis != consent.BasisToken || !strings.Contains(refusal.Reason(), "delegat")) {
				t.Fatalf("refusal %v, want one naming the delegate", refusal)
			}
		})
	}
}

// TestDelegateErasure: a delegate erases only with the erasure scope, and
// only once the delegation has been in force for the key notice (a
// registrar's fresh delegation destroys nothing before anyone can see it).
func TestDelegateErasure(t *testing.T) {
	now := t0.Add(200 * day)
	attested := attestation(t, "patient", t0.Add(-day), false)
	withErasure := delegation(t, "patient", consent.Delegation{Delegate: pub("attorney"), Relationship: consent.Attorney, Scope: consent.ScopeConsent | consent.ScopeErasure, Expires: t0.Add(100 * day)})
	consentOnly := delegation(t, "patient", consent.Delegation{ID: consent.ID{0xd2}, Delegate: pub("carer"), Relationship: consent.Carer})
	settled := t0.Add(consent.DefaultKeyNotice)
	tests := []struct {
		name    string
		erasure consent.Document
		counts  bool
	}{
		{"in scope, settled", erasureUnder(t, "attorney", delegationID, settled), true},
		{"in scope, too soon", erasureUnder(t, "attorney", delegationID, settled.Add(-time.Second)), false},
		{"out of scope", erasureUnder(t, "carer", consent.ID{0xd2}, settled), false},
		{"after the expiry", erasureUnder(t, "attorney", delegationID, t0.Add(100*day)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := patientAt(t, &now, attested, withErasure, consentOnly, tc.erasure)
			if got := !p.ErasedBefore().IsZero(); got != tc.counts {
				t.Fatalf("erasure counts: %v, want %v", got, tc.counts)
			}
		})
	}
}

func TestSignDelegationChecks(t *testing.T) {
	valid := consent.Delegation{ID: delegationID, Federation: fed, Subject: patient, Delegate: pub("parent"), Relationship: consent.Parent,
		Scope: consent.ScopeConsent, Issued: t0, Expires: t0.Add(day)}
	tests := []struct {
		name string
		edit func(g *consent.Delegation)
		ok   bool
	}{
		{"valid", func(*consent.Delegation) {}, true},
		{"every scope, a not-before", func(g *consent.Delegation) {
			g.Scope, g.NotBefore = consent.ScopeConsent|consent.ScopeView|consent.ScopeRecords|consent.ScopeErasure, t0.Add(time.Hour)
		}, true},
		{"a registrar's", func(g *consent.Delegation) { g.Staff, g.Evidence = ledger.StaffID{1}, consent.CourtOrder }, true},
		{"no ID", func(g *consent.Delegation) { g.ID = consent.ID{} }, false},
		{"a short delegate key", func(g *consent.Delegation) { g.Delegate = g.Delegate[:31] }, false},
		{"a zero delegate key", func(g *consent.Delegation) { g.Delegate = make(ed25519.PublicKey, 32) }, false},
		{"no relationship", func(g *consent.Delegation) { g.Relationship = 0 }, false},
		{"an unknown relationship", func(g *consent.Delegation) { g.Relationship = 99 }, false},
		{"no scope", func(g *consent.Delegation) { g.Scope = 0 }, false},
		{"an unknown scope", func(g *consent.Delegation) { g.Scope = 1 << 5 }, false},
		{"no expiry", func(g *consent.Delegation) { g.Expires = time.Time{} }, false},
		{"expiring at its issue", func(g *consent.Delegation) { g.Expires = g.Issued }, false},
		{"starting at its expiry", func(g *consent.Delegation) { g.NotBefore = g.Expires }, false},
		{"a fraction of a second", func(g *consent.Delegation) { g.Expires = g.Expires.Add(time.Millisecond) }, false},
		{"a registrar without evidence", func(g *consent.Delegation) { g.Staff = ledger.StaffID{1} }, false},
		{"evidence without a registrar", func(g *consent.Delegation) { g.Evidence = consent.CourtOrder }, false},
		{"unknown evidence", func(g *consent.Delegation) { g.Staff, g.Evidence = ledger.StaffID{1}, 99 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := valid
			tc.edit(&g)
			raw, err := consent.SignDelegation(key("patient"), g)
			if !tc.ok {
				if err == nil {
					t.Fatal("signed an invalid delegation")
				}
				return
			}
			d := mustParse(t, raw, err)
			if d.Kind != consent.KindDelegation || d.Delegation == nil || d.Delegation.ID != g.ID || d.Delegation.Scope != g.Scope ||
				!d.Delegation.Delegate.Equal(g.Delegate) || !d.Delegation.NotBefore.Equal(g.NotBefore) || d.Delegation.Evidence != g.Evidence || d.Issued() != g.Issued {
				t.Fatalf("parsed %+v, want %+v", d.Delegation, g)
			}
		})
	}
}

func TestDelegationNames(t *testing.T) {
	for _, name := range []string{"consent", "view", "records", "erasure"} {
		s, err := consent.ParseScope(name)
		if err != nil || s.String() != name {
			t.Errorf("scope %q: %v, %v", name, s, err)
		}
	}
	if s := consent.ScopeConsent | consent.ScopeErasure; s.String() != "consent,erasure" {
		t.Errorf("two scopes: %q", s)
	}
	for _, name := range []string{"parent", "guardian", "carer", "attorney", "relative"} {
		r, err := consent.ParseRelationship(name)
		if err != nil || r.String() != name {
			t.Errorf("relationship %q: %v, %v", name, r, err)
		}
	}
	for _, name := range []string{"birth-record", "court-order", "power-of-attorney", "capacity-assessment"} {
		e, err := consent.ParseEvidence(name)
		if err != nil || e.String() != name {
			t.Errorf("evidence %q: %v, %v", name, e, err)
		}
	}
	if _, err := consent.ParseRelationship("friend of the family"); err == nil {
		t.Error("free text parsed as a relationship")
	}
	if consent.KindDelegation.String() != "delegation" {
		t.Errorf("kind %q", consent.KindDelegation)
	}
}

// refused checks that err wraps want and says what, and that no member's
// ledger grew from sizes.
func (f *testFed) refused(what string, err, want error, says string, sizes []int64) {
	f.t.Helper()
	if !errors.Is(err, want) || !strings.Contains(err.Error(), says) {
		f.t.Fatalf("%s: %v; want %v saying %q", what, err, want, says)
	}
	if got := f.sizes(); !slices.Equal(got, sizes) {
		f.t.Fatalf("%s: the ledgers grew from %v to %v", what, sizes, got)
	}
}

// sizes returns the members' ledger sizes.
func (f *testFed) sizes() []int64 {
	var out []int64
	for _, m := range f.members {
		out = append(out, m.ledger.Size())
	}
	return out
}

// TestParentDelegateGrantsChildConsent: a child has no key; a registrar
// makes their parent a delegate for consent, a registrar at another
// centre approves it, and the parent's contract is the child's consent at
// every holder, the ledger entry naming the parent's delegation. Out of
// its scope, before the approval, naming a delegate of their own or after
// the delegation's expiry, the parent is refused and nothing changes; the
// contract they signed in its term stays in force.
func TestParentDelegateGrantsChildConsent(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b, c := f.members[0], f.members[1], f.members[2]
	ctx := context.Background()
	now := func() time.Time { return f.now().UTC().Truncate(time.Second) }
	decides := func(m *member, permit bool, basis consent.Basis, ref consent.ID) {
		t.Helper()
		d, err := m.svc.Decide(ctx, patient, treatment(t, f.now()))
		if err != nil || d.Permit != permit || d.Basis != basis || d.Ref != ref {
			t.Fatalf("%s decides %v (%v, %v), %v; want permit %v on %v %v", m.name, d, d.Basis, d.Ref, err, permit, basis, ref)
		}
	}

	// The child has no key that could sign a delegation.
	sizes := f.sizes()
	_, err := a.svc.Submit(ctx, f.sign(consent.SignDelegation(key("patient"), consent.Delegation{
		ID: consent.ID{0xd0}, Federation: fed, Subject: patient, Delegate: pub("parent"), Relationship: consent.Parent,
		Scope: consent.ScopeConsent, Issued: now(), Expires: now().Add(30 * day),
	})))
	f.refused("a delegation of a patient with no key", err, consent.ErrSignature, "no key is attested", sizes)

	expires := now().Add(30 * day)
	if _, _, _, err := a.svc.Delegate(ctx, consent.Delegation{Subject: patient, Delegate: pub("parent"), Relationship: consent.Parent,
		Scope: consent.ScopeConsent, Expires: expires, Staff: ledger.StaffID{1}, Evidence: consent.BirthRecord}); err != nil {
		t.Fatal(err)
	}
	view, err := a.svc.Show(ctx, patient)
	if err != nil || len(view.Delegations) != 1 || view.Delegations[0].Status != consent.DelegationUnapproved {
		t.Fatalf("after the registrar's delegation: %+v, %v", view.Delegations, err)
	}
	made := view.Delegations[0]
	optOut := func(issued time.Time, via consent.ID) []byte {
		return f.sign(consent.SignContract(key("parent"), consent.Contract{ID: consent.ID{5}, Federation: fed, Subject: patient, Issued: issued, Base: consent.OptOut, Delegation: via}))
	}

	sizes = f.sizes()
	_, err = a.svc.Submit(ctx, optOut(now(), made.ID))
	f.refused("the parent before the approval", err, consent.ErrSignature, "awaiting a second approval", sizes)
	_, err = a.svc.Approve(ctx, patient, made.Hash, ledger.StaffID{1})
	f.refused("the registrar approving their own delegation", err, consent.ErrSignature, "cannot approve", sizes)
	if _, err := b.svc.Approve(ctx, patient, made.Hash, ledger.StaffID{2}); err != nil {
		t.Fatal(err)
	}

	del, err := a.svc.Submit(ctx, optOut(now(), made.ID))
	if err != nil || !slices.Equal(del.Delivered, ids(t, b, c)) {
		t.Fatalf("the parent's contract: %+v, %v", del, err)
	}
	decides(b, false, consent.BasisContract, consent.ID{5})
	decides(c, false, consent.BasisContract, consent.ID{5})

	// The holders' ledgers and the patient's view name the delegate.
	entries, err := c.ledger.EntriesOfKind(ctx, ledger.KindConsent)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, e := range entries {
		d, err := consent.Parse(e.Body)
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind == consent.KindContract {
			if d.Via() != made.ID || !d.Signer.Equal(pub("parent")) {
				t.Fatalf("centre-c's contract entry: under %v, signed by %x", d.Via(), d.Signer)
			}
			named++
		}
	}
	if named != 1 {
		t.Fatalf("centre-c holds %d contract entries, want 1", named)
	}
	if view, err = c.svc.Show(ctx, patient); err != nil || len(view.Delegations) != 1 || view.Delegations[0].Status != consent.DelegationInForce ||
		view.Delegations[0].Relationship != consent.Parent || view.Delegations[0].Evidence != consent.BirthRecord {
		t.Fatalf("centre-c's view of the delegations: %+v, %v", view.Delegations, err)
	}
	if !slices.ContainsFunc(a.svc.Notifications(-1), func(n consent.Notification) bool {
		return n.Document == consent.KindDelegation && n.Attestation == made.Hash && n.Staff == (ledger.StaffID{1}) && n.Requester == a.id(t)
	}) {
		t.Fatalf("the delegation is not in centre-a's notification feed: %+v", a.svc.Notifications(-1))
	}

	// Outside the delegation: nothing changes.
	sizes = f.sizes()
	_, err = a.svc.Submit(ctx, f.sign(consent.SignErasure(key("parent"), consent.Erasure{Federation: fed, Subject: patient, Issued: now(), Delegation: made.ID})))
	f.refused("the parent erasing with the consent scope", err, consent.ErrSignature, "erasure is outside the delegation's scope", sizes)
	_, err = a.svc.Submit(ctx, f.sign(consent.SignDelegation(key("parent"), consent.Delegation{
		ID: consent.ID{0xd2}, Federation: fed, Subject: patient, Delegate: pub("nanny"), Relationship: consent.Carer,
		Scope: consent.ScopeConsent, Issued: now(), Expires: now().Add(day),
	})))
	f.refused("the parent naming a delegate of their own", err, consent.ErrSignature, "cannot name another delegate", sizes)
	_, err = a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("nanny"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{5}, Issued: now(), Delegation: made.ID})))
	f.refused("a stranger under the parent's delegation", err, consent.ErrSignature, "naming another delegate", sizes)
	_, err = a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("parent"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{5}, Issued: now()})))
	f.refused("the parent not naming the delegation", err, consent.ErrSignature, "names the delegation it acts under", sizes)

	// The delegation expires: the parent's revocation, dated now or
	// backdated into the term, is refused; the contract stays.
	f.jump(31 * day)
	revoke := func(issued time.Time) []byte {
		return f.sign(consent.SignRevocation(key("parent"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{5}, Issued: issued, Delegation: made.ID}))
	}
	sizes = f.sizes()
	_, err = a.svc.Submit(ctx, revoke(now()))
	f.refused("the parent after the expiry", err, consent.ErrSignature, "expired", sizes)
	_, err = a.svc.Submit(ctx, revoke(expires.Add(-time.Second)))
	f.refused("the parent, backdated, after the expiry", err, consent.ErrSignature, "as it arrives", sizes)
	decides(b, false, consent.BasisContract, consent.ID{5})
	decides(c, false, consent.BasisContract, consent.ID{5})
	if view, err = b.svc.Show(ctx, patient); err != nil || view.Delegations[0].Status != consent.DelegationExpired {
		t.Fatalf("centre-b's view of the delegation: %+v, %v", view.Delegations, err)
	}
}

// TestDelegateActsWithinItsScope: a patient names a carer for consent and
// view. The carer's contract holds at every holder and their view is
// authenticated; their erasure and a records request are refused; the
// patient's own key keeps working; once the patient revokes the
// delegation, the carer's revocation is refused and the patient's
// contract stands. A delegate steps down by revoking their own
// delegation.
func TestDelegateActsWithinItsScope(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	now := func() time.Time { return f.now().UTC().Truncate(time.Second) }
	f.attest(a)
	name := func(signer string, id consent.ID, delegate string, scope consent.Scope) []byte {
		return f.sign(consent.SignDelegation(key(signer), consent.Delegation{
			ID: id, Federation: fed, Subject: patient, Delegate: pub(delegate), Relationship: consent.Carer,
			Scope: scope, Issued: now(), Expires: now().Add(30 * day),
		}))
	}
	permits := func(want bool, ref consent.ID, withdrawn bool) {
		t.Helper()
		d, err := b.svc.Decide(ctx, patient, treatment(t, f.now()))
		if err != nil || d.Permit != want || d.Ref != ref || (d.Basis == consent.BasisWithdrawn) != withdrawn {
			t.Fatalf("centre-b decides %v (ref %v), %v; want permit %v on %v, withdrawn %v", d, d.Ref, err, want, ref, withdrawn)
		}
	}

	sizes := f.sizes()
	_, err := a.svc.Submit(ctx, name("mallory", delegationID, "carer", consent.ScopeConsent))
	f.refused("a delegation by a key no member attested", err, consent.ErrSignature, "not signed by a key a member attested", sizes)
	if _, err := a.svc.Submit(ctx, name("patient", delegationID, "carer", consent.ScopeConsent|consent.ScopeView)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignContract(key("carer"), consent.Contract{
		ID: consent.ID{1}, Federation: fed, Subject: patient, Issued: now(), Base: consent.OptIn, Delegation: delegationID,
	}))); err != nil {
		t.Fatalf("the carer's contract: %v", err)
	}
	permits(true, consent.ID{1}, false)

	// The patient's own service asks whether the carer may see the view,
	// or have the records sent.
	msg := wire.Message{What: "test request", Context: "medfed/test/v1", Version: 1, Max: 256}
	raw, err := msg.Sign(key("carer"), func(w *wire.Writer) { w.U8(7) })
	if err != nil {
		t.Fatal(err)
	}
	opened, err := msg.Open(raw, func(r *wire.Reader) { r.U8("payload") })
	if err != nil {
		t.Fatal(err)
	}
	if acting, err := b.svc.AuthenticateDelegate(ctx, patient, pub("carer"), consent.ScopeView, opened, f.now()); err != nil || acting.Delegation != delegationID {
		t.Fatalf("the carer's view: %+v, %v", acting, err)
	}
	if _, err := b.svc.AuthenticateDelegate(ctx, patient, pub("carer"), consent.ScopeRecords, opened, f.now()); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("the carer's records: %v, want ErrSignature", err)
	}
	if _, err := b.svc.AuthenticateDelegate(ctx, patient, pub("mallory"), consent.ScopeView, opened, f.now()); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a stranger's view: %v, want ErrSignature", err)
	}

	sizes = f.sizes()
	_, err = a.svc.Submit(ctx, f.sign(consent.SignErasure(key("carer"), consent.Erasure{Federation: fed, Subject: patient, Issued: now(), Delegation: delegationID})))
	f.refused("the carer erasing", err, consent.ErrSignature, "outside the delegation's scope", sizes)
	if b.erased.Load() != 0 {
		t.Fatal("the carer's erasure was carried out")
	}

	// The patient's own key still speaks for them.
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: consent.ID{2}, Federation: fed, Subject: patient, Issued: now().Add(time.Second), Base: consent.OptOut,
	}))); err != nil {
		t.Fatalf("the patient's contract: %v", err)
	}
	permits(false, consent.ID{2}, false)

	// The patient revokes the delegation: the carer can no longer revoke.
	f.jump(time.Hour)
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: delegationID, Issued: now()}))); err != nil {
		t.Fatalf("the patient's revocation of the delegation: %v", err)
	}
	f.jump(time.Hour)
	sizes = f.sizes()
	_, err = a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("carer"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{2}, Issued: now(), Delegation: delegationID})))
	f.refused("the carer after the revocation", err, consent.ErrSignature, "revoked", sizes)
	permits(false, consent.ID{2}, false)

	// Another delegate steps down.
	if _, err := a.svc.Submit(ctx, name("patient", consent.ID{0xd3}, "cousin", consent.ScopeView)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("cousin"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{0xd3}, Issued: now(), Delegation: consent.ID{0xd3}}))); err != nil {
		t.Fatalf("stepping down: %v", err)
	}
	f.jump(time.Second)
	if _, err := b.svc.AuthenticateDelegate(ctx, patient, pub("cousin"), consent.ScopeView, opened, f.now()); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("after stepping down: %v", err)
	}

	// The patient's own revocation still works.
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{2}, Issued: now()}))); err != nil {
		t.Fatal(err)
	}
	permits(false, consent.ID{2}, true)
}

// TestDelegatePasskey: a delegate's key may be a passkey, named by its ID
// as a patient's is; its assertion signs under the delegation.
func TestDelegatePasskey(t *testing.T) {
	now := t0.Add(time.Hour)
	pk := passkeytest.New(t, "portal.centre-a.example")
	attested := attestation(t, "patient", t0.Add(-day), false)
	named := delegation(t, "patient", consent.Delegation{Delegate: pk.ID(t), Relationship: consent.Guardian})
	dr, err := consent.DraftContract(pk.ID(t), true, consent.Contract{
		ID: consent.ID{1}, Version: 1, Federation: fed, Subject: patient, Issued: t0.Add(time.Hour), Base: consent.OptOut, Delegation: delegationID,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dr.SealPasskey(pk.Assert(t, dr.Challenge()))
	signed := mustParse(t, raw, err)
	if signed.Via() != delegationID {
		t.Fatalf("the passkey's contract is under %v", signed.Via())
	}
	p := patientAt(t, &now, attested, named, signed)
	if s := p.Standing(); s.Contract == nil || s.Contract.ID != (consent.ID{1}) {
		t.Fatalf("the guardian's passkey contract: %+v", s)
	}
}
