package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/metrics"
	"github.com/medfed/medfed/node/nodetest"
)

// running is a centre of a two-member federation, running, with one
// record appended and final.
func running(t testing.TB) *centre.Node {
	t.Helper()
	root := t.TempDir()
	a, b := nodetest.Config(t, root, "centre-a"), nodetest.Config(t, root, "centre-b")
	nodetest.Found(t, a, b)
	na := nodetest.Start(t, a)
	nodetest.Start(t, b)
	ctx := context.Background()
	var p ledger.Pseudonym
	p[0] = 1
	if _, err := na.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("a result")}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 20*time.Second, "the record is final", func() bool {
		f, ok := na.Centre.Ledger.LatestFinal()
		return ok && f.Size == na.Centre.Ledger.Size()
	})
	return na
}

func scrape(t testing.TB, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fs, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// The exported values are the centre's: its ledger's size and final
// size, its members, the other member as its witness with nothing left
// to cosign, an append counted; a path other than /metrics is not found.
func TestMetricsAreTheCentresCounts(t *testing.T) {
	n := running(t)
	m, err := metrics.New(metrics.Options{Source: n, Version: "v1.2.3", Revision: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	fs := scrape(t, m.Handler())
	one := func(name string) *dto.Metric {
		t.Helper()
		f, ok := fs[name]
		if !ok || len(f.GetMetric()) == 0 {
			t.Fatalf("no %s", name)
		}
		return f.GetMetric()[0]
	}
	size := float64(n.Centre.Ledger.Size())
	if v := one("medfed_ledger_entries").GetGauge().GetValue(); v != size {
		t.Errorf("medfed_ledger_entries %v, want %v", v, size)
	}
	if v := one("medfed_ledger_final_entries").GetGauge().GetValue(); v != size {
		t.Errorf("medfed_ledger_final_entries %v, want %v", v, size)
	}
	if v := one("medfed_federation_members").GetGauge().GetValue(); v != 2 {
		t.Errorf("medfed_federation_members %v, want 2", v)
	}
	if v := one("medfed_ledger_appends_total").GetCounter().GetValue(); v < 1 {
		t.Errorf("medfed_ledger_appends_total %v, want the record's append at least", v)
	}
	w := one("medfed_witness_lag_entries")
	if w.GetLabel()[0].GetValue() != "centre-b" || w.GetGauge().GetValue() != 0 {
		t.Errorf("witness lag %v, want centre-b at 0", w)
	}
	info := one("medfed_build_info")
	if got := info.GetLabel(); len(got) != 2 || got[0].GetValue() != "abc" || got[1].GetValue() != "v1.2.3" {
		t.Errorf("build info labels %v", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", rec.Code)
	}
	if _, err := metrics.New(metrics.Options{}); err == nil || !strings.Contains(err.Error(), "source") {
		t.Errorf("metrics without a source: %v", err)
	}
}

// BenchmarkScrape is one Prometheus scrape of a running centre's
// metrics as served: medfed's (the centre's snapshot and its encoding),
// the Go runtime's and the process's. BenchmarkStats is the snapshot
// alone.
func BenchmarkScrape(b *testing.B) {
	n := running(b)
	m, err := metrics.New(metrics.Options{Source: n})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkStats(b *testing.B) {
	n := running(b)
	for b.Loop() {
		n.Stats()
	}
}
