package bench

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
)

// The scale suite at its quick sizes, 10 and 30 centres: every size has
// its row in each table, every operation was measured and cost messages,
// and the charter change reached every member.
func TestScaleMeasuresFederationsOfTenAndThirty(t *testing.T) {
	if testing.Short() {
		t.Skip("founds federations of 10 and 30 simulated centres")
	}
	r, err := Run(context.Background(), Options{Suites: []string{"scale"}, Quick: true, Progress: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(r.Rows, func(row Row) bool { return isScaleMetric(row.Metric) }); i >= 0 {
		t.Errorf("the main table has the scale figure %s", r.Rows[i].Metric)
	}
	bySize := scaleFigures(r.Metrics)
	for _, n := range scaleQuickSizes {
		f := bySize[n]
		if f == nil {
			t.Fatalf("no figures for %d centres: %v", n, r.Metrics)
		}
		for _, op := range []string{"lookup", "query", "consent_write", "consent_read", "checkpoint"} {
			if f[op+"_msgs"] <= 0 || f[op+"_kib"] <= 0 || f[op+"_p50_ms"] <= 0 {
				t.Errorf("%d centres, %s: %v messages, %v KiB, p50 %v ms", n, op, f[op+"_msgs"], f[op+"_kib"], f[op+"_p50_ms"])
			}
		}
		// A one-hop lookup asks at most its width of members, each once.
		if f["lookup_msgs"] > 6 { // the lookup width, 3, and a replacement for each that times out
			t.Errorf("%d centres: a lookup sent %v messages", n, f["lookup_msgs"])
		}
		if f["charter_all_ms"] <= 0 || f["charter_msgs"] <= 0 {
			t.Errorf("%d centres: the charter change: %v messages, all adopted after %v ms", n, f["charter_msgs"], f["charter_all_ms"])
		}
		for _, fig := range []string{"idle_msgs_per_s", "idle_cpu_pct", "heap_kib", "rss_kib", "disk_kib", "record_wire_bytes"} {
			if f[fig] <= 0 {
				t.Errorf("%d centres: %s is %v", n, fig, f[fig])
			}
		}
		// A record's bytes on disk are the replicas' files' growth: at the
		// smallest size each replica takes dozens of records; at a larger
		// one a few each, which SQLite, growing by pages, may hold in the
		// pages it has.
		for _, fig := range []string{"record_disk_bytes", "country_disk_gib_per_centre"} {
			if f[fig] < 0 || (n == scaleQuickSizes[0] && f[fig] == 0) {
				t.Errorf("%d centres: %s is %v", n, fig, f[fig])
			}
		}
		if f["idle_peers"] <= 0 || f["idle_peers"] > float64(n-1) {
			t.Errorf("%d centres: %v members connected to each centre at rest", n, f["idle_peers"])
		}
	}
	var out strings.Builder
	if err := r.PrintScale(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 10 | 5 |", "| 30 | 5 |", "consent read", "resident KiB", "charter/chain", "10,000 (projected)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the tables lack %q:\n%s", want, out.String())
		}
	}
}

// A run of every suite leaves the scale suite out: it runs for minutes
// even at its quick sizes.
func TestScaleRunsOnlyWhenNamed(t *testing.T) {
	all, err := selectSuites(nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(all, func(s suite) bool { return s.name == "scale" }) {
		t.Error("a run of every suite runs the scale suite")
	}
	named, err := selectSuites([]string{"scale"})
	if err != nil || len(named) != 1 || named[0].name != "scale" {
		t.Errorf("the scale suite by name: %v, %v", named, err)
	}
}

func TestScaleClassOfARequest(t *testing.T) {
	kad := func(typ uint64, rest ...byte) []byte {
		msg := append([]byte{0x08}, binary.AppendUvarint(nil, typ)...)
		msg = append(msg, rest...)
		return append(binary.AppendUvarint(nil, uint64(len(msg))), msg...)
	}
	for _, tc := range []struct {
		name  string
		proto protocol.ID
		p     []byte
		want  string
	}{
		{"charter sync", federation.ProtocolID, []byte{1, 0, 0, 0, 8}, "charter/chain"},
		{"witness views", federation.WitnessProtocolID, []byte{2, 0, 0, 0, 0}, "witness/views"},
		{"consent lease", consent.ProtocolID, []byte{4, 0, 0, 0, 0}, "consent/lease"},
		{"an operation not named", consent.ProtocolID, []byte{99}, "consent#99"},
		{"kad ADD_PROVIDER", kadProtocol, kad(2, 0x12, 0x01, 0xff), "kad/ADD_PROVIDER"},
		{"kad FIND_NODE", kadProtocol, kad(4), "kad/FIND_NODE"},
		{"kad PUT_VALUE, whose type is not written", kadProtocol, []byte{2, 0x12, 0}, "kad/PUT_VALUE"},
		{"kad, no length", kadProtocol, nil, "kad/other"},
		{"gossip", "/meshsub/1.3.0", []byte{1, 2, 3}, "/meshsub/1.3.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classOf(tc.proto, tc.p); got != tc.want {
				t.Errorf("classOf(%s, %x) = %q, want %q", tc.proto, tc.p, got, tc.want)
			}
		})
	}
	if !isOther("/meshsub/1.3.0") || isOther("kad/FIND_NODE") || isOther("charter/adopt") || isOther("consent#99") {
		t.Error("isOther sorts the classes wrongly")
	}
}

// Kademlia messages written back to back are counted one by one, however
// the writes cut them (the directory's placement writes a replica's
// records through a buffer).
func TestScaleCountsKadMessagesWrittenTogether(t *testing.T) {
	kad := func(typ uint64, size int) []byte {
		msg := append([]byte{0x08}, binary.AppendUvarint(nil, typ)...)
		msg = append(msg, make([]byte, size)...)
		return append(binary.AppendUvarint(nil, uint64(len(msg))), msg...)
	}
	all := slices.Concat(kad(2, 300), kad(2, 1), kad(3, 40), kad(2, 0))
	for _, chunk := range []int{1, 2, 3, 7, 64, len(all)} {
		s := &meteredStream{m: newMeter(), proto: kadProtocol}
		for p := all; len(p) > 0; p = p[min(chunk, len(p)):] {
			s.countKad(p[:min(chunk, len(p))])
		}
		got := s.m.snapshot()
		add, get := got["kad/ADD_PROVIDER"], got["kad/GET_PROVIDERS"]
		if add.Messages != 3 || get.Messages != 1 || add.Streams+get.Streams != 1 || add.Bytes+get.Bytes != int64(len(all)) || len(got) != 2 {
			t.Errorf("written %d bytes at a time: %+v", chunk, got)
		}
	}
}

func TestScaleProjectionStopsGrowing(t *testing.T) {
	light := []scaleFit{{n: 10, rss: 8 << 20, cpu: 1e-5, fds: 20}, {n: 100, rss: 9 << 20, cpu: 2e-5, fds: 20}}
	for _, tc := range []struct {
		name string
		fits []scaleFit
		n    int
		stop string // a word of the reason; "" when it runs
	}{
		{"the first size runs", nil, 10, ""},
		{"a size that fits", light, 300, ""},
		{"idle load that grows with the size", []scaleFit{{n: 10, rss: 8 << 20, cpu: 0.5, fds: 20}, {n: 100, rss: 8 << 20, cpu: 5, fds: 20}}, 300, "cores"},
		{"too much memory", []scaleFit{{n: 10, rss: 100 << 20, cpu: 1e-6, fds: 20}, {n: 100, rss: 100 << 20, cpu: 1e-6, fds: 20}}, 1_000, "memory"},
		{"too many files", []scaleFit{{n: 10, rss: 1 << 20, cpu: 1e-6, fds: 1e6}}, 100, "open files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why := projectScale(tc.fits, tc.n, 0)
			if (tc.stop == "") != (why == "") || !strings.Contains(why, tc.stop) {
				t.Errorf("%d centres after %v: %q, want a reason with %q", tc.n, tc.fits, why, tc.stop)
			}
		})
	}
}

// testLog writes a suite's progress to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
