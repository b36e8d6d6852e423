package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
	"golang.org/x/sys/unix"

	node "github.com/medfed/medfed/node/centre"
)

// threeCentres founds centre-a, centre-b and centre-c from configs/ and
// starts their nodes, in its turn with the other heavy tests.
func threeCentres(t *testing.T) (a, b, c *centre, x *api) {
	t.Helper()
	nodetest.InTurn(t)
	root := t.TempDir()
	a, b, c = newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	return a, b, c, foundAndStart(t, root, []*centre{a, b, c})
}

// fileLimit sets how large process pid may make a file (RLIMIT_FSIZE):
// past it, a write fails with EFBIG, as on a full disk. Only the soft
// limit, set by the node's parent (this process): the hard one stays, so
// the limit can be lifted again.
func fileLimit(t *testing.T, pid int, limit uint64) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = limit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatal(err)
	}
}

// smallestWAL returns the size of the smallest SQLite write-ahead log in
// dir that is not empty: a process held to it can write no further into
// that log, nor past that size into any file, the way a full disk stops
// a centre's databases.
func smallestWAL(t *testing.T, dir string) uint64 {
	t.Helper()
	wals, err := filepath.Glob(filepath.Join(dir, "*-wal"))
	if err != nil {
		t.Fatal(err)
	}
	var smallest uint64
	for _, w := range wals {
		st, err := os.Stat(w)
		if err != nil {
			t.Fatal(err)
		}
		if n := uint64(st.Size()); n > 0 && (smallest == 0 || n < smallest) {
			smallest = n
		}
	}
	if smallest == 0 {
		t.Fatalf("%s holds no write-ahead log that is not empty", dir)
	}
	return smallest
}

// faultRecord is a record centre-b acknowledged: its index, its payload,
// and whether the backup holds it.
type faultRecord struct {
	index    int64
	payload  string
	inBackup bool
}

// Three centres, each a real "medfed node". centre-b takes records, is
// backed up while running (medfed backup), takes more, then its disk
// fills up (its process may grow no file past the largest: RLIMIT_FSIZE),
// and clears again; then its disk is lost (SIGKILL) and the backup taken
// before is restored (medfed restore). Throughout: a record is
// acknowledged (201) or refused with an incident (5xx), never half-kept;
// the restored centre gets back every entry it acknowledged and its
// witnesses cosigned, from their mirrors, appends again, and is found in
// the directory; no witness holds evidence of two histories; every ledger
// verifies.
func TestFaultsDiskFullAndARestore(t *testing.T) {
	a, b, c, x := threeCentres(t)
	all := []*centre{a, b, c}
	registrar, clinician := b.token("registrar"), b.token("clinician")
	var patient struct {
		ID string `json:"id"`
	}
	x.must(t, 200, "POST", b.name, "/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": "943 476 5919"}}, &patient)
	p := patient.ID

	location := regexp.MustCompile(`^/v1/records/(\d+)$`)
	var acked []faultRecord
	n := 0
	// add posts one record of size bytes and reports whether it was
	// acknowledged; any answer but a 201 or an incident fails the test.
	add := func(size int, inBackup bool) bool {
		t.Helper()
		n++
		payload := fmt.Sprintf("fault result %d %s", n, strings.Repeat("x", size))
		ans, err := x.do("POST", b.name, "/v1/records", clinician, map[string]any{"patient": p, "class": "lab-result", "data": []byte(payload), "occurred": "2026-11-01"})
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		if m := location.FindStringSubmatch(ans.header.Get("Location")); ans.status == 201 && m != nil {
			index, _ := strconv.ParseInt(m[1], 10, 64)
			acked = append(acked, faultRecord{index, payload, inBackup})
			return true
		}
		if ans.status < 500 || !strings.Contains(string(ans.raw), "incident") {
			t.Fatalf("record %d: %d %s; want 201, or a 5xx naming an incident", n, ans.status, ans.raw)
		}
		return false
	}
	for range 5 {
		if !add(100, true) {
			t.Fatal("a record refused before any fault")
		}
	}
	backup := filepath.Join(t.TempDir(), "backup-b")
	if out := b.run("backup", "--to", backup); !strings.Contains(out, "backup of centre-b") {
		t.Fatalf("backup printed %q", out)
	}
	for range 5 {
		if !add(100, false) {
			t.Fatal("a record refused before the disk filled up")
		}
	}

	// The disk fills up: no file of centre-b's process may grow.
	largest := int64(0)
	files, err := filepath.Glob(filepath.Join(b.dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			largest = max(largest, st.Size())
		}
	}
	fileLimit(t, b.node.Process.Pid, uint64(largest))
	refused := 0
	for i := 0; i < 200 && refused < 3; i++ {
		if !add(32<<10, false) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("200 records of 32 KiB with the disk full, and none refused: the test shows nothing")
	}
	fileLimit(t, b.node.Process.Pid, unix.RLIM_INFINITY)
	waitFor(t, 30*time.Second, "centre-b takes records again once its disk has room", func() bool { return add(100, false) })
	t.Logf("the disk full: %d records refused with an incident, none half-kept; %d acknowledged in all", refused, len(acked))

	// Every acknowledged entry in a final checkpoint, sent to the mirrors.
	last := acked[len(acked)-1].index
	final := regexp.MustCompile(`final checkpoint\s+size (\d+)`)
	waitFor(t, 30*time.Second, "every acknowledged record in a final checkpoint", func() bool {
		code, out, _ := b.try("ledger", "status")
		m := final.FindStringSubmatch(out)
		size, _ := strconv.ParseInt(func() string {
			if m == nil {
				return "0"
			}
			return m[1]
		}(), 10, 64)
		return code == 0 && size > last
	})
	time.Sleep(2 * time.Second) // the mirrors are sent once a checkpoint is final

	// The disk is lost; the backup from before comes back.
	if err := b.node.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.node.Wait()
	if err := os.Rename(b.dir, b.dir+".lost"); err != nil {
		t.Fatal(err)
	}
	if out := b.run("restore", "--from", backup); !strings.Contains(out, "restored centre-b") {
		t.Fatalf("restore printed %q", out)
	}
	b.start()
	waitFor(t, 60*time.Second, "the restored centre-b recovers and is ready", x.ready(b.name, 2))
	if !add(100, false) {
		t.Fatal("the restored centre refuses records")
	}
	waitFor(t, 30*time.Second, "a lookup at centre-a finds the patient at centre-b", func() bool {
		holders, ok := a.lookup(p)
		return ok && holders["centre-b"]
	})

	for _, y := range all {
		y.stop()
		if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", y.dir); code != 0 {
			t.Fatalf("%s: ledger verify exited %d: %s%s", y.name, code, out, errOut)
		}
	}
	ctx := context.Background()
	open := func(y *centre) *node.Centre {
		cfg := node.DefaultConfig()
		cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = y.name, "medfed-demo", y.dir
		o, err := node.Open(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return o
	}
	for _, w := range []*centre{a, c} {
		if ev, err := open(w).Ledger.Evidence(ctx); err != nil || len(ev) > 0 {
			t.Fatalf("%s holds evidence %v (%v): centre-b equivocated", w.name, ev, err)
		}
	}
	ob := open(b)
	lost := 0
	for _, r := range acked {
		e, err := ob.Ledger.Entry(ctx, r.index)
		if err != nil || e.Kind != ledger.KindRecord || e.Subject.String() != p {
			t.Fatalf("acknowledged record %d: %+v, %v", r.index, e, err)
		}
		payload, err := ob.Payload(ctx, r.index)
		switch {
		case r.inBackup && (err != nil || string(payload) != r.payload):
			t.Fatalf("record %d, in the backup: payload %.20q, %v", r.index, payload, err)
		case !r.inBackup && err == nil && string(payload) != r.payload:
			t.Fatalf("record %d holds another payload", r.index)
		case err != nil:
			lost++
		}
	}
	t.Logf("after the restore: all %d acknowledged records on centre-b's ledger; the payloads of %d appended after the backup lost with the disk", len(acked), lost)
}

// Three centres, each a real "medfed node"; centre-b and centre-c hold a
// patient's records and the patient opted in. centre-b and centre-c are
// cut off from each other (medfed federation block, on both: the
// libp2p gater refuses the other), while both still reach centre-a. The
// patient revokes at centre-b, which cannot tell centre-c: once the
// revocation is confirmed, no query, from centre-a or from centre-c
// itself, is released a record by either holder. Unblocked, every lookup
// finds both holders again, and every ledger verifies.
func TestFaultsPartitionAndRevocation(t *testing.T) {
	a, b, c, x := threeCentres(t)
	all := []*centre{a, b, c}
	clinician := map[string]string{}
	for _, y := range all {
		clinician[y.name] = y.token("clinician")
	}
	o := x.optIn(t, map[string]string{a.name: a.token("registrar")}, "943 476 5919", a.name, a.name, a.name)
	p := o.id
	for _, h := range []*centre{b, c} {
		x.must(t, 201, "POST", h.name, "/v1/records", clinician[h.name], map[string]any{"patient": p, "class": "lab-result", "data": []byte("partition result " + h.name), "occurred": "2026-11-01"}, nil)
	}
	released := func(from string) (map[string]bool, string) {
		t.Helper()
		var s searchset
		x.must(t, 200, "POST", from, "/v1/query", clinician[from], map[string]any{"patient": p, "purpose": "treatment"}, &s)
		return s.released(t), s.diagnostics()
	}
	waitFor(t, 30*time.Second, "a query from centre-a is released the records of both holders", func() bool {
		got, _ := released(a.name)
		return len(got) == 2
	})

	// The partition: centre-b and centre-c refuse each other.
	b.run("federation", "block", "centre-c", "--for", "10m")
	c.run("federation", "block", "centre-b", "--for", "10m")
	waitFor(t, 15*time.Second, "centre-b and centre-c are apart, both in reach of centre-a", func() bool {
		_, bc, _ := b.status()
		_, cc, _ := c.status()
		return !bc["centre-c"] && !cc["centre-b"] && bc["centre-a"] && cc["centre-a"]
	})
	if got, why := released(a.name); len(got) != 2 {
		t.Fatalf("a query from centre-a during the partition, before the revocation: %v (%s)", got, why)
	}
	if got, why := released(c.name); len(got) != 1 {
		t.Fatalf("a query from centre-c during the partition, before the revocation: %v (%s)", got, why)
	}

	// The revocation, at centre-b: confirmed once centre-c has it or its
	// leases ran out (at most consent.lease, 30 s here).
	revoke, err := consent.SignRevocation(o.key, consent.Revocation{Federation: "medfed-demo", Subject: o.subject, Target: o.contract, Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	long, err := pinnedClient(b.dir, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"document": revoke})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	res, err := long.Post(apiURL(t, b)+"/v1/consent", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("the revocation: %d %s (%v)", res.StatusCode, raw, err)
	}
	var delivery httpapi.ConsentDelivery
	if err := json.Unmarshal(raw, &delivery); err != nil || !delivery.Confirmed {
		t.Fatalf("the revocation was not confirmed: %s (%v)", raw, err)
	}
	t.Logf("the revocation confirmed after %v (waited %d ms for a lease): delivered to %v, not reached %v", time.Since(began).Round(time.Millisecond), delivery.WaitedMs, delivery.Delivered, delivery.Failed)
	for _, from := range []string{a.name, c.name} {
		if got, why := released(from); len(got) != 0 {
			t.Fatalf("a query from %s after the confirmed revocation was released %v (%s)", from, got, why)
		}
	}

	b.run("federation", "unblock", "centre-c")
	c.run("federation", "unblock", "centre-b")
	for _, y := range all {
		waitFor(t, 30*time.Second, "a lookup at "+y.name+" finds both holders", func() bool {
			holders, ok := y.lookup(p)
			return ok && holders["centre-b"] && holders["centre-c"]
		})
	}
	for _, y := range all {
		y.stop()
		if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", y.dir); code != 0 {
			t.Fatalf("%s: ledger verify exited %d: %s%s", y.name, code, out, errOut)
		}
	}
}
