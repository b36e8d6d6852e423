// Package bench measures medfed against its baselines: the suites behind
// `medfed bench`, and the report that sets each metric beside the baseline
// and the central floor measured in the same run, with its target.
//
// It lives beside the command rather than in it, as load tools do: the
// command parses flags and prints, this package founds and starts
// federations of real centres (through node/nodetest/harness, the one
// way medfed founds a federation outside production), drives them and
// reports. The memory suite still runs `medfed node` as a process of its
// own: the binary it measures is the one running the bench.
package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// federationID is the federation the suites found.
const federationID = "medfed-bench"

// A suite measures one part of medfed. It returns metric -> number; every
// metric that has a baseline is measured beside it in the same run,
// because the machine is shared and its speed varies from run to run.
type suite struct {
	name  string
	about string
	run   func(ctx context.Context, env env) (map[string]float64, error)
	// named: the suite runs only when asked for by name, not in a run of
	// all suites (it takes minutes even at its quick sizes).
	named bool
}

type env struct {
	quick    bool      // smaller sizes: all suites together in under two minutes
	dir      string    // scratch space, removed afterwards
	progress io.Writer // what is happening, for a human watching
}

func (e env) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "bench: "+format+"\n", args...)
}

// pick returns full or quick by the run's size.
func (e env) pick(full, quick int) int {
	if e.quick {
		return quick
	}
	return full
}

// suites lists every suite; later capabilities add theirs here.
var suites = []suite{
	{"ledger", "durable appends (group commit vs one per transaction), offline verify, inclusion proofs", measureLedger, false},
	{"witness", "time from a durable append to a final (witness-cosigned) checkpoint, 5 centres", measureWitness, false},
	{"pseudonym", "pseudonyms per second for a batch, key shared 2 of 3, vs one whole key in one process", measurePseudonyms, false},
	{"directory", "directory announce (placed, grouped by replica, vs per-key provide, 10 centres) and one-hop lookups (20 centres)", measureDirectory, false},
	{"consent", "consent decisions per second on one core (10 nested provisions); revocation until in effect at 3 holders", measureConsent, false},
	{"query", "cross-centre queries, patient at 3 of 10 centres: latency one at a time, throughput with 32 in flight; the same on one central SQLite index", measureQuery, false},
	{"memory", "resident memory of a `medfed node` process holding 1M patients in its ledger and the directory, beside the same centre empty", measureMemory, false},
	{"cores", "the throughput metrics again at GOMAXPROCS 1, 2 and every core, at their quick sizes: the speed-up", measureCores, false},
	{"scale", "federations of 10 to 1,000 simulated centres on mocknet with WAN latencies: messages, bytes and latency per operation, each centre's load at rest, memory and disk, a country's directory (run only when named)", measureScale, true},
}

// Names lists the suites' names, in the order they run.
func Names() []string {
	names := make([]string, len(suites))
	for i, s := range suites {
		names[i] = s.name
	}
	return names
}

// ErrNoSuite is the error of a suite name that Names does not list; its
// kind is invalid, and the command takes it for a usage error.
var ErrNoSuite = node.E(node.Invalid, "bench: no suite")

// Options are what a run measures and how.
type Options struct {
	Suites   []string  // the suites to run, by name; none: all
	Quick    bool      // smaller sizes, for a quick look
	Progress io.Writer // where each suite says what it does; nil: nowhere
}

// Run runs the suites opts names, in a scratch directory it removes
// afterwards, and returns their report. A name no suite has fails the run
// before anything is measured, with ErrNoSuite. The memory suite runs
// `medfed node` from the running executable, which must be medfed.
func Run(ctx context.Context, opts Options) (Report, error) {
	run, err := selectSuites(opts.Suites)
	if err != nil {
		return Report{}, err
	}
	dir, err := os.MkdirTemp("", "medfed-bench-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)
	e := env{quick: opts.Quick, dir: dir, progress: opts.Progress}
	if e.progress == nil {
		e.progress = io.Discard
	}
	results := map[string]float64{}
	for _, s := range run {
		e.logf("suite %s: %s", s.name, s.about)
		m, err := runSuite(ctx, e, s)
		if err != nil {
			return Report{}, fmt.Errorf("bench %s: %w", s.name, err)
		}
		for k, v := range m {
			results[k] = v
		}
	}
	r := newReport(results, opts.Quick)
	// The scale suite's figures are laid out by size (PrintScale), not
	// as rows of the main table; the report's metrics keep them all.
	r.Rows = slices.DeleteFunc(r.Rows, func(row Row) bool { return isScaleMetric(row.Metric) })
	return r, nil
}

// runSuite runs s in a scratch directory of its own, which it removes
// afterwards, and then has the system write back what it has not
// written: so that no suite's files are written back while the next
// suite measures, whose durable writes would wait behind them.
func runSuite(ctx context.Context, e env, s suite) (map[string]float64, error) {
	e.dir = filepath.Join(e.dir, s.name)
	if err := os.Mkdir(e.dir, 0o700); err != nil {
		return nil, err
	}
	m, err := s.run(ctx, e)
	if err := errors.Join(err, os.RemoveAll(e.dir)); err != nil {
		return nil, err
	}
	syscall.Sync()
	return m, nil
}

func selectSuites(names []string) ([]suite, error) {
	if len(names) == 0 {
		return slices.DeleteFunc(slices.Clone(suites), func(s suite) bool { return s.named }), nil
	}
	var out []suite
	for _, a := range names {
		i := slices.IndexFunc(suites, func(s suite) bool { return s.name == a })
		if i < 0 {
			return nil, fmt.Errorf("%w %q", ErrNoSuite, a)
		}
		out = append(out, suites[i])
	}
	return out, nil
}

// inParallel calls f(worker, i) for every i in [0, n), from the given
// number of workers at once, each taking the next i when it is done with
// one. It stops at the first error and returns it.
func inParallel(workers, n int, f func(worker, i int) error) error {
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
	)
	for w := range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n) && !failed.Load(); i = next.Add(1) - 1 {
				if err := f(w, int(i)); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// startFederation founds a federation of the first founders of size
// centres under root, admits the rest one by one, connects every centre to
// every other and waits until each holds them all in its routing table.
// Its centres start checkpoints at least gap apart: an hour keeps
// checkpoints and cosignatures out of the timings of a suite that does
// not need them final. The nodes it returns are those it started, also
// with an error: the caller stops them.
func startFederation(ctx context.Context, root string, founders, size int, gap time.Duration) (nodes harness.Nodes, err error) {
	cfgs := make([]centre.Config, size)
	for i := range cfgs {
		if cfgs[i], err = harness.Config(root, fmt.Sprintf("centre-%02d", i), federationID); err != nil {
			return nil, err
		}
		cfgs[i].Ledger.CheckpointGap = gap
		cfgs[i].Ledger.CheckpointInterval = max(cfgs[i].Ledger.CheckpointInterval, gap)
	}
	if _, err := harness.Found(ctx, federation.DefaultPolicy(founders), cfgs[:founders]...); err != nil {
		return nil, err
	}
	for _, cfg := range cfgs[:founders] {
		r, err := harness.Start(ctx, cfg)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, r)
	}
	for _, cfg := range cfgs[founders:] {
		r, err := harness.Admit(ctx, cfg, nodes...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, r)
	}
	// A centre dials the members closest to it at start (those that were
	// not up yet are in its dial backoff) and the others when it first
	// asks them something; the suites measure a federation whose centres
	// have all met.
	dial := network.WithForceDirectDial(ctx, "bench: every centre meets every other")
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.Host.Connect(dial, peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
				return nodes, fmt.Errorf("%s connecting to %s: %w", a.Centre.Name, b.Centre.Name, err)
			}
		}
	}
	if err := nodes.Connected(ctx, time.Minute); err != nil {
		return nodes, err
	}
	return nodes, harness.WaitFor(ctx, time.Minute, "every routing table holds every other member", func() bool {
		for _, r := range nodes {
			if r.Directory.RoutingTableSize() != size-1 {
				return false
			}
		}
		return true
	})
}

// randomPseudonyms returns n random pseudonyms.
func randomPseudonyms(n int) []ledger.Pseudonym {
	ps := make([]ledger.Pseudonym, n)
	for i := range ps {
		rand.Read(ps[i][:])
	}
	return ps
}

// percentileMillis returns the q quantile of ds (nearest rank) in
// milliseconds.
func percentileMillis(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(max(int(math.Ceil(float64(len(s))*q))-1, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// now is the time as consent documents carry it: UTC, to the second.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
