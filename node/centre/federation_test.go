package centre_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

func freePort(t *testing.T) int { return nodetest.FreePort(t) }

func centreConfig(t *testing.T, root, name string) centre.Config {
	return nodetest.Config(t, root, name)
}

func offline(t *testing.T, cfg centre.Config, f func(*centre.Centre)) { nodetest.Offline(t, cfg, f) }

func request(t *testing.T, cfg centre.Config) []byte { return nodetest.Request(t, cfg) }

// found has the first config's centre found a federation with the others.
func found(t *testing.T, cfgs ...centre.Config) { nodetest.Found(t, cfgs...) }

func start(t *testing.T, cfg centre.Config) *centre.Node { return nodetest.Start(t, cfg) }

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	nodetest.Eventually(t, within, what, ok)
}

func connected(a, b *centre.Node) bool {
	return a.Host.Network().Connectedness(b.Centre.ID()) == network.Connected
}

func TestFoundJoinAndRemove(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	ca, cb, cc := centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")
	found(t, ca, cb, cc)
	a, b, c := start(t, ca), start(t, cb), start(t, cc)
	all := []*centre.Node{a, b, c}
	eventually(t, 10*time.Second, "the founders connect", func() bool {
		return connected(a, b) && connected(b, c) && connected(a, c)
	})

	// centre-d asks to join; one approval is not a quorum of 2.
	cd := centreConfig(t, root, "centre-d")
	req := request(t, cd)
	p, err := a.Membership.Approve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if p.Adopted || p.Approvals != 1 || p.Quorum != 2 {
		t.Fatalf("after one approval: %+v", p)
	}
	if _, err := centre.Join(ctx, cd, addrOf(a)); err == nil {
		t.Fatal("centre-d fetched the charter before it was admitted")
	}
	// Approvals meet wherever they arrive: b sees a's (offered to every
	// member) either before or after its own.
	if _, err := b.Membership.Approve(ctx, req); err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		eventually(t, 5*time.Second, n.Centre.Name+" adopts version 2", func() bool { return n.Membership.Current().Version == 2 })
	}
	s, err := centre.Join(ctx, cd, addrOf(a))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || len(s.Members) != 4 {
		t.Fatalf("joined charter version %d with %d members", s.Version, len(s.Members))
	}
	d := start(t, cd)
	eventually(t, 10*time.Second, "centre-d reaches every other centre", func() bool {
		return connected(d, a) && connected(d, b) && connected(d, c)
	})

	// centre-c is removed: disconnected within 5 s, refused afterwards.
	if _, err := a.Membership.Remove(ctx, "centre-c"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Membership.Remove(ctx, "centre-c"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*centre.Node{a, b, d} {
		eventually(t, 5*time.Second, n.Centre.Name+" adopts version 3", func() bool { return n.Membership.Current().Version == 3 })
	}
	eventually(t, 5*time.Second, "centre-c is disconnected from every member", func() bool {
		return !connected(a, c) && !connected(b, c) && !connected(d, c)
	})
	if err := c.Host.Connect(ctx, peer.AddrInfo{ID: a.Centre.ID(), Addrs: a.Host.Addrs()}); err == nil && connected(a, c) {
		t.Fatal("a removed centre reconnected")
	}
	time.Sleep(3 * time.Second) // centre-c's node keeps trying
	for _, n := range []*centre.Node{a, b, d} {
		if connected(n, c) {
			t.Fatalf("%s let the removed centre back in", n.Centre.Name)
		}
	}
}

func addrOf(n *centre.Node) string {
	return fmt.Sprintf("%s/p2p/%s", n.Host.Addrs()[0], n.Centre.ID())
}

// The admin socket lives in the data directory, or somewhere short when the
// directory's path is too long for a socket address; the client finds it
// either way, and bad requests are refused.
func TestAdminSocketOnShortAndLongPaths(t *testing.T) {
	for _, tt := range []struct{ name, sub string }{
		{"short path", "d"},
		{"long path", strings.Repeat("long-directory-name-", 6)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := centreConfig(t, filepath.Join(t.TempDir(), tt.sub), "centre-a")
			found(t, cfg)
			start(t, cfg)
			sock := admin.Dial(cfg.Data.Dir)
			st, err := sock.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != 1 || !st.Member || len(st.Members) != 1 {
				t.Fatalf("status %+v", st)
			}
			if _, err := sock.Approve(ctx, []byte("not a join request")); err == nil {
				t.Fatal("a malformed join request was approved")
			}
			if _, err := sock.Remove(ctx, "centre-z"); err == nil {
				t.Fatal("removing a centre that is not a member succeeded")
			}
			if st, err := sock.Status(ctx); err != nil || st.Version != 1 {
				t.Fatalf("bad requests changed the charter: %+v, %v", st, err)
			}
		})
	}
	if _, err := admin.Dial(t.TempDir()).Status(context.Background()); !errors.Is(err, admin.ErrNotRunning) {
		t.Fatalf("status of a directory with no node: %v, want ErrNotRunning", err)
	}
}

// A centre's checkpoints become final: cosigned by the other members'
// witnesses, up to the charter's witness quorum.
func TestCheckpointsBecomeFinal(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var cfgs []centre.Config
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		cfg := centreConfig(t, root, name)
		cfg.Ledger.CheckpointInterval = 50 * time.Millisecond
		cfgs = append(cfgs, cfg)
	}
	found(t, cfgs...)
	a, b, c := start(t, cfgs[0]), start(t, cfgs[1]), start(t, cfgs[2])
	eventually(t, 10*time.Second, "the centres connect", func() bool { return connected(a, b) && connected(a, c) })
	for i := range 5 {
		if _, err := a.Centre.AddRecord(ctx, patient, meta("lab-result"), fmt.Appendf(nil, "result %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	size := a.Centre.Ledger.Size()
	var final ledger.SignedCheckpoint
	eventually(t, 10*time.Second, "centre-a's checkpoint becomes final", func() bool {
		var ok bool
		final, ok = a.Centre.Ledger.LatestFinal()
		return ok && final.Size == size
	})
	ch := a.Membership.Current()
	var verifiers []note.Verifier
	for _, m := range ch.Members {
		if m.ID == a.Centre.ID() {
			continue
		}
		v, err := federation.NewCosignatureVerifier(m)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	logV, err := ledger.NewVerifier(a.Centre.Ledger.Origin(), a.Centre.Ledger.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(final.Note, note.VerifierList(append(verifiers, logV)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Sigs) < ch.Policy.WitnessQuorum {
		t.Fatalf("final checkpoint carries %d valid signatures, quorum is %d", len(n.Sigs), ch.Policy.WitnessQuorum)
	}
	st, err := admin.Dial(cfgs[0].Data.Dir).LedgerStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Final == nil || st.Final.Size < size || len(st.Final.Cosigners) < ch.Policy.WitnessQuorum-1 || len(st.Evidence) != 0 {
		t.Fatalf("ledger status %+v", st)
	}
}
