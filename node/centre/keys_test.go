package centre_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

// quick are ceremony timeouts for nodes on one machine started at once.
var quick = pseudonym.CeremonyTimeouts{FirstRound: 20 * time.Second, Round: 10 * time.Second}

// ceremony runs op on every node at once, as operators each run the
// command on their own node, and returns each one's result.
func ceremony(t *testing.T, nodes []*centre.Node, op func(*centre.Node) (centre.KeyCeremonyResult, error)) []centre.KeyCeremonyResult {
	t.Helper()
	out := make([]centre.KeyCeremonyResult, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { out[i], errs[i] = op(n) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", nodes[i].Centre.Name, err)
		}
	}
	return out
}

func adopted(t *testing.T, version uint64, nodes ...*centre.Node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, 10*time.Second, n.Centre.Name+" adopts the version with the key", func() bool { return n.Membership.Current().Version == version })
	}
}

// shareFile reads a centre's share file; nil when it has none.
func shareFile(t *testing.T, cfg centre.Config, name string) []byte {
	t.Helper()
	path := filepath.Join(cfg.Data.Dir, name)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %#o, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// samePseudonyms has every node derive the pseudonyms of ids and checks
// they are want (or, with want nil, all alike); it returns them.
func samePseudonyms(t *testing.T, nodes []*centre.Node, ids []pseudonym.Identifier, want []ledger.Pseudonym) []ledger.Pseudonym {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		ps, err := n.Pseudonyms(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", n.Centre.Name, err)
		}
		if want == nil {
			want = ps
		}
		if !slices.Equal(ps, want) {
			t.Fatalf("%s derives other pseudonyms", n.Centre.Name)
		}
	}
	return want
}

// Three centres found a federation without a key, as operators do, and
// generate it together on their running nodes: the version that lists
// it is adopted, each founder's pending share becomes its share, and the
// three derive the same pseudonyms. A fourth joins; the key is reshared
// to a committee of it and two founders, leaving centre-a out: the
// pseudonyms stay, centre-d holds a share, and centre-a's is deleted.
func TestKeygenAndReshareOnRunningNodes(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	nodetest.FoundWithoutKey(t, cfgs...)
	a, b, c := start(t, cfgs[0]), start(t, cfgs[1]), start(t, cfgs[2])
	founders := []*centre.Node{a, b, c}
	eventually(t, 10*time.Second, "the founders connect", func() bool { return connected(a, b) && connected(b, c) && connected(a, c) })
	ids := nhsNumbers(t, 20)
	if _, err := a.Pseudonyms(ctx, ids); !errors.Is(err, centre.ErrNoPseudonymKey) {
		t.Fatalf("pseudonyms before the key: %v, want ErrNoPseudonymKey", err)
	}

	// keygen, by a committee named in any order.
	names := [][]string{{"centre-a", "centre-b", "centre-c"}, {"centre-c", "centre-a", "centre-b"}, {"centre-b", "centre-c", "centre-a"}}
	i := 0
	var mu sync.Mutex
	res := ceremony(t, founders, func(n *centre.Node) (centre.KeyCeremonyResult, error) {
		mu.Lock()
		committee := names[i]
		i++
		mu.Unlock()
		return n.GenerateKey(ctx, centre.KeyCeremony{Committee: committee, Threshold: 2, Timeouts: quick})
	})
	for k, r := range res {
		if r.Progress.Draft != res[0].Progress.Draft || !(r.Approved || r.Progress.Adopted) || r.Index == 0 || len(r.Left) != 0 {
			t.Fatalf("%s: %+v; want the same draft as the others, approved (or adopted first), a share and nobody left out", founders[k].Centre.Name, r)
		}
		if !slices.Equal(r.Holders, []string{"centre-a", "centre-b", "centre-c"}) || r.Threshold != 2 {
			t.Fatalf("%s: holders %v, threshold %d", founders[k].Centre.Name, r.Holders, r.Threshold)
		}
	}
	adopted(t, 2, founders...)
	ch := a.Membership.Current()
	if !ch.OPRF.Dealt() || len(ch.OPRF.Shares) != 3 || ch.Policy.OPRFThreshold != 2 {
		t.Fatalf("version 2 lists %d shares at threshold %d", len(ch.OPRF.Shares), ch.Policy.OPRFThreshold)
	}
	firstShares := map[string][]byte{}
	for _, cfg := range cfgs {
		eventually(t, 5*time.Second, cfg.Centre.Name+" installs its share", func() bool {
			return shareFile(t, cfg, centre.PendingShareFile) == nil && shareFile(t, cfg, centre.ShareFile) != nil
		})
		firstShares[cfg.Centre.Name] = shareFile(t, cfg, centre.ShareFile)
	}
	want := samePseudonyms(t, founders, ids, nil)

	// A key is not generated twice.
	if _, err := a.GenerateKey(ctx, centre.KeyCeremony{Committee: names[0], Timeouts: quick}); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("keygen with a key in the charter: %v, want a conflict", err)
	}

	// centre-d joins, and the key moves to centre-b, centre-c and
	// centre-d, 2 of 3: the holders deal, centre-d receives.
	cd := centreConfig(t, root, "centre-d")
	hd, err := harness.Admit(ctx, cd, &harness.Node{Node: a}, &harness.Node{Node: b}, &harness.Node{Node: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hd.Stop() })
	d := hd.Node
	all := []*centre.Node{a, b, c, d}
	eventually(t, 10*time.Second, "centre-d reaches the others", func() bool { return connected(d, a) && connected(d, b) && connected(d, c) })
	if _, err := d.GenerateKey(ctx, centre.KeyCeremony{Committee: []string{"centre-d", "centre-a"}, Timeouts: quick}); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("keygen by the newcomer: %v, want a conflict", err)
	}
	res = ceremony(t, all, func(n *centre.Node) (centre.KeyCeremonyResult, error) {
		return n.ReshareKey(ctx, centre.KeyCeremony{Committee: []string{"centre-b", "centre-c", "centre-d"}, Threshold: 2, Timeouts: quick})
	})
	for k, r := range res {
		if r.Progress.Draft != res[0].Progress.Draft || (r.Index == 0) != (k == 0) {
			t.Fatalf("%s: %+v; want the same draft as the others, a share for every centre but centre-a", all[k].Centre.Name, r)
		}
	}
	adopted(t, 4, all...)
	ch = d.Membership.Current()
	if _, ok := ch.OPRF.Holder(a.Centre.ID()); ok || len(ch.OPRF.Shares) != 3 {
		t.Fatalf("version 4 lists %d shares, centre-a's among them: %v", len(ch.OPRF.Shares), ok)
	}
	eventually(t, 5*time.Second, "centre-a deletes its old share", func() bool { return shareFile(t, cfgs[0], centre.ShareFile) == nil })
	for _, cfg := range []centre.Config{cfgs[1], cfgs[2], cd} {
		eventually(t, 5*time.Second, cfg.Centre.Name+" installs its new share", func() bool {
			s := shareFile(t, cfg, centre.ShareFile)
			return shareFile(t, cfg, centre.PendingShareFile) == nil && s != nil && !bytes.Equal(s, firstShares[cfg.Centre.Name])
		})
	}
	samePseudonyms(t, all, ids, want)

	// The new holders evaluate with their new shares: with centre-b down,
	// centre-c and centre-d are the two needed, and centre-a, holding
	// nothing now, still gets the same pseudonyms.
	b.Close()
	samePseudonyms(t, []*centre.Node{a, c, d}, ids, want)
}

// A centre outside the committee does not generate the key, and a
// committee naming a stranger or too high a threshold is refused before
// anything is sent.
func TestKeygenRefuses(t *testing.T) {
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	nodetest.FoundWithoutKey(t, cfgs...)
	a := start(t, cfgs[0])
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  centre.KeyCeremony
		want error
	}{
		{name: "not in the committee", req: centre.KeyCeremony{Committee: []string{"centre-b", "centre-c"}}, want: node.ErrInvalid},
		{name: "a stranger", req: centre.KeyCeremony{Committee: []string{"centre-a", "centre-z"}}, want: node.ErrInvalid},
		{name: "named twice", req: centre.KeyCeremony{Committee: []string{"centre-a", "centre-b", "centre-a"}}, want: node.ErrInvalid},
		{name: "threshold above the committee", req: centre.KeyCeremony{Committee: []string{"centre-a", "centre-b"}, Threshold: 3}, want: node.ErrInvalid},
		{name: "threshold of one", req: centre.KeyCeremony{Committee: []string{"centre-a", "centre-b"}, Threshold: 1}, want: node.ErrInvalid},
		{name: "no committee", req: centre.KeyCeremony{}, want: node.ErrInvalid},
		{name: "reshare of no key", req: centre.KeyCeremony{Committee: []string{"centre-a", "centre-b"}}, want: node.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := a.GenerateKey
			if tc.name == "reshare of no key" {
				op = a.ReshareKey
			}
			if _, err := op(ctx, tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
	if v := a.Membership.Current().Version; v != 1 {
		t.Fatalf("the charter moved to version %d", v)
	}
}

// A federation founded by a dealer moves to shares nobody dealt by a
// resharing to the same committee: the pseudonyms stay, every share is
// new, so the dealer's copy, if it kept one, no longer combines with them.
func TestReshareReplacesDealtShares(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b")}
	req := request(t, cfgs[1])
	var draft, shares []byte
	offline(t, cfgs[0], func(c *centre.Centre) {
		var err error
		pol := federation.DefaultPolicy(2)
		if draft, shares, err = c.Found(centre.Founding{Listen: cfgs[0].P2P.Listen, Requests: [][]byte{req}, Policy: pol, Deal: true}); err != nil {
			t.Fatal(err)
		}
	})
	offline(t, cfgs[1], func(c *centre.Centre) {
		var err error
		if draft, err = c.SignCharter(draft, shares); err != nil {
			t.Fatal(err)
		}
	})
	dealt := map[string][]byte{}
	for _, cfg := range cfgs {
		offline(t, cfg, func(c *centre.Centre) {
			if _, err := c.InstallFounding(ctx, draft, shares); err != nil {
				t.Fatal(err)
			}
		})
		dealt[cfg.Centre.Name] = shareFile(t, cfg, centre.ShareFile)
	}
	a, b := start(t, cfgs[0]), start(t, cfgs[1])
	nodes := []*centre.Node{a, b}
	eventually(t, 10*time.Second, "the founders connect", func() bool { return connected(a, b) })
	ids := nhsNumbers(t, 10)
	want := samePseudonyms(t, nodes, ids, nil)
	ceremony(t, nodes, func(n *centre.Node) (centre.KeyCeremonyResult, error) {
		return n.ReshareKey(ctx, centre.KeyCeremony{Committee: []string{"centre-a", "centre-b"}, Threshold: 2, Timeouts: quick})
	})
	adopted(t, 2, nodes...)
	for _, cfg := range cfgs {
		eventually(t, 5*time.Second, cfg.Centre.Name+" installs its new share", func() bool {
			s := shareFile(t, cfg, centre.ShareFile)
			return s != nil && !bytes.Equal(s, dealt[cfg.Centre.Name])
		})
	}
	samePseudonyms(t, nodes, ids, want)
}

// A centre that was down when the version listing its new share was
// adopted installs the pending share when it starts, after checking it
// against the charter; a pending share that does not fit the key is
// refused, and the centre does not start on it.
func TestPendingShareInstalledAtStart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b")}
	nodetest.FoundWithoutKey(t, cfgs...)
	a := start(t, cfgs[0])
	hb, err := harness.Start(ctx, cfgs[1])
	if err != nil {
		t.Fatal(err)
	}
	b := hb.Node
	eventually(t, 10*time.Second, "the founders connect", func() bool { return connected(a, b) })
	ceremony(t, []*centre.Node{a, b}, func(n *centre.Node) (centre.KeyCeremonyResult, error) {
		return n.GenerateKey(ctx, centre.KeyCeremony{Committee: []string{"centre-a", "centre-b"}, Timeouts: quick})
	})
	adopted(t, 2, a, b)
	ids := nhsNumbers(t, 5)
	want := samePseudonyms(t, []*centre.Node{a, b}, ids, nil)
	if err := hb.Stop(); err != nil {
		t.Fatal(err)
	}
	// As if centre-b had stopped before the version came: its share is
	// still pending.
	share := filepath.Join(cfgs[1].Data.Dir, centre.ShareFile)
	pending := filepath.Join(cfgs[1].Data.Dir, centre.PendingShareFile)
	good, err := os.ReadFile(share)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(share); err != nil {
		t.Fatal(err)
	}
	// Another centre's share does not pass for its own.
	other, err := os.ReadFile(filepath.Join(cfgs[0].Data.Dir, centre.ShareFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pending, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := centre.Start(ctx, cfgs[1], nil); err == nil {
		t.Fatal("centre-b started on centre-a's share")
	}
	if err := os.WriteFile(pending, good, 0o600); err != nil {
		t.Fatal(err)
	}
	b = start(t, cfgs[1])
	if shareFile(t, cfgs[1], centre.PendingShareFile) != nil || !bytes.Equal(shareFile(t, cfgs[1], centre.ShareFile), good) {
		t.Fatal("centre-b did not install its pending share at start")
	}
	eventually(t, 10*time.Second, "the founders reconnect", func() bool { return connected(a, b) })
	samePseudonyms(t, []*centre.Node{a, b}, ids, want)
}

// A member of the committee that does not take part is waited for in the
// first round only; the others generate the key without it, and the
// charter lists the holders that have a share: centre-c, which took no
// part, holds none, and asks the two that do.
func TestKeygenGoesOnWithoutAnAbsentMember(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	nodetest.FoundWithoutKey(t, cfgs...)
	a, b, c := start(t, cfgs[0]), start(t, cfgs[1]), start(t, cfgs[2])
	eventually(t, 10*time.Second, "the founders connect", func() bool { return connected(a, b) && connected(b, c) && connected(a, c) })
	wait := pseudonym.CeremonyTimeouts{FirstRound: 2 * time.Second, Round: 10 * time.Second}
	res := ceremony(t, []*centre.Node{a, b}, func(n *centre.Node) (centre.KeyCeremonyResult, error) {
		return n.GenerateKey(ctx, centre.KeyCeremony{Committee: []string{"centre-a", "centre-b", "centre-c"}, Threshold: 2, Timeouts: wait})
	})
	for _, r := range res {
		if !slices.Equal(r.Holders, []string{"centre-a", "centre-b"}) || !slices.Equal(r.Left, []string{"centre-c"}) {
			t.Fatalf("holders %v, left out %v; want centre-a and centre-b, and centre-c left out", r.Holders, r.Left)
		}
	}
	adopted(t, 2, a, b, c)
	if _, ok := c.Membership.Current().OPRF.Holder(c.Centre.ID()); ok {
		t.Fatal("the charter lists a share for the absent centre-c")
	}
	samePseudonyms(t, []*centre.Node{a, b, c}, nhsNumbers(t, 5), nil)
	if shareFile(t, cfgs[2], centre.ShareFile) != nil {
		t.Fatal("centre-c holds a share")
	}
}
