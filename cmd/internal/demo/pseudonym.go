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
	d.say("When centre-a founded the federation it also dealt the pseudonym key: it drew")
	d.say("a key k, split it into one share per founder (any %d of the %d can compute a", ch.Policy.OPRFThreshold, len(ch.OPRF.Shares))
	d.say("pseudonym, fewer cannot), put the public shares in the charter and sealed each")
	d.say("share to its founder's key. k itself was never written down. centre-c joined")
	d.say("later and holds no share.")

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
