package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// A metric is one line of the report: a metric, the baseline measured
// beside it in the same run, the central floor for the same work (see
// central.go), and the target the issue that asked for it set.
type metric struct {
	name     string
	about    string
	baseline string  // a metric of baselines; "" if none
	central  string  // a metric of baselines measured on one central SQLite index; "" if none
	floor    string  // a metric of the cost of the primitives the work cannot avoid, at this machine's cores; "" if none
	atLeast  float64 // the target, for a metric where higher is better; 0: none
	atMost   float64 // the target, for a metric where lower is better; 0: none
	times    float64 // the target as times better than the baseline; 0: none
	ofFloor  float64 // the target as a fraction of the floor; 0: none
	// more compares with the baseline by difference rather than ratio: a
	// centre's memory beside the same centre empty.
	more bool
}

// metrics is the report, in the order the suites run.
var metrics = []metric{
	{name: "ledger_append_per_s", about: "durable appends per second, 64 appenders, group commit", baseline: "ledger_append_baseline_per_s", floor: "ledger_append_floor_per_s", atLeast: 100_000, times: 5},
	{name: "ledger_verify_per_s", about: "entries per second re-checked offline (hashes, signatures, index)", atLeast: 300_000},
	{name: "ledger_proof_us", about: "µs to make and check one inclusion proof at the ledger's size", atMost: 20},
	{name: "finality_p50_ms", about: "durable append to final (witness-cosigned) checkpoint, 5 centres, default configuration (a checkpoint as the ledger grows, one at a time)", atMost: 150},
	{name: "finality_p99_ms", about: "the same, p99"},
	{name: "pseudonyms_per_s", about: "pseudonyms per second, one batch, key shared 2 of 3, asked by a founder", baseline: "pseudonyms_baseline_per_s", floor: "pseudonyms_floor_per_s", atLeast: 12_000, ofFloor: 0.8},
	{name: "pseudonyms_nonholder_per_s", about: "the same, asked by a centre that holds no share", baseline: "pseudonyms_baseline_per_s", floor: "pseudonyms_floor_per_s"},
	{name: "directory_announce_per_s", about: "patients announced per second until stored at their replicas, 10 centres", baseline: "directory_announce_baseline_per_s", floor: "directory_announce_floor_per_s", atLeast: 10_000, times: 10},
	{name: "directory_announce_1m_s", about: "seconds to announce 1M patients until stored at their replicas", floor: "directory_announce_1m_floor_s", atMost: 45},
	{name: "directory_lookup_p50_ms", about: "one-hop directory lookup, 20 centres, patients at 1 to 5", baseline: "directory_lookup_walk_p50_ms", central: "central_lookup_p50_ms", atMost: 3},
	{name: "directory_lookup_p99_ms", about: "the same, p99", baseline: "directory_lookup_walk_p99_ms", central: "central_lookup_p99_ms", atMost: 15},
	{name: "consent_decisions_per_s", about: "consent decisions per second on one core, 10 nested provisions", atLeast: 500_000},
	{name: "consent_service_decisions_per_s", about: "the same through a holder's service (lock, freshness check)"},
	{name: "consent_revocation_p50_ms", about: "a revocation until in force at 3 holders", atMost: 1_000},
	{name: "consent_revocation_p99_ms", about: "the same, p99", atMost: 1_000},
	{name: "query_p50_ms", about: "cross-centre query, patient at 3 of 10 centres, one at a time", central: "central_query_p50_ms", atMost: 3},
	{name: "query_p99_ms", about: "the same, p99", central: "central_query_p99_ms", atMost: 60},
	{name: "query_per_s", about: "cross-centre queries per second, 32 in flight", central: "central_query_per_s", floor: "query_floor_per_s", atLeast: 1_000},
	{name: "query_cpu_ms", about: "CPU time (ms, every core's) one cross-centre query costs, 32 in flight", central: "central_query_cpu_ms", floor: "query_floor_cpu_ms"},
	{name: "centre_rss_mib", about: "resident memory (MiB) of a medfed node holding 1M patients' ledger and directory entries, at rest", baseline: "centre_empty_rss_mib", atMost: 150, more: true},
	{name: "centre_peak_rss_mib", about: "its peak resident memory, from start until all 1M are announced", baseline: "centre_empty_rss_mib", atMost: 300, more: true},
	{name: "centre_rss_5m_mib", about: "the same at rest, holding 5M patients", baseline: "centre_empty_rss_mib", atMost: 150, more: true},
	{name: "centre_peak_rss_5m_mib", about: "its peak, from start until all 5M are announced", baseline: "centre_empty_rss_mib", atMost: 300, more: true},
}

// baselines describes the metrics that are measured only to be
// compared with.
var baselines = map[string]string{
	"ledger_append_baseline_per_s":      "one entry per SQLite transaction",
	"pseudonyms_baseline_per_s":         "circl's VOPRF, whole key, one process, no network",
	"directory_announce_baseline_per_s": "one kad-dht Provide per key",
	"directory_lookup_walk_p50_ms":      "kad-dht's iterative walk",
	"directory_lookup_walk_p99_ms":      "kad-dht's iterative walk",
	"central_lookup_p50_ms":             "one SQLite index, one node",
	"central_lookup_p99_ms":             "one SQLite index, one node",
	"central_query_p50_ms":              "one SQLite index, one node",
	"central_query_p99_ms":              "one SQLite index, one node",
	"central_query_per_s":               "one SQLite index, one node",
	"central_query_cpu_ms":              "one SQLite index, one node",
	"centre_empty_rss_mib":              "the same centre, empty",
	"ledger_append_floor_per_s":         "the rows alone through SQLite, 64 to a commit, one writer (ledger.WriteFloor)",
	"pseudonyms_floor_per_s":            "the protocol's group operations alone, in one process, every core (pseudonym.Floor)",
	"directory_announce_floor_per_s":    "the ADD_PROVIDER messages alone, every core",
	"directory_announce_1m_floor_s":     "the ADD_PROVIDER messages of 1M alone, every core, to the stores of a federation of its own",
	"query_floor_per_s":                 "a query's signatures, HPKE and durable access entries alone, every core",
	"query_floor_cpu_ms":                "the same, the CPU time of one",
}

// higherIsBetter tells a rate from a time or a size.
func higherIsBetter(metric string) bool { return strings.HasSuffix(metric, "_per_s") }

// Report is what a run measured, arranged for `medfed bench` to print:
// as a table (Print), or as JSON.
type Report struct {
	Machine Machine            `json:"machine"`
	Quick   bool               `json:"quick"`
	Metrics map[string]float64 `json:"metrics"` // every number measured, baselines included
	Rows    []Row              `json:"rows"`
	Cores   []CoresRow         `json:"cores,omitempty"` // the cores suite's figures
}

// Machine is the machine a run measured on.
type Machine struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Go         string `json:"go"`
}

// Row is one metric of a report, beside what it is compared with and its
// target.
type Row struct {
	Metric   string   `json:"metric"`
	About    string   `json:"about"`
	Value    float64  `json:"value"`
	Baseline *Compare `json:"baseline,omitempty"`
	Central  *Compare `json:"central,omitempty"`
	Floor    *Compare `json:"floor,omitempty"` // Times: the fraction of the floor reached
	Target   string   `json:"target,omitempty"`
	Met      *bool    `json:"met,omitempty"` // absent when there is no target
}

// Compare is a figure the row's metric is compared with.
type Compare struct {
	Metric string  `json:"metric"`
	About  string  `json:"about"`
	Value  float64 `json:"value"`
	Times  float64 `json:"times,omitempty"` // how many times better the row's figure is (below 1: worse)
	// ByDifference: a ratio means nothing here (a centre's memory beside
	// the same centre empty); More is how much more the row's figure is.
	ByDifference bool    `json:"byDifference,omitempty"`
	More         float64 `json:"more,omitempty"`
}

// newReport arranges the results of a run: one row per metric
// measured, in metrics' order, then any metric the catalogue does not
// know (so that nothing measured goes unreported).
func newReport(results map[string]float64, quick bool) Report {
	r := Report{
		Machine: Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()},
		Quick:   quick,
		Metrics: results,
		Cores:   coresRows(results),
	}
	known := map[string]bool{}
	for _, m := range metrics {
		known[m.name] = true
		v, ok := results[m.name]
		if !ok {
			continue
		}
		row := Row{Metric: m.name, About: m.about, Value: v}
		row.Baseline = compare(m.name, v, m.baseline, results)
		row.Central = compare(m.name, v, m.central, results)
		row.Floor = compare(m.name, v, m.floor, results)
		if m.more && row.Baseline != nil {
			row.Baseline.Times, row.Baseline.More, row.Baseline.ByDifference = 0, v-row.Baseline.Value, true
		}
		var targets []string
		met := true
		if m.atLeast > 0 {
			targets = append(targets, "≥ "+number(m.atLeast))
			met = met && v >= m.atLeast
		}
		if m.atMost > 0 {
			targets = append(targets, "≤ "+number(m.atMost))
			met = met && v <= m.atMost
		}
		if m.times > 0 && row.Baseline != nil {
			targets = append(targets, strconv.FormatFloat(m.times, 'f', -1, 64)+"× the baseline")
			met = met && row.Baseline.Times >= m.times
		}
		if m.ofFloor > 0 && row.Floor != nil {
			targets = append(targets, percent(m.ofFloor)+" of the floor")
			met = met && row.Floor.Times >= m.ofFloor
		}
		if len(targets) > 0 {
			row.Target, row.Met = strings.Join(targets, ", "), &met
		}
		r.Rows = append(r.Rows, row)
	}
	var other []string
	for k := range results {
		if _, isBaseline := baselines[k]; !known[k] && !isBaseline && !isCoresMetric(k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	for _, k := range other {
		r.Rows = append(r.Rows, Row{Metric: k, Value: results[k]})
	}
	return r
}

// compare returns the comparison of metric's value v with the figure
// named with, if it was measured.
func compare(metric string, v float64, with string, results map[string]float64) *Compare {
	w, ok := results[with]
	if with == "" || !ok {
		return nil
	}
	c := &Compare{Metric: with, About: baselines[with], Value: w}
	switch {
	case higherIsBetter(metric) && w > 0:
		c.Times = v / w
	case !higherIsBetter(metric) && v > 0:
		c.Times = w / v
	}
	return c
}

// Print writes the report as a table, then what each metric and baseline
// measures. The report is written whole, in one write, once it is laid
// out.
func (r Report) Print(w io.Writer) error {
	sizes := "full sizes"
	if r.Quick {
		sizes = "--quick sizes"
	}
	out := &bytes.Buffer{}
	fmt.Fprintf(out, "medfed bench, %s, on %d cores (GOMAXPROCS %d), %s/%s, %s\n", sizes, r.Machine.Cores, r.Machine.GOMAXPROCS, r.Machine.OS, r.Machine.Arch, r.Machine.Go)
	fmt.Fprintf(out, "every baseline and central figure was measured in this run, on this machine;\n")
	fmt.Fprintf(out, "× = how many times better the figure is than it (below 1: worse), + = how much more\n\n")
	// The metric's column is padded here, left-aligned; tabwriter aligns
	// the figures right.
	width := len("metric")
	for _, row := range r.Rows {
		width = max(width, len(row.Metric))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tmeasured\tbaseline\t×\tcentral\t×\tfloor\tof floor\ttarget\tmet\t\n", width, "metric")
	cmp := func(c *Compare) string {
		switch {
		case c == nil:
			return "—\t\t"
		case c.ByDifference && c.More < 0:
			return number(c.Value) + "\t" + number(c.More) + "\t"
		case c.ByDifference:
			return number(c.Value) + "\t+" + number(c.More) + "\t"
		}
		return number(c.Value) + "\t" + strconv.FormatFloat(c.Times, 'f', timesDigits(c.Times), 64) + "×\t"
	}
	for _, row := range r.Rows {
		met := ""
		if row.Met != nil {
			met = map[bool]string{true: "yes", false: "no"}[*row.Met]
		}
		floor := "—\t\t"
		if row.Floor != nil {
			floor = number(row.Floor.Value) + "\t" + percent(row.Floor.Times) + "\t"
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s%s%s%s\t%s\t\n", width, row.Metric, number(row.Value), cmp(row.Baseline), cmp(row.Central), floor, row.Target, met)
	}
	tw.Flush() // into out, which does not fail
	fmt.Fprintln(out)
	seen := map[string]bool{}
	for _, row := range r.Rows {
		if row.About != "" {
			fmt.Fprintf(out, "%s: %s\n", row.Metric, row.About)
		}
		for _, c := range []*Compare{row.Baseline, row.Central, row.Floor} {
			if c != nil && !seen[c.Metric] {
				seen[c.Metric] = true
				fmt.Fprintf(out, "  %s: %s\n", c.Metric, c.About)
			}
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}

// number prints a figure with the precision it deserves: thousands
// grouped, small numbers with decimals.
func number(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		if neg {
			s = "-" + s
		}
		return s
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1 || a == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// percent prints a fraction as a whole percentage.
func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + " %" }

// timesDigits gives a ratio two significant digits or one decimal.
func timesDigits(x float64) int {
	switch {
	case x >= 10:
		return 0
	case x >= 0.1:
		return 1
	default:
		return 3
	}
}
