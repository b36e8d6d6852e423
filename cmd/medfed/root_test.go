package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/medfed/medfed/cmd/internal/bench"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The story itself is tested in cmd/internal/demo; here, that --keep
// leaves what `medfed ledger verify` checks, and that a --keep directory
// in use is a usage error.
func TestDemoKeepLeavesVerifiableDataDirectories(t *testing.T) {
	keep := keptDemo(t)
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
	keep := keptDemo(t)
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
		// Overwrite the signed root of the last checkpoint in place: found
		// by its origin line, as "\n7\n" alone may occur in binary data.
		head := []byte("/centre-a\n7\n")
		i := bytes.LastIndex(b, head)
		if i < 0 {
			t.Fatal("checkpoint text not found in the ledger file")
		}
		tampered := bytes.Clone(b)
		tampered[i+len(head)] ^= 0x01
		if err := os.WriteFile(db, tampered, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "ledger", "verify", "--data", dir)
		if code != exitFailure || !strings.Contains(errOut, "checkpoint of size 7") {
			t.Fatalf("exit %d, %q; want 1 naming the checkpoint of size 7", code, errOut)
		}
	})
}

// The suites and the table are tested in cmd/internal/bench; here, the
// flags: --json prints the report as JSON, --quick shrinks it, a suite
// is chosen by name, and an unknown one is a usage error.
func TestBenchPrintsItsMetricsAsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick ledger benchmark")
	}
	code, out, errOut := runCLI(t, "bench", "--json", "--quick", "ledger")
	if code != exitOK {
		t.Fatalf("bench exited %d: %s", code, errOut)
	}
	var r bench.Report
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
	if code, _, _ := runCLI(t, "bench", "nosuch"); code != exitUsage {
		t.Errorf("bench with an unknown suite exited %d, want %d", code, exitUsage)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "medfed ") {
		t.Fatalf("version: %d %q", code, out)
	}
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/medfed/medfed", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-06T00:00:00Z"}, {Key: "vcs.modified", Value: "false"}}}
	for _, tc := range []struct {
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"", info, "v1.4.0 (revision abc123, 2026-12-06T00:00:00Z, go1.26.8)"},
		{"v1.4.1-hotfix", info, "v1.4.1-hotfix (revision abc123, 2026-12-06T00:00:00Z, go1.26.8)"},
		{"", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}}, "(devel) (modified, go1.26.8)"},
		{"", nil, "(no build information)"},
	} {
		if got := describeBuild(tc.linked, tc.info); got != tc.want {
			t.Errorf("describeBuild(%q, …) = %q, want %q", tc.linked, got, tc.want)
		}
	}
}
