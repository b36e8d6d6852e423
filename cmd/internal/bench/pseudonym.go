package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/cloudflare/circl/oprf"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

// measurePseudonyms measures pseudonyms per second for one batch in a
// federation of three centres on 127.0.0.1 whose key is shared 2 of 3:
// asked by a founder, which holds a share (itself and one other holder
// evaluate), and by a centre that joined later and holds none (two
// others evaluate). Every evaluation is blinded, proven and checked, and
// counted on the evaluator's ledger. The baseline is circl's RFC 9497
// VOPRF with one whole key in one process on the same batch: what the
// threshold, the proofs per holder and the network cost. The floor is the
// threshold protocol's own group operations for the same batch, in one
// process on every core (pseudonym.Floor): what the network, the framing
// and the evaluators' ledgers cost.
func measurePseudonyms(ctx context.Context, env env) (map[string]float64, error) {
	n := env.pick(100_000, 10_000)
	ids := identifiers(n)
	root := filepath.Join(env.dir, "pseudonym")
	var cfgs []centre.Config
	for _, name := range []string{"centre-a", "centre-b", "centre-c", "centre-d"} {
		cfg, err := harness.Config(root, name, federationID)
		if err != nil {
			return nil, err
		}
		cfg.Pseudonym.RateLimit = 1_000_000_000
		cfgs = append(cfgs, cfg)
	}
	if _, err := harness.Found(ctx, federation.DefaultPolicy(3), cfgs[:3]...); err != nil {
		return nil, err
	}
	var nodes harness.Nodes
	defer func() { nodes.Stop() }() // as the suite ends; how they stopped is not measured
	for _, cfg := range cfgs[:3] {
		r, err := harness.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, r)
	}
	d, err := harness.Admit(ctx, cfgs[3], nodes...)
	if err != nil {
		return nil, err
	}
	nodes = append(nodes, d)
	if err := nodes.Connected(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, run := range []struct {
		metric string
		r      *harness.Node
	}{{"pseudonyms_per_s", nodes[0]}, {"pseudonyms_nonholder_per_s", nodes[3]}} {
		if _, err := run.r.Pseudonyms(ctx, ids[:1000]); err != nil { // warm up the connections
			return nil, err
		}
		start := time.Now()
		if _, err := run.r.Pseudonyms(ctx, ids); err != nil {
			return nil, err
		}
		m[run.metric] = float64(n) / time.Since(start).Seconds()
		env.logf("pseudonym: %s derived %d pseudonyms: %.0f per second", run.r.Centre.Name, n, m[run.metric])
	}
	base, err := singleKeyVOPRF(ids)
	if err != nil {
		return nil, err
	}
	m["pseudonyms_baseline_per_s"] = base
	env.logf("pseudonym: baseline, circl's VOPRF with the whole key in one process: %.0f per second", base)
	if m["pseudonyms_floor_per_s"], err = pseudonym.Floor(n, 1024); err != nil {
		return nil, err
	}
	env.logf("pseudonym: floor, the protocol's group operations alone on every core: %.0f per second", m["pseudonyms_floor_per_s"])
	return m, nil
}

func identifiers(n int) []pseudonym.Identifier {
	ids := make([]pseudonym.Identifier, 0, n)
	for v := 4_000_000_000; len(ids) < n; v++ {
		if id, err := pseudonym.ParseNHS(fmt.Sprint(v)); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// singleKeyVOPRF runs circl's VOPRF client and server on ids in chunks of
// 1024, on every core, and returns evaluations per second.
func singleKeyVOPRF(ids []pseudonym.Identifier) (float64, error) {
	suite := oprf.SuiteRistretto255
	key, err := oprf.GenerateKey(suite, rand.Reader)
	if err != nil {
		return 0, err
	}
	server := oprf.NewVerifiableServer(suite, key)
	client := oprf.NewVerifiableClient(suite, key.Public())
	chunks := make(chan [][]byte)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
	)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Go(func() {
			for in := range chunks {
				fin, req, err := client.Blind(in)
				if err == nil {
					var ev *oprf.Evaluation
					if ev, err = server.Evaluate(req); err == nil {
						_, err = client.Finalize(fin, ev)
					}
				}
				if err != nil {
					mu.Lock()
					firstEr = errors.Join(firstEr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < len(ids); i += 1024 {
		var in [][]byte
		for _, id := range ids[i:min(i+1024, len(ids))] {
			in = append(in, id.Input())
		}
		chunks <- in
	}
	close(chunks)
	wg.Wait()
	return float64(len(ids)) / time.Since(start).Seconds(), firstEr
}
