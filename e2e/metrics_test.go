package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/nodetest"
)

// metricName matches the metrics a query names: medfed's, go-libp2p's
// and the Go runtime's and process's (up is Prometheus's own).
var metricName = regexp.MustCompile(`\b(?:medfed|libp2p|go|process)_[a-z0-9_]+\b`)

// monitoredMetrics are the metric names the queries of a dashboard (the
// expr of every target) or of alert rules (every expr) name.
func monitoredMetrics(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	if strings.HasSuffix(path, ".json") {
		var d struct {
			Panels []struct {
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
	} else {
		for _, line := range strings.Split(string(b), "\n") {
			if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && !strings.Contains(l, "summary:") && !strings.Contains(l, "description:") {
				exprs = append(exprs, l)
			}
		}
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// checkMonitored checks that every metric the dashboard and the alert
// rules query, of those which picks, is served in one of the scrapes.
func checkMonitored(t *testing.T, which func(name string) bool, scrapes ...map[string]*dto.MetricFamily) {
	t.Helper()
	served := func(name string) bool {
		for _, fs := range scrapes {
			if _, ok := fs[name]; ok {
				return true
			}
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if f, ok := fs[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && f.GetType() == dto.MetricType_HISTOGRAM {
					return true
				}
			}
		}
		return false
	}
	checked := 0
	for _, file := range []string{"medfed-dashboard.json", "medfed-alerts.yml"} {
		for _, name := range monitoredMetrics(t, filepath.Join("..", "configs", "monitoring", file)) {
			if !which(name) {
				continue
			}
			checked++
			if !served(name) {
				t.Errorf("%s queries %s, which no centre serves", file, name)
			}
		}
	}
	if checked == 0 {
		t.Error("the dashboard and the alert rules query none of the metrics checked")
	}
}

// lintMetrics runs Prometheus's own linter (promtool check metrics) over
// medfed's families of a scrape: names, units, counters' _total.
func lintMetrics(t *testing.T, raw string) {
	t.Helper()
	promtool := findPromtool(t)
	if promtool == "" {
		t.Log("promtool is missing: the metrics are not linted")
		return
	}
	var own strings.Builder
	for _, line := range strings.SplitAfter(raw, "\n") {
		if strings.HasPrefix(line, "medfed_") || strings.HasPrefix(line, "# HELP medfed_") || strings.HasPrefix(line, "# TYPE medfed_") {
			own.WriteString(line)
		}
	}
	if own.Len() == 0 {
		t.Fatal("the scrape holds no medfed metric to lint")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(own.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// requirePromtoolEnv set to 1 (CI) makes the tests that need promtool
// fail without it rather than skip.
const requirePromtoolEnv = "MEDFED_REQUIRE_PROMTOOL"

// findPromtool returns promtool's path, or "" when it is missing, which
// fails the test under MEDFED_REQUIRE_PROMTOOL=1.
func findPromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil && os.Getenv(requirePromtoolEnv) == "1" {
		t.Fatalf("%s=1, but promtool is missing (Debian's prometheus package has it): %v", requirePromtoolEnv, err)
	}
	return path
}

// The alert rules are valid Prometheus rules and fire as their unit tests
// say (configs/monitoring/medfed-alerts.test.yml): a witness silent while
// the ledger grows, entries waiting for finality, a directory backlog
// that stays, a certificate near expiry, a failed commit, a centre down.
func TestAlertRules(t *testing.T) {
	promtool := findPromtool(t)
	if promtool == "" {
		t.Skip("promtool is missing (Debian's prometheus package has it)")
	}
	dir := filepath.Join("..", "configs", "monitoring")
	for _, args := range [][]string{{"check", "rules", "medfed-alerts.yml"}, {"test", "rules", "medfed-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// scrape reads a centre's /metrics as Prometheus does and parses it;
// raw is the text as served.
func scrape(t *testing.T, addr string) (families map[string]*dto.MetricFamily, raw string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v: %s", addr, resp.StatusCode, err, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err = parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("scrape %s: not Prometheus's text format: %v", addr, err)
	}
	return families, string(b)
}

// value is the sum over the series of a family whose labels include
// those given (name=value pairs): a counter's or gauge's value, or a
// histogram's count. Absent, it is -1.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// Two centres run with metrics on; an operator's Prometheus scrapes
// them before and after the work of a day in miniature (records, a
// consent, a clinician's query across both) and sees the metrics move
// with it: appends and commits, checkpoints made final and each witness
// cosigning, directory lookups, consent decisions, the query's answers
// by outcome, pseudonym evaluations, and go-libp2p's streams by
// protocol. No pseudonym appears in what is scraped, and the metrics
// listener serves nothing else.
func TestMetricsMoveWithTheWork(t *testing.T) {
	root := t.TempDir()
	a, b := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b")
	addrs := map[*centre]string{}
	for _, x := range []*centre{a, b} {
		addrs[x] = fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))
		x.extra = []string{"MEDFED_METRICS_ENABLED=true", "MEDFED_METRICS_LISTEN=" + addrs[x]}
	}
	a.extra = append(a.extra, "MEDFED_LOG_FORMAT=json")
	foundTwo(t, root, a, b)

	before, _ := scrape(t, addrs[a])
	for _, name := range []string{"medfed_build_info", "medfed_ledger_entries", "medfed_federation_members", "medfed_tls_certificate_expiry_timestamp_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("centre-a's metrics lack %s", name)
		}
	}
	if got := value(before, "medfed_federation_members"); got != 2 {
		t.Errorf("medfed_federation_members = %v, want 2", got)
	}
	if exp := value(before, "medfed_tls_certificate_expiry_timestamp_seconds", "listener", "api"); exp < float64(time.Now().Add(24*time.Hour).Unix()) {
		t.Errorf("the API certificate expires at %v by the metrics, want a day ahead at least", exp)
	}

	p := dayOfWork(t, root, a, b)

	// Someone hammers the patient routes, which take no token, from one
	// address: past its bound they are refused, and counted.
	api, err := pinnedClient(a.dir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for range 40 {
		resp, err := api.Post("https://127.0.0.1:8101/v1/patient/view", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("40 requests at once from one address were all served: the patient routes' bound did not hold")
	}

	var after map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, "centre-a's ledger is final to its end", func() bool {
		after, _ = scrape(t, addrs[a])
		return value(after, "medfed_ledger_final_entries") == value(after, "medfed_ledger_entries")
	})
	rose := func(name string, labels ...string) {
		t.Helper()
		if was, is := value(before, name, labels...), value(after, name, labels...); is <= max(was, 0) {
			t.Errorf("%s%v did not rise with the work: %v, then %v", name, labels, was, is)
		}
	}
	rose("medfed_ledger_entries")
	rose("medfed_ledger_appends_total")
	rose("medfed_ledger_commit_entries")
	rose("medfed_checkpoints_final_total")
	rose("medfed_checkpoint_finality_seconds")
	rose("medfed_witness_last_cosignature_timestamp_seconds", "witness", "centre-b")
	rose("medfed_directory_lookups_total")
	rose("medfed_consent_decisions_total", "decision", "released")
	rose("medfed_query_answer_seconds", "outcome", "released")
	if got := value(after, "medfed_rate_limited_total", "limit", "api"); got < float64(throttled) {
		t.Errorf("medfed_rate_limited_total{limit=\"api\"} = %v, want the %d refusals at least", got, throttled)
	}
	if lag := value(after, "medfed_witness_lag_entries", "witness", "centre-b"); lag != 0 {
		t.Errorf("centre-b's lag on centre-a's final ledger is %v entries, want 0", lag)
	}
	if v := value(after, "medfed_directory_announce_backlog"); v != 0 {
		t.Errorf("announce backlog %v after the work settled, want 0", v)
	}
	// The evaluations are the pseudonym holders': each centre evaluated
	// for the other at least once (the ceremony's check, the records).
	bAfter, _ := scrape(t, addrs[b])
	if v := value(bAfter, "medfed_pseudonym_evaluations_total"); v <= 0 {
		t.Errorf("centre-b evaluated %v pseudonyms for centre-a, want some", v)
	}
	// go-libp2p's own: the resource manager's streams, by protocol.
	if v := value(after, "libp2p_rcmgr_streams", "protocol", "/medfed/query/1"); v < 0 {
		t.Errorf("no libp2p_rcmgr_streams for /medfed/query/1 among %d families", len(after))
	}

	_, raw := scrape(t, addrs[a])
	if strings.Contains(raw, p) || strings.Contains(raw, nhsNumber) {
		t.Error("the metrics name the patient")
	}
	lintMetrics(t, raw)

	// What the dashboard and the alert rules query is what a centre
	// serves; the audit export's metrics are checked where it runs
	// (TestAuditTrailReachesTheRepositoryExactlyOnce).
	checkMonitored(t, func(name string) bool { return !strings.HasPrefix(name, "medfed_audit_") }, after, bAfter)

	a.stop()
	checkJSONLog(t, a.logs.String(), nhsNumber, "synthetic lab result")
}

// checkJSONLog checks a node's log.format json output: every line of
// its standard error a JSON object with a time, level and message; one
// line per API request with its method, route pattern, status and
// duration; and none holding any of secrets.
func checkJSONLog(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	requests := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.HasPrefix(line, "centre ") {
			continue // the start-up line, on standard output
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("a log line has no %s: %q", k, line)
			}
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("a log line holds %q: %s", s, line)
			}
		}
		if rec["msg"] != "request" {
			continue
		}
		requests++
		route, _ := rec["route"].(string)
		status, _ := rec["status"].(float64)
		ms, isNumber := rec["ms"].(float64)
		if rec["method"] == nil || !strings.HasPrefix(route, "/") || status < 100 || !isNumber || ms < 0 {
			t.Errorf("a request line lacks its method, route, status or duration: %s", line)
		}
	}
	if requests == 0 {
		t.Error("no request was logged")
	}
}

// foundTwo founds a federation of centres a and b, as their operators
// do, starts their nodes and has them generate the pseudonym key.
func foundTwo(t *testing.T, root string, a, b *centre) {
	t.Helper()
	logsIfFailed(t, []*centre{a, b})
	file := func(name string) string { return filepath.Join(root, name) }
	for _, x := range []*centre{a, b} {
		x.run("federation", "request", "--out", file(x.name+"-request.txt"))
	}
	a.run("federation", "init", "--member", file("centre-b-request.txt"), "--out", file("charter.txt"))
	b.run("federation", "sign", file("charter.txt"))
	for _, x := range []*centre{a, b} {
		x.run("federation", "install", file("charter.txt"))
		x.start()
	}
	waitFor(t, 15*time.Second, "the founders connect", connectedTo(a, "centre-b"))
	keyCeremony(t, "keygen", 2, []string{"centre-a", "centre-b"}, a, b)
}

// dayOfWork is a day at two founded centres in miniature: a record of
// the patient at each, the patient's key attested and a contract for
// treatment granted, and a clinician at a querying until both centres
// release their record. It returns the patient's pseudonym.
func dayOfWork(t *testing.T, root string, a, b *centre) string {
	t.Helper()
	p := recordAtEach(t, root, a, b)
	grantTreatment(t, root, a, p)
	waitReleased(t, a, p, 2)
	return p
}

// recordAtEach adds a lab result of the patient of nhsNumber at each
// centre, as their staff do, and returns the patient's pseudonym.
func recordAtEach(t *testing.T, root string, cs ...*centre) string {
	t.Helper()
	p := pseudonymsOf(cs[0], 1, "--nhs", nhsNumber)[0]
	for _, x := range cs {
		path := filepath.Join(root, x.name+".txt")
		if err := os.WriteFile(path, []byte("synthetic lab result for "+x.name), 0o600); err != nil {
			t.Fatal(err)
		}
		x.run("record", "add", "--nhs", nhsNumber, "--class", "lab-result", "--file", path, "--occurred", "2025-05-01")
	}
	return p
}

// waitReleased waits until a clinician's query for treatment at x gets
// one record from each of holders centres.
func waitReleased(t *testing.T, x *centre, p string, holders int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("a query at %s releases a record at each of %d centres", x.name, holders), func() bool {
		code, out, _ := x.try("query", "--json", "--pseudonym", p, "--staff", "5eed5eed5eed5eed5eed5eed5eed5eed", "--purpose", "treatment")
		var res httpapi.QueryResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Holders) != holders {
			return false
		}
		for _, h := range res.Holders {
			if h.Status != "answered" || len(h.Records) != 1 {
				return false
			}
		}
		return true
	})
}

// grantTreatment is the patient p's consent as a patient gives it: a key
// made with medfed patient keygen (root/patient.key), attested at centre
// a, and a contract signed with it that lets clinicians see everything
// for treatment.
func grantTreatment(t *testing.T, root string, a *centre, p string) {
	t.Helper()
	file := func(name string) string { return filepath.Join(root, name) }
	code, out, errOut := medfedCmd(t, "patient", "keygen", "--out", file("patient.key"))
	if code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	a.run("patient", "attest", "--pseudonym", p, "--public-key", strings.TrimSpace(out))
	if err := os.WriteFile(file("terms.json"), []byte(`{"base": "opt-out", "provision": [{"type": "permit", "purpose": ["treatment"], "actor": [{"role": "clinician"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a.run("consent", "grant", "--key", file("patient.key"), "--pseudonym", p, "--terms", file("terms.json"))
}
