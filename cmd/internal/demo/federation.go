package demo

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest/harness"
)

func linked(a, b *harness.Node) bool {
	return a.Host.Network().Connectedness(b.Centre.ID()) == network.Connected
}

func (d *demo) federationChapter(ctx context.Context) (err error) {
	d.chapter(2, "founding a federation, and Centre 3 joining it")
	cfgs := map[string]centre.Config{}
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		if cfgs[name], err = harness.Config(d.root, name, federationID); err != nil {
			return err
		}
	}
	ca, cb, cc := cfgs["centre-a"], cfgs["centre-b"], cfgs["centre-c"]
	d.cfgs = cfgs

	d.say("centre-b describes itself in a join request, signed with its key: its name, its")
	d.say("peer ID and where it listens. centre-a drafts version 1 of the charter from it")
	d.say("and signs; centre-b checks the draft and signs too; both install it.")
	// A key must be in force for the charter's key notice before it can
	// erase (72 h by default); the demo's patient erases minutes after
	// enrolling, so its charter says two seconds.
	pol := federation.DefaultPolicy(2)
	pol.KeyNotice = demoKeyNotice
	draft, err := harness.Found(ctx, pol, ca, cb)
	if err != nil {
		return err
	}
	v1, err := federation.VerifyFounding(draft)
	if err != nil {
		return err
	}
	d.say("\n%s", indent(string(draft)))
	d.say("Changing it takes %d approvals of its members (the admission quorum).", v1.Policy.AdmissionQuorum)
	d.say("Its key-notice line shortens, for the demo, how long a patient's new key waits")
	d.say("before it can erase (and a replacement key for the old key's veto): 72 h by default.")

	a, err := harness.Start(ctx, ca)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, a.Stop()) }()
	b, err := harness.Start(ctx, cb)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Stop()) }()
	if err := waitUntil(ctx, "the founders connect", func() bool { return linked(a, b) }); err != nil {
		return err
	}
	d.say("\nBoth nodes start; each admits only the peers the charter lists. They connect.")

	reqC, err := harness.Request(ctx, cc)
	if err != nil {
		return err
	}
	d.say("\ncentre-c, a new hospital, sends its join request to the members.")
	p, err := a.Membership.Approve(ctx, reqC)
	if err != nil {
		return err
	}
	d.say("centre-a approves: version %d has %d of %d approvals.", p.Version, p.Approvals, p.Quorum)
	if _, err := centre.Join(ctx, cc, a.Addr()); err == nil {
		return errors.New("demo: centre-c got in before a quorum approved")
	}
	d.say("centre-c tries to fetch the charter now: centre-a still refuses its connection.")
	if _, err := b.Membership.Approve(ctx, reqC); err != nil {
		return err
	}
	if err := waitUntil(ctx, "both founders adopt version 2", func() bool {
		return a.Membership.Current().Version == 2 && b.Membership.Current().Version == 2
	}); err != nil {
		return err
	}
	d.say("centre-b approves: quorum. Both adopt version 2 and write it to their ledgers.")
	v2, err := centre.Join(ctx, cc, a.Addr())
	if err != nil {
		return err
	}
	c, err := harness.Start(ctx, cc)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	if err := waitUntil(ctx, "centre-c reaches both founders", func() bool { return linked(c, a) && linked(c, b) }); err != nil {
		return err
	}
	d.say("centre-c fetches the chain of charters from centre-a, checks every signature")
	d.say("from version 1, installs version %d (%d members) and connects to both founders.", v2.Version, len(v2.Members))

	outsider, err := harness.Config(d.scratch, "centre-x", federationID)
	if err != nil {
		return err
	}
	if _, err := centre.Join(ctx, outsider, a.Addr()); err == nil {
		return errors.New("demo: an outsider got in")
	}
	for _, p := range a.Host.Network().Peers() {
		if p != b.Centre.ID() && p != c.Centre.ID() {
			return fmt.Errorf("demo: centre-a is connected to %s, which is not a member", p)
		}
	}
	d.say("\ncentre-x, which no charter lists, tries to connect to centre-a: the connection")
	d.say("is dropped as soon as centre-x proves who it is. Refused.")
	return nil
}
