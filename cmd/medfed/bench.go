package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
)

// A benchSuite measures one part of medfed. It returns metric -> number;
// every metric that has a baseline is measured beside it in the same run,
// because the machine is shared and its speed varies from run to run.
type benchSuite struct {
	name  string
	about string
	run   func(ctx context.Context, env benchEnv) (map[string]float64, error)
}

type benchEnv struct {
	quick    bool      // smaller sizes: all suites together in under two minutes
	dir      string    // scratch space, removed afterwards
	progress io.Writer // what is happening, for a human watching
}

func (e benchEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "bench: "+format+"\n", args...)
}

// pick returns full or quick by the run's size.
func (e benchEnv) pick(full, quick int) int {
	if e.quick {
		return quick
	}
	return full
}

// benchSuites lists every suite; later capabilities add theirs here.
var benchSuites = []benchSuite{
	{"ledger", "durable appends (group commit vs one per transaction), offline verify, inclusion proofs", benchLedger},
	{"witness", "time from a durable append to a final (witness-cosigned) checkpoint, 5 centres", benchWitness},
	{"pseudonym", "pseudonyms per second for a batch, key shared 2 of 3, vs one whole key in one process", benchPseudonym},
	{"directory", "directory announce (sweep provider vs per-key provide, 10 centres) and one-hop lookups (20 centres)", benchDirectory},
	{"consent", "consent decisions per second on one core (10 nested provisions); revocation until in effect at 3 holders", benchConsent},
	{"query", "cross-centre queries, patient at 3 of 10 centres: latency one at a time, throughput with 32 in flight; the same on one central SQLite index", benchQuery},
	{"memory", "resident memory of a `medfed node` process holding 1M patients in its ledger and the directory, beside the same centre empty", benchMemory},
}

func newBenchCmd() *cobra.Command {
	var asJSON, quick bool
	names := make([]string, len(benchSuites))
	for i, s := range benchSuites {
		names[i] = s.name
	}
	cmd := &cobra.Command{
		Use:   "bench [--json] [--quick] [SUITE...]",
		Short: "Measure medfed's speed against its baselines",
		Long: "bench runs benchmark suites on this machine, each metric beside its baseline\n" +
			"in the same run. Suites: " + strings.Join(names, ", ") + " (default: all).",
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			suites, err := selectSuites(args)
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "medfed-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			env := benchEnv{quick: quick, dir: dir, progress: cmd.ErrOrStderr()}
			results := map[string]float64{}
			for _, s := range suites {
				env.logf("suite %s: %s", s.name, s.about)
				m, err := s.run(cmd.Context(), env)
				if err != nil {
					return fmt.Errorf("bench %s: %w", s.name, err)
				}
				for k, v := range m {
					results[k] = v
				}
			}
			report := newBenchReport(results, quick)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
			}
			return report.print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.Flags().BoolVar(&quick, "quick", false, "smaller sizes, for a quick look")
	return cmd
}

func selectSuites(args []string) ([]benchSuite, error) {
	if len(args) == 0 {
		return benchSuites, nil
	}
	var out []benchSuite
	for _, a := range args {
		i := slices.IndexFunc(benchSuites, func(s benchSuite) bool { return s.name == a })
		if i < 0 {
			return nil, usagef("bench: no suite %q", a)
		}
		out = append(out, benchSuites[i])
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
