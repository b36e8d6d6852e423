package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// scaled are the throughput metrics the cores suite measures again at each
// number of cores, with the floors measured beside them: how far the work
// itself would scale.
var scaled = []struct {
	metrics []string
	run     func(context.Context, env) (map[string]float64, error)
}{
	{[]string{"ledger_append_per_s", "ledger_append_floor_per_s"}, measureLedger},
	{[]string{"pseudonyms_per_s", "pseudonyms_floor_per_s"}, measurePseudonyms},
	{[]string{"directory_announce_per_s", "directory_announce_floor_per_s"}, measureDirectory},
	{[]string{"query_per_s", "query_floor_per_s"}, measureQuery},
}

// measureCores runs the suites of the throughput metrics again, at their
// quick sizes, with GOMAXPROCS 1, 2 and every core of the machine (when it
// has more than 2): what a centre gains from a bigger machine, since every
// centre of a suite runs in this process. Each figure is reported as
// cores_<metric>_<n>; Print lays them out with the speed-up.
func measureCores(ctx context.Context, e env) (map[string]float64, error) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	out := map[string]float64{}
	for _, procs := range coreCounts(runtime.NumCPU()) {
		runtime.GOMAXPROCS(procs)
		for _, s := range scaled {
			dir, err := os.MkdirTemp(e.dir, fmt.Sprintf("cores-%d-", procs))
			if err != nil {
				return nil, err
			}
			m, err := s.run(ctx, env{quick: true, dir: dir, progress: io.Discard})
			if err != nil {
				return nil, fmt.Errorf("at GOMAXPROCS %d: %w", procs, err)
			}
			for _, name := range s.metrics {
				v, ok := m[name]
				if !ok {
					continue // a floor its suite does not measure
				}
				out[coresMetric(name, procs)] = v
				e.logf("cores: GOMAXPROCS %d: %s %s", procs, name, number(v))
			}
		}
	}
	return out, nil
}

// coreCounts are the GOMAXPROCS the cores suite runs at on a machine of
// n cores.
func coreCounts(n int) []int {
	counts := []int{1}
	if n >= 2 {
		counts = append(counts, 2)
	}
	if n > 2 {
		counts = append(counts, n)
	}
	return counts
}

func coresMetric(metric string, procs int) string {
	return "cores_" + metric + "_" + strconv.Itoa(procs)
}

// isCoresMetric tells the cores suite's metrics, which PrintCores lays out
// by metric and number of cores rather than one to a row.
func isCoresMetric(name string) bool { return strings.HasPrefix(name, "cores_") }

// CoresRow is one throughput metric at each number of cores measured.
type CoresRow struct {
	Metric  string      `json:"metric"`
	Values  []CoresRate `json:"values"`
	SpeedUp float64     `json:"speedUp"` // the most cores' figure over one core's
}

// CoresRate is a metric's figure at one GOMAXPROCS.
type CoresRate struct {
	Cores int     `json:"cores"`
	Value float64 `json:"value"`
}

// coresRows arranges the cores suite's figures, in scaled's order.
func coresRows(results map[string]float64) []CoresRow {
	var rows []CoresRow
	for _, s := range scaled {
		for _, name := range s.metrics {
			row := CoresRow{Metric: name}
			for procs := 1; procs <= runtime.NumCPU(); procs++ {
				if v, ok := results[coresMetric(name, procs)]; ok {
					row.Values = append(row.Values, CoresRate{procs, v})
				}
			}
			if len(row.Values) == 0 {
				continue
			}
			if first := row.Values[0]; first.Cores == 1 && first.Value > 0 {
				row.SpeedUp = row.Values[len(row.Values)-1].Value / first.Value
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// PrintCores writes the cores suite's figures as a Markdown table, one row
// per metric; nothing when the report has none.
func (r Report) PrintCores(w io.Writer) error {
	if len(r.Cores) == 0 {
		return nil
	}
	var counts []int
	for _, row := range r.Cores {
		for _, v := range row.Values {
			if !slices.Contains(counts, v.Cores) {
				counts = append(counts, v.Cores)
			}
		}
	}
	slices.Sort(counts)
	var b strings.Builder
	b.WriteString("\nThroughput by cores (GOMAXPROCS), at the suites' --quick sizes:\n\n")
	fmt.Fprint(&b, "| metric |")
	for _, c := range counts {
		fmt.Fprintf(&b, " %d |", c)
	}
	fmt.Fprintln(&b, " speed-up |")
	fmt.Fprint(&b, "|---|")
	for range counts {
		fmt.Fprint(&b, "--:|")
	}
	fmt.Fprintln(&b, "--:|")
	for _, row := range r.Cores {
		fmt.Fprintf(&b, "| `%s` |", row.Metric)
		for _, c := range counts {
			i := slices.IndexFunc(row.Values, func(v CoresRate) bool { return v.Cores == c })
			if i < 0 {
				fmt.Fprint(&b, " — |")
				continue
			}
			fmt.Fprintf(&b, " %s |", number(row.Values[i].Value))
		}
		fmt.Fprintf(&b, " %s× |\n", strconv.FormatFloat(row.SpeedUp, 'f', 2, 64))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
