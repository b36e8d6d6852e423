package demo

import (
	"context"
	"errors"
	"fmt"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

func (d *demo) pseudonymChapter(ctx context.Context) (err error) {
	d.chapter(4, "pseudonyms: the same patient everywhere, reversible by nobody alone")
	nodes, err := harness.StartAll(ctx, d.cfgs["centre-a"], d.cfgs["centre-b"], d.cfgs["centre-c"])
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	a, b, c := nodes[0], nodes[1], nodes[2]
	ch := a.Membership.Current()
	d.say("The founders generated the pseudonym key together when they founded the")
	d.say("federation, with no dealer: each drew a secret and dealt it to the other in")
	d.say("shares, and the key k is the sum of their secrets, so neither founder ever held")
	d.say("k, nor could choose it (a distributed key generation; operators run it with")
	d.say("medfed federation keygen on their nodes). Each founder kept its share of k;")
	d.say("the charter lists the public shares (any %d of the %d can compute a pseudonym,", ch.Policy.OPRFThreshold, len(ch.OPRF.Shares))
	d.say("fewer cannot). centre-c joined later and holds no share; medfed federation")
	d.say("reshare would give it one, the key and every pseudonym unchanged.")

	id, err := pseudonym.ParseNHS("943 476 5919")
	if err != nil {
		return err
	}
	pa, err := a.Pseudonyms(ctx, []pseudonym.Identifier{id})
	if err != nil {
		return err
	}
	d.say("\nA registrar at centre-a enters NHS number 943 476 5919 (a synthetic one; its")
	d.say("check digit is right). centre-a blinds it, evaluates its own share and asks")
	d.say("centre-b for the other, which proves its answer against its public share:")
	d.say("  pseudonym %s", pa[0])
	dashed, err := pseudonym.ParseNHS("943-476-5919")
	if err != nil {
		return err
	}
	pc, err := c.Pseudonyms(ctx, []pseudonym.Identifier{dashed})
	if err != nil {
		return err
	}
	if pc[0] != pa[0] {
		return errors.New("demo: centre-c derived another pseudonym for the same patient")
	}
	d.say("centre-c, holding no share, asks centre-a and centre-b, and gets the same one")
	d.say("for the same number written 943-476-5919:")
	d.say("  pseudonym %s", pc[0])
	if _, err := pseudonym.ParseNHS("943 476 5918"); err != nil {
		d.say("A mistyped number is refused before anything is sent: %v", err)
	} else {
		return errors.New("demo: a wrong check digit was accepted")
	}

	entries, err := b.Centre.Ledger.EntriesOfKind(ctx, ledger.KindEvaluation)
	if err != nil {
		return err
	}
	total := 0
	for _, e := range entries {
		v, err := e.Evaluation()
		if err != nil {
			return err
		}
		total += int(v.Count)
	}
	d.say("\ncentre-b saw only blinded points, and its ledger records %d evaluation entries", len(entries))
	d.say("covering %d evaluations: who asked and how many, never what. Each centre may", total)
	d.say("ask another for at most %d evaluations per %v (pseudonym.rate-limit and", d.cfgs["centre-b"].Pseudonym.RateLimit, d.cfgs["centre-b"].Pseudonym.RateWindow)
	d.say("rate-window), so nobody can run through the billion NHS numbers to reverse one.")

	if err := b.Stop(); err != nil {
		return err
	}
	if _, err := a.Pseudonyms(ctx, []pseudonym.Identifier{id}); !errors.Is(err, pseudonym.ErrUnavailable) {
		return fmt.Errorf("demo: with centre-b down, centre-a still computed a pseudonym (%v)", err)
	}
	d.say("\ncentre-b stops. centre-a alone now cannot compute any pseudonym, not even for")
	d.say("patients it knows: its share is one of the %d needed.", ch.Policy.OPRFThreshold)
	return nil
}
