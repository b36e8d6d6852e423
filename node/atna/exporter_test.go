package atna_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// payload is the clinical payload of the fixture's records: it must
// reach no message.
const payload = "synthetic haemoglobin result"

// fixture is a running centre, the only member of its federation, with
// one patient.
type fixture struct {
	cfg     centre.Config
	node    *centre.Node
	patient ledger.Pseudonym
	key     ed25519.PrivateKey // the patient's
	records []int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := nodetest.Config(t, t.TempDir(), "centre-a")
	nodetest.Found(t, cfg)
	seed := sha256.Sum256([]byte("atna test patient key"))
	return &fixture{cfg: cfg, node: nodetest.Start(t, cfg), patient: ledger.Pseudonym(sha256.Sum256([]byte("atna test patient"))),
		key: ed25519.NewKeyFromSeed(seed[:])}
}

// activity appends a round of entries through the centre's operations: a
// record (not audited), an emergency lookup by a named clinician, a
// lookup for treatment, and a refused access; the first round attests the
// patient's key and takes their consent, the second takes a revocation,
// erases a record and records a transfer.
func (f *fixture) activity(t *testing.T, round int) {
	t.Helper()
	ctx := context.Background()
	n := f.node
	res, err := n.AddRecord(ctx, centre.RecordRequest{Pseudonym: f.patient, Class: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	f.records = append(f.records, res.Index)
	emergency := centre.Asker{Role: consent.Clinician, Staff: ledger.StaffID{byte(round + 1)}, Purpose: consent.Emergency, Reason: consent.LifeThreatening}
	for _, asker := range []centre.Asker{emergency, {Role: consent.Registrar, Purpose: consent.Treatment}} {
		if err := n.AuditLookup(ctx, f.patient, asker); err != nil {
			t.Fatal(err)
		}
	}
	// A refusal needs another centre to ask; the holder would append it so.
	refused, err := consent.NewAccess(f.patient, consent.AccessEntry{Event: consent.EventAccess, Requester: n.Centre.ID(), Role: consent.Researcher,
		Action: consent.Access, Purpose: consent.Research, Basis: consent.BasisCharter})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Centre.Ledger.Append(ctx, refused); err != nil {
		t.Fatal(err)
	}
	issued := time.Now().UTC().Truncate(time.Second)
	contract := consent.Contract{ID: consent.ID{1}, Version: 1, Federation: f.cfg.Federation.ID, Subject: f.patient, Issued: issued, Base: consent.OptOut,
		Provisions: []consent.Provision{{Type: consent.Permit, Purposes: consent.Treatment}}}
	switch round {
	case 0:
		if _, err := n.Attest(ctx, f.patient, f.key.Public().(ed25519.PublicKey), false, ledger.StaffID{9}); err != nil {
			t.Fatal(err)
		}
		doc, err := consent.SignContract(f.key, contract)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.SubmitConsent(ctx, doc); err != nil {
			t.Fatal(err)
		}
	case 1:
		doc, err := consent.SignRevocation(f.key, consent.Revocation{Federation: f.cfg.Federation.ID, Subject: f.patient, Target: contract.ID, Issued: issued})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.SubmitConsent(ctx, doc); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Centre.Erase(ctx, f.records[0]); err != nil {
			t.Fatal(err)
		}
		// A transfer needs a second centre; the query service appends
		// its entry so.
		out, err := query.NewTransfer(f.patient, query.Transfer{Direction: query.Out, Centre: n.Centre.ID(), Source: f.records[1], Access: 1, Copy: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Centre.Ledger.Append(ctx, out); err != nil {
			t.Fatal(err)
		}
	}
}

// audited returns the audit trail of the whole ledger, by index, and the
// ledger's size.
func (f *fixture) audited(t *testing.T) (map[int64]centre.AuditEntry, int64) {
	t.Helper()
	size, _ := f.node.AuditHead()
	page, err := f.node.AuditTrail(context.Background(), 0, int(size))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]centre.AuditEntry{}
	for _, e := range page.Entries {
		out[e.Index] = e
	}
	return out, size
}

// exporter is a running Exporter and its log.
type exporter struct {
	*atna.Exporter
	log  *nodetest.Log
	stop func() // cancels Run and waits for it
}

func (f *fixture) options(c *nodetest.SyslogCollector, dir string, format atna.Format, log *nodetest.Log) atna.Options {
	return atna.Options{
		Collector: c.Addr(), TLS: c.TLS, Hostname: "centre-a.test", Origin: f.node.Centre.Ledger.Origin(), Dir: dir,
		Source: f.node, Format: format,
		Batch:      4, // several batches per round
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, ProbeWait: 20 * time.Millisecond, IdleProbe: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func runExporter(t *testing.T, opts atna.Options, log *nodetest.Log) *exporter {
	t.Helper()
	x, err := atna.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("the exporter logged:\n%s", log)
		}
	})
	return &exporter{Exporter: x, log: log, stop: stop}
}

// check asserts that the collector holds every audited entry of the
// ledger exactly once, and nothing else, each message well formed in
// format and naming the patient by pseudonym only.
func (f *fixture) check(t *testing.T, c *nodetest.SyslogCollector, format string) {
	t.Helper()
	trail, size := f.audited(t)
	seen := map[int64]int{}
	for _, m := range c.Messages() {
		seen[m.Index]++
		e, ok := trail[m.Index]
		if !ok {
			t.Fatalf("entry %d (a %s entry) is not audited, and was sent", m.Index, m.Kind)
		}
		wantPRI := 10*8 + 5
		if e.Refused() || e.Emergency() {
			wantPRI = 10*8 + 4
		}
		if m.PRI != wantPRI || m.Hostname != "centre-a.test" || m.AppName != "medfed" || m.Origin != f.node.Centre.Ledger.Origin() || m.Kind != e.Kind.String() {
			t.Fatalf("entry %d's message %+v, want PRI %d and the entry's kind %s", m.Index, m, wantPRI, e.Kind)
		}
		switch format {
		case "dicom":
			var msg dicomMessage
			if m.MsgID != "IHE+RFC-3881" {
				t.Fatalf("MSGID %q", m.MsgID)
			}
			if err := xml.Unmarshal(m.Body, &msg); err != nil {
				t.Fatalf("entry %d: %v: %s", m.Index, err, m.Body)
			}
			if msg.Objects[0].ID != f.patient.String() || msg.Source.ID != "centre-a" {
				t.Fatalf("entry %d's message: %+v", m.Index, msg)
			}
		case "fhir":
			var ev struct {
				ResourceType, ID string
			}
			if m.MsgID != "FHIR+AuditEvent" {
				t.Fatalf("MSGID %q", m.MsgID)
			}
			if err := json.Unmarshal(m.Body, &ev); err != nil {
				t.Fatalf("entry %d: %v: %s", m.Index, err, m.Body)
			}
			if ev.ResourceType != "AuditEvent" || ev.ID != "centre-a-"+strconv.FormatInt(m.Index, 10) || !bytes.Contains(m.Body, []byte(f.patient.String())) {
				t.Fatalf("entry %d's message: %s", m.Index, m.Body)
			}
		}
	}
	for i := range trail {
		if seen[i] != 1 {
			t.Errorf("entry %d (%s) received %d times, want once", i, trail[i].Kind, seen[i])
		}
	}
	kinds := map[ledger.Kind]bool{}
	for _, e := range trail {
		kinds[e.Kind] = true
	}
	if len(kinds) != 5 || int64(len(trail)) >= size {
		t.Fatalf("%d audited entries of %d, of the kinds %v: the test appends every audited kind, and records too", len(trail), size, kinds)
	}
	if raw := c.Raw(); bytes.Contains(raw, []byte(payload)) {
		t.Fatal("a clinical payload reached the collector")
	}
}

// sent counts the distinct audited entries the collector holds.
func sent(c *nodetest.SyslogCollector) int {
	seen := map[int64]bool{}
	for _, m := range c.Messages() {
		seen[m.Index] = true
	}
	return len(seen)
}

// The sequence: entries exported and all seen; the collector
// stopped gracefully; more entries appended while it is down, which the
// exporter retries; the collector started again on the same port. Every
// audited entry arrives exactly once, no other entry at all, and the
// status says what happened on the way.
func TestExportSurvivesCollectorRestartExactlyOnce(t *testing.T) {
	c := nodetest.NewSyslogCollector(t)
	c.Start()
	f := newFixture(t)
	f.activity(t, 0)
	log := &nodetest.Log{}
	opts := f.options(c, t.TempDir(), atna.DICOM("centre-a"), log)
	// No idle probe: the exporter learns the collector went when it has
	// something to send, from the probe before the write.
	opts.IdleProbe = time.Hour
	x := runExporter(t, opts, log)

	trail, size := f.audited(t)
	nodetest.Eventually(t, 30*time.Second, "the first round reaches the collector", func() bool { return sent(c) == len(trail) })
	nodetest.Eventually(t, 10*time.Second, "the cursor reaches the ledger's end", func() bool { return x.Status().Next == size })
	if st := x.Status(); !st.Connected || st.Backlog != 0 || st.Exported != uint64(len(trail)) || st.LastDelivery.IsZero() || st.Failures != 0 {
		t.Fatalf("status after the first round: %+v", st)
	}

	c.Stop()
	f.activity(t, 1)
	more, size := f.audited(t)
	nodetest.Eventually(t, 10*time.Second, "the exporter sees the collector go, and retries", func() bool {
		st := x.Status()
		return !st.Connected && st.Failures >= 3 && st.LastError != nil
	})
	if st := x.Status(); st.Backlog == 0 || st.Connected || st.Next > size {
		t.Fatalf("status while the collector is down: %+v", st)
	}
	if got := sent(c); got != len(trail) {
		t.Fatalf("%d entries at the stopped collector, want %d", got, len(trail))
	}

	c.Start()
	nodetest.Eventually(t, 30*time.Second, "the second round reaches the collector", func() bool { return sent(c) == len(more) })
	nodetest.Eventually(t, 10*time.Second, "the backlog empties", func() bool { return x.Status().Backlog == 0 })
	if st := x.Status(); !st.Connected || st.Next != size || st.Failures != 0 || st.LastError != nil || st.Exported != uint64(len(more)) {
		t.Fatalf("status after the second round: %+v", st)
	}
	x.stop()
	c.Stop() // it writes everything it received
	f.check(t, c, "dicom")
	if strings.Contains(log.String(), f.patient.String()) {
		t.Fatal("a pseudonym reached the exporter's log")
	}
}

// An exporter started again over the same directory resumes from its
// cursor: nothing sent before is sent again, and what was appended in
// between is.
func TestExporterResumesFromItsCursor(t *testing.T) {
	c := nodetest.NewSyslogCollector(t)
	c.Start()
	f := newFixture(t)
	f.activity(t, 0)
	dir := t.TempDir()
	format := atna.FHIR(func(e centre.AuditEntry) ([]byte, error) { return api.AuditEvent("centre-a", e) })
	log := &nodetest.Log{}
	first := runExporter(t, f.options(c, dir, format, log), log)
	trail, size := f.audited(t)
	nodetest.Eventually(t, 30*time.Second, "the first round reaches the collector", func() bool { return sent(c) == len(trail) })
	nodetest.Eventually(t, 10*time.Second, "the cursor reaches the ledger's end", func() bool { return first.Status().Next == size })
	first.stop()
	if _, err := os.Stat(filepath.Join(dir, atna.CursorFile)); err != nil {
		t.Fatalf("no cursor kept: %v", err)
	}

	f.activity(t, 1)
	more, size2 := f.audited(t)
	second := runExporter(t, f.options(c, dir, format, log), log)
	if st := second.Status(); st.Next < size || st.Next > size2 {
		t.Fatalf("the second exporter starts at %d, want %d or past it", st.Next, size)
	}
	nodetest.Eventually(t, 30*time.Second, "the second round reaches the collector", func() bool { return sent(c) == len(more) })
	nodetest.Eventually(t, 10*time.Second, "the cursor reaches the ledger's end", func() bool { return second.Status().Next == size2 })
	if st := second.Status(); st.Exported != uint64(len(more)-len(trail)) {
		t.Fatalf("the second exporter sent %d messages, want %d", st.Exported, len(more)-len(trail))
	}
	second.stop()
	c.Stop()
	f.check(t, c, "fhir")
}

// New names every option that is wrong, and refuses a directory whose
// cursor belongs to another ledger.
func TestNewRefusesBadOptions(t *testing.T) {
	f := newFixture(t)
	tlsCfg := nodetest.NewSyslogCerts(t, t.TempDir()).TLS
	good := func() atna.Options {
		return atna.Options{Collector: "127.0.0.1:6514", TLS: tlsCfg, Hostname: "h", Origin: f.node.Centre.Ledger.Origin(), Dir: t.TempDir(),
			Source: f.node, Format: atna.DICOM("centre-a")}
	}
	if _, err := atna.New(good()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*atna.Options)
		want   string
	}{
		{"no collector port", func(o *atna.Options) { o.Collector = "127.0.0.1" }, "Collector"},
		{"no TLS", func(o *atna.Options) { o.TLS = nil }, "TLS"},
		{"a hostname with a space", func(o *atna.Options) { o.Hostname = "a b" }, "Hostname"},
		{"an app name too long", func(o *atna.Options) { o.AppName = strings.Repeat("a", 49) }, "AppName"},
		{"no origin", func(o *atna.Options) { o.Origin = "" }, "Origin"},
		{"no directory", func(o *atna.Options) { o.Dir = "" }, "Dir"},
		{"no source", func(o *atna.Options) { o.Source = nil }, "Source"},
		{"no format", func(o *atna.Options) { o.Format = atna.Format{} }, "Format"},
		{"a backoff upside down", func(o *atna.Options) { o.MinBackoff, o.MaxBackoff = time.Second, time.Millisecond }, "MaxBackoff"},
		{"a facility out of range", func(o *atna.Options) { o.Facility = 24 }, "Facility"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.change(&o)
			_, err := atna.New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
	t.Run("several at once", func(t *testing.T) {
		o := good()
		o.TLS, o.Dir = nil, ""
		_, err := atna.New(o)
		if err == nil || !strings.Contains(err.Error(), "TLS") || !strings.Contains(err.Error(), "Dir") {
			t.Fatalf("New: %v, want both TLS and Dir named", err)
		}
	})
	t.Run("another ledger's cursor", func(t *testing.T) {
		o := good()
		if err := os.WriteFile(filepath.Join(o.Dir, atna.CursorFile), []byte(`{"origin":"medfed/other/centre-z","next":3}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := atna.New(o); err == nil || !strings.Contains(err.Error(), "medfed/other/centre-z") {
			t.Fatalf("New: %v, want the cursor refused", err)
		}
	})
	t.Run("a cursor that is not one", func(t *testing.T) {
		o := good()
		if err := os.WriteFile(filepath.Join(o.Dir, atna.CursorFile), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := atna.New(o); err == nil || errors.Is(err, os.ErrNotExist) {
			t.Fatalf("New: %v, want the cursor refused", err)
		}
	})
}

// A collector that refuses the exporter's certificate (here: none, where
// the collector requires one) gets nothing, and the exporter's cursor
// stays before the first audited entry: under TLS 1.3 the refusal comes
// after the handshake, and the read after a batch is what sees it.
func TestRefusedClientCertificateDeliversNothing(t *testing.T) {
	c := nodetest.NewSyslogCollector(t)
	c.Start()
	f := newFixture(t)
	f.activity(t, 0)
	log := &nodetest.Log{}
	opts := f.options(c, t.TempDir(), atna.DICOM("centre-a"), log)
	opts.TLS = opts.TLS.Clone()
	opts.TLS.Certificates = nil
	x := runExporter(t, opts, log)
	nodetest.Eventually(t, 10*time.Second, "the exporter fails, and retries", func() bool { return x.Status().Failures >= 3 })
	trail, _ := f.audited(t)
	first := int64(-1)
	for i := range trail {
		if first < 0 || i < first {
			first = i
		}
	}
	if st := x.Status(); st.Exported != 0 || st.Next > first || st.LastError == nil {
		t.Fatalf("status %+v, want nothing exported and the cursor at or before entry %d", st, first)
	}
	x.stop()
	c.Stop()
	if got := c.Messages(); len(got) != 0 {
		t.Fatalf("the collector took %d messages from a client it refused", len(got))
	}
}
