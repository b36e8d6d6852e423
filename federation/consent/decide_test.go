package consent_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

const fed = "test-fed"

// key returns the Ed25519 key derived from name.
func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// centre returns the peer ID of the centre key(name).
func centre(t testing.TB, name string) peer.ID {
	t.Helper()
	id, err := federation.PeerIDFromKey(key(name))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	patient = ledger.Pseudonym{1, 2, 3}
	day     = 24 * time.Hour
	t0      = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	staff   = ledger.StaffID{9}
	policy  = consent.Policy{Default: consent.OptIn, Emergency: true, TokenMaxLifetime: day}
)

func mustParse(t testing.TB, raw []byte, err error) consent.Document {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	d, err := consent.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func attestation(t testing.TB, patientKey string, issued time.Time, compromised bool) consent.Document {
	raw, err := consent.SignAttestation(key("centre-a"), consent.Attestation{
		Federation: fed, Subject: patient, Key: key(patientKey).Public().(ed25519.PublicKey), Issued: issued, Compromised: compromised,
	})
	return mustParse(t, raw, err)
}

func contract(t testing.TB, signer string, c consent.Contract) consent.Document {
	if c.ID.IsZero() {
		c.ID = consent.ID{7}
	}
	c.Federation, c.Subject = fed, patient
	if c.Issued.IsZero() {
		c.Issued = t0
	}
	raw, err := consent.SignContract(key(signer), c)
	return mustParse(t, raw, err)
}

func revocation(t testing.TB, signer string, target consent.ID, issued time.Time) consent.Document {
	raw, err := consent.SignRevocation(key(signer), consent.Revocation{Federation: fed, Subject: patient, Target: target, Issued: issued})
	return mustParse(t, raw, err)
}

// standing returns the patient's standing after docs.
func standing(t testing.TB, docs ...consent.Document) consent.Standing {
	t.Helper()
	p := consent.NewPatient(patient)
	for _, d := range docs {
		if _, err := p.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	return p.Standing()
}

type req struct {
	centre   string
	role     consent.Role
	action   consent.Action
	purpose  consent.Purpose
	class    string
	recorded time.Time
	at       time.Time
	reason   consent.Reason
}

func (r req) request(t testing.TB) consent.Request {
	q := consent.Request{
		Centre: centre(t, r.centre), Role: r.role, Staff: staff, Action: r.action, Purpose: r.purpose,
		Class: r.class, Recorded: r.recorded, Time: r.at, Reason: r.reason,
	}
	if q.Role == 0 {
		q.Role = consent.Clinician
	}
	if q.Action == 0 {
		q.Action = consent.Access
	}
	if q.Purpose == 0 {
		q.Purpose = consent.Treatment
	}
	if q.Class == "" {
		q.Class = "lab-result"
	}
	if q.Recorded.IsZero() {
		q.Recorded = t0.Add(-30 * day)
	}
	if q.Time.IsZero() {
		q.Time = t0.Add(day)
	}
	return q
}

func TestDecide(t *testing.T) {
	attested := attestation(t, "patient", t0.Add(-day), false)
	// Opt-in, except research; and within research, centre-c's
	// researchers may use lab results.
	optIn := contract(t, "patient", consent.Contract{Base: consent.OptIn, Provisions: []consent.Provision{{
		Type: consent.Deny, Purposes: consent.Research,
		Provisions: []consent.Provision{{
			Type: consent.Permit, Actors: []consent.Actor{{Centre: centre(t, "centre-c"), Role: consent.Researcher}}, Classes: []string{"lab-result"},
		}},
	}}})
	// Opt-out, except treatment at centre-b; but never mental-health notes.
	optOut := contract(t, "patient", consent.Contract{Base: consent.OptOut, Provisions: []consent.Provision{{
		Type: consent.Permit, Purposes: consent.Treatment, Actors: []consent.Actor{{Centre: centre(t, "centre-b")}},
		Provisions: []consent.Provision{{Type: consent.Deny, Classes: []string{"mental-health"}}},
	}}})
	researchOnly := contract(t, "patient", consent.Contract{Base: consent.OptOut, Provisions: []consent.Provision{{
		Type: consent.Permit, Purposes: consent.Research, Actions: consent.Access,
	}}})
	noEmergency := contract(t, "patient", consent.Contract{Base: consent.OptIn, Provisions: []consent.Provision{{
		Type: consent.Deny, Purposes: consent.Emergency,
	}}})
	// The same opt-out of emergency access, before and after an unrelated
	// deny that also applies: the order of provisions does not matter.
	optOutFirst := contract(t, "patient", consent.Contract{Base: consent.OptIn, Provisions: []consent.Provision{
		{Type: consent.Deny, Purposes: consent.Emergency}, {Type: consent.Deny, Classes: []string{"lab-result"}},
	}})
	optOutSecond := contract(t, "patient", consent.Contract{Base: consent.OptIn, Provisions: []consent.Provision{
		{Type: consent.Deny, Classes: []string{"lab-result"}}, {Type: consent.Deny, Purposes: consent.Emergency},
	}})
	// Opted out of emergency access, except at centre-b.
	optOutExcept := contract(t, "patient", consent.Contract{Base: consent.OptIn, Provisions: []consent.Provision{
		{Type: consent.Deny, Purposes: consent.Emergency, Provisions: []consent.Provision{{Type: consent.Permit, Actors: []consent.Actor{{Centre: centre(t, "centre-b")}}}}},
	}})
	// Permits treatment only during June 2026, and only records from 2025.
	periods := contract(t, "patient", consent.Contract{Base: consent.OptOut, Provisions: []consent.Provision{{
		Type: consent.Permit, Purposes: consent.Treatment,
		Period:     consent.Period{Start: t0, End: t0.Add(30 * day)},
		DataPeriod: consent.Period{Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}}})
	withKeyByWrongSigner := contract(t, "mallory", consent.Contract{Base: consent.OptIn})

	tests := []struct {
		name      string
		docs      []consent.Document
		policy    consent.Policy
		req       req
		permit    bool
		basis     consent.Basis
		provision []int
	}{
		{name: "opt-in permits treatment", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-b"}, permit: true, basis: consent.BasisContract},
		{name: "opt-in denies research", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-b", purpose: consent.Research, role: consent.Researcher}, basis: consent.BasisContract, provision: []int{1}},
		{name: "opt-in exception permits research at centre-c", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-c", purpose: consent.Research, role: consent.Researcher}, permit: true, basis: consent.BasisContract, provision: []int{1, 1}},
		{name: "opt-in exception is scoped to its class", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-c", purpose: consent.Research, role: consent.Researcher, class: "imaging"}, basis: consent.BasisContract, provision: []int{1}},
		{name: "opt-in exception is scoped to its role", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-c", purpose: consent.Research}, basis: consent.BasisContract, provision: []int{1}},
		{name: "opt-out denies treatment elsewhere", docs: []consent.Document{attested, optOut}, req: req{centre: "centre-c"}, basis: consent.BasisContract},
		{name: "opt-out exception permits treatment at centre-b", docs: []consent.Document{attested, optOut}, req: req{centre: "centre-b"}, permit: true, basis: consent.BasisContract, provision: []int{1}},
		{name: "opt-out exception's exception denies mental health", docs: []consent.Document{attested, optOut}, req: req{centre: "centre-b", class: "mental-health"}, basis: consent.BasisContract, provision: []int{1, 1}},
		{name: "research-only permits research", docs: []consent.Document{attested, researchOnly}, req: req{centre: "centre-c", purpose: consent.Research, role: consent.Researcher}, permit: true, basis: consent.BasisContract, provision: []int{1}},
		{name: "research-only denies treatment", docs: []consent.Document{attested, researchOnly}, req: req{centre: "centre-c"}, basis: consent.BasisContract},
		{name: "research-only denies copying", docs: []consent.Document{attested, researchOnly}, req: req{centre: "centre-c", purpose: consent.Research, action: consent.Copy}, basis: consent.BasisContract},
		{name: "emergency allowed under opt-out", docs: []consent.Document{attested, optOut}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.Unconscious}, permit: true, basis: consent.BasisEmergency},
		{name: "emergency without a reason", docs: []consent.Document{attested, optOut}, req: req{centre: "centre-c", purpose: consent.Emergency}, basis: consent.BasisEmergency},
		{name: "emergency when the patient opted out", docs: []consent.Document{attested, noEmergency}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.LifeThreatening}, basis: consent.BasisEmergency, provision: []int{1}},
		{name: "emergency opt-out listed first", docs: []consent.Document{attested, optOutFirst}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.Unconscious}, basis: consent.BasisEmergency, provision: []int{1}},
		{name: "emergency opt-out listed second", docs: []consent.Document{attested, optOutSecond}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.Unconscious}, basis: consent.BasisEmergency, provision: []int{2}},
		{name: "emergency opt-out with an exception", docs: []consent.Document{attested, optOutExcept}, req: req{centre: "centre-b", purpose: consent.Emergency, reason: consent.Unconscious}, permit: true, basis: consent.BasisEmergency},
		{name: "emergency opt-out outside its exception", docs: []consent.Document{attested, optOutExcept}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.Unconscious}, basis: consent.BasisEmergency, provision: []int{1}},
		{name: "emergency when the charter forbids it", docs: []consent.Document{attested, optIn}, policy: consent.Policy{Default: consent.OptIn}, req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.Unconscious}, basis: consent.BasisEmergency},
		{name: "emergency without a contract", req: req{centre: "centre-c", purpose: consent.Emergency, reason: consent.UrgentTreatment}, permit: true, basis: consent.BasisEmergency},
		{name: "within period and data period", docs: []consent.Document{attested, periods}, req: req{centre: "centre-b", recorded: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)}, permit: true, basis: consent.BasisContract, provision: []int{1}},
		{name: "expired period", docs: []consent.Document{attested, periods}, req: req{centre: "centre-b", recorded: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), at: t0.Add(31 * day)}, basis: consent.BasisContract},
		{name: "period not yet begun", docs: []consent.Document{attested, periods}, req: req{centre: "centre-b", recorded: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), at: t0.Add(-time.Second)}, basis: consent.BasisContract},
		{name: "record after the data period", docs: []consent.Document{attested, periods}, req: req{centre: "centre-b", recorded: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, basis: consent.BasisContract},
		{name: "record before the data period", docs: []consent.Document{attested, periods}, req: req{centre: "centre-b", recorded: time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)}, basis: consent.BasisContract},
		{name: "no key: charter opt-in permits treatment", req: req{centre: "centre-b"}, permit: true, basis: consent.BasisCharter},
		{name: "no key: charter opt-in denies research", req: req{centre: "centre-b", purpose: consent.Research}, basis: consent.BasisCharter},
		{name: "no key: charter opt-out denies treatment", policy: consent.Policy{Default: consent.OptOut, Emergency: true, TokenMaxLifetime: day}, req: req{centre: "centre-b"}, basis: consent.BasisCharter},
		{name: "key but no contract: charter default", docs: []consent.Document{attested}, req: req{centre: "centre-b"}, permit: true, basis: consent.BasisCharter},
		{name: "contract signed by the wrong key is ignored", docs: []consent.Document{attested, withKeyByWrongSigner}, policy: consent.Policy{Default: consent.OptOut}, req: req{centre: "centre-b"}, basis: consent.BasisCharter},
		{name: "contract before its key is attested is ignored", docs: []consent.Document{optIn}, policy: consent.Policy{Default: consent.OptOut}, req: req{centre: "centre-b"}, basis: consent.BasisCharter},
		{name: "revoked contract", docs: []consent.Document{attested, optIn, revocation(t, "patient", consent.ID{7}, t0.Add(time.Hour))}, req: req{centre: "centre-b"}, basis: consent.BasisWithdrawn},
		{name: "revoked contract still allows emergency", docs: []consent.Document{attested, optIn, revocation(t, "patient", consent.ID{7}, t0.Add(time.Hour))}, req: req{centre: "centre-b", purpose: consent.Emergency, reason: consent.Unconscious}, permit: true, basis: consent.BasisEmergency},
		{name: "revocation by the wrong key is ignored", docs: []consent.Document{attested, optIn, revocation(t, "mallory", consent.ID{7}, t0.Add(time.Hour))}, req: req{centre: "centre-b"}, permit: true, basis: consent.BasisContract},
		{name: "request without a role is refused", docs: []consent.Document{attested, optIn}, req: req{centre: "centre-b", role: 200}, basis: consent.BasisInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := tt.policy
			if pol == (consent.Policy{}) {
				pol = policy
			}
			d := consent.Decide(standing(t, tt.docs...), pol, tt.req.request(t))
			if d.Permit != tt.permit || d.Basis != tt.basis || !equal(d.Provision(), tt.provision) {
				t.Fatalf("got %v (basis %v, provision %v), want permit %v basis %v provision %v", d, d.Basis, d.Provision(), tt.permit, tt.basis, tt.provision)
			}
			if d.Reason() == "" || d.Reason() == "unknown" {
				t.Fatalf("decision without a reason: %#v", d)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNewerContractReplacesOlder checks that the newest contract is in
// force whatever order the documents arrive in.
func TestNewerContractReplacesOlder(t *testing.T) {
	attested := attestation(t, "patient", t0.Add(-day), false)
	old := contract(t, "patient", consent.Contract{ID: consent.ID{1}, Base: consent.OptIn})
	newer := contract(t, "patient", consent.Contract{ID: consent.ID{1}, Version: 2, Base: consent.OptOut})
	for _, order := range [][]consent.Document{{attested, old, newer}, {newer, old, attested}} {
		s := standing(t, order...)
		if s.Contract == nil || s.Contract.Version != 2 {
			t.Fatalf("in force: %+v, want version 2", s.Contract)
		}
	}
	// Revoking the older version's ID revokes the contract.
	if s := standing(t, attested, old, newer, revocation(t, "patient", consent.ID{1}, t0.Add(time.Hour))); !s.Withdrawn {
		t.Fatal("revoking the contract's ID left it in force")
	}
}

func attestationBy(t testing.TB, centre string, staff byte, patientKey string, issued time.Time, compromised bool) consent.Document {
	raw, err := consent.SignAttestation(key(centre), consent.Attestation{
		Federation: fed, Subject: patient, Key: key(patientKey).Public().(ed25519.PublicKey), Issued: issued, Compromised: compromised,
		Staff: ledger.StaffID{staff},
	})
	return mustParse(t, raw, err)
}

func approval(t testing.TB, centre string, staff byte, of consent.Document, issued time.Time) consent.Document {
	raw, err := consent.SignApproval(key(centre), consent.Approval{Federation: fed, Subject: patient, Attestation: of.Hash(), Staff: ledger.StaffID{staff}, Issued: issued})
	return mustParse(t, raw, err)
}

func veto(t testing.TB, signer string, of consent.Document, issued time.Time) consent.Document {
	raw, err := consent.SignVeto(key(signer), consent.Veto{Federation: fed, Subject: patient, Attestation: of.Hash(), Issued: issued})
	return mustParse(t, raw, err)
}

func TestKeyRotation(t *testing.T) {
	first := attestation(t, "patient", t0.Add(-day), false)
	optOut := contract(t, "patient", consent.Contract{Base: consent.OptOut})
	treat := req{centre: "centre-b"}

	// Rotation, approved by a second centre: once the notice has passed,
	// the old key's contract stands; a contract it signs after the new key
	// took effect does not.
	rotated := attestation(t, "patient-2", t0.Add(time.Hour), false)
	approved := approval(t, "centre-b", 1, rotated, t0.Add(time.Hour))
	effect := t0.Add(time.Hour + consent.DefaultKeyNotice)
	late := contract(t, "patient", consent.Contract{ID: consent.ID{2}, Base: consent.OptIn, Issued: effect.Add(time.Hour)})
	d := consent.Decide(standing(t, first, optOut, rotated, approved, late), policy, treat.request(t))
	if d.Permit || d.Basis != consent.BasisContract {
		t.Fatalf("after rotation: %v, want the old contract's denial", d)
	}
	byNew := contract(t, "patient-2", consent.Contract{ID: consent.ID{3}, Base: consent.OptIn, Issued: effect.Add(2 * time.Hour)})
	if d := consent.Decide(standing(t, first, optOut, rotated, approved, byNew), policy, treat.request(t)); !d.Permit || d.Ref != (consent.ID{3}) {
		t.Fatalf("contract signed with the new key: %v", d)
	}

	// Loss: nothing the old key signed counts; consent stands withdrawn
	// until the patient signs with the new key.
	lost := attestation(t, "patient-2", t0.Add(time.Hour), true)
	lostOK := approval(t, "centre-b", 1, lost, t0.Add(time.Hour))
	d = consent.Decide(standing(t, first, optOut, lost, lostOK), policy, treat.request(t))
	if d.Permit || d.Basis != consent.BasisWithdrawn {
		t.Fatalf("after a compromise: %v, want withdrawn", d)
	}
	if d := consent.Decide(standing(t, first, optOut, lost, lostOK, byNew), policy, treat.request(t)); !d.Permit {
		t.Fatalf("signed again with the new key: %v", d)
	}
}

// TestAbuseKeyReplacementByOneInsider: an attestation that replaces the
// patient's key takes effect only with a second staff member's approval
// and after the notice period, and the key in force can veto it until
// then. Until it takes effect nothing changes: the old key speaks for the
// patient, the new one does not.
func TestAbuseKeyReplacementByOneInsider(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	clock := func() time.Time { return now }
	const notice = 72 * time.Hour
	first := attestationBy(t, "centre-a", 1, "patient", t0.Add(-day), false)
	optOut := contract(t, "patient", consent.Contract{Base: consent.OptOut})
	takeover := attestationBy(t, "centre-a", 1, "mallory", t0.Add(time.Hour), true)
	byMallory := func(at time.Time) consent.Document {
		return contract(t, "mallory", consent.Contract{ID: consent.ID{9}, Base: consent.OptIn, Issued: at})
	}
	mallory := key("mallory").Public().(ed25519.PublicKey)
	patientKey := key("patient").Public().(ed25519.PublicKey)

	type check struct {
		name    string
		docs    []consent.Document
		at      time.Time
		status  consent.KeyStatus
		current ed25519.PublicKey
	}
	for _, c := range []check{
		{"one registrar alone", []consent.Document{takeover}, t0.Add(200 * time.Hour), consent.KeyUnapproved, patientKey},
		{"approved by the same registrar at the same centre", []consent.Document{takeover, approval(t, "centre-a", 1, takeover, t0.Add(time.Hour))}, t0.Add(200 * time.Hour), consent.KeyUnapproved, patientKey},
		{"approved, in the notice period", []consent.Document{takeover, approval(t, "centre-a", 2, takeover, t0.Add(time.Hour))}, t0.Add(2 * time.Hour), consent.KeyNotice, patientKey},
		{"approved, vetoed in the notice period", []consent.Document{takeover, approval(t, "centre-b", 7, takeover, t0.Add(time.Hour)), veto(t, "patient", takeover, t0.Add(3*time.Hour))}, t0.Add(200 * time.Hour), consent.KeyVetoed, patientKey},
		{"vetoed by the new key itself", []consent.Document{takeover, approval(t, "centre-b", 7, takeover, t0.Add(time.Hour)), veto(t, "mallory", takeover, t0.Add(3*time.Hour))}, t0.Add(200 * time.Hour), consent.KeyInEffect, mallory},
		{"vetoed too late", []consent.Document{takeover, approval(t, "centre-b", 7, takeover, t0.Add(time.Hour)), veto(t, "patient", takeover, t0.Add(time.Hour+notice))}, t0.Add(200 * time.Hour), consent.KeyInEffect, mallory},
	} {
		t.Run(c.name, func(t *testing.T) {
			now = c.at
			p := consent.NewPatientWith(patient, notice, clock)
			for _, d := range append([]consent.Document{first, optOut, byMallory(t0.Add(90 * time.Hour))}, c.docs...) {
				if _, err := p.Add(d); err != nil {
					t.Fatal(err)
				}
			}
			keys := p.Keys()
			if len(keys) != 2 || keys[1].Status != c.status || !keys[1].Replaces {
				t.Fatalf("keys %+v, want the replacement %v", keys, c.status)
			}
			if !p.CurrentKey().Equal(c.current) {
				t.Fatalf("current key %x, want %x", p.CurrentKey(), c.current)
			}
			d := consent.Decide(p.Standing(), policy, req{centre: "centre-b"}.request(t))
			if c.current.Equal(patientKey) && (d.Permit || d.Basis != consent.BasisContract) {
				t.Fatalf("the patient's opt-out no longer stands: %v", d)
			}
			if c.current.Equal(mallory) && d.Basis != consent.BasisWithdrawn && d.Ref != (consent.ID{9}) {
				t.Fatalf("after the replacement took effect: %v", d)
			}
		})
	}

	// The notice runs out: the standing changes with the clock, not with
	// a new document.
	now = t0.Add(2 * time.Hour)
	p := consent.NewPatientWith(patient, notice, clock)
	for _, d := range []consent.Document{first, optOut, takeover, approval(t, "centre-b", 7, takeover, t0.Add(time.Hour))} {
		if _, err := p.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	if p.Standing().Withdrawn {
		t.Fatal("a compromise in its notice period voided the patient's consent")
	}
	now = t0.Add(time.Hour + notice)
	if !p.Standing().Withdrawn || !p.CurrentKey().Equal(mallory) {
		t.Fatalf("after the notice: withdrawn %v, key %x", p.Standing().Withdrawn, p.CurrentKey())
	}
}

func TestDecideToken(t *testing.T) {
	attested := attestation(t, "patient", t0.Add(-day), false)
	tok := consent.Token{
		ID: consent.ID{5}, Federation: fed, Subject: patient,
		Grantee:  consent.Actor{Centre: centre(t, "centre-c"), Staff: staff},
		Purposes: consent.Treatment, Classes: []string{"lab-result"},
		Issued: t0, Expires: t0.Add(2 * time.Hour), Uses: 1,
	}
	sign := func(signer string, tk consent.Token) consent.Document {
		raw, err := consent.SignToken(key(signer), tk)
		return mustParse(t, raw, err)
	}
	use := req{centre: "centre-c", at: t0.Add(time.Hour)}
	long := tok
	long.Expires = t0.Add(2 * day)

	tests := []struct {
		name   string
		doc    consent.Document
		docs   []consent.Document
		used   int
		req    req
		permit bool
		reason string
	}{
		{name: "first use", doc: sign("patient", tok), req: use, permit: true, reason: "a token the patient issued permits it"},
		{name: "single use spent", doc: sign("patient", tok), used: 1, req: use, reason: "the token's uses are spent"},
		{name: "expired", doc: sign("patient", tok), req: req{centre: "centre-c", at: t0.Add(2 * time.Hour)}, reason: "the token has expired"},
		{name: "longer than the charter allows", doc: sign("patient", long), req: use, reason: "the token runs longer than the charter allows"},
		{name: "another grantee", doc: sign("patient", tok), req: req{centre: "centre-b", at: t0.Add(time.Hour)}, reason: "the token was issued to someone else"},
		{name: "outside its classes", doc: sign("patient", tok), req: req{centre: "centre-c", class: "imaging", at: t0.Add(time.Hour)}, reason: "the request is outside the token's scope"},
		{name: "outside its purposes", doc: sign("patient", tok), req: req{centre: "centre-c", purpose: consent.Research, at: t0.Add(time.Hour)}, reason: "the request is outside the token's scope"},
		{name: "signed by the wrong key", doc: sign("mallory", tok), req: use, reason: "the token is not signed by the patient's attested key"},
		{name: "revoked", doc: sign("patient", tok), docs: []consent.Document{revocation(t, "patient", tok.ID, t0.Add(time.Minute))}, req: use, reason: "the token was revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := consent.NewPatient(patient)
			for _, d := range append([]consent.Document{attested}, tt.docs...) {
				if _, err := p.Add(d); err != nil {
					t.Fatal(err)
				}
			}
			for range tt.used {
				p.Used(tok.ID)
			}
			tk, used, d, ok := p.Token(tt.doc)
			if ok {
				d = consent.DecideToken(tk, used, policy, tt.req.request(t))
			}
			if d.Permit != tt.permit || d.Basis != consent.BasisToken || d.Reason() != tt.reason {
				t.Fatalf("got %v (basis %v), want permit %v: %s", d, d.Basis, tt.permit, tt.reason)
			}
		})
	}
}
