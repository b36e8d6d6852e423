package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDemoNarratesTheLedgerChapterAndLeavesNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	code, out, errOut := runCLI(t, "demo")
	if code != exitOK {
		t.Fatalf("demo exited %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Chapter 1: a centre's own tamper-evident ledger",
		"inclusion proof of",
		"Verified.",
		"payload erased",
		"consistency proof",
		"TAMPERED, entry 3:",
		"the original:  ok, 7 entries, 2 signed checkpoints",
		"Chapter 2: founding a federation, and Centre 3 joining it",
		"version 2 has 1 of 2 approvals",
		"centre-a still refuses its connection",
		"installs version 2 (3 members) and connects to both founders",
		"is dropped as soon as centre-x proves who it is. Refused.",
		"Chapter 3: witnessed ledgers: nobody rewrites history alone",
		"final, cosigned by centre-b and centre-c",
		"centre-b refuses: two roots for size",
		"centre-c refuses: two roots for size",
		"Chapter 4: pseudonyms: the same patient everywhere, reversible by nobody alone",
		"centre-c, holding no share, asks centre-a and centre-b, and gets the same one",
		"check digit does not match",
		"centre-a alone now cannot compute any pseudonym",
		"Chapter 5: the Patient Directory",
		"A patient seen only at centre-c is found at centre-c alone",
		"Chapter 6: consent",
		"a researcher at centre-a, for research:  deny: provision 1 of the contract applies",
		"a researcher at centre-c, for research:  permit: provision 1.1 of the contract applies",
		"presented again: deny: the token's uses are spent",
		"answers: deny: the patient revoked their consent. centre-b was not reached.",
		"revocation, puts it on its ledger, and answers: deny: the patient revoked their consent.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("demo left %d files in its temporary directory", len(left))
	}
}

func TestDemoKeepLeavesVerifiableDataDirectories(t *testing.T) {
	keep := filepath.Join(t.TempDir(), "kept")
	if code, _, errOut := runCLI(t, "demo", "--keep", keep); code != exitOK {
		t.Fatalf("demo --keep exited %d: %s", code, errOut)
	}
	for _, name := range []string{"centre-a", "centre-b", "centre-c"} {
		code, out, errOut := runCLI(t, "ledger", "verify", "--data", filepath.Join(keep, name))
		if code != exitOK || !strings.Contains(out, "ok") {
			t.Fatalf("verify of kept %s exited %d: %s %s", name, code, out, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "demo", "--keep", keep); code != exitUsage || !strings.Contains(errOut, "not empty") {
		t.Fatalf("demo --keep into a used directory exited %d: %s", code, errOut)
	}
}

func TestLedgerVerifyExitCodes(t *testing.T) {
	keep := t.TempDir()
	if code, _, errOut := runCLI(t, "demo", "--keep", keep); code != exitOK {
		t.Fatalf("demo exited %d: %s", code, errOut)
	}
	dir := filepath.Join(keep, "centre-a")
	db := filepath.Join(dir, "ledger.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		output string
	}{
		{"intact", []string{"--data", dir}, exitOK, "ok"},
		{"no --data", nil, exitUsage, "--data DIR is required"},
		{"not a data directory", []string{"--data", t.TempDir()}, exitUsage, "not a medfed data directory"},
		{"missing directory", []string{"--data", filepath.Join(keep, "nope")}, exitUsage, "not a medfed data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"ledger", "verify"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out+errOut, tt.output) {
				t.Fatalf("exit %d, output %q %q; want %d with %q", code, out, errOut, tt.code, tt.output)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		// Overwrite the signed root of the last checkpoint in place.
		i := bytes.LastIndex(b, []byte("\n7\n"))
		if i < 0 {
			t.Fatal("checkpoint text not found in the ledger file")
		}
		tampered := bytes.Clone(b)
		tampered[i+3] ^= 0x01
		if err := os.WriteFile(db, tampered, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "ledger", "verify", "--data", dir)
		if code != exitFailure || !strings.Contains(errOut, "checkpoint of size 7") {
			t.Fatalf("exit %d, %q; want 1 naming the checkpoint of size 7", code, errOut)
		}
	})
}

func TestBenchPrintsItsMetricsAsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick ledger benchmark")
	}
	code, out, errOut := runCLI(t, "bench", "--json", "--quick", "ledger")
	if code != exitOK {
		t.Fatalf("bench exited %d: %s", code, errOut)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	for _, k := range []string{"ledger_append_per_s", "ledger_append_baseline_per_s", "ledger_verify_per_s", "ledger_proof_us"} {
		if r.Metrics[k] <= 0 {
			t.Errorf("metric %s = %v, want a positive measurement", k, r.Metrics[k])
		}
	}
	if r.Machine.Cores < 1 || !r.Quick || len(r.Rows) != 3 || r.Rows[0].Metric != "ledger_append_per_s" || r.Rows[0].Baseline == nil ||
		r.Rows[0].Baseline.Metric != "ledger_append_baseline_per_s" || r.Rows[0].Met == nil {
		t.Errorf("the report: %s", out)
	}
	code, out, errOut = runCLI(t, "bench", "--quick", "witness")
	if code != exitOK {
		t.Fatalf("bench witness exited %d: %s", code, errOut)
	}
	for _, want := range []string{"cores", "finality_p50_ms", "≤ 1,500", "finality_p99_ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runCLI(t, "bench", "nosuch"); code != exitUsage {
		t.Errorf("bench with an unknown suite exited %d, want %d", code, exitUsage)
	}
}

// The report puts each metric beside its baseline and the central floor,
// says how many times better it is, and whether it meets its target.
func TestBenchReport(t *testing.T) {
	r := newBenchReport(map[string]float64{
		"ledger_append_per_s": 90_000, "ledger_append_baseline_per_s": 10_000,
		"directory_lookup_p50_ms": 0.5, "directory_lookup_walk_p50_ms": 5, "central_lookup_p50_ms": 0.01,
		"query_per_s": 300, "central_query_per_s": 3_000,
		"centre_rss_mib": 500, "centre_empty_rss_mib": 40,
		"something_new": 7,
	}, false)
	byName := map[string]benchRow{}
	for _, row := range r.Rows {
		byName[row.Metric] = row
	}
	if len(r.Rows) != 5 || r.Rows[len(r.Rows)-1].Metric != "something_new" {
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
	check("ledger_append_per_s", 9, true)        // ≥ 50,000 and ≥ 5× the baseline
	check("directory_lookup_p50_ms", 0.02, true) // ≤ 3 ms; the central index is 50 times as fast
	check("query_per_s", 0.1, false)             // ≥ 500
	if b := byName["directory_lookup_p50_ms"].Baseline; b == nil || b.Times != 10 {
		t.Errorf("lookup beside kad-dht's walk: %+v", b)
	}
	if b := byName["centre_rss_mib"].Baseline; b == nil || b.More != 460 || b.Times != 0 || byName["centre_rss_mib"].Met != nil {
		t.Errorf("memory beside the empty centre: %+v", byName["centre_rss_mib"])
	}
	var out strings.Builder
	if err := r.print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"full sizes", "cores", "90,000", "10,000", "9.0×", "+460", "≥ 50,000, 5× the baseline", "something_new", "central_lookup_p50_ms: one SQLite index"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "medfed ") {
		t.Fatalf("version: %d %q", code, out)
	}
}
