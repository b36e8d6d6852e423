package centre_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/pseudonym"
)

func nhsNumbers(t *testing.T, n int) []pseudonym.Identifier {
	t.Helper()
	var ids []pseudonym.Identifier
	for v := 1000000000; len(ids) < n; v++ {
		id, err := pseudonym.ParseNHS(fmt.Sprint(v))
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// evaluations sums the counts of a centre's evaluation entries, and checks
// each holds a count and a peer ID only.
func evaluations(t *testing.T, n *centre.Node, ids []pseudonym.Identifier) int {
	t.Helper()
	entries, err := n.Centre.Ledger.EntriesOfKind(context.Background(), ledger.KindEvaluation)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range entries {
		v, err := e.Evaluation()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if bytes.Contains(e.Body, []byte(id.Value)) {
				t.Fatalf("an evaluation entry holds identifier %s", id.Value)
			}
		}
		total += int(v.Count)
	}
	return total
}

// Three founders derive the same pseudonym for the same patient; each
// holder's ledger counts what it evaluated for others.
func TestPseudonymsAgreeAcrossCentres(t *testing.T) {
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	found(t, cfgs...)
	for _, cfg := range cfgs {
		fi, err := os.Stat(filepath.Join(cfg.Data.Dir, centre.ShareFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: share file: %v %v", cfg.Centre.Name, fi, err)
		}
	}
	var nodes []*centre.Node
	for _, cfg := range cfgs {
		nodes = append(nodes, start(t, cfg))
	}
	eventually(t, 10*time.Second, "the centres connect", func() bool {
		return connected(nodes[0], nodes[1]) && connected(nodes[0], nodes[2]) && connected(nodes[1], nodes[2])
	})
	ids := nhsNumbers(t, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first []ledger.Pseudonym
	for _, n := range nodes {
		ps, err := n.Pseudonyms(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", n.Centre.Name, err)
		}
		if first == nil {
			first = ps
			continue
		}
		for i := range ps {
			if ps[i] != first[i] {
				t.Fatalf("%s derives another pseudonym for identifier %d", n.Centre.Name, i)
			}
		}
	}
	// Each of the three asked one other holder per identifier.
	total := 0
	for _, n := range nodes {
		total += evaluations(t, n, ids)
	}
	if total != 3*len(ids) {
		t.Fatalf("the ledgers count %d evaluations, want %d", total, 3*len(ids))
	}
}

// A holder's rate limit holds across its restart: it is rebuilt from the
// evaluations its ledger recorded.
func TestRateLimitSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	a, b := centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b")
	b.Pseudonym.RateLimit = 100
	found(t, a, b) // 2 of 2: centre-a asks centre-b for every identifier
	na := start(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nb, err := centre.Start(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- nb.Run(runCtx) }()
	eventually(t, 10*time.Second, "centre-a connects to centre-b", func() bool { return connected(na, nb) })
	if _, err := na.Pseudonyms(ctx, nhsNumbers(t, 80)); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nb = start(t, b)
	eventually(t, 10*time.Second, "centre-a reconnects to centre-b", func() bool { return connected(na, nb) })
	_, err = na.Pseudonyms(ctx, nhsNumbers(t, 40))
	if !errors.Is(err, pseudonym.ErrUnavailable) || !strings.Contains(err.Error(), "rate limit") || !strings.Contains(err.Error(), "centre-b") {
		t.Fatalf("after centre-b's restart, 40 more of its 100: %v, want its rate-limit refusal", err)
	}
	if n := evaluations(t, nb, nil); n != 80 {
		t.Fatalf("centre-b's ledger counts %d evaluations, want 80", n)
	}
}

// A founder that holds a share of a dealt key must install it with the
// charter, and cannot start without it.
func TestHolderNeedsItsShare(t *testing.T) {
	root := t.TempDir()
	a, b := centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b")
	var draft, shares []byte
	req := request(t, b)
	offline(t, a, func(c *centre.Centre) {
		var err error
		if draft, shares, err = c.Found(centre.Founding{Listen: a.P2P.Listen, Requests: [][]byte{req}, Policy: federation.DefaultPolicy(2), Deal: true}); err != nil {
			t.Fatal(err)
		}
	})
	offline(t, b, func(c *centre.Centre) {
		if _, err := c.SignCharter(draft, nil); err == nil || !strings.Contains(err.Error(), "shares file") {
			t.Fatalf("sign without checking the share: %v", err)
		}
		var err error
		if draft, err = c.SignCharter(draft, shares); err != nil {
			t.Fatal(err)
		}
		if _, err := c.InstallFounding(context.Background(), draft, nil); err == nil || !strings.Contains(err.Error(), "shares file") {
			t.Fatalf("install without the shares: %v", err)
		}
		other := bytes.Replace(shares, []byte("federation test-federation"), []byte("federation other"), 1)
		if _, err := c.InstallFounding(context.Background(), draft, other); err == nil {
			t.Fatal("install accepted another federation's shares")
		}
		if _, err := c.InstallFounding(context.Background(), draft, shares); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.Remove(filepath.Join(b.Data.Dir, centre.ShareFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := centre.Start(context.Background(), b, nil); err == nil || !strings.Contains(err.Error(), centre.ShareFile) {
		t.Fatalf("start without the share file: %v", err)
	}
}
