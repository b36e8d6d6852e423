package bench

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// countryDirectory is the directory of a country (countryAnnouncement
// announcements) on n centres, each announcement stored at replication
// of them, from what one announcement cost where it was measured (fig
// gives those figures by name): per centre, the records it stores and
// their bytes on disk, what it sends to reprovide its own announcements
// every countryReprovide (the records and the exploration of each key's
// region), and the checks the directory's sweep sends every countrySweep.
func countryDirectory(n, replication float64, fig func(string) float64) map[string]float64 {
	own := countryAnnouncement / n // announcements each centre makes
	records := own * replication
	return map[string]float64{
		"country_records_per_centre":   records,
		"country_disk_gib_per_centre":  records * fig("record_disk_bytes") / (1 << 30),
		"country_reprovide_msgs_per_s": own * (replication*fig("add_msgs_per_record") + fig("explore_msgs_per_key")) / countryReprovide.Seconds(),
		"country_reprovide_kib_per_s": own * (replication*fig("add_msgs_per_record")*fig("record_wire_bytes") + fig("explore_bytes_per_key")) /
			countryReprovide.Seconds() / 1024,
		"country_sweep_msgs_per_s": own * replication / countrySweep.Seconds(),
		"country_sweep_kib_per_s":  own * replication * fig("check_wire_bytes") / countrySweep.Seconds() / 1024,
	}
}

// defaultReplication is the directory's replication when its options
// name none (directory.Options.Replication), whatever the federation's
// size.
const defaultReplication = 5

// scaleFigures reads the scale suite's metrics, scale_<n>_<figure>, by
// size.
func scaleFigures(metrics map[string]float64) map[int]map[string]float64 {
	out := map[int]map[string]float64{}
	for k, v := range metrics {
		rest, ok := strings.CutPrefix(k, "scale_")
		if !ok {
			continue
		}
		num, name, ok := strings.Cut(rest, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		if out[n] == nil {
			out[n] = map[string]float64{}
		}
		out[n][name] = v
	}
	return out
}

// gossip is the charter change's messages of protocols other than
// medfed's one-request ones and Kademlia: gossip.
func gossip(f map[string]float64) float64 {
	total := 0.0
	for k, v := range f {
		if c, ok := strings.CutPrefix(k, "charter_class_"); ok && isOther(strings.TrimSuffix(c, "_msgs")) {
			total += v
		}
	}
	return total
}

// isScaleMetric tells the scale suite's metrics, which PrintScale lays
// out, from the metrics of the main table.
func isScaleMetric(name string) bool { return strings.HasPrefix(name, "scale_") }

// PrintScale writes the scale suite's figures as Markdown tables, one row
// per federation size, and what they mean; nothing when the report has
// none.
func (r Report) PrintScale(w io.Writer) error {
	bySize := scaleFigures(r.Metrics)
	if len(bySize) == 0 {
		return nil
	}
	var measured, skipped []int
	for _, n := range slices.Sorted(maps.Keys(bySize)) {
		if _, ok := bySize[n]["setup_s"]; ok {
			measured = append(measured, n)
		} else if _, ok := bySize[n]["charter_note_kib"]; ok {
			skipped = append(skipped, n)
		}
	}
	out := &bytes.Buffer{}
	sizes := "full sizes"
	if r.Quick {
		sizes = "--quick sizes"
	}
	fmt.Fprintf(out, "## medfed bench scale, %s, on %d cores (GOMAXPROCS %d), %s/%s, %s\n\n", sizes, r.Machine.Cores, r.Machine.GOMAXPROCS, r.Machine.OS, r.Machine.Arch, r.Machine.Go)
	fmt.Fprintf(out, "Federations of simulated centres in one process on libp2p's mocknet, one-way link latencies of 10 to 40 ms drawn per pair, every pair connected. ")
	fmt.Fprintf(out, "A message is one request (a stream of a medfed protocol; one Kademlia RPC); KiB are the payload both ways, counted once, at the requester.\n\n")

	row := func(cells ...string) { fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | ")) }
	header := func(cells ...string) {
		row(cells...)
		seps := make([]string, len(cells))
		for i := range seps {
			seps[i] = "---:"
		}
		row(seps...)
	}
	op := func(f map[string]float64, name string) string {
		return fmt.Sprintf("%s msg, %s KiB, %s / %s ms", number(f[name+"_msgs"]), number(f[name+"_kib"]), number(f[name+"_p50_ms"]), number(f[name+"_p99_ms"]))
	}

	fmt.Fprintf(out, "### One operation: messages, KiB, latency p50 / p99, across the federation\n\n")
	header("centres", "replication", "directory lookup", "cross-centre query", "consent write", "consent read", "checkpoint", "charter change (admission)")
	for _, n := range measured {
		f := bySize[n]
		checkpoint := op(f, "checkpoint")
		if f["checkpoint_failed"] > 0 {
			checkpoint += fmt.Sprintf("; %s not final", number(f["checkpoint_failed"]))
		}
		row(number(float64(n)), number(f["replication"]), op(f, "lookup"), op(f, "query"), op(f, "consent_write"), op(f, "consent_read"), checkpoint,
			fmt.Sprintf("%s msg (%s gossip), %s KiB; all adopted after %s ms (half %s ms)", number(f["charter_msgs"]), number(gossip(f)), number(f["charter_kib"]), number(f["charter_all_ms"]), number(f["charter_half_ms"])))
	}
	fmt.Fprintf(out, "\nLookup: one-hop, from a centre not holding the patient (held at 3); the directory requests counted are the requester's (here, and in a write and a query), not the others' upkeep meanwhile. Query: from a centre not holding the patient, 3 holders, each reading the patient's consent (no lease). ")
	fmt.Fprintf(out, "Consent write: a signed contract submitted at a holder (lease held, just attested), delivered and confirmed. Consent read: a decision at a centre with no lease on the patient. ")
	fmt.Fprintf(out, "Checkpoint: a durable append, then the checkpoint cosigned by the log's witness set (with the mirror's catch-up). ")
	fmt.Fprintf(out, "Charter change: %d council members approve an admission in turn; time from the first approval until every member adopted it; its messages are membership's offers and adoptions (and gossip, if any), not its periodic sync.\n\n", councilQuorum)

	fmt.Fprintf(out, "### Each centre at rest, and what it holds\n\n")
	header("centres", "messages/s", "KiB/s", "CPU, % of a core", "members connected", "goroutines", "Go heap KiB", "resident KiB", "data dir KiB", "open files")
	for _, n := range measured {
		f := bySize[n]
		row(number(float64(n)), number(f["idle_msgs_per_s"]), number(f["idle_kib_per_s"]), number(f["idle_cpu_pct"]), number(f["idle_peers"]),
			number(f["goroutines"]), number(f["heap_kib"]), number(f["rss_kib"]), number(f["disk_kib"]), number(f["fds"]))
	}
	fmt.Fprintf(out, "\nPer centre: the federation's figure over the number of centres (heap: HeapInuse after a GC; resident: the process's RSS, SQLite's caches included; CPU: process CPU time / centres / wall time), over a window with every loop of a node running and no operation.\n\n")

	classes := map[string]bool{}
	for _, n := range measured {
		for k := range bySize[n] {
			if c, ok := strings.CutPrefix(k, "idle_class_"); ok {
				classes[strings.TrimSuffix(c, "_msgs_per_s")] = true
			}
		}
	}
	if len(classes) > 0 {
		names := slices.Sorted(maps.Keys(classes))
		fmt.Fprintf(out, "### Messages/s each centre sends at rest, by protocol and request\n\n")
		header(append([]string{"centres"}, names...)...)
		for _, n := range measured {
			cells := []string{number(float64(n))}
			for _, c := range names {
				cells = append(cells, number(bySize[n]["idle_class_"+c+"_msgs_per_s"]))
			}
			row(cells...)
		}
		fmt.Fprintln(out)
	}

	fmt.Fprintf(out, "### The directory per announcement, and a country's: %s patients at %d centres each (%s announcements)\n\n", number(countryPatients), countryHoldersEach, number(countryAnnouncement))
	header("centres", "replication", "msg per key announced", "repair checks/s", "bytes per record, wire", "bytes per record, disk", "records per centre", "disk GiB per centre", "reprovide msg/s per centre", "reprovide KiB/s", "sweep checks/s per centre", "sweep KiB/s", "first repair, days")
	country := func(label string, replication float64, perKey, repair string, f, c map[string]float64) {
		days := "—"
		if rate := f["repair_checks_per_s"]; rate > 0 {
			days = number(c["country_records_per_centre"] / rate / 86400)
		}
		row(label, number(replication), perKey, repair, number(f["record_wire_bytes"]), number(f["record_disk_bytes"]),
			number(c["country_records_per_centre"]), number(c["country_disk_gib_per_centre"]), number(c["country_reprovide_msgs_per_s"]),
			number(c["country_reprovide_kib_per_s"]), number(c["country_sweep_msgs_per_s"]), number(c["country_sweep_kib_per_s"]), days)
	}
	for _, n := range measured {
		f := bySize[n]
		if _, ok := f["record_disk_bytes"]; ok {
			repair := "—"
			if v, ok := f["repair_checks_per_s"]; ok {
				repair = number(v)
			}
			country(number(float64(n)), f["replication"], number(f["announce_msgs_per_key"]), repair, f, f)
		}
	}
	if len(measured) > 0 {
		// The last size's figures, but a record's bytes on disk, the most
		// measured: at a large size each replica takes a few of the
		// records measured, and SQLite's files grow by whole pages.
		last := maps.Clone(bySize[measured[len(measured)-1]])
		for _, n := range measured {
			last["record_disk_bytes"] = max(last["record_disk_bytes"], bySize[n]["record_disk_bytes"])
		}
		fig := func(name string) float64 { return last[name] }
		for _, p := range []struct {
			n, replication int
			label          string
		}{
			{1_000, defaultReplication, "1,000 (projected)"},
			{10_000, defaultReplication, "10,000 (projected)"},
		} {
			c := countryDirectory(float64(p.n), float64(p.replication), fig)
			country(p.label, float64(p.replication), "—", "—", last, c)
		}
	}
	fmt.Fprintf(out, "\nMeasured: one centre announces patients of its own until every replica stores them: messages per key are its records (ADD_PROVIDER, one per replica) and any other Kademlia message it sent meanwhile (the placement sends none: it reads the replicas from the charter; what there is, is the DHT's routing-table upkeep); ")
	fmt.Fprintf(out, "then its repair checks each key at each replica, a request each, at the pace shown (— where it was done before it was timed). ")
	fmt.Fprintf(out, "A record's bytes on the wire are an ADD_PROVIDER's, on disk the replicas' SQLite growth per record. ")
	fmt.Fprintf(out, "A country's: each centre announces its share, stores replication/centres of all, reprovides its own every %.0f h (records and exploration, as measured) and its sweep checks each at every replica every %.0f h; the first checks of a centre's own announcements, at the repair's pace measured, take the days shown. ", countryReprovide.Hours(), countrySweep.Hours())
	fmt.Fprintf(out, "Projected rows take the last size's figures, the most bytes per record on disk measured (a replica of a large size takes few records, and SQLite's files grow by pages), and the directory's default replication (5)")
	for _, n := range skipped {
		if bySize[n]["charter_refused_ledger"] == 1 || bySize[n]["charter_refused_protocol"] == 1 {
			fmt.Fprintf(out, "; no charter of %s members could be adopted (below)", number(float64(n)))
			break
		}
	}
	fmt.Fprintf(out, ".\n")
	for _, n := range skipped {
		f := bySize[n]
		fmt.Fprintf(out, "\n%s centres: ", number(float64(n)))
		if _, ok := f["skipped_rss_gib"]; ok {
			fmt.Fprintf(out, "not run, projected %.1f GiB of memory, %.1f cores of idle load, %s open files (per-centre figures fitted linearly in the size to the sizes measured). ",
				f["skipped_rss_gib"], f["skipped_idle_cores"], number(f["skipped_fds"]))
		}
		var refused []string
		if f["charter_refused_ledger"] == 1 {
			refused = append(refused, "the ledger refuses it as an entry (a centre keeps each version as one)")
		}
		if f["charter_refused_protocol"] == 1 {
			refused = append(refused, "the charter protocol refuses to read it")
		}
		if len(refused) == 0 {
			fmt.Fprintf(out, "Their charter's largest note (%.0f KiB) could be adopted.\n", f["charter_note_kib"])
		} else {
			fmt.Fprintf(out, "Their charter could not be adopted at all: its largest note is %.0f KiB, and %s.\n", f["charter_note_kib"], strings.Join(refused, "; "))
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}
