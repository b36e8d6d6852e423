package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// auditExport is one centre's export of its audit trail to its
// hospital's audit record repository, and what the repository must
// receive of it.
type auditExport struct {
	c         *centre
	collector *nodetest.SyslogCollector
	format    string // audit.format
	msgID     string // the MSGID of the format's messages
	facility  int    // audit.facility's number
	hostname  string // audit.hostname
	metrics   string // metrics.listen
	token     string // a privacy officer's, for the ledger's routes
}

// env is the centre's audit configuration, as an operator sets it in the
// environment of the node's service, and its metrics, which say how the
// export goes.
func (e *auditExport) env() []string {
	name := map[int]string{10: "authpriv", 13: "log-audit"}[e.facility]
	return []string{
		"MEDFED_AUDIT_COLLECTOR=" + e.collector.Addr(),
		"MEDFED_AUDIT_FORMAT=" + e.format,
		"MEDFED_AUDIT_CA_FILE=" + e.collector.CAFile,
		"MEDFED_AUDIT_CERT_FILE=" + e.collector.CertFile,
		"MEDFED_AUDIT_KEY_FILE=" + e.collector.KeyFile,
		"MEDFED_AUDIT_HOSTNAME=" + e.hostname,
		"MEDFED_AUDIT_FACILITY=" + name,
		"MEDFED_METRICS_ENABLED=true",
		"MEDFED_METRICS_LISTEN=" + e.metrics,
	}
}

// trail is what the privacy officer reconciling the repository with the
// ledger reads of it through the centre's API, once the whole ledger is
// final: its origin, its size, and the kind of each audited entry by
// index (GET /v1/ledger, then each entry's proof, which names its kind).
func (e *auditExport) trail(t *testing.T, x *api) (origin string, size int64, audited map[int64]string) {
	t.Helper()
	var st httpapi.LedgerStatus
	waitFor(t, 20*time.Second, e.c.name+"'s whole ledger is final", func() bool {
		st = httpapi.LedgerStatus{}
		x.must(t, 200, "GET", e.c.name, "/v1/ledger", e.token, nil, &st)
		return st.Final != nil && st.Final.Size == st.Size
	})
	kinds := map[string]bool{}
	for k := range 256 {
		if node.Audited(ledger.Kind(k)) {
			kinds[ledger.Kind(k).String()] = true
		}
	}
	audited = map[int64]string{}
	for i := range st.Size {
		var p httpapi.EntryProof
		x.must(t, 200, "GET", e.c.name, fmt.Sprintf("/v1/ledger/entries/%d/proof", i), e.token, nil, &p)
		if p.Index != i {
			t.Fatalf("%s: the proof of entry %d is entry %d's", e.c.name, i, p.Index)
		}
		if kinds[p.Kind] {
			audited[i] = p.Kind
		}
	}
	return st.Origin, st.Size, audited
}

// waitDelivered waits until the collector holds every audited entry of
// the centre's ledger as it is now, and the export's metrics say it has
// caught up: connected, with no backlog. An operator waits for the
// second before stopping the collector too: the exporter moves its
// cursor past a batch only once its read after the batch (atna's
// ProbeWait) has found the connection still open, so a collector
// stopped in between, having stored the batch, is sent it again.
func (e *auditExport) waitDelivered(t *testing.T, x *api) {
	t.Helper()
	e.waitCaughtUp(t)
	origin, _, audited := e.trail(t, x)
	waitFor(t, 30*time.Second, fmt.Sprintf("the %d audited entries of %s reach its collector", len(audited), e.c.name), func() bool {
		seen := map[int64]bool{}
		for _, m := range e.collector.Messages() {
			if m.Origin == origin {
				seen[m.Index] = true
			}
		}
		for i := range audited {
			if !seen[i] {
				return false
			}
		}
		return true
	})
}

// waitCaughtUp waits until the export's metrics say it has caught up
// with the ledger: connected, with no backlog.
func (e *auditExport) waitCaughtUp(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, e.c.name+"'s audit export catches up", func() bool {
		m, _ := scrape(t, e.metrics)
		return value(m, "medfed_audit_backlog_entries") == 0 && value(m, "medfed_audit_connected") == 1
	})
}

// audited returns the bodies of the messages of the given kinds that
// the export's repository received, one per ledger entry, by kind.
func (e *auditExport) audited(kinds ...string) map[string][][]byte {
	out, seen := map[string][][]byte{}, map[int64]bool{}
	for _, m := range e.collector.Messages() {
		if slices.Contains(kinds, m.Kind) && !seen[m.Index] {
			seen[m.Index] = true
			out[m.Kind] = append(out[m.Kind], m.Body)
		}
	}
	return out
}

// check, with the collector stopped (it has written all it received),
// asserts that it holds every audited entry of the centre's ledger
// exactly once and nothing else, each in the configured format and
// header, naming the patient by pseudonym p only: no NHS number, no
// payload. It returns the kinds of the audited entries by index, and how
// many arrived with the severity warning (a refusal, an emergency).
func (e *auditExport) check(t *testing.T, x *api, p string) (audited map[int64]string, warnings int) {
	t.Helper()
	origin, _, audited := e.trail(t, x)
	seen := map[int64]int{}
	msgs := e.collector.Messages()
	for _, m := range msgs {
		kind, ok := audited[m.Index]
		if m.Origin != origin || !ok {
			t.Fatalf("%s's collector received entry %d (%s) of the ledger %q, which is not an audited entry of %s", e.c.name, m.Index, m.Kind, m.Origin, origin)
		}
		seen[m.Index]++
		if m.Kind != kind || m.Hostname != e.hostname || m.AppName != "medfed" || m.MsgID != e.msgID || m.PRI/8 != e.facility || m.PRI%8 != 4 && m.PRI%8 != 5 {
			t.Fatalf("%s's entry %d (%s) arrived as %+v: want hostname %s, MSGID %s, facility %d, severity warning or notice",
				e.c.name, m.Index, kind, m, e.hostname, e.msgID, e.facility)
		}
		if m.PRI%8 == 4 {
			warnings++
		}
		switch e.format {
		case "fhir":
			var ev struct {
				ResourceType, ID string
			}
			if err := json.Unmarshal(m.Body, &ev); err != nil {
				t.Fatalf("%s's entry %d is not JSON: %v: %s", e.c.name, m.Index, err, m.Body)
			}
			if ev.ResourceType != "AuditEvent" || ev.ID != e.c.name+"-"+strconv.FormatInt(m.Index, 10) {
				t.Fatalf("%s's entry %d is not its AuditEvent: %s", e.c.name, m.Index, m.Body)
			}
		case "dicom":
			var msg struct {
				XMLName xml.Name `xml:"AuditMessage"`
				Event   struct {
					ID struct {
						Code string `xml:"csd-code,attr"`
					} `xml:"EventID"`
				} `xml:"EventIdentification"`
				Source struct {
					ID string `xml:"AuditSourceID,attr"`
				} `xml:"AuditSourceIdentification"`
			}
			if err := xml.Unmarshal(m.Body, &msg); err != nil {
				t.Fatalf("%s's entry %d is not XML: %v: %s", e.c.name, m.Index, err, m.Body)
			}
			if msg.Event.ID.Code == "" || msg.Source.ID != e.c.name {
				t.Fatalf("%s's entry %d is not a DICOM audit message of %s: %s", e.c.name, m.Index, e.c.name, m.Body)
			}
		}
		if !bytes.Contains(m.Body, []byte(p)) {
			t.Fatalf("%s's entry %d does not name the patient by pseudonym: %s", e.c.name, m.Index, m.Body)
		}
	}
	for i, kind := range audited {
		if seen[i] != 1 {
			t.Errorf("%s's entry %d (%s) reached the collector %d times, want once", e.c.name, i, kind, seen[i])
		}
	}
	raw := e.collector.Raw()
	for _, secret := range []string{nhsNumber, "synthetic lab result"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("%s's collector received %q", e.c.name, secret)
		}
	}
	t.Logf("%s: %d audited entries on the ledger, %d messages at the collector, %d of them warnings", e.c.name, len(audited), len(msgs), warnings)
	return audited, warnings
}

// Two centres export their audit trails to their hospitals' audit record
// repositories, each a real rsyslog over mutual TLS: centre-a as FHIR
// AuditEvents under authpriv, centre-b as DICOM audit messages under log
// audit. Each has a repository of its own, as two hospitals do; so a
// message filed with the wrong hospital, or in the wrong format, fails
// the test. After a day of work every audited ledger entry has reached
// its repository exactly once. The repositories then stop; the patient
// revokes their consent, a clinician's query is refused and an emergency
// access is made; the nodes restart with that backlog, kept in their
// cursors, and the repositories come back: every audited entry is there
// exactly once, and no NHS number or payload ever was.
func TestAuditTrailReachesTheRepositoryExactlyOnce(t *testing.T) {
	root := t.TempDir()
	a, b := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b")
	exports := []*auditExport{
		{c: a, collector: nodetest.NewSyslogCollector(t), format: "fhir", msgID: "FHIR+AuditEvent", facility: 10, hostname: "medfed.hospital-a.test"},
		{c: b, collector: nodetest.NewSyslogCollector(t), format: "dicom", msgID: "IHE+RFC-3881", facility: 13, hostname: "medfed.hospital-b.test"},
	}
	for _, e := range exports {
		e.metrics = fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))
		e.collector.Start()
		e.c.extra = e.env()
	}
	foundTwo(t, root, a, b)
	p := dayOfWork(t, root, a, b)

	x := newAPI()
	for _, e := range exports {
		x.add(t, e.c)
		e.token = e.c.token("privacy-officer")
	}
	for _, e := range exports {
		e.waitDelivered(t, x)
	}
	before := map[*auditExport]map[int64]string{}
	for _, e := range exports {
		e.collector.Stop()
		before[e], _ = e.check(t, x, p)
	}

	// The repositories are down; the work goes on.
	file := func(name string) string { return filepath.Join(root, name) }
	if out := a.run("consent", "revoke", "--key", file("patient.key"), "--pseudonym", p); !strings.Contains(out, "accepted") {
		t.Fatalf("revoke printed %q", out)
	}
	query := func(args ...string) httpapi.QueryResult {
		t.Helper()
		out := a.run(append([]string{"query", "--json", "--pseudonym", p, "--staff", "5eed5eed5eed5eed5eed5eed5eed5eed"}, args...)...)
		var res httpapi.QueryResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Holders) != 2 {
			t.Fatalf("query %v printed %q (%v), want both holders' answers", args, out, err)
		}
		return res
	}
	for _, h := range query("--purpose", "treatment").Holders {
		if h.Status != "denied" {
			t.Fatalf("after the revocation, %s answered %+v, want a denial", h.Name, h)
		}
	}
	for _, h := range query("--purpose", "emergency", "--reason", "unconscious").Holders {
		if h.Status != "answered" || len(h.Records) != 1 {
			t.Fatalf("an emergency access: %s answered %+v, want its record", h.Name, h)
		}
	}
	// What the repositories missed waits in the ledger, from each
	// centre's cursor, across a restart of the node.
	for _, e := range exports {
		origin, size, audited := e.trail(t, x)
		first := size
		for i := range audited {
			if _, sent := before[e][i]; !sent {
				first = min(first, i)
			}
		}
		if first == size {
			t.Fatalf("%s appended no audited entry while its repository was down", e.c.name)
		}
		e.c.stop()
		if !strings.Contains(e.c.logs.String(), "audit export failed") {
			t.Errorf("%s's log does not say that the audit export failed while its repository was down", e.c.name)
		}
		raw, err := os.ReadFile(filepath.Join(e.c.dir, atna.CursorFile))
		if err != nil {
			t.Fatalf("%s kept no audit cursor: %v", e.c.name, err)
		}
		var cursor struct {
			Origin string
			Next   int64
		}
		if err := json.Unmarshal(raw, &cursor); err != nil || cursor.Origin != origin || cursor.Next > first {
			t.Fatalf("%s's audit cursor %s (%v): want the origin %s and an index at most %d, the first entry not sent", e.c.name, raw, err, origin, first)
		}
	}
	for _, e := range exports {
		e.c.start()
	}
	for _, e := range exports {
		e.collector.Start()
	}
	waitFor(t, 15*time.Second, "the centres reconnect", connectedTo(a, "centre-b"))
	for _, e := range exports {
		e.waitDelivered(t, x)
	}
	for _, e := range exports {
		e.collector.Stop()
		after, warnings := e.check(t, x, p)
		if len(after) <= len(before[e]) || warnings == 0 {
			t.Errorf("%s: %d audited entries after the work, %d before, %d of them warnings: want more, and the refusal and the emergency as warnings",
				e.c.name, len(after), len(before[e]), warnings)
		}
		m, _ := scrape(t, e.metrics)
		if got, want := value(m, "medfed_audit_exported_total"), float64(len(after)-len(before[e])); got != want {
			t.Errorf("%s's metrics say %v audit messages were delivered since the restart, want %v", e.c.name, got, want)
		}
		// The audit export's metrics the dashboard and alerts query.
		checkMonitored(t, func(name string) bool { return strings.HasPrefix(name, "medfed_audit_") }, m)
	}
}
