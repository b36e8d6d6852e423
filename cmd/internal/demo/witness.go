package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

func (d *demo) witnessChapter(ctx context.Context) (err error) {
	d.chapter(3, "witnessed ledgers: nobody rewrites history alone")
	var cfgs []centre.Config
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		cfg := d.cfgs[name]
		cfg.Ledger.CheckpointInterval = 100 * time.Millisecond
		cfgs = append(cfgs, cfg)
	}
	nodes, err := harness.StartAll(ctx, cfgs...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	a, b, c := nodes[0], nodes[1], nodes[2]
	quorum := a.Membership.Current().Policy.WitnessQuorum
	d.say("Every member witnesses the others' ledgers. centre-a checkpoints its ledger")
	d.say("whenever it grew (every 100 ms in this demo, 1 s by default) and asks centre-b")
	d.say("and centre-c to cosign. Each witness cosigns only if a consistency proof shows")
	d.say("the new checkpoint extends the last one it cosigned, and writes that down in the")
	d.say("same transaction. A checkpoint with %d signatures (the witness quorum) is final.", quorum)
	for i := range 3 {
		meta := ledger.Record{Occurred: time.Now(), DataClass: "lab-result", Location: "chemistry"}
		if _, err := a.Centre.AddRecord(ctx, demoPatient(4+i), meta, []byte("U&E within range")); err != nil {
			return err
		}
	}
	size := a.Centre.Ledger.Size()
	var final ledger.SignedCheckpoint
	if err := waitUntil(ctx, "centre-a's checkpoint is final", func() bool {
		f, ok := a.Centre.Ledger.LatestFinal()
		final = f
		return ok && f.Size == size
	}); err != nil {
		return err
	}
	names, err := cosigners(a, final.Note)
	if err != nil {
		return err
	}
	d.say("\ncentre-a records 3 more results; moments later its checkpoint of size %d is", final.Size)
	d.say("final, cosigned by %s:", strings.Join(names, " and "))
	d.say("%s", indent(string(final.Note)))

	// Whoever controls centre-a's key rewrites an old entry and re-signs:
	// every other entry is replayed as it was, with its original time.
	old, err := a.Centre.Ledger.Entries(ctx, 0, size)
	if err != nil {
		return err
	}
	next := 0
	replay := func() time.Time { return old[next].Time }
	dir := filepath.Join(d.scratch, "rewritten")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rogue, err := ledger.Open(ctx, filepath.Join(dir, "ledger.db"), ledger.Options{Origin: a.Centre.Ledger.Origin(), Key: a.Centre.Key(), Now: replay})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rogue.Close()) }()
	for i, e := range old {
		if i == 3 { // the discharge summary, quietly moved to another ward
			r, err := e.Record()
			if err != nil {
				return err
			}
			r.Location = "ward 9"
			if e, err = ledger.NewRecord(e.Subject, r); err != nil {
				return err
			}
		}
		next = i
		if _, err := rogue.Append(ctx, e); err != nil {
			return err
		}
	}
	forged, err := rogue.Sign(ctx)
	if err != nil {
		return err
	}
	d.say("\nNow whoever controls centre-a's key rewrites entry 3 (it moves a discharge to")
	d.say("another ward), rebuilds the tree and signs a checkpoint of the same size. It")
	d.say("offers it to both witnesses:")
	for _, w := range []*harness.Node{b, c} {
		_, err := federation.RequestCosignature(ctx, a.Host, w.Centre.ID(), federation.AddRequest{OldSize: final.Size, Note: forged.Note})
		if !errors.Is(err, federation.ErrLogBlocked) {
			return fmt.Errorf("demo: %s did not refuse the rewritten history: %v", w.Centre.Name, err)
		}
		ev, err := w.Centre.Ledger.Evidence(ctx)
		if err != nil || len(ev) == 0 {
			return fmt.Errorf("demo: %s kept no evidence: %v", w.Centre.Name, err)
		}
		d.say("  %s refuses: %s. It keeps both signed checkpoints as", w.Centre.Name, ev[len(ev)-1].Reason)
		d.say("  evidence and stops witnessing centre-a until an operator acts.")
	}
	witnesses := fmt.Sprintf("%d witnesses", quorum-1)
	if quorum-1 == 1 {
		witnesses = "another witness"
	}
	d.say("To rewrite a final checkpoint, centre-a would need %s to collude.", witnesses)
	return nil
}

// cosigners names the members whose cosignatures on note verify.
func cosigners(n *harness.Node, msg []byte) ([]string, error) {
	var names []string
	for _, m := range n.Membership.Current().Members {
		if m.ID == n.Centre.ID() {
			continue
		}
		v, err := federation.NewCosignatureVerifier(m)
		if err != nil {
			return nil, err
		}
		if _, err := note.Open(msg, note.VerifierList(v)); err == nil {
			names = append(names, m.Name)
		}
	}
	return names, nil
}
