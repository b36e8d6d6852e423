// Package harness founds and starts federations of real medfed centres
// in one process: configurations on free 127.0.0.1 ports, a federation
// founded offline the way operators found one, centres admitted by a
// quorum of running members, nodes serving in the background, and waits
// for what they do to show.
//
// It is the one way medfed founds a federation outside production: the
// tests reach it through node/nodetest, whose functions take a
// testing.TB and end the test on an error; the demo and the benchmarks
// (cmd/internal/demo, cmd/internal/bench), which run inside the medfed
// binary with no test to end, call it directly. Every function here
// returns its error for that reason, and the package does not import
// testing, so that the binary does not link the test harness with it.
package harness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Config is the default configuration of centre name of federationID,
// with its data directory root/name, listening on a free loopback port.
func Config(root, name, federationID string) (centre.Config, error) {
	port, err := FreePort()
	if err != nil {
		return centre.Config{}, err
	}
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID = name, federationID
	cfg.Data.Dir = filepath.Join(root, name)
	cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}
	return cfg, nil
}

// Offline runs f on the centre of cfg opened without its node, which must
// not be running, and closes it.
func Offline(ctx context.Context, cfg centre.Config, f func(*centre.Centre) error) error {
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	return errors.Join(f(c), c.Close())
}

// Request is the join request of the centre of cfg.
func Request(ctx context.Context, cfg centre.Config) (req []byte, err error) {
	err = Offline(ctx, cfg, func(c *centre.Centre) error {
		req, err = c.JoinRequest(cfg.P2P.Listen)
		return err
	})
	return req, err
}

// Found has the centres of cfgs found a federation under policy the way
// operators do, but for the pseudonym key: each but the first writes a
// join request; the founders generate the key together, with no dealer
// (centre.GenerateFoundingKey: the DKG operators run on their nodes with
// medfed federation keygen, run here in memory, since the harness holds
// every founder's key), so that version 1 lists it already; the first
// drafts and signs version 1, the others sign it in turn, and all
// install it, each with its own share. It returns the signed charter.
func Found(ctx context.Context, policy federation.Policy, cfgs ...centre.Config) (charter []byte, err error) {
	return found(ctx, policy, true, cfgs)
}

// FoundWithoutKey is Found as operators found a federation: version 1
// lists no pseudonym key, which the founders then generate on their
// running nodes (centre.Node.GenerateKey).
func FoundWithoutKey(ctx context.Context, policy federation.Policy, cfgs ...centre.Config) (charter []byte, err error) {
	return found(ctx, policy, false, cfgs)
}

func found(ctx context.Context, policy federation.Policy, withKey bool, cfgs []centre.Config) (charter []byte, err error) {
	if len(cfgs) == 0 {
		return nil, errors.New("found: no centres")
	}
	var reqs [][]byte
	for _, cfg := range cfgs[1:] {
		req, err := Request(ctx, cfg)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, req)
	}
	var key federation.OPRFKey
	if withKey && len(cfgs) > 1 { // alone, a founder would hold the whole key: no pseudonyms
		if key, err = foundingKey(ctx, policy.OPRFThreshold, cfgs); err != nil {
			return nil, err
		}
	}
	if err := Offline(ctx, cfgs[0], func(c *centre.Centre) (err error) {
		charter, _, err = c.Found(centre.Founding{Listen: cfgs[0].P2P.Listen, Requests: reqs, Policy: policy, Key: key})
		return err
	}); err != nil {
		return nil, err
	}
	for _, cfg := range cfgs[1:] {
		if err := Offline(ctx, cfg, func(c *centre.Centre) (err error) {
			charter, err = c.SignCharter(charter, nil)
			return err
		}); err != nil {
			return nil, err
		}
	}
	for _, cfg := range cfgs {
		if err := Offline(ctx, cfg, func(c *centre.Centre) error {
			_, err := c.InstallFounding(ctx, charter, nil)
			return err
		}); err != nil {
			return nil, err
		}
	}
	return charter, nil
}

// foundingKey opens every founder's centre at once and has them generate
// the pseudonym key together.
func foundingKey(ctx context.Context, threshold int, cfgs []centre.Config) (key federation.OPRFKey, err error) {
	var founders []*centre.Centre
	defer func() {
		for _, c := range founders {
			err = errors.Join(err, c.Close())
		}
	}()
	for _, cfg := range cfgs {
		c, err := centre.Open(ctx, cfg, nil)
		if err != nil {
			return key, err
		}
		founders = append(founders, c)
	}
	return centre.GenerateFoundingKey(cfgs[0].Federation.ID, threshold, founders)
}

// Node is a centre's node serving in the background.
type Node struct {
	*centre.Node
	stop func() error
}

// Start starts the node of cfg with its admin socket, as medfed node
// does; it serves until ctx ends or Stop.
func Start(ctx context.Context, cfg centre.Config) (*Node, error) {
	n, err := centre.Start(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	// The socket serves the API's reads as medfed node's does, with the
	// staff store of the data directory.
	staff, err := api.OpenStaff(cfg.Data.Dir, n.Centre.RowKey(api.StaffFile))
	if err != nil {
		return nil, errors.Join(err, n.Close())
	}
	srv, err := api.New(api.Options{Node: n, Staff: staff})
	if err != nil {
		return nil, errors.Join(err, staff.Close(), n.Close())
	}
	ln, err := admin.Listen(cfg.Data.Dir)
	if err != nil {
		return nil, errors.Join(err, staff.Close(), n.Close())
	}
	ctx, cancel := context.WithCancel(ctx)
	adminCtx, stopAdmin := context.WithCancel(ctx)
	done, served := make(chan error, 1), make(chan error, 1)
	go func() { served <- admin.New(n, srv.Operator(), nil).Serve(adminCtx, ln) }()
	go func() { done <- n.Run(ctx) }()
	return &Node{Node: n, stop: sync.OnceValue(func() error {
		stopAdmin()
		err := <-served
		cancel()
		return errors.Join(err, <-done, staff.Close())
	})}, nil
}

// Stop stops the node and returns how its serving ended; a second Stop
// returns the same.
func (n *Node) Stop() error { return n.stop() }

// Addr is the node's first listen address with its peer ID, where a
// centre joining the federation fetches the charter from it.
func (n *Node) Addr() string {
	return fmt.Sprintf("%s/p2p/%s", n.Host.Addrs()[0], n.Centre.ID())
}

// Nodes are nodes serving in the background, stopped together.
type Nodes []*Node

// Stop stops every node (one stopped before is left as it is).
func (ns Nodes) Stop() error {
	var errs []error
	for _, n := range ns {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}

// Connected waits up to within until every node is connected to every
// other.
func (ns Nodes) Connected(ctx context.Context, within time.Duration) error {
	return WaitFor(ctx, within, "the centres connect", func() bool {
		for _, n := range ns {
			if len(n.Host.Network().Peers()) < len(ns)-1 {
				return false
			}
		}
		return true
	})
}

// StartAll starts the nodes of cfgs and waits up to ten seconds until
// they are connected to each other. On an error it stops those it
// started.
func StartAll(ctx context.Context, cfgs ...centre.Config) (Nodes, error) {
	var nodes Nodes
	for _, cfg := range cfgs {
		n, err := Start(ctx, cfg)
		if err != nil {
			return nil, errors.Join(err, nodes.Stop())
		}
		nodes = append(nodes, n)
	}
	if err := nodes.Connected(ctx, 10*time.Second); err != nil {
		return nil, errors.Join(err, nodes.Stop())
	}
	return nodes, nil
}

// Admit has the running members approve the join request of cfg's
// centre, as many of them as the next charter version needs, in order;
// the centre then joins through the first of them and starts.
func Admit(ctx context.Context, cfg centre.Config, members ...*Node) (*Node, error) {
	req, err := Request(ctx, cfg)
	if err != nil {
		return nil, err
	}
	want := members[0].Membership.Current().Version + 1
	ms := make([]*federation.Membership, len(members))
	for i, m := range members {
		ms[i] = m.Membership
	}
	if err := ApproveAdmission(ctx, req, want, ms...); err != nil {
		return nil, err
	}
	if err := WaitFor(ctx, 10*time.Second, "the members adopt the version that admits "+cfg.Centre.Name, func() bool {
		for _, m := range members {
			if m.Membership.Current().Version != want {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	if _, err := centre.Join(ctx, cfg, members[0].Addr()); err != nil {
		return nil, err
	}
	return Start(ctx, cfg)
}

// ApproveAdmission has each of ms approve the join request req in turn,
// until the one to approve next has adopted version want, the version
// that admits the centre. The quorum may be reached, and the version
// adopted there, between that check and its approval: the approval is
// then refused, and the admission is done.
func ApproveAdmission(ctx context.Context, req []byte, want uint64, ms ...*federation.Membership) error {
	for _, m := range ms {
		if m.Current().Version == want {
			return nil
		}
		if _, err := m.Approve(ctx, req); err != nil && m.Current().Version != want {
			return err
		}
	}
	return nil
}

// WaitFor polls ok every 50 ms until it holds, for up to within; what
// says what it waits for, in the error when it does not come.
func WaitFor(ctx context.Context, within time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %s", within, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// ClinicLetter is the i-th synthetic clinic letter written at the centre
// named centreName: its ledger metadata and its payload.
func ClinicLetter(centreName string, i int) (ledger.Record, []byte) {
	var author ledger.StaffID
	copy(author[:], "demo-clinician-"+strings.TrimPrefix(centreName, "centre-"))
	meta := ledger.Record{
		Occurred:  time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour),
		DataClass: "clinic-letter",
		Author:    author,
		Location:  "outpatients",
	}
	return meta, []byte("Seen in clinic; plan agreed.")
}

// Visit records the i-th synthetic clinic letter (ClinicLetter) about
// patient p at c.
func Visit(ctx context.Context, c *centre.Centre, p ledger.Pseudonym, i int) error {
	meta, payload := ClinicLetter(c.Name, i)
	_, err := c.AddRecord(ctx, p, meta, payload)
	return err
}

// SyntheticRecord returns a record entry about a random pseudonym, with a
// random author, payload and commitment, as the bench's ledger suite and
// `medfed ledger soak` append. Its time and index are left for the ledger to
// assign.
func SyntheticRecord() (ledger.Entry, error) {
	var p ledger.Pseudonym
	r := ledger.Record{Occurred: time.Now(), DataClass: "synthetic", Location: "soak"}
	for _, b := range [][]byte{p[:], r.Author[:], r.Payload[:], r.Commitment[:]} {
		if _, err := rand.Read(b); err != nil {
			return ledger.Entry{}, err
		}
	}
	return ledger.NewRecord(p, r)
}
