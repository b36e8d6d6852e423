package demo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

func (d *demo) consentChapter(ctx context.Context) (err error) {
	d.chapter(6, "consent: the patient decides who sees what, for which purpose, until when")
	nodes, err := d.startThree(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	a, b, c := nodes[0], nodes[1], nodes[2]
	id, err := pseudonym.ParseNHS("943 476 5919")
	if err != nil {
		return err
	}
	ps, err := a.Pseudonyms(ctx, []pseudonym.Identifier{id})
	if err != nil {
		return err
	}
	patient := ledger.Pseudonym(ps[0])
	fed := a.Membership.Current().Federation

	key, _, err := consent.GenerateKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	del, err := b.Consent.Attest(ctx, patient, pub, false, ledger.StaffID{})
	if err != nil {
		return err
	}
	d.say("The patient of chapters 4 and 5 (records at all three centres) makes a key on")
	d.say("their own device (medfed patient keygen). At centre-b a registrar checks their")
	d.say("identity in person and attests the key (medfed patient attest); the")
	d.say("attestation goes on centre-b's ledger and to every holder: %s.", names(a, del.Delivered))

	c3 := c.Centre.ID()
	contract := consent.Contract{
		ID: consent.NewID(), Version: 1, Federation: fed, Subject: patient, Issued: now(), Base: consent.OptIn,
		Provisions: []consent.Provision{{
			Type: consent.Deny, Purposes: consent.Research,
			Provisions: []consent.Provision{{
				Type: consent.Permit, Actors: []consent.Actor{{Centre: c3, Role: consent.Researcher}}, Classes: []string{"clinic-letter"},
			}},
		}},
	}
	signed, err := consent.SignContract(key, contract)
	if err != nil {
		return err
	}
	if del, err = a.Consent.Submit(ctx, signed); err != nil {
		return err
	}
	d.say("\nThe patient signs a contract (medfed consent grant), FHIR Consent in shape:")
	d.say("opt-in, but no research, except by centre-c's researchers on clinic letters.")
	d.say("Submitted at centre-a, verified and put on the ledger of every holder: %s.", names(a, del.Delivered))

	ask := func(at *harness.Node, from *harness.Node, role consent.Role, purpose consent.Purpose) (consent.Decision, error) {
		return at.Consent.Decide(ctx, patient, consent.Request{
			Centre: from.Centre.ID(), Role: role, Action: consent.Access, Purpose: purpose, Class: "clinic-letter",
			Recorded: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC), Time: time.Now(), Reason: consent.Unconscious,
		})
	}
	d.say("\ncentre-b decides, as every holder would, for its clinic letter:")
	for _, q := range []struct {
		from    *harness.Node
		who     string
		role    consent.Role
		purpose consent.Purpose
	}{
		{a, "a clinician at centre-a, for treatment", consent.Clinician, consent.Treatment},
		{a, "a researcher at centre-a, for research", consent.Researcher, consent.Research},
		{c, "a researcher at centre-c, for research", consent.Researcher, consent.Research},
	} {
		dec, err := ask(b, q.from, q.role, q.purpose)
		if err != nil {
			return err
		}
		d.say("  %-40s %s", q.who+":", dec)
	}

	tok := consent.Token{
		ID: consent.NewID(), Federation: fed, Subject: patient, Grantee: consent.Actor{Centre: a.Centre.ID()},
		Purposes: consent.Research, Issued: now(), Expires: now().Add(time.Hour), Uses: 1,
	}
	signedTok, err := consent.SignToken(key, tok)
	if err != nil {
		return err
	}
	q := consent.Request{Centre: a.Centre.ID(), Role: consent.Researcher, Action: consent.Access, Purpose: consent.Research,
		Class: "clinic-letter", Recorded: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC), Time: time.Now()}
	first, err := b.Consent.UseToken(ctx, patient, signedTok, q)
	if err != nil {
		return err
	}
	second, err := b.Consent.UseToken(ctx, patient, signedTok, q)
	if err != nil {
		return err
	}
	if !first.Permit || second.Permit {
		return fmt.Errorf("demo: a single-use token gave %v then %v", first, second)
	}
	d.say("\nThe patient gives centre-a's research team a single-use token for an hour")
	d.say("(medfed consent token). centre-b records the use on its ledger, then permits;")
	d.say("presented again: %s.", second)

	q.Role, q.Purpose, q.Reason = consent.Clinician, consent.Emergency, consent.Unconscious
	sess, dec, err := c.Consent.EmergencyStart(ctx, patient, q)
	if err != nil {
		return err
	}
	if !dec.Permit {
		return fmt.Errorf("demo: emergency access refused: %v", dec)
	}
	if err := c.Consent.EmergencyStop(ctx, sess.ID); err != nil {
		return err
	}
	notes := c.Consent.Notifications(-1)
	d.say("\nThe patient arrives unconscious at centre-a's emergency department. Emergency")
	d.say("access at centre-c (reason: %s) is allowed by the charter; its start and", q.Reason)
	d.say("stop are on centre-c's ledger, and %d notifications wait for the patient and", len(notes))
	d.say("centre-c's privacy officer.")

	if err := b.Stop(); err != nil {
		return err
	}
	revoke, err := consent.SignRevocation(key, consent.Revocation{Federation: fed, Subject: patient, Target: contract.ID, Issued: now()})
	if err != nil {
		return err
	}
	start := time.Now()
	if del, err = a.Consent.Submit(ctx, revoke); err != nil {
		return err
	}
	took := time.Since(start)
	dec, err = ask(c, a, consent.Clinician, consent.Treatment)
	if err != nil {
		return err
	}
	if dec.Permit || len(del.Failed) != 1 {
		return fmt.Errorf("demo: after the revocation centre-c decides %v; not delivered to %d", dec, len(del.Failed))
	}
	d.say("\ncentre-b goes down. The patient revokes the contract at centre-a (medfed")
	d.say("consent revoke); %v later it is in effect at %s; centre-c", took.Round(time.Millisecond), names(a, del.Delivered))
	d.say("answers: %s. centre-b was not reached.", dec)

	b2, err := harness.Start(ctx, d.cfgs["centre-b"])
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b2.Stop()) }()
	if err := (harness.Nodes{a, b2, c}).Connected(ctx, 10*time.Second); err != nil {
		return err
	}
	dec, err = ask(b2, a, consent.Clinician, consent.Treatment)
	if err != nil {
		return err
	}
	if dec.Permit {
		return fmt.Errorf("demo: centre-b permits after the revocation: %v", dec)
	}
	d.say("Back up, centre-b asks the other members for the patient's documents before it")
	d.say("decides anything (it lost contact, so it may have missed some): it finds the")
	d.say("revocation, puts it on its ledger, and answers: %s.", dec)
	return nil
}

// names lists centres by their charter names.
func names(n *harness.Node, ids []peer.ID) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		m, _ := n.Membership.Current().Member(id)
		out[i] = m.Name
	}
	if len(out) == 0 {
		return "none"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
