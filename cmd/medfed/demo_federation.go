package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
)

// demoConfig is a demo centre on a free loopback port; root is where its
// data directory goes.
func demoConfig(root, name string) (centre.Config, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return centre.Config{}, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return centre.Config{}, err
	}
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID = name, demoFederation
	cfg.Data.Dir = filepath.Join(root, name)
	cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	return cfg, nil
}

// offline runs f on a centre that is not running.
func offline(ctx context.Context, cfg centre.Config, f func(*centre.Centre) error) error {
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	return errors.Join(f(c), c.Close())
}

// foundFederation has the centres of cfgs found a federation the way
// operators do: each but the first writes a join request, the first drafts
// and signs version 1 and deals the pseudonym key, the others sign it, all
// install it with their share. It returns the signed charter.
func foundFederation(ctx context.Context, cfgs []centre.Config, policy federation.Policy) ([]byte, error) {
	var reqs [][]byte
	for _, cfg := range cfgs[1:] {
		if err := offline(ctx, cfg, func(c *centre.Centre) error {
			req, err := c.JoinRequest(cfg.P2P.Listen)
			reqs = append(reqs, req)
			return err
		}); err != nil {
			return nil, err
		}
	}
	var draft, shares []byte
	err := offline(ctx, cfgs[0], func(c *centre.Centre) (err error) {
		draft, shares, err = c.Found(cfgs[0].P2P.Listen, reqs, policy)
		return err
	})
	for _, cfg := range cfgs[1:] {
		if err != nil {
			return nil, err
		}
		err = offline(ctx, cfg, func(c *centre.Centre) (err error) {
			draft, err = c.SignCharter(draft, shares)
			return err
		})
	}
	for _, cfg := range cfgs {
		if err != nil {
			return nil, err
		}
		err = offline(ctx, cfg, func(c *centre.Centre) error {
			_, err := c.InstallFounding(ctx, draft, shares)
			return err
		})
	}
	return draft, err
}

// running is a demo node serving in the background.
type running struct {
	*centre.Node
	stop func() error
}

func startNode(ctx context.Context, cfg centre.Config) (*running, error) {
	n, err := centre.Start(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return &running{Node: n, stop: sync.OnceValue(func() error { cancel(); return <-done })}, nil
}

// startAll starts the nodes of cfgs and waits until they are connected to
// each other; stop stops them all (a node stopped before is left alone).
func startAll(ctx context.Context, cfgs ...centre.Config) (nodes []*running, stop func() error, err error) {
	stop = func() error {
		var errs []error
		for _, n := range nodes {
			errs = append(errs, n.stop())
		}
		return errors.Join(errs...)
	}
	for _, cfg := range cfgs {
		n, err := startNode(ctx, cfg)
		if err != nil {
			return nil, nil, errors.Join(err, stop())
		}
		nodes = append(nodes, n)
	}
	if err := allConnected(nodes); err != nil {
		return nil, nil, errors.Join(err, stop())
	}
	return nodes, stop, nil
}

// waitUntil polls ok for up to ten seconds.
func waitUntil(what string, ok func() bool) error {
	return waitFor(what, 10*time.Second, ok)
}

// waitFor polls ok for up to limit.
func waitFor(what string, limit time.Duration, ok func() bool) error {
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: timed out waiting until %s", what)
		}
	}
	return nil
}

// allConnected waits until every node is connected to every other.
func allConnected(nodes []*running) error { return allConnectedWithin(nodes, 10*time.Second) }

// allConnectedWithin is allConnected with a limit of its own.
func allConnectedWithin(nodes []*running, limit time.Duration) error {
	return waitFor("the centres connect", limit, func() bool {
		for _, n := range nodes {
			if len(n.Host.Network().Peers()) < len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

func linked(a, b *running) bool {
	return a.Host.Network().Connectedness(b.Centre.ID()) == network.Connected
}

func (d *demo) federationChapter(ctx context.Context) (err error) {
	d.chapter(2, "founding a federation, and Centre 3 joining it")
	cfgs := map[string]centre.Config{}
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		if cfgs[name], err = demoConfig(d.root, name); err != nil {
			return err
		}
	}
	ca, cb, cc := cfgs["centre-a"], cfgs["centre-b"], cfgs["centre-c"]
	d.cfgs = cfgs

	d.say("centre-b describes itself in a join request, signed with its key: its name, its")
	d.say("peer ID and where it listens. centre-a drafts version 1 of the charter from it")
	d.say("and signs; centre-b checks the draft and signs too; both install it.")
	draft, err := foundFederation(ctx, []centre.Config{ca, cb}, federation.DefaultPolicy(2))
	if err != nil {
		return err
	}
	v1, err := federation.VerifyFounding(draft)
	if err != nil {
		return err
	}
	d.say("\n%s", indent(string(draft)))
	d.say("Changing it takes %d approvals of its members (the admission quorum).", v1.Policy.AdmissionQuorum)

	a, err := startNode(ctx, ca)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, a.stop()) }()
	b, err := startNode(ctx, cb)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.stop()) }()
	if err := waitUntil("the founders connect", func() bool { return linked(a, b) }); err != nil {
		return err
	}
	d.say("\nBoth nodes start; each admits only the peers the charter lists. They connect.")

	var reqC []byte
	if err := offline(ctx, cc, func(c *centre.Centre) error {
		reqC, err = c.JoinRequest(cc.P2P.Listen)
		return err
	}); err != nil {
		return err
	}
	d.say("\ncentre-c, a new hospital, sends its join request to the members.")
	p, err := a.Membership.Approve(ctx, reqC)
	if err != nil {
		return err
	}
	d.say("centre-a approves: version %d has %d of %d approvals.", p.Version, p.Approvals, p.Quorum)
	if _, err := centre.Join(ctx, cc, demoAddr(a)); err == nil {
		return errors.New("demo: centre-c got in before a quorum approved")
	}
	d.say("centre-c tries to fetch the charter now: centre-a still refuses its connection.")
	if _, err := b.Membership.Approve(ctx, reqC); err != nil {
		return err
	}
	if err := waitUntil("both founders adopt version 2", func() bool {
		return a.Membership.Current().Version == 2 && b.Membership.Current().Version == 2
	}); err != nil {
		return err
	}
	d.say("centre-b approves: quorum. Both adopt version 2 and write it to their ledgers.")
	v2, err := centre.Join(ctx, cc, demoAddr(a))
	if err != nil {
		return err
	}
	c, err := startNode(ctx, cc)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.stop()) }()
	if err := waitUntil("centre-c reaches both founders", func() bool { return linked(c, a) && linked(c, b) }); err != nil {
		return err
	}
	d.say("centre-c fetches the chain of charters from centre-a, checks every signature")
	d.say("from version 1, installs version %d (%d members) and connects to both founders.", v2.Version, len(v2.Members))

	outsider, err := demoConfig(d.scratch, "centre-x")
	if err != nil {
		return err
	}
	outsider.Federation.ID = demoFederation
	if _, err := centre.Join(ctx, outsider, demoAddr(a)); err == nil {
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

func demoAddr(n *running) string {
	return fmt.Sprintf("%s/p2p/%s", n.Host.Addrs()[0], n.Centre.ID())
}

// admitCentre has members approve cfg's centre, which then joins through
// the first of them and starts.
func admitCentre(ctx context.Context, cfg centre.Config, members ...*running) (*running, error) {
	var req []byte
	if err := offline(ctx, cfg, func(c *centre.Centre) (err error) {
		req, err = c.JoinRequest(cfg.P2P.Listen)
		return err
	}); err != nil {
		return nil, err
	}
	want := members[0].Membership.Current().Version + 1
	for _, m := range members {
		if m.Membership.Current().Version == want {
			break
		}
		if _, err := m.Membership.Approve(ctx, req); err != nil {
			return nil, err
		}
	}
	if err := waitUntil("the members adopt the version that admits "+cfg.Centre.Name, func() bool {
		for _, m := range members {
			if m.Membership.Current().Version != want {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	if _, err := centre.Join(ctx, cfg, demoAddr(members[0])); err != nil {
		return nil, err
	}
	return startNode(ctx, cfg)
}
