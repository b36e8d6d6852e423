package consent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// The helpers of this file are prefixed doc, to stay clear of the other
// test files' helpers in this package.

const docFed = "medfed-nordic"

var docSubject = ledger.Pseudonym(sha256.Sum256([]byte("document test patient")))

// docKey derives an Ed25519 key from name, so that signed bytes are the
// same on every run.
func docKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("document test key " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func docCentre(t testing.TB, name string) peer.ID {
	t.Helper()
	id, err := federation.PeerIDFromKey(docKey("centre " + name))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func docStaff(name string) ledger.StaffID {
	h := sha256.Sum256([]byte("document test staff " + name))
	return ledger.StaffID(h[:16])
}

func docID(name string) consent.ID {
	h := sha256.Sum256([]byte("document test id " + name))
	return consent.ID(h[:16])
}

// docDate is midnight UTC of a date: a whole second, as documents keep.
func docDate(year int, month time.Month, day int) time.Time {
	return time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
}

// docContract returns a valid opt-in contract with nested provisions. It
// builds new slices on each call, so a test may edit what it returns.
// Empty slices are nil, as Parse yields them.
func docContract(t testing.TB) consent.Contract {
	t.Helper()
	south, west := docCentre(t, "south"), docCentre(t, "west")
	return consent.Contract{
		ID:         docID("contract"),
		Version:    2,
		Federation: docFed,
		Subject:    docSubject,
		Issued:     docDate(2026, time.January, 15),
		Base:       consent.OptIn,
		Provisions: []consent.Provision{
			{
				Type:     consent.Deny,
				Purposes: consent.Research,
				Classes:  []string{"genomics", "mental-health"},
				Provisions: []consent.Provision{{
					Type:     consent.Permit,
					Actors:   []consent.Actor{{Centre: south, Role: consent.Researcher}, {Centre: south, Staff: docStaff("ana")}},
					Actions:  consent.Access,
					Purposes: consent.Research,
					Classes:  []string{"genomics"},
					Period:   consent.Period{Start: docDate(2026, time.January, 1), End: docDate(2027, time.January, 1)},
					Provisions: []consent.Provision{
						{Type: consent.Deny, Actions: consent.Copy},
					},
				}},
			},
			{
				Type:       consent.Deny,
				Actors:     []consent.Actor{{Centre: west, Role: consent.Admin}},
				Actions:    consent.Copy,
				Purposes:   consent.Treatment | consent.Research,
				DataPeriod: consent.Period{End: docDate(2020, time.January, 1)},
			},
		},
	}
}

// docToken returns a valid token for a researcher at the south centre.
func docToken(t testing.TB) consent.Token {
	t.Helper()
	issued := docDate(2026, time.March, 2)
	return consent.Token{
		ID:         docID("token"),
		Federation: docFed,
		Subject:    docSubject,
		Grantee:    consent.Actor{Centre: docCentre(t, "south"), Role: consent.Researcher, Staff: docStaff("ana")},
		Actions:    consent.Access,
		Purposes:   consent.Research,
		Classes:    []string{"lab-result", "imaging"},
		DataPeriod: consent.Period{Start: docDate(2018, time.January, 1), End: docDate(2026, time.January, 1)},
		Issued:     issued,
		Expires:    issued.Add(30 * 24 * time.Hour),
		Uses:       5,
	}
}

// docNested returns one provision with depth-1 levels of provisions
// nested in it: depth levels in all.
func docNested(depth int) []consent.Provision {
	if depth == 0 {
		return nil
	}
	return []consent.Provision{{Type: consent.Deny, Purposes: consent.Research, Provisions: docNested(depth - 1)}}
}

func docFlat(n int) []consent.Provision {
	ps := make([]consent.Provision, n)
	for i := range ps {
		ps[i] = consent.Provision{Type: consent.Permit, Purposes: consent.Treatment}
	}
	return ps
}

func TestSignParseRoundTrip(t *testing.T) {
	patient, registrar := docKey("patient"), docKey("registrar")
	minimal := consent.Contract{ID: docID("minimal"), Version: 1, Federation: "f", Subject: docSubject, Issued: docDate(2025, time.May, 5), Base: consent.OptOut}
	deep := minimal
	deep.Provisions = docNested(consent.MaxDepth)
	wide := minimal
	wide.Provisions = docFlat(consent.MaxProvisions)
	centreToken := docToken(t)
	centreToken.Grantee = consent.Actor{Centre: docCentre(t, "west")}
	centreToken.Classes, centreToken.DataPeriod, centreToken.Uses = nil, consent.Period{}, 1000
	revocation := consent.Revocation{Federation: docFed, Subject: docSubject, Target: docID("token"), Issued: docDate(2026, time.March, 9)}
	attestation := consent.Attestation{Federation: docFed, Subject: docSubject, Key: patient.Public().(ed25519.PublicKey), Issued: docDate(2026, time.January, 10)}
	compromised := attestation
	compromised.Compromised = true

	tests := []struct {
		name   string
		key    ed25519.PrivateKey
		kind   consent.Kind
		sign   func(ed25519.PrivateKey) ([]byte, error)
		want   any
		got    func(consent.Document) any // nil when the document is of another kind
		issued time.Time
	}{
		{"contract", patient, consent.KindContract,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignContract(k, docContract(t)) },
			docContract(t), func(d consent.Document) any { return deref(d.Contract) }, docContract(t).Issued},
		{"contract without provisions", patient, consent.KindContract,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignContract(k, minimal) },
			minimal, func(d consent.Document) any { return deref(d.Contract) }, minimal.Issued},
		{"contract nested MaxDepth deep", patient, consent.KindContract,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignContract(k, deep) },
			deep, func(d consent.Document) any { return deref(d.Contract) }, deep.Issued},
		{"contract of MaxProvisions provisions", patient, consent.KindContract,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignContract(k, wide) },
			wide, func(d consent.Document) any { return deref(d.Contract) }, wide.Issued},
		{"token for a staff member", patient, consent.KindToken,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignToken(k, docToken(t)) },
			docToken(t), func(d consent.Document) any { return deref(d.Token) }, docToken(t).Issued},
		{"token for a centre", patient, consent.KindToken,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignToken(k, centreToken) },
			centreToken, func(d consent.Document) any { return deref(d.Token) }, centreToken.Issued},
		{"revocation", patient, consent.KindRevocation,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignRevocation(k, revocation) },
			revocation, func(d consent.Document) any { return deref(d.Revocation) }, revocation.Issued},
		{"attestation", registrar, consent.KindAttestation,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignAttestation(k, attestation) },
			attestation, func(d consent.Document) any { return deref(d.Attestation) }, attestation.Issued},
		{"compromised attestation", registrar, consent.KindAttestation,
			func(k ed25519.PrivateKey) ([]byte, error) { return consent.SignAttestation(k, compromised) },
			compromised, func(d consent.Document) any { return deref(d.Attestation) }, compromised.Issued},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.sign(tc.key)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			again, err := tc.sign(tc.key)
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("signing twice gave different bytes (err %v)", err)
			}
			d, err := consent.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d.Kind != tc.kind {
				t.Errorf("Kind = %s, want %s", d.Kind, tc.kind)
			}
			if !d.Signer.Equal(tc.key.Public()) {
				t.Errorf("Signer is not the signing key")
			}
			if !bytes.Equal(d.Raw, raw) || d.Hash() != sha256.Sum256(raw) {
				t.Errorf("Raw or Hash is not of the signed bytes")
			}
			if d.Subject() != docSubject || d.Federation() == "" || !d.Issued().Equal(tc.issued) {
				t.Errorf("head: subject %s, federation %q, issued %s", d.Subject(), d.Federation(), d.Issued())
			}
			if got := tc.got(d); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsed %s differs from the signed one:\n got  %+v\n want %+v", tc.kind, got, tc.want)
			}
			set := 0
			for _, p := range []bool{d.Contract != nil, d.Token != nil, d.Revocation != nil, d.Attestation != nil} {
				if p {
					set++
				}
			}
			if set != 1 {
				t.Errorf("%d bodies set, want 1", set)
			}
		})
	}
}

// deref returns *p, or nil when p is nil, so that a missing body compares
// unequal to a signed one instead of panicking.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestParseRefuses(t *testing.T) {
	raw, err := consent.SignContract(docKey("patient"), docContract(t))
	if err != nil {
		t.Fatal(err)
	}
	// The federation's first byte: 2 bytes of head, 4 of length, 16 of ID,
	// 4 of version, 1 of string length. Flipping it keeps a valid body.
	const federationAt = 2 + 4 + 16 + 4 + 1
	other, err := consent.SignToken(docKey("patient"), docToken(t))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(raw)) }

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"flipped signature byte", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), consent.ErrSignature},
		{"flipped first signature byte", edit(func(b []byte) []byte { b[len(b)-64] ^= 0x80; return b }), consent.ErrSignature},
		{"flipped signer byte", edit(func(b []byte) []byte { b[len(b)-96+3] ^= 1; return b }), consent.ErrSignature},
		{"another signer's key", edit(func(b []byte) []byte {
			copy(b[len(b)-96:], docKey("thief").Public().(ed25519.PublicKey))
			return b
		}), consent.ErrSignature},
		{"flipped body byte that keeps the encoding valid", edit(func(b []byte) []byte { b[federationAt] ^= 1; return b }), consent.ErrSignature},
		{"flipped base byte", edit(func(b []byte) []byte {
			b[federationAt+len(docFed)+32+8] ^= 0x10 // base 0x11: unknown
			return b
		}), node.ErrInvalid},
		{"trailing byte", append(bytes.Clone(raw), 0), node.ErrInvalid},
		{"trailing signature", append(bytes.Clone(raw), raw[len(raw)-64:]...), node.ErrInvalid},
		{"oversized", append(bytes.Clone(raw), make([]byte, consent.MaxDocument)...), node.ErrInvalid},
		{"unknown version", edit(func(b []byte) []byte { b[0] = 2; return b }), node.ErrInvalid},
		{"version zero", edit(func(b []byte) []byte { b[0] = 0; return b }), node.ErrInvalid},
		{"unknown kind", edit(func(b []byte) []byte { b[1] = 9; return b }), node.ErrInvalid},
		{"contract labelled a token", edit(func(b []byte) []byte { b[1] = byte(consent.KindToken); return b }), node.ErrInvalid},
		{"body length beyond the document", edit(func(b []byte) []byte { b[2] = 0xff; return b }), node.ErrInvalid},
		{"body length one short", edit(func(b []byte) []byte { b[5]--; return b }), node.ErrInvalid},
		{"no signature", raw[:len(raw)-64], node.ErrInvalid},
		{"truncated signature", raw[:len(raw)-1], node.ErrInvalid},
		{"header only", raw[:6], node.ErrInvalid},
		{"one byte", raw[:1], node.ErrInvalid},
		{"empty", nil, node.ErrInvalid},
		{"two documents", append(bytes.Clone(raw), other...), node.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := consent.Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
			if d.Raw != nil || d.Contract != nil || d.Signer != nil {
				t.Errorf("a refused document carries content: %+v", d)
			}
		})
	}
}

// Every single-bit change to a signed document must be refused: either
// the encoding breaks or the signature no longer verifies.
func TestParseRefusesEveryFlippedByte(t *testing.T) {
	for _, doc := range []struct {
		name string
		sign func() ([]byte, error)
	}{
		{"contract", func() ([]byte, error) { return consent.SignContract(docKey("patient"), docContract(t)) }},
		{"token", func() ([]byte, error) { return consent.SignToken(docKey("patient"), docToken(t)) }},
	} {
		t.Run(doc.name, func(t *testing.T) {
			raw, err := doc.sign()
			if err != nil {
				t.Fatal(err)
			}
			for i := range raw {
				b := bytes.Clone(raw)
				b[i] ^= 1 << (i % 8)
				_, err := consent.Parse(b)
				if !errors.Is(err, consent.ErrSignature) && !errors.Is(err, node.ErrInvalid) {
					t.Errorf("byte %d of %d flipped: Parse = %v, want ErrSignature or node.ErrInvalid", i, len(raw), err)
				}
			}
		})
	}
}

func TestSignContractChecks(t *testing.T) {
	west := docCentre(t, "west")
	tests := []struct {
		name string
		edit func(c *consent.Contract)
		want error // nil: signed
	}{
		{"valid", func(c *consent.Contract) {}, nil},
		{"MaxDepth deep", func(c *consent.Contract) { c.Provisions = docNested(consent.MaxDepth) }, nil},
		{"MaxProvisions provisions", func(c *consent.Contract) { c.Provisions = docFlat(consent.MaxProvisions) }, nil},
		{"MaxProvisions counting nested ones", func(c *consent.Contract) {
			c.Provisions = docFlat(consent.MaxProvisions / 2)
			c.Provisions[0].Provisions = docFlat(consent.MaxProvisions / 2)
		}, nil},
		{"no ID", func(c *consent.Contract) { c.ID = consent.ID{} }, node.ErrInvalid},
		{"zero subject", func(c *consent.Contract) { c.Subject = ledger.Pseudonym{} }, node.ErrInvalid},
		{"empty federation", func(c *consent.Contract) { c.Federation = "" }, node.ErrInvalid},
		{"federation of 65 bytes", func(c *consent.Contract) { c.Federation = strings.Repeat("f", 65) }, node.ErrInvalid},
		{"zero base", func(c *consent.Contract) { c.Base = 0 }, node.ErrInvalid},
		{"bad base", func(c *consent.Contract) { c.Base = 3 }, node.ErrInvalid},
		{"no issue time", func(c *consent.Contract) { c.Issued = time.Time{} }, node.ErrInvalid},
		{"issued before 1970", func(c *consent.Contract) { c.Issued = time.Unix(-86400, 0).UTC() }, node.ErrInvalid},
		{"issued after 2261", func(c *consent.Contract) { c.Issued = docDate(2262, time.January, 1) }, node.ErrInvalid},
		{"provision type 0", func(c *consent.Contract) { c.Provisions[1].Type = 0 }, node.ErrInvalid},
		{"provision type 3", func(c *consent.Contract) { c.Provisions[0].Provisions[0].Type = 3 }, node.ErrInvalid},
		{"nested deeper than MaxDepth", func(c *consent.Contract) { c.Provisions = docNested(consent.MaxDepth + 1) }, node.ErrInvalid},
		{"more than MaxProvisions", func(c *consent.Contract) { c.Provisions = docFlat(consent.MaxProvisions + 1) }, node.ErrInvalid},
		{"more than MaxProvisions counting nested ones", func(c *consent.Contract) {
			c.Provisions = docFlat(consent.MaxProvisions / 2)
			c.Provisions[5].Provisions = docFlat(consent.MaxProvisions/2 + 1)
		}, node.ErrInvalid},
		{"data class Bad Class", func(c *consent.Contract) { c.Provisions[0].Classes[1] = "Bad Class" }, node.ErrInvalid},
		{"empty data class", func(c *consent.Contract) { c.Provisions[0].Classes = []string{""} }, node.ErrInvalid},
		{"17 data classes", func(c *consent.Contract) {
			c.Provisions[0].Classes = strings.Fields(strings.Repeat("lab-result ", 17))
		}, node.ErrInvalid},
		{"17 actors", func(c *consent.Contract) {
			c.Provisions[1].Actors = make([]consent.Actor, 17)
			for i := range c.Provisions[1].Actors {
				c.Provisions[1].Actors[i] = consent.Actor{Centre: west}
			}
		}, node.ErrInvalid},
		{"staff actor without a centre", func(c *consent.Contract) {
			c.Provisions[0].Provisions[0].Actors = []consent.Actor{{Role: consent.Clinician, Staff: docStaff("bo")}}
		}, node.ErrInvalid},
		{"actor centre not a peer ID", func(c *consent.Contract) { c.Provisions[1].Actors[0].Centre = peer.ID("centre west") }, node.ErrInvalid},
		{"unknown role", func(c *consent.Contract) { c.Provisions[1].Actors[0].Role = consent.PrivacyOfficer + 1 }, node.ErrInvalid},
		{"unknown purpose", func(c *consent.Contract) { c.Provisions[0].Purposes = consent.Emergency << 1 }, node.ErrInvalid},
		{"unknown action", func(c *consent.Contract) { c.Provisions[0].Actions = consent.Copy << 1 }, node.ErrInvalid},
		{"period ending before it starts", func(c *consent.Contract) {
			p := &c.Provisions[0].Provisions[0].Period
			p.Start, p.End = p.End, p.Start
		}, node.ErrInvalid},
		{"empty period", func(c *consent.Contract) {
			p := &c.Provisions[0].Provisions[0].Period
			p.End = p.Start
		}, node.ErrInvalid},
		{"data period ending before it starts", func(c *consent.Contract) {
			c.Provisions[1].DataPeriod.Start = c.Provisions[1].DataPeriod.End.Add(time.Hour)
		}, node.ErrInvalid},
		{"non-whole-second issue time", func(c *consent.Contract) { c.Issued = c.Issued.Add(500 * time.Millisecond) }, node.ErrInvalid},
		{"issue time outside UTC", func(c *consent.Contract) { c.Issued = c.Issued.In(time.FixedZone("CET", 3600)) }, node.ErrInvalid},
		{"non-whole-second period", func(c *consent.Contract) {
			c.Provisions[0].Provisions[0].Period.Start = c.Provisions[0].Provisions[0].Period.Start.Add(time.Nanosecond)
		}, node.ErrInvalid},
		{"larger than MaxDocument", func(c *consent.Contract) {
			actors := make([]consent.Actor, 16)
			for i := range actors {
				actors[i] = consent.Actor{Centre: west, Role: consent.Clinician, Staff: docStaff("x")}
			}
			c.Provisions = docFlat(consent.MaxProvisions)
			for i := range c.Provisions {
				c.Provisions[i].Actors = actors
			}
		}, node.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := docContract(t)
			tc.edit(&c)
			raw, err := consent.SignContract(docKey("patient"), c)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("SignContract = %v, want it signed", err)
				}
				if _, err := consent.Parse(raw); err != nil {
					t.Fatalf("Parse of the signed contract: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("SignContract = %v, want %v", err, tc.want)
			}
			if raw != nil {
				t.Errorf("refused, yet returned %d bytes", len(raw))
			}
		})
	}
}

func TestSignTokenChecks(t *testing.T) {
	tests := []struct {
		name string
		edit func(tok *consent.Token)
		want error // nil: signed
	}{
		{"valid", func(tok *consent.Token) {}, nil},
		{"single use", func(tok *consent.Token) { tok.Uses = 1 }, nil},
		{"1000 uses", func(tok *consent.Token) { tok.Uses = 1000 }, nil},
		{"for a whole centre", func(tok *consent.Token) { tok.Grantee = consent.Actor{Centre: tok.Grantee.Centre} }, nil},
		{"zero uses", func(tok *consent.Token) { tok.Uses = 0 }, node.ErrInvalid},
		{"1001 uses", func(tok *consent.Token) { tok.Uses = 1001 }, node.ErrInvalid},
		{"expiry before issue", func(tok *consent.Token) { tok.Expires = tok.Issued.Add(-time.Hour) }, node.ErrInvalid},
		{"expiry at issue", func(tok *consent.Token) { tok.Expires = tok.Issued }, node.ErrInvalid},
		{"no expiry", func(tok *consent.Token) { tok.Expires = time.Time{} }, node.ErrInvalid},
		{"non-whole-second expiry", func(tok *consent.Token) { tok.Expires = tok.Expires.Add(time.Millisecond) }, node.ErrInvalid},
		{"emergency purpose", func(tok *consent.Token) { tok.Purposes = consent.Emergency }, node.ErrInvalid},
		{"emergency among purposes", func(tok *consent.Token) { tok.Purposes = consent.Treatment | consent.Emergency }, node.ErrInvalid},
		{"no grantee centre", func(tok *consent.Token) { tok.Grantee.Centre = "" }, node.ErrInvalid},
		{"no grantee", func(tok *consent.Token) { tok.Grantee = consent.Actor{} }, node.ErrInvalid},
		{"no ID", func(tok *consent.Token) { tok.ID = consent.ID{} }, node.ErrInvalid},
		{"zero subject", func(tok *consent.Token) { tok.Subject = ledger.Pseudonym{} }, node.ErrInvalid},
		{"data class Bad Class", func(tok *consent.Token) { tok.Classes = []string{"Bad Class"} }, node.ErrInvalid},
		{"data period ending before it starts", func(tok *consent.Token) {
			tok.DataPeriod.Start, tok.DataPeriod.End = tok.DataPeriod.End, tok.DataPeriod.Start
		}, node.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := docToken(t)
			tc.edit(&tok)
			raw, err := consent.SignToken(docKey("patient"), tok)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("SignToken = %v, want it signed", err)
				}
				d, err := consent.Parse(raw)
				if err != nil {
					t.Fatalf("Parse of the signed token: %v", err)
				}
				if !reflect.DeepEqual(deref(d.Token), tok) {
					t.Errorf("parsed token differs:\n got  %+v\n want %+v", deref(d.Token), tok)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("SignToken = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignRefusesOtherDocuments(t *testing.T) {
	patient := docKey("patient")
	revocation := consent.Revocation{Federation: docFed, Subject: docSubject, Target: docID("token"), Issued: docDate(2026, time.March, 9)}
	attestation := consent.Attestation{Federation: docFed, Subject: docSubject, Key: patient.Public().(ed25519.PublicKey), Issued: docDate(2026, time.January, 10)}
	tests := []struct {
		name string
		sign func() ([]byte, error)
		want error
	}{
		{"revocation of nothing", func() ([]byte, error) {
			r := revocation
			r.Target = consent.ID{}
			return consent.SignRevocation(patient, r)
		}, node.ErrInvalid},
		{"revocation without an issue time", func() ([]byte, error) {
			r := revocation
			r.Issued = time.Time{}
			return consent.SignRevocation(patient, r)
		}, node.ErrInvalid},
		{"attestation of a short key", func() ([]byte, error) {
			a := attestation
			a.Key = a.Key[:31]
			return consent.SignAttestation(docKey("registrar"), a)
		}, node.ErrInvalid},
		{"attestation without a federation", func() ([]byte, error) {
			a := attestation
			a.Federation = ""
			return consent.SignAttestation(docKey("registrar"), a)
		}, node.ErrInvalid},
		{"a key that is not a private key", func() ([]byte, error) {
			return consent.SignRevocation(patient[:32], revocation)
		}, consent.ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.sign(); !errors.Is(err, tc.want) {
				t.Fatalf("sign = %v, want %v", err, tc.want)
			}
		})
	}
}
