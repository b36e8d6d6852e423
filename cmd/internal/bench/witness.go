package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// measureWitness measures finality: the time from a durable append to a
// final checkpoint (cosigned by the witness quorum) that covers it, in a
// federation of five centres on 127.0.0.1 at the default configuration: a
// centre signs a checkpoint as soon as its ledger grows, one at a time.
func measureWitness(ctx context.Context, env env) (map[string]float64, error) {
	interval := centre.DefaultConfig().Ledger.CheckpointInterval
	lat, err := finality(ctx, filepath.Join(env.dir, "witness"), interval, env.pick(40, 6))
	if err != nil {
		return nil, err
	}
	p50, p99 := percentileMillis(lat, 0.50), percentileMillis(lat, 0.99)
	env.logf("witness: %d appends: finality p50 %.1f ms, p99 %.1f ms", len(lat), p50, p99)
	return map[string]float64{"finality_p50_ms": p50, "finality_p99_ms": p99}, nil
}

// finality runs five centres with the given checkpoint interval; in each
// round, every centre appends one record at a random moment within an
// interval (as clinical traffic arrives) and waits until a final checkpoint
// covers it.
func finality(ctx context.Context, root string, interval time.Duration, rounds int) ([]time.Duration, error) {
	var cfgs []centre.Config
	for i := range 5 {
		cfg, err := harness.Config(root, fmt.Sprintf("centre-%c", 'a'+i), federationID)
		if err != nil {
			return nil, err
		}
		cfg.Ledger.CheckpointInterval = interval
		cfgs = append(cfgs, cfg)
	}
	if _, err := harness.Found(ctx, federation.DefaultPolicy(len(cfgs)), cfgs...); err != nil {
		return nil, err
	}
	nodes, err := harness.StartAll(ctx, cfgs...)
	if err != nil {
		return nil, err
	}
	defer nodes.Stop() // as the run ends; how they stopped is not measured
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	for round := range rounds {
		errs := make(chan error, len(nodes))
		for _, n := range nodes {
			go func() {
				time.Sleep(rand.N(interval))
				d, err := timeToFinal(ctx, n, round)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				errs <- err
			}()
		}
		var err error
		for range nodes {
			err = errors.Join(err, <-errs)
		}
		if err != nil {
			return nil, err
		}
	}
	return lat, nil
}

func timeToFinal(ctx context.Context, n *harness.Node, round int) (time.Duration, error) {
	meta := ledger.Record{Occurred: time.Now(), DataClass: "bench", Location: "witness"}
	idx, err := n.Centre.AddRecord(ctx, ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "medfed bench patient %d", round))), meta, []byte("witness bench"))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if f, ok := n.Centre.Ledger.LatestFinal(); ok && f.Size > idx {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("%s: entry %d not final after 30 s", n.Centre.Name, idx)
}
