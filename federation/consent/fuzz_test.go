package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// The fuzz targets check the decoders of bytes that reach a centre from
// other centres and from patients' and delegates' devices: contract,
// token and delegation bodies (and those a delegate signs, which name
// their delegation), signed documents, access entries and the protocol's
// document lists.
// Each decoder promises to accept only what its writer produces, so every
// target checks that an accepted input re-encodes to exactly itself. The
// seeds are real encodings, so the fuzzer starts past the first length
// checks.

// fuzzKey is deterministic so that every fuzz worker builds the same seeds.
func fuzzKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

// fuzzCentre returns the peer ID of a centre whose Ed25519 key derives
// from name.
func fuzzCentre(tb testing.TB, name string) peer.ID {
	tb.Helper()
	id, err := federation.PeerIDFromKey(fuzzKey("centre " + name))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func fuzzPseudonym(i int) ledger.Pseudonym {
	return ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "fuzz patient %d", i)))
}

func fuzzStaff(i int) ledger.StaffID {
	h := sha256.Sum256(fmt.Appendf(nil, "fuzz staff %d", i))
	return ledger.StaffID(h[:16])
}

func fuzzID(name string) ID {
	h := sha256.Sum256([]byte("fuzz id " + name))
	return ID(h[:16])
}

// day returns midnight UTC of a date: a whole second, as the encoding keeps.
func day(year int, month time.Month, d int) time.Time {
	return time.Unix(time.Date(year, month, d, 0, 0, 0, 0, time.UTC).Unix(), 0).UTC()
}

// sampleContract returns a realistic opt-in contract of patient 1: ten
// provisions nested up to three levels, with actors at three centres,
// roles, staff IDs, data classes, periods and data periods. Empty slices
// are nil, as decoding yields them.
func sampleContract(t testing.TB) Contract {
	t.Helper()
	north, south, west := fuzzCentre(t, "north"), fuzzCentre(t, "south"), fuzzCentre(t, "west")
	return Contract{
		ID:         fuzzID("contract"),
		Version:    3,
		Federation: "medfed-nordic",
		Subject:    fuzzPseudonym(1),
		Issued:     day(2026, time.January, 15),
		Base:       OptIn,
		Provisions: []Provision{
			{
				// No research on genomics or mental health ...
				Type:     Deny,
				Purposes: Research,
				Classes:  []string{"genomics", "mental-health"},
				Provisions: []Provision{
					{
						// ... but for the south's researchers on genomics, in 2026 ...
						Type:     Permit,
						Actors:   []Actor{{Centre: south, Role: Researcher}},
						Purposes: Research,
						Classes:  []string{"genomics"},
						Period:   Period{Start: day(2026, time.January, 1), End: day(2027, time.January, 1)},
						Provisions: []Provision{
							// ... except one of them.
							{Type: Deny, Actors: []Actor{{Centre: south, Staff: fuzzStaff(7)}}},
						},
					},
					{
						// ... and privacy officers who read them.
						Type:    Permit,
						Actors:  []Actor{{Role: PrivacyOfficer}},
						Actions: Access,
					},
				},
			},
			{
				// The west may not copy records ...
				Type:    Deny,
				Actions: Copy,
				Actors:  []Actor{{Centre: west}},
				Provisions: []Provision{
					// ... but for lab results of 2020 to 2024, for treatment.
					{
						Type:       Permit,
						Purposes:   Treatment,
						Classes:    []string{"lab-result"},
						DataPeriod: Period{Start: day(2020, time.January, 1), End: day(2025, time.January, 1)},
					},
				},
			},
			{
				// Sexual health stays at home ...
				Type:     Deny,
				Purposes: Treatment | Research,
				Classes:  []string{"sexual-health"},
				Provisions: []Provision{
					{
						// ... but for the patient's own clinician in the north,
						Type:   Permit,
						Actors: []Actor{{Centre: north, Role: Clinician, Staff: fuzzStaff(1)}, {Centre: north, Role: Registrar}},
						Period: Period{Start: day(2026, time.February, 1)},
						Provisions: []Provision{
							// who reads but does not copy.
							{Type: Deny, Actions: Copy},
						},
					},
				},
			},
			{
				// Emergency access to everything but in the opt-in base.
				Type:       Permit,
				Purposes:   Emergency,
				Actions:    Access | Copy,
				DataPeriod: Period{End: day(2026, time.June, 1)},
			},
		},
	}
}

// sampleToken returns a realistic token of patient 1 for one researcher
// at the south centre, valid for thirty days and five uses.
func sampleToken(t testing.TB) Token {
	t.Helper()
	issued := day(2026, time.March, 2)
	return Token{
		ID:         fuzzID("token"),
		Federation: "medfed-nordic",
		Subject:    fuzzPseudonym(1),
		Grantee:    Actor{Centre: fuzzCentre(t, "south"), Role: Researcher, Staff: fuzzStaff(3)},
		Actions:    Access,
		Purposes:   Research,
		Classes:    []string{"lab-result", "imaging"},
		DataPeriod: Period{Start: day(2018, time.January, 1), End: day(2026, time.January, 1)},
		Issued:     issued,
		Expires:    issued.Add(30 * 24 * time.Hour),
		Uses:       5,
	}
}

// encode returns the body encoding of b.
func encode(b body) []byte {
	var w writer
	b.write(&w)
	return w.B
}

// truncations returns prefixes of b and b with a trailing byte: inputs a
// decoder must refuse.
func truncations(b []byte) [][]byte {
	return [][]byte{b[:len(b)-1], b[:len(b)/2], b[:1], append(bytes.Clone(b), 0)}
}

func FuzzDecodeContract(f *testing.F) {
	full := sampleContract(f)
	minimal := Contract{ID: fuzzID("minimal"), Version: 1, Federation: "f", Subject: fuzzPseudonym(2), Issued: day(2025, time.May, 5), Base: OptOut}
	one := minimal
	one.Provisions = []Provision{{Type: Permit, Actors: []Actor{{Centre: fuzzCentre(f, "east")}}, Purposes: Treatment}}
	byDelegate := full
	byDelegate.Delegation = fuzzID("delegation")
	for _, c := range []Contract{full, minimal, one, byDelegate} {
		if err := c.check(); err != nil {
			f.Fatalf("seed contract: %v", err)
		}
		b := encode(&c)
		f.Add(b)
		for _, t := range truncations(b) {
			f.Add(t)
		}
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeContract(b)
		if err != nil {
			if c != nil {
				t.Fatalf("DecodeContract returned a contract with error %v", err)
			}
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("decoded contract fails its check: %v", err)
		}
		if got := encode(c); !bytes.Equal(got, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", b, got)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	full := sampleToken(f)
	centre := full
	centre.ID = fuzzID("centre token")
	centre.Grantee = Actor{Centre: fuzzCentre(f, "west")}
	centre.Classes = nil
	centre.DataPeriod = Period{}
	centre.Uses = 1
	byDelegate := centre
	byDelegate.Delegation = fuzzID("delegation")
	for _, tok := range []Token{full, centre, byDelegate} {
		if err := tok.check(); err != nil {
			f.Fatalf("seed token: %v", err)
		}
		b := encode(&tok)
		f.Add(b)
		for _, t := range truncations(b) {
			f.Add(t)
		}
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x01}, 120))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := DecodeToken(b)
		if err != nil {
			return
		}
		if err := tok.check(); err != nil {
			t.Fatalf("decoded token fails its check: %v", err)
		}
		if got := encode(tok); !bytes.Equal(got, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", b, got)
		}
	})
}

// signedSamples returns one signed document of each kind, all about
// patient 1.
func signedSamples(tb testing.TB) [][]byte {
	tb.Helper()
	patient := fuzzKey("patient 1")
	contract, err := SignContract(patient, sampleContract(tb))
	if err != nil {
		tb.Fatal(err)
	}
	token, err := SignToken(patient, sampleToken(tb))
	if err != nil {
		tb.Fatal(err)
	}
	revocation, err := SignRevocation(patient, Revocation{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Target: fuzzID("token"), Issued: day(2026, time.March, 9),
	})
	if err != nil {
		tb.Fatal(err)
	}
	attestation, err := SignAttestation(fuzzKey("centre north"), Attestation{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Key: patient.Public().(ed25519.PublicKey),
		Issued: day(2026, time.January, 10), Compromised: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	staffed, err := SignAttestation(fuzzKey("centre north"), Attestation{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Key: patient.Public().(ed25519.PublicKey),
		Issued: day(2026, time.January, 11), Staff: fuzzStaff(4),
	})
	if err != nil {
		tb.Fatal(err)
	}
	approval, err := SignApproval(fuzzKey("centre south"), Approval{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Attestation: sha256.Sum256(staffed), Staff: fuzzStaff(5), Issued: day(2026, time.January, 12),
	})
	if err != nil {
		tb.Fatal(err)
	}
	veto, err := SignVeto(patient, Veto{Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Attestation: sha256.Sum256(staffed), Issued: day(2026, time.January, 12)})
	if err != nil {
		tb.Fatal(err)
	}
	erasure, err := SignErasure(patient, Erasure{Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Issued: day(2026, time.April, 2)})
	if err != nil {
		tb.Fatal(err)
	}
	return append([][]byte{attestation, contract, revocation, token, staffed, approval, veto, erasure}, delegatedSamples(tb)...)
}

// sampleDelegation returns patient 1's delegation of consent and erasure
// to a parent, from February 2026 for ten years.
func sampleDelegation() Delegation {
	return Delegation{
		ID: fuzzID("delegation"), Federation: "medfed-nordic", Subject: fuzzPseudonym(1),
		Delegate: fuzzKey("parent").Public().(ed25519.PublicKey), Relationship: Parent, Scope: ScopeConsent | ScopeErasure,
		NotBefore: day(2026, time.February, 1), Expires: day(2036, time.February, 1), Issued: day(2026, time.January, 20),
	}
}

// delegatedSamples returns a delegation the patient signed, one a
// registrar made, and a document of each kind a delegate signs under the
// first, all about patient 1.
func delegatedSamples(tb testing.TB) [][]byte {
	tb.Helper()
	parent := fuzzKey("parent")
	via := fuzzID("delegation")
	must := func(b []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	registrar := sampleDelegation()
	registrar.ID, registrar.Relationship, registrar.Scope = fuzzID("guardianship"), Guardian, ScopeView|ScopeRecords
	registrar.NotBefore, registrar.Staff, registrar.Evidence = time.Time{}, fuzzStaff(4), CourtOrder
	contract := sampleContract(tb)
	contract.Delegation = via
	token := sampleToken(tb)
	token.Delegation = via
	return [][]byte{
		must(SignDelegation(fuzzKey("patient 1"), sampleDelegation())),
		must(SignDelegation(fuzzKey("centre north"), registrar)),
		must(SignContract(parent, contract)),
		must(SignToken(parent, token)),
		must(SignRevocation(parent, Revocation{Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Target: via, Issued: day(2026, time.March, 9), Delegation: via})),
		must(SignErasure(parent, Erasure{Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Issued: day(2026, time.May, 2), Delegation: via})),
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func FuzzParse(f *testing.F) {
	for _, b := range signedSamples(f) {
		f.Add(b)
		f.Add(flip(b, 0))          // version
		f.Add(flip(b, 1))          // kind
		f.Add(flip(b, 5))          // body length
		f.Add(flip(b, 40))         // in the body
		f.Add(flip(b, len(b)-1))   // signature
		f.Add(flip(b, len(b)-100)) // signer
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	// A passkey's contract: its assertion, and the assertion's length,
	// where the signature was.
	pk := passkeytest.New(f, "localhost")
	dr, err := DraftContract(pk.ID(f), true, Contract{ID: ID{9}, Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Issued: day(2026, time.April, 2), Base: OptIn})
	if err != nil {
		f.Fatal(err)
	}
	passkeyDoc, err := dr.SealPasskey(pk.Assert(f, dr.Challenge()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(passkeyDoc)
	for _, i := range []int{0, 40, len(passkeyDoc) - 1, len(passkeyDoc) - 3, len(passkeyDoc) - 80, len(passkeyDoc) - 200} {
		f.Add(flip(passkeyDoc, i))
	}
	// A passkey's delegation, and a delegate's passkey signing under it.
	for _, b := range []body{func() body { g := sampleDelegation(); return &g }(), &Revocation{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(1), Target: ID{9}, Issued: day(2026, time.April, 3), Delegation: fuzzID("delegation"),
	}} {
		dr, err := draft(pk.ID(f), true, b)
		if err != nil {
			f.Fatal(err)
		}
		sealed, err := dr.SealPasskey(pk.Assert(f, dr.Challenge()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
		f.Add(flip(sealed, 40))
	}
	f.Add([]byte{})
	f.Add([]byte{document.Version, byte(KindContract), 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(d.Raw, b) {
			t.Fatalf("Raw %x differs from the input %x", d.Raw, b)
		}
		if len(b) < 6+96 {
			t.Fatalf("accepted a document of %d bytes", len(b))
		}
		head := b[:len(b)-64] // the document and its signer, before the signature
		if b[0]&wire.PasskeyVersion != 0 {
			n := int(binary.BigEndian.Uint16(b[len(b)-2:]))
			head = b[:len(b)-2-n]
		}
		if !bytes.Equal(d.Signer, head[len(head)-32:]) {
			t.Fatalf("Signer %x is not the document's key", d.Signer)
		}
		var bd body
		set := 0
		if d.Attestation != nil {
			bd, set = d.Attestation, set+1
		}
		if d.Contract != nil {
			bd, set = d.Contract, set+1
		}
		if d.Revocation != nil {
			bd, set = d.Revocation, set+1
		}
		if d.Token != nil {
			bd, set = d.Token, set+1
		}
		if d.Approval != nil {
			bd, set = d.Approval, set+1
		}
		if d.Veto != nil {
			bd, set = d.Veto, set+1
		}
		if d.Erasure != nil {
			bd, set = d.Erasure, set+1
		}
		if d.Delegation != nil {
			bd, set = d.Delegation, set+1
		}
		if set != 1 || bd.kind() != d.Kind {
			t.Fatalf("a %s document with %d bodies set", d.Kind, set)
		}
		if err := bd.check(); err != nil {
			t.Fatalf("parsed %s fails its check: %v", d.Kind, err)
		}
		if got, want := encode(bd), head[6:len(head)-32]; !bytes.Equal(got, want) {
			t.Fatalf("accepted a non-canonical %s body:\n in  %x\n out %x", d.Kind, want, got)
		}
		if _, err := Parse(d.Raw); err != nil {
			t.Fatalf("Parse(Raw) again: %v", err)
		}
	})
}

func FuzzDecodeAccess(f *testing.F) {
	centre := fuzzCentre(f, "south")
	for _, a := range []AccessEntry{
		{Event: EventAccess, Requester: centre, Staff: fuzzStaff(3), Role: Researcher, Action: Access, Purpose: Research, Permitted: true, Basis: BasisToken, Ref: fuzzID("token"), Use: 2},
		{Event: EventAccess, Requester: centre, Role: Clinician, Action: Copy, Purpose: Treatment, Basis: BasisContract, Ref: fuzzID("contract")},
		{Event: EventAccess, Requester: centre, Role: Clinician, Action: Copy, Purpose: Treatment, Permitted: true, Basis: BasisContract, Ref: fuzzID("contract"), Released: 2, Records: []int64{7, 12}},
		{Event: EventEmergencyStart, Requester: centre, Staff: fuzzStaff(9), Role: Clinician, Action: Access, Purpose: Emergency, Permitted: true, Basis: BasisEmergency, Ref: fuzzID("session"), Reason: Unconscious},
		{Event: EventEmergencyStop, Requester: centre, Basis: BasisEmergency, Ref: fuzzID("session")},
	} {
		e, err := NewAccess(fuzzPseudonym(1), a)
		if err != nil {
			f.Fatalf("seed access entry: %v", err)
		}
		f.Add(e.Body)
		for _, t := range truncations(e.Body) {
			f.Add(t)
		}
		f.Add(flip(e.Body, 0))
		if a.Records == nil {
			f.Add(asV1(e.Body))
			f.Add(asV2(e.Body))
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAccess(ledger.Entry{Kind: ledger.KindAccess, Body: b})
		if err != nil {
			return
		}
		e, err := NewAccess(fuzzPseudonym(1), a)
		if err != nil {
			t.Fatalf("NewAccess refuses what DecodeAccess accepted: %v", err)
		}
		want := e.Body
		switch b[0] {
		case accessVersionV1:
			want = asV1(want)
		case accessVersionV2:
			want = asV2(want)
		}
		if !bytes.Equal(want, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", b, want)
		}
	})
}

// asV1 turns an access body listing no records into the version 1
// layout: no nonce, no count.
func asV1(v3 []byte) []byte {
	v1 := bytes.Clone(v3[:len(v3)-4-16-4])
	v1[0] = accessVersionV1
	return v1
}

// asV2 turns an access body listing no records into the version 2 layout:
// no list.
func asV2(v3 []byte) []byte {
	v2 := bytes.Clone(v3[:len(v3)-4])
	v2[0] = accessVersionV2
	return v2
}

// Access entries written before queries existed (version 1), and before
// they listed the records released (version 2), still decode.
func TestDecodeAccessV1(t *testing.T) {
	a := AccessEntry{Event: EventAccess, Requester: fuzzCentre(t, "south"), Role: Clinician, Action: Access, Purpose: Research, Permitted: true, Basis: BasisToken, Ref: fuzzID("token"), Use: 1}
	e, err := NewAccess(fuzzPseudonym(1), a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAccess(ledger.Entry{Kind: ledger.KindAccess, Body: asV1(e.Body)})
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("version 1: %+v, %v; want %+v", got, err, a)
	}
	a.Nonce, a.Released = [16]byte{7}, 1
	if e, err = NewAccess(fuzzPseudonym(1), a); err != nil {
		t.Fatal(err)
	}
	got, err = DecodeAccess(ledger.Entry{Kind: ledger.KindAccess, Body: asV2(e.Body)})
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("version 2: %+v, %v; want %+v", got, err, a)
	}
}

func FuzzDecodeDocs(f *testing.F) {
	samples := signedSamples(f)
	var docs []Document
	for _, b := range samples {
		d, err := Parse(b)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, d)
	}
	list := encodeDocs(docs)
	f.Add(list)
	f.Add(encodeDocs(docs[:1]))
	f.Add(list[:len(list)-1])
	f.Add(list[:3])
	f.Add(append(bytes.Clone(list), 0, 0, 0, 0))
	// A document about another patient.
	other, err := SignRevocation(fuzzKey("patient 2"), Revocation{
		Federation: "medfed-nordic", Subject: fuzzPseudonym(2), Target: fuzzID("contract"), Issued: day(2026, time.April, 1),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(bytes.Clone(list), binary.BigEndian.AppendUint32(nil, uint32(len(other)))...))
	f.Add(append(binary.BigEndian.AppendUint32(bytes.Clone(list), uint32(len(other))), other...))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		docs, err := decodeDocs(b)
		if err != nil {
			return
		}
		if got := encodeDocs(docs); !bytes.Equal(got, b) {
			t.Fatalf("a list of %d documents re-encodes differently:\n in  %x\n out %x", len(docs), b, got)
		}
		for _, d := range docs {
			if d.Subject() != docs[0].Subject() {
				t.Fatal("accepted a list about two patients")
			}
		}
	})
}

// fuzzBody checks a body decoder: whatever it accepts passes its check
// and encodes back to the same bytes.
func fuzzBody[T body](f *testing.F, seeds []T, decode func([]byte) (T, error)) {
	for _, s := range seeds {
		if err := s.check(); err != nil {
			f.Fatalf("seed: %v", err)
		}
		b := encode(s)
		f.Add(b)
		for _, t := range truncations(b) {
			f.Add(t)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		if err := v.check(); err != nil {
			t.Fatalf("decoded body fails its check: %v", err)
		}
		if got := encode(v); !bytes.Equal(got, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", b, got)
		}
	})
}

func FuzzDecodeAttestation(f *testing.F) {
	k := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	at := time.Unix(1_780_000_000, 0).UTC()
	fuzzBody(f, []*Attestation{
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Key: k, Issued: at},
		{Federation: "f", Subject: ledger.Pseudonym{2}, Key: k, Issued: at, Compromised: true},
		{Federation: "f", Subject: ledger.Pseudonym{2}, Key: k, Issued: at, Compromised: true, Staff: ledger.StaffID{7}},
	}, decodeAttestation)
}

func FuzzDecodeApproval(f *testing.F) {
	fuzzBody(f, []*Approval{
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Attestation: [32]byte{3}, Staff: ledger.StaffID{4}, Issued: time.Unix(1_780_000_000, 0).UTC()},
	}, decodeApproval)
}

func FuzzDecodeVeto(f *testing.F) {
	fuzzBody(f, []*Veto{
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Attestation: [32]byte{3}, Issued: time.Unix(1_780_000_000, 0).UTC()},
	}, decodeVeto)
}

func FuzzDecodeRevocation(f *testing.F) {
	fuzzBody(f, []*Revocation{
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Target: ID{9}, Issued: time.Unix(1_780_000_000, 0).UTC()},
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Target: ID{9}, Issued: time.Unix(1_780_000_000, 0).UTC(), Delegation: ID{9}},
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Target: ID{9}, Issued: time.Unix(1_780_000_000, 0).UTC(), Staff: ledger.StaffID{3}, Evidence: CourtOrder},
	}, decodeRevocation)
}

func FuzzDecodeErasure(f *testing.F) {
	fuzzBody(f, []*Erasure{
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Issued: time.Unix(1_780_000_000, 0).UTC()},
		{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Issued: time.Unix(1_780_000_000, 0).UTC(), Delegation: ID{4}},
	}, decodeErasure)
}

func FuzzDecodeDelegation(f *testing.F) {
	patients := sampleDelegation()
	registrars := patients
	registrars.NotBefore, registrars.Scope, registrars.Staff, registrars.Evidence = time.Time{}, ScopeView, ledger.StaffID{4}, CapacityAssessment
	fuzzBody(f, []*Delegation{&patients, &registrars}, decodeDelegation)
}

func FuzzDecodeErasures(f *testing.F) {
	var items []erasureItem
	for i, b := range signedSamples(f) {
		d, err := Parse(b)
		if err != nil {
			f.Fatal(err)
		}
		if d.Kind == KindErasure {
			items = append(items, erasureItem{int64(10 + i), d})
		}
	}
	feed := encodeErasures(items)
	f.Add(feed, int64(0))
	f.Add(feed, int64(20))
	f.Add(feed[:len(feed)-1], int64(0))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, after int64) {
		got, err := decodeErasures(b, after)
		if err != nil {
			return
		}
		if again := encodeErasures(got); !bytes.Equal(again, b) {
			t.Fatalf("an erasure feed re-encodes differently:\n in  %x\n out %x", b, again)
		}
		for _, it := range got {
			if it.index <= after || it.doc.Kind != KindErasure {
				t.Fatalf("accepted %+v in a feed after %d", it, after)
			}
			after = it.index
		}
	})
}

func FuzzDecodeLease(f *testing.F) {
	p := fuzzPseudonym(1)
	f.Add(encodeLease(p, 30*time.Second))
	f.Add(encodeLease(p, 0))
	f.Add(p[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ask, err := decodeLease(b)
		if err != nil {
			return
		}
		if got := encodeLease(p, ask); !bytes.Equal(got, b) {
			t.Fatalf("a lease request re-encodes differently:\n in  %x\n out %x", b, got)
		}
	})
}

func FuzzDecodeGrant(f *testing.F) {
	var docs []Document
	for _, b := range signedSamples(f) {
		d, err := Parse(b)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, d)
	}
	p := docs[0].Subject()
	grant := encodeGrant(30*time.Second, docs)
	f.Add(grant)
	f.Add(encodeGrant(0, nil))
	f.Add(grant[:len(grant)-1])
	f.Add(grant[:3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, lease, err := decodeGrant(b, p)
		if err != nil {
			return
		}
		if again := encodeGrant(lease, got); !bytes.Equal(again, b) {
			t.Fatalf("a lease answer re-encodes differently:\n in  %x\n out %x", b, again)
		}
		for _, d := range got {
			if d.Subject() != p {
				t.Fatal("accepted a lease answer about another patient")
			}
		}
	})
}

func FuzzDecodeWait(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x75, 0x30})
	f.Add(encodeWait(30*time.Second, true))
	f.Add(encodeWait(1500*time.Microsecond, false))
	f.Add([]byte{0, 0, 0x75})
	f.Add([]byte{0, 0, 0x75, 0x30, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		wait, restarted, err := decodeWait(b)
		if err != nil {
			return
		}
		switch {
		case wait < 0 || (len(b) != 0 && len(b) != 4 && len(b) != 5):
			t.Fatalf("accepted %x as a wait of %v", b, wait)
		case len(b) == 5 && !bytes.Equal(encodeWait(wait, restarted), b):
			t.Fatalf("a push answer re-encodes differently: %x", b)
		}
	})
}

// A delegate's document ends with its delegation; the patient's ends
// where it always did, so a document signed before delegates existed
// keeps its bytes; any other ending is refused.
func TestDelegationTrailer(t *testing.T) {
	e := Erasure{Federation: "medfed-fuzz", Subject: ledger.Pseudonym{1}, Issued: time.Unix(1_780_000_000, 0).UTC()}
	own := encode(&e)
	e.Delegation = ID{4}
	delegated := encode(&e)
	if want := append(bytes.Clone(own), append([]byte{viaDelegation}, e.Delegation[:]...)...); !bytes.Equal(delegated, want) {
		t.Fatalf("a delegate's erasure is %x, want the patient's and the delegation: %x", delegated, want)
	}
	zeroVia := append(bytes.Clone(own), append([]byte{viaDelegation}, make([]byte, 16)...)...)
	otherFlag := bytes.Clone(delegated)
	otherFlag[len(own)] = 2
	for name, b := range map[string][]byte{"a zero delegation": zeroVia, "another flag": otherFlag, "a short delegation": delegated[:len(delegated)-1]} {
		if _, err := decodeErasure(b); err == nil {
			t.Errorf("%s decoded", name)
		}
	}
}

// A registrar's delegation is signed by a member centre's key: a passkey
// signing one is refused as it is parsed; a patient's passkey may sign
// their own.
func TestPasskeyDelegation(t *testing.T) {
	pk := passkeytest.New(t, "localhost")
	for _, tc := range []struct {
		name string
		edit func(*Delegation)
		ok   bool
	}{
		{"the patient's", func(*Delegation) {}, true},
		{"a registrar's", func(g *Delegation) { g.Staff, g.Evidence = ledger.StaffID{1}, CourtOrder }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := sampleDelegation()
			tc.edit(&g)
			dr, err := draft(pk.ID(t), true, &g)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := dr.SealPasskey(pk.Assert(t, dr.Challenge()))
			if err != nil {
				t.Fatal(err)
			}
			d, err := Parse(sealed)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrSignature)) {
				t.Fatalf("Parse = %v, %v", d.Kind, err)
			}
		})
	}
	if _, err := DraftDelegation(pk.ID(t), true, Delegation{Staff: ledger.StaffID{1}}); err == nil {
		t.Fatal("drafted a registrar's delegation for a patient's key")
	}
}
