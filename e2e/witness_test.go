package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// A witness, a real medfed process, is killed with SIGKILL again and again
// while centre-a publishes checkpoints every 50 ms; restarted each time, it
// never holds or cosigns a checkpoint inconsistent with centre-a's ledger,
// and it still refuses a conflicting one afterwards.
func TestAWitnessKilledMidUpdateNeverCosignsTwoHistories(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	root := t.TempDir()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	file := func(name string) string { return filepath.Join(root, name) }
	for _, x := range []*centre{b, c} {
		x.run("federation", "request", "--out", file(x.name+"-request.txt"))
	}
	a.run("federation", "init", "--member", file("centre-b-request.txt"), "--member", file("centre-c-request.txt"), "--out", file("charter.txt"))
	b.run("federation", "sign", file("charter.txt"))
	c.run("federation", "sign", file("charter.txt"))
	for _, x := range []*centre{a, b, c} {
		x.run("federation", "install", file("charter.txt"))
	}

	// centre-a runs in this process, so the test can append to its ledger.
	cfg := node.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = "centre-a", "medfed-demo", a.dir
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4101"}
	cfg.Ledger.CheckpointInterval = 50 * time.Millisecond
	la, err := node.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopA := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- la.Run(runCtx) }()
	b.start()
	c.start()

	var wg sync.WaitGroup
	appendCtx, stopAppends := context.WithCancel(ctx)
	wg.Add(1)
	go func() { // clinical traffic at centre-a
		defer wg.Done()
		for i := 0; appendCtx.Err() == nil; i++ {
			p := ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "patient %d", i%50)))
			meta := ledger.Record{Occurred: time.Now(), DataClass: "lab-result"}
			if _, err := la.Centre.AddRecord(ctx, p, meta, []byte("result")); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for round := range 4 {
		time.Sleep(time.Duration(300+200*round) * time.Millisecond)
		if err := b.node.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		b.node.Wait()
		b.start()
	}
	time.Sleep(time.Second)
	stopAppends()
	wg.Wait()

	size := la.Centre.Ledger.Size()
	waitFor(t, 15*time.Second, "centre-a's latest checkpoint becomes final", func() bool {
		f, ok := la.Centre.Ledger.LatestFinal()
		return ok && f.Size == size
	})
	head := la.Centre.Ledger.Head()
	b.stop()

	// What the killed witness holds of centre-a's log is a prefix of it.
	held := witnessedBy(t, b, "medfed/medfed-demo/centre-a")
	if held.Blocked {
		t.Fatal("the witness blocked an honest log")
	}
	proof, err := la.Centre.Ledger.ProveConsistency(ctx, held.Size, head.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(ledger.Checkpoint{Origin: head.Origin, Size: held.Size, Root: held.Root}, head, proof); err != nil {
		t.Fatalf("the witness holds size %d, inconsistent with centre-a's ledger: %v", held.Size, err)
	}
	t.Logf("witness held size %d of %d after 4 SIGKILLs", held.Size, head.Size)

	// Restarted, it refuses a history that conflicts with what it held.
	b.start()
	waitFor(t, 15*time.Second, "the witness is back", func() bool {
		return la.Host.Network().Connectedness(idOf(t, b)) == network.Connected
	})
	rogueDir := t.TempDir()
	rogue, err := ledger.Open(ctx, filepath.Join(rogueDir, "ledger.db"), ledger.Options{Origin: head.Origin, Key: la.Centre.Key()})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	for i := int64(0); i < held.Size; i++ {
		if _, err := rogue.Append(ctx, ledger.Entry{Kind: ledger.KindCharter, Body: fmt.Appendf(nil, "forged %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	forged, err := rogue.Sign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = federation.RequestCosignature(ctx, la.Host, idOf(t, b), federation.AddRequest{OldSize: held.Size, Note: forged.Note})
	if !errors.Is(err, federation.ErrLogBlocked) {
		t.Fatalf("a conflicting checkpoint after the restarts: %v, want a refusal", err)
	}
	stopA()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.stop()
	c.stop()
	if ev := witnessedBy(t, c, "medfed/medfed-demo/centre-a"); ev.Blocked {
		t.Fatal("centre-c blocked an honest log")
	}
}

// openStopped opens the data directory of centre x, whose node is not
// running, in this process; the caller closes it.
func openStopped(t *testing.T, x *centre) *node.Centre {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = x.name, "medfed-demo", x.dir
	c, err := node.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// witnessedBy reads, offline, what centre x holds of a log.
func witnessedBy(t *testing.T, x *centre, origin string) ledger.Witnessed {
	t.Helper()
	c := openStopped(t, x)
	defer c.Close()
	logs, err := c.Ledger.WitnessedLogs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w, ok := logs[origin]
	if !ok {
		t.Fatalf("%s witnessed nothing of %s", x.name, origin)
	}
	return w
}

// idOf derives a centre's peer ID from the key in its data directory.
func idOf(t *testing.T, x *centre) peer.ID {
	t.Helper()
	pub, err := node.PublicKey(x.dir)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
