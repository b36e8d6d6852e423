package bench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// measureConsent measures consent:
//   - consent_decisions_per_s: decisions per second on one core (one
//     goroutine) against a realistic contract of 10 provisions nested
//     three deep, for requests from varied centres, roles, purposes, data
//     classes and record dates;
//   - consent_service_decisions_per_s: decisions through a holder's
//     service (its lock and the freshness check, every member still
//     connected, around the evaluation of a plain opt-in contract);
//   - consent_revocation_p50_ms, _p99_ms: from submitting a revocation at
//     one centre of four until it is in effect at the three holders
//     (delivered, verified, on their ledgers), real nodes on 127.0.0.1.
func measureConsent(ctx context.Context, env env) (map[string]float64, error) {
	m := map[string]float64{}
	if err := measureDecisions(env, m); err != nil {
		return nil, err
	}
	if err := measureRevocations(ctx, env, m); err != nil {
		return nil, err
	}
	return m, nil
}

var classes = []string{"lab-result", "imaging", "discharge-summary", "clinic-letter", "prescription", "mental-health", "genomics", "vaccination"}

// contract is a contract a privacy-minded patient might sign: opt-in
// with exceptions for research, mental health and genomics, some of them
// with exceptions of their own, bounded in time.
func contract(centres []peer.ID, p ledger.Pseudonym) consent.Contract {
	y := func(year int) time.Time { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC) }
	return consent.Contract{
		ID: consent.NewID(), Version: 1, Federation: "bench", Subject: p, Issued: y(2026), Base: consent.OptIn,
		Provisions: []consent.Provision{
			{Type: consent.Deny, Purposes: consent.Research, Provisions: []consent.Provision{
				{Type: consent.Permit, Actors: []consent.Actor{{Centre: centres[1], Role: consent.Researcher}, {Centre: centres[2], Role: consent.Researcher}},
					Classes: []string{"lab-result", "imaging"}, DataPeriod: consent.Period{Start: y(2020)}, Provisions: []consent.Provision{
						{Type: consent.Deny, Period: consent.Period{Start: y(2030)}},
					}},
			}},
			{Type: consent.Deny, Classes: []string{"mental-health"}, Provisions: []consent.Provision{
				{Type: consent.Permit, Actors: []consent.Actor{{Centre: centres[0], Role: consent.Clinician}}, Purposes: consent.Treatment | consent.Emergency},
			}},
			{Type: consent.Deny, Classes: []string{"genomics"}, Actions: consent.Copy},
			{Type: consent.Deny, Actors: []consent.Actor{{Centre: centres[5]}}, Period: consent.Period{Start: y(2026), End: y(2028)}, Provisions: []consent.Provision{
				{Type: consent.Permit, Purposes: consent.Emergency},
			}},
			{Type: consent.Permit, Purposes: consent.Treatment, DataPeriod: consent.Period{Start: y(2015)}},
		},
	}
}

// consentPolicy is the default charter's consent policy (opt-in, emergency
// access allowed), as the holders apply it.
var consentPolicy = consent.Policy{Default: consent.OptIn, Emergency: true, TokenMaxLifetime: 24 * time.Hour}

func measureDecisions(env env, m map[string]float64) error {
	centres := make([]peer.ID, 20)
	for i := range centres {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i)
		id, err := centre.PeerID(ed25519.NewKeyFromSeed(seed))
		if err != nil {
			return err
		}
		centres[i] = id
	}
	c := contract(centres, ledger.Pseudonym{1})
	if _, err := consent.SignContract(ed25519.NewKeyFromSeed(make([]byte, 32)), c); err != nil {
		return fmt.Errorf("the bench contract is not valid: %w", err)
	}
	standing := consent.Standing{Contract: &c}
	rng := rand.New(rand.NewPCG(7, 7))
	roles := []consent.Role{consent.Clinician, consent.Clinician, consent.Researcher, consent.Registrar}
	purposes := []consent.Purpose{consent.Treatment, consent.Treatment, consent.Research, consent.Emergency}
	reqs := make([]consent.Request, 4096)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for i := range reqs {
		reqs[i] = consent.Request{
			Centre:   centres[rng.IntN(len(centres))],
			Role:     roles[rng.IntN(len(roles))],
			Action:   consent.Access,
			Purpose:  purposes[rng.IntN(len(purposes))],
			Class:    classes[rng.IntN(len(classes))],
			Recorded: now.Add(-time.Duration(rng.IntN(15*365*24)) * time.Hour),
			Time:     now,
			Reason:   consent.Unconscious,
		}
		if rng.IntN(8) == 0 {
			reqs[i].Action = consent.Copy
		}
	}
	n := env.pick(10_000_000, 1_000_000)
	permits := 0
	start := time.Now()
	for i := range n {
		if consent.Decide(standing, consentPolicy, reqs[i&4095]).Permit {
			permits++
		}
	}
	el := time.Since(start)
	rate := float64(n) / el.Seconds()
	m["consent_decisions_per_s"] = rate
	env.logf("consent: %d decisions on one goroutine in %v: %.0f/s (%.0f%% permitted)", n, el.Round(time.Millisecond), rate, 100*float64(permits)/float64(n))
	if permits == 0 || permits == n {
		return fmt.Errorf("every decision was the same (%d of %d permitted): the requests do not exercise the contract", permits, n)
	}
	return nil
}

func measureRevocations(ctx context.Context, env env, m map[string]float64) (err error) {
	nodes, err := startFederation(ctx, env.dir+"/consent", 3, 4, time.Hour)
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	if err != nil {
		return err
	}
	patients := randomPseudonyms(env.pick(50, 10))
	holders := nodes[1:]
	for _, h := range holders {
		for i, p := range patients {
			if err := harness.Visit(ctx, h.Centre, p, i); err != nil {
				return err
			}
		}
		if _, err := h.AnnounceHeld(ctx); err != nil {
			return err
		}
	}
	// A contract goes to the holders the directory names: wait until it
	// names all three, or a grant reaches only those announced so far.
	if err := harness.WaitFor(ctx, time.Minute, "the directory names every patient's three holders", func() bool {
		for _, p := range patients {
			res, err := nodes[0].Directory.Lookup(ctx, p)
			if err != nil || len(res.Holders) != len(holders) {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	submitter := nodes[0].Consent
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	fed := nodes[0].Membership.Current().Federation
	var durations []time.Duration
	for _, p := range patients {
		if _, err := submitter.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
			return err
		}
		c := consent.Contract{ID: consent.NewID(), Version: 1, Federation: fed, Subject: p, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn}
		grant, err := consent.SignContract(key, c)
		if err != nil {
			return err
		}
		if d, err := submitter.Submit(ctx, grant); err != nil || len(d.Delivered) != len(holders) {
			return fmt.Errorf("grant delivered to %d of %d holders: %v (%v)", len(d.Delivered), len(holders), err, d.Failed)
		}
		revoke, err := consent.SignRevocation(key, consent.Revocation{Federation: fed, Subject: p, Target: c.ID, Issued: c.Issued})
		if err != nil {
			return err
		}
		start := time.Now()
		d, err := submitter.Submit(ctx, revoke)
		el := time.Since(start)
		if err != nil || len(d.Delivered) != len(holders) {
			return fmt.Errorf("revocation delivered to %d of %d holders: %v (%v)", len(d.Delivered), len(holders), err, d.Failed)
		}
		durations = append(durations, el)
		q := consent.Request{Centre: nodes[0].Centre.ID(), Role: consent.Clinician, Action: consent.Access, Purpose: consent.Treatment,
			Class: "clinic-letter", Recorded: time.Now().Add(-time.Hour), Time: time.Now()}
		for _, h := range holders {
			dec, err := h.Consent.Decide(ctx, p, q)
			if err != nil || dec.Permit {
				return fmt.Errorf("%s after a revocation: %v, %v", h.Centre.Name, dec, err)
			}
		}
	}
	// The same decisions through a holder's service: its lock, the
	// freshness check (every member still connected) and the evaluation.
	// Documents are dated to the second, and a contract dated in the
	// second of the revocation before it does not come after it: wait
	// for the next second.
	time.Sleep(time.Until(now().Add(time.Second)))
	grant := consent.Contract{ID: consent.NewID(), Version: 1, Federation: fed, Subject: patients[0], Issued: now(), Base: consent.OptIn}
	signed, err := consent.SignContract(key, grant)
	if err != nil {
		return err
	}
	if _, err := submitter.Submit(ctx, signed); err != nil {
		return err
	}
	q := consent.Request{Centre: nodes[0].Centre.ID(), Role: consent.Clinician, Action: consent.Access, Purpose: consent.Treatment,
		Class: "clinic-letter", Recorded: time.Now().Add(-time.Hour), Time: time.Now()}
	n := env.pick(1_000_000, 100_000)
	start := time.Now()
	for range n {
		if d, err := holders[0].Consent.Decide(ctx, patients[0], q); err != nil || !d.Permit {
			return fmt.Errorf("a holder's decision: %v, %v", d, err)
		}
	}
	m["consent_service_decisions_per_s"] = float64(n) / time.Since(start).Seconds()
	env.logf("consent: %d decisions through a holder's service: %.0f/s", n, m["consent_service_decisions_per_s"])
	m["consent_revocation_p50_ms"] = percentileMillis(durations, 0.5)
	m["consent_revocation_p99_ms"] = percentileMillis(durations, 0.99)
	env.logf("consent: %d revocations, in effect at 3 holders: p50 %.1f ms, p99 %.1f ms", len(durations), m["consent_revocation_p50_ms"], m["consent_revocation_p99_ms"])
	return nil
}
