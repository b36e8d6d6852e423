package bench

import (
	"cmp"
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/nodetest"
)

// TestMain runs the suites, federations of real nodes in this process, in
// their turn with the other heavy suites (see nodetest.TakeTurn).
func TestMain(m *testing.M) { os.Exit(nodetest.RunInTurn(m)) }

func TestRunPrintsTheWitnessSuiteAsATable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick witness benchmark")
	}
	r, err := Run(context.Background(), Options{Suites: []string{"witness"}, Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cores", "finality_p50_ms", "≤ 150", "finality_p99_ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesAnUnknownSuiteBeforeMeasuring(t *testing.T) {
	var progress strings.Builder
	_, err := Run(context.Background(), Options{Suites: []string{"ledger", "nosuch"}, Quick: true, Progress: &progress})
	if !errors.Is(err, ErrNoSuite) || err.Error() != `bench: no suite "nosuch"` {
		t.Fatalf("an unknown suite: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("a suite ran before the unknown one was refused: %s", progress.String())
	}
}

// The report puts each metric beside its baseline and the central floor,
// says how many times better it is, and whether it meets its target.
func TestBenchReport(t *testing.T) {
	r := newReport(map[string]float64{
		"ledger_append_per_s": 90_000, "ledger_append_baseline_per_s": 10_000,
		"directory_lookup_p50_ms": 0.5, "directory_lookup_walk_p50_ms": 5, "central_lookup_p50_ms": 0.01,
		"query_per_s": 300, "central_query_per_s": 3_000, "query_floor_per_s": 1_200,
		"query_cpu_ms": 4, "central_query_cpu_ms": 0.5, "query_floor_cpu_ms": 1.6,
		"centre_rss_mib": 500, "centre_empty_rss_mib": 40,
		"pseudonyms_per_s": 12_500, "pseudonyms_floor_per_s": 16_000,
		"cores_query_per_s_1": 200, "cores_query_per_s_2": 300,
		"something_new": 7,
	}, false)
	byName := map[string]Row{}
	for _, row := range r.Rows {
		byName[row.Metric] = row
	}
	if len(r.Cores) != 1 || r.Cores[0].Metric != "query_per_s" || r.Cores[0].SpeedUp != 1.5 {
		t.Errorf("cores: %+v", r.Cores)
	}
	var cores strings.Builder
	if err := r.PrintCores(&cores); err != nil || !strings.Contains(cores.String(), "| `query_per_s` | 200 | 300 | 1.50× |") {
		t.Errorf("the cores table: %v\n%s", err, cores.String())
	}
	if len(r.Rows) != 7 || r.Rows[len(r.Rows)-1].Metric != "something_new" {
		t.Fatalf("rows: %+v", r.Rows)
	}
	check := func(metric string, times float64, met bool) {
		t.Helper()
		row := byName[metric]
		if c := cmp.Or(row.Central, row.Baseline); c == nil || math.Abs(c.Times-times) > 1e-9 {
			t.Errorf("%s: %+v, want %v times", metric, row, times)
		}
		if row.Met == nil || *row.Met != met {
			t.Errorf("%s: met %v, want %v", metric, row.Met, met)
		}
	}
	check("ledger_append_per_s", 9, false)                         // ≥ 100,000 and ≥ 5× the baseline
	check("directory_lookup_p50_ms", 0.02, true)                   // ≤ 3 ms; the central index is 50 times as fast
	check("query_per_s", 0.1, false)                               // ≥ 1,000
	if met := byName["pseudonyms_per_s"].Met; met == nil || *met { // ≥ 12,000 but under 80 % of the floor
		t.Errorf("pseudonyms at 78 %% of their floor met their target: %+v", byName["pseudonyms_per_s"])
	}
	if f := byName["pseudonyms_per_s"].Floor; f == nil || f.Times != 12_500.0/16_000 {
		t.Errorf("pseudonyms beside their floor: %+v", f)
	}
	if f := byName["query_per_s"].Floor; f == nil || f.Times != 0.25 {
		t.Errorf("queries beside their floor: %+v", f)
	}
	if f := byName["query_cpu_ms"].Floor; f == nil || math.Abs(f.Times-0.4) > 1e-9 { // a time: the floor's over the figure
		t.Errorf("a query's CPU beside its floor: %+v", f)
	}
	if b := byName["directory_lookup_p50_ms"].Baseline; b == nil || b.Times != 10 {
		t.Errorf("lookup beside kad-dht's walk: %+v", b)
	}
	if b := byName["centre_rss_mib"].Baseline; b == nil || b.More != 460 || b.Times != 0 || byName["centre_rss_mib"].Met == nil || *byName["centre_rss_mib"].Met {
		t.Errorf("memory beside the empty centre: %+v", byName["centre_rss_mib"])
	}
	var out strings.Builder
	if err := r.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"full sizes", "cores", "90,000", "10,000", "9.0×", "+460", "≥ 100,000, 5× the baseline", "something_new", "central_lookup_p50_ms: one SQLite index",
		"≥ 12,000, 80 % of the floor", "16,000", "78 %", "25 %", "query_floor_per_s: a query's"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
