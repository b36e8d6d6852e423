package consent_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// A patient opts in to sharing, but not for research, except that their
// lab results may be used in research until the end of 2027. They sign
// the contract on their device; a centre parses it back from the bytes.
func ExampleSignContract() {
	// The patient's key lives on their device; a fixed seed here.
	seed := sha256.Sum256([]byte("example patient key"))
	key := ed25519.NewKeyFromSeed(seed[:])

	c := consent.Contract{
		ID:         consent.NewID(),
		Version:    1,
		Federation: "medfed-example",
		Subject:    ledger.Pseudonym(sha256.Sum256([]byte("example pseudonym"))),
		Issued:     time.Date(2026, time.May, 1, 9, 30, 0, 0, time.UTC), // whole seconds, UTC
		Base:       consent.OptIn,
		Provisions: []consent.Provision{{
			Type:     consent.Deny,
			Purposes: consent.Research,
			Provisions: []consent.Provision{{
				Type:     consent.Permit,
				Purposes: consent.Research,
				Classes:  []string{"lab-result"},
				Period:   consent.Period{End: time.Date(2028, time.January, 1, 0, 0, 0, 0, time.UTC)},
			}},
		}},
	}
	raw, err := consent.SignContract(key, c)
	if err != nil {
		fmt.Println("sign:", err)
		return
	}

	d, err := consent.Parse(raw)
	if err != nil {
		fmt.Println("parse:", err)
		return
	}
	fmt.Println(d.Kind, d.Contract.Base, "issued", d.Issued().Format(time.RFC3339))
	fmt.Println("signed by the patient:", d.Signer.Equal(key.Public()))
	var show func(ps []consent.Provision, indent string)
	show = func(ps []consent.Provision, indent string) {
		for _, p := range ps {
			classes := "any data"
			if len(p.Classes) > 0 {
				classes = strings.Join(p.Classes, ", ")
			}
			fmt.Printf("%s%s %s of %s, %s\n", indent, p.Type, p.Purposes, classes, p.Period)
			show(p.Provisions, indent+"  ")
		}
	}
	show(d.Contract.Provisions, "")

	// Any change to the bytes breaks the signature.
	raw[len(raw)-1] ^= 1
	_, err = consent.Parse(raw)
	fmt.Println("tampered copy refused:", errors.Is(err, consent.ErrSignature))

	// Output:
	// contract opt-in issued 2026-05-01T09:30:00Z
	// signed by the patient: true
	// deny research of any data, always to open
	//   permit research of lab-result, always to 2028-01-01T00:00:00Z
	// tampered copy refused: true
}

// A patient names their parent a delegate for consent until the end of
// 2030; the parent signs a contract for them under the delegation. The
// patient's state says what the parent may do, and when.
func ExampleSignDelegation() {
	keyOf := func(name string) ed25519.PrivateKey {
		seed := sha256.Sum256([]byte("example key " + name))
		return ed25519.NewKeyFromSeed(seed[:])
	}
	patientKey, parentKey, centreKey := keyOf("patient"), keyOf("parent"), keyOf("centre")
	subject := ledger.Pseudonym(sha256.Sum256([]byte("example pseudonym")))
	issued := time.Date(2026, time.May, 1, 9, 30, 0, 0, time.UTC)
	now := issued.Add(time.Hour)

	attested, _ := consent.SignAttestation(centreKey, consent.Attestation{Federation: "medfed-example", Subject: subject, Key: patientKey.Public().(ed25519.PublicKey), Issued: issued.Add(-time.Hour)})
	delegation, err := consent.SignDelegation(patientKey, consent.Delegation{
		ID:           consent.ID{1},
		Federation:   "medfed-example",
		Subject:      subject,
		Delegate:     parentKey.Public().(ed25519.PublicKey),
		Relationship: consent.Parent,
		Scope:        consent.ScopeConsent,
		Issued:       issued,
		Expires:      time.Date(2031, time.January, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println("sign:", err)
		return
	}
	byParent, _ := consent.SignContract(parentKey, consent.Contract{
		ID: consent.ID{2}, Version: 1, Federation: "medfed-example", Subject: subject, Issued: issued.Add(time.Minute),
		Base: consent.OptOut, Delegation: consent.ID{1}, // signed under the delegation
	})

	p := consent.NewPatientWith(subject, consent.DefaultKeyNotice, func() time.Time { return now })
	for _, raw := range [][]byte{attested, delegation, byParent} {
		d, err := consent.Parse(raw)
		if err != nil {
			fmt.Println("parse:", err)
			return
		}
		if _, err := p.Add(d); err != nil {
			fmt.Println("add:", err)
			return
		}
	}
	fmt.Println("in force:", p.Standing().Contract.Base, "under delegation", p.Standing().Contract.Delegation)
	acting, err := p.MayAct(parentKey.Public().(ed25519.PublicKey), consent.ScopeConsent, now)
	fmt.Println("the parent, for consent:", acting.Relationship, err)
	_, err = p.MayAct(parentKey.Public().(ed25519.PublicKey), consent.ScopeErasure, now)
	fmt.Println("the parent, for erasure:", err)
	_, err = p.MayAct(parentKey.Public().(ed25519.PublicKey), consent.ScopeConsent, time.Date(2031, time.January, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println("the parent, in 2031:", err)

	// Output:
	// in force: opt-out under delegation 01000000000000000000000000000000
	// the parent, for consent: parent <nil>
	// the parent, for erasure: consent signature: erasure is outside the delegation's scope (consent)
	// the parent, in 2031: consent signature: the delegation expired at 2031-01-01T00:00:00Z
}
