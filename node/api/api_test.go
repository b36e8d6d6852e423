package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	fed "github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
	"github.com/medfed/medfed/node/smart"
)

const nhs = "943 476 5919" // a valid NHS number (mod-11), synthetic

// testCentre is a running node with its API on a real 127.0.0.1 port.
type testCentre struct {
	cfg     centre.Config
	node    *centre.Node
	url     string
	staff   *api.StaffStore
	clients *smart.Server // the systems it registered (SMART Backend Services)
	logs    *nodetest.Log // the API's log
}

func (c *testCentre) token(t testing.TB, role string) string {
	t.Helper()
	tok, _, err := c.staff.Add(context.Background(), role, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// federation starts two founders, a and b, each with its API.
func federation(t testing.TB) (a, b *testCentre) {
	t.Helper()
	return federationWith(t, nil)
}

// federationWith is federation under a policy changed by policy first
// (the package's helper is named federation, hence fed).
func federationWith(t testing.TB, policy func(*fed.Policy)) (a, b *testCentre) {
	t.Helper()
	root := t.TempDir()
	cfgs := []centre.Config{nodetest.Config(t, root, "centre-a"), nodetest.Config(t, root, "centre-b")}
	for i := range cfgs {
		cfgs[i].Ledger.CheckpointInterval = 200 * time.Millisecond
	}
	nodetest.FoundWith(t, policy, cfgs...)
	var cs []*testCentre
	for _, cfg := range cfgs {
		n := nodetest.Start(t, cfg)
		st, err := api.OpenStaff(cfg.Data.Dir, n.Centre.RowKey(api.StaffFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		clients, err := smart.Open(smart.Options{Dir: cfg.Data.Dir, Key: n.Centre.RowKey(smart.ClientsFile), Staff: st.Role})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { clients.Close() })
		logs := &nodetest.Log{}
		srv, err := api.New(api.Options{Node: n, Staff: st, SMART: clients, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		t.Cleanup(hs.Close)
		cs = append(cs, &testCentre{cfg: cfg, node: n, url: hs.URL, staff: st, clients: clients, logs: logs})
	}
	nodetest.Eventually(t, 10*time.Second, "the founders connect", func() bool {
		_, err := cs[0].node.Ready()
		return err == nil
	})
	return cs[0], cs[1]
}

// answer is an HTTP answer, its body decoded.
type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// client bounds every request of the tests: a hung request fails its test
// rather than stalling the run.
var client = &http.Client{Timeout: 2 * time.Minute}

func call(t testing.TB, method, url, token string, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &a.body) // not every answer is an object; checked where it matters
	return a
}

// want fails unless the answer has status, and, for an error, is an
// OperationOutcome.
func (a answer) want(t testing.TB, status int, what string) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.raw)
	}
	if status >= 400 {
		if a.body["resourceType"] != "OperationOutcome" || a.header.Get("Content-Type") != "application/fhir+json" {
			t.Fatalf("%s: the error is not an OperationOutcome: %s", what, a.raw)
		}
	}
	return a
}

func (a answer) diagnostics() string {
	var out []string
	issues, _ := a.body["issue"].([]any)
	for _, i := range issues {
		if m, ok := i.(map[string]any); ok {
			s, _ := m["diagnostics"].(string)
			out = append(out, s)
		}
	}
	return strings.Join(out, " | ")
}

// entries returns a Bundle's resources of one type.
func (a answer) entries(kind string) []map[string]any {
	var out []map[string]any
	es, _ := a.body["entry"].([]any)
	for _, e := range es {
		r, _ := e.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] == kind {
			out = append(out, r)
		}
	}
	return out
}

// outcomeOf returns the diagnostics of a Bundle's OperationOutcome.
func (a answer) outcomeOf() string {
	var out []string
	for _, oo := range a.entries("OperationOutcome") {
		out = append(out, answer{body: oo}.diagnostics())
	}
	return strings.Join(out, " | ")
}

func data(r map[string]any) string {
	content := r["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
	s, _ := content["data"].(string)
	b, _ := base64.StdEncoding.DecodeString(s)
	return string(b)
}

func contract(t testing.TB, key ed25519.PrivateKey, n *centre.Node, p string, base consent.Base) []byte {
	t.Helper()
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := consent.SignContract(key, consent.Contract{ID: consent.NewID(), Version: 1, Federation: n.Membership.Current().Federation,
		Subject: subject, Issued: time.Now().UTC().Truncate(time.Second), Base: base})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestTheTourOverHTTP registers a patient, records, grants consent,
// queries across the two centres, revokes, and shows the patient their
// audit trail: every step as an EHR or a patient's app would call it.
func TestTheTourOverHTTP(t *testing.T) {
	a, b := federation(t)
	registrar, clinicianA, clinicianB := a.token(t, "registrar"), a.token(t, "clinician"), b.token(t, "clinician")
	officer := b.token(t, "privacy-officer")

	reg := call(t, "POST", a.url+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register")
	p, _ := reg.body["id"].(string)
	if reg.body["resourceType"] != "Patient" || len(p) != 64 {
		t.Fatalf("register: not a Patient with a pseudonym: %s", reg.raw)
	}
	if bytes.Contains(reg.raw, []byte("9434765919")) || bytes.Contains(reg.raw, []byte(nhs)) {
		t.Fatal("register: the answer repeats the NHS number")
	}
	// The same identifier, written another way, at the other centre: the same pseudonym.
	again := call(t, "POST", b.url+"/v1/patients", b.token(t, "registrar"), map[string]any{"identifier": map[string]string{"system": "nhs", "value": "943-476-5919"}}).want(t, 200, "register at b")
	if again.body["id"] != p {
		t.Fatalf("the two centres derive different pseudonyms: %v and %s", again.body["id"], p)
	}

	rec := call(t, "POST", b.url+"/v1/records", clinicianB, map[string]any{"patient": p, "class": "lab-result", "data": []byte("synthetic HbA1c 48"),
		"occurred": "2026-11-01"}).want(t, 201, "add a record at b")
	if rec.body["resourceType"] != "DocumentReference" || rec.header.Get("Location") == "" {
		t.Fatalf("add a record: %s", rec.raw)
	}
	loc := rec.header.Get("Location")
	amend := call(t, "POST", b.url+loc+"/amendments", clinicianB, map[string]any{"patient": p, "class": "lab-result", "data": []byte("synthetic HbA1c 47 (corrected)")}).want(t, 201, "amend it")
	if rel, _ := amend.body["relatesTo"].([]any); len(rel) != 1 {
		t.Fatalf("the amendment does not say what it replaces: %s", amend.raw)
	}

	key, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", a.url+"/v1/patients/"+p+"/keys", registrar, map[string]any{"publicKey": consent.FormatPublicKey(key.Public().(ed25519.PublicKey))}).want(t, 200, "attest the key")
	grant := call(t, "POST", a.url+"/v1/consent", "", map[string]any{"document": contract(t, key, a.node, p, consent.OptIn)}).want(t, 200, "grant")
	if grant.body["Confirmed"] != true {
		t.Fatalf("grant not confirmed: %s", grant.raw)
	}
	shown := call(t, "GET", b.url+"/v1/consent/"+p, clinicianB, nil).want(t, 200, "show consent")
	if shown.body["resourceType"] != "Consent" || shown.body["status"] != "active" {
		t.Fatalf("show consent: %s", shown.raw)
	}

	// A clinician at a asks the federation; the records become final at b
	// within a few checkpoints.
	var q answer
	// The amendment replaced the record: the current version is released.
	nodetest.Eventually(t, 15*time.Second, "the record released to a", func() bool {
		q = call(t, "POST", a.url+"/v1/query", clinicianA, map[string]any{"patient": p, "purpose": "treatment"}).want(t, 200, "query")
		return len(q.entries("DocumentReference")) == 1
	})
	if q.body["resourceType"] != "Bundle" || q.body["type"] != "searchset" {
		t.Fatalf("query: not a searchset Bundle: %s", q.raw)
	}
	var got []string
	for _, d := range q.entries("DocumentReference") {
		got = append(got, data(d))
	}
	slices.Sort(got)
	if want := []string{"synthetic HbA1c 47 (corrected)"}; !slices.Equal(got, want) {
		t.Fatalf("query released %q, want %q", got, want)
	}
	if !strings.Contains(q.outcomeOf(), "centre-b: 1 record(s) released") {
		t.Fatalf("query outcome: %s", q.outcomeOf())
	}
	// b's own clinician reads the record through the same consent check.
	amended := amend.header.Get("Location")
	own := call(t, "GET", b.url+amended, clinicianB, nil).want(t, 200, "fetch b's record")
	if data(own.body) != "synthetic HbA1c 47 (corrected)" {
		t.Fatalf("fetch: %s", own.raw)
	}

	// The patient revokes: the same query is denied, and says so.
	shownA := call(t, "GET", a.url+"/v1/consent/"+p, clinicianA, nil).want(t, 200, "show consent at a")
	id, _ := shownA.body["id"].(string)
	cid, err := consent.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := ledger.ParsePseudonym(p)
	rev, err := consent.SignRevocation(key, consent.Revocation{Federation: a.node.Membership.Current().Federation, Subject: subject, Target: cid, Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", b.url+"/v1/consent", "", map[string]any{"document": rev}).want(t, 200, "revoke")
	denied := call(t, "POST", a.url+"/v1/query", clinicianA, map[string]any{"patient": p, "purpose": "treatment"}).want(t, 200, "query after revoking")
	if n := len(denied.entries("DocumentReference")); n != 0 || !strings.Contains(denied.outcomeOf(), "centre-b: denied") {
		t.Fatalf("after revoking: %d records, outcome %s", n, denied.outcomeOf())
	}
	call(t, "GET", b.url+amended, clinicianB, nil).want(t, 403, "fetch after revoking")

	// Break-glass: released, and notified to b's privacy officer.
	em := call(t, "POST", a.url+"/v1/emergency", clinicianA, map[string]any{"patient": p, "reason": "unconscious"}).want(t, 200, "emergency")
	if len(em.entries("DocumentReference")) != 1 {
		t.Fatalf("emergency: %s", em.outcomeOf())
	}
	notes := call(t, "GET", b.url+"/v1/notifications", officer, nil).want(t, 200, "notifications")
	// The key's attestation is in the feed too (action U), then the
	// emergency access (action E).
	if evs := notes.entries("AuditEvent"); len(evs) != 2 || !strings.Contains(string(notes.raw), "unconscious") || !strings.Contains(string(notes.raw), "key-attestation") {
		t.Fatalf("notifications: %s", notes.raw)
	}

	// The patient's own view, signed with their key, through a.
	view, err := centre.PatientRequest(a.cfg, patient.View, subject, key)
	if err != nil {
		t.Fatal(err)
	}
	v := call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": view}).want(t, 200, "patient view")
	events := v.entries("AuditEvent")
	var permitted, deniedN int
	for _, e := range events {
		switch e["outcome"] {
		case "0":
			permitted++
		case "4":
			deniedN++
		}
	}
	if len(v.entries("DocumentReference")) != 2 || deniedN < 2 || permitted < 3 {
		t.Fatalf("patient view: %d records, %d permitted and %d denied events: %s", len(v.entries("DocumentReference")), permitted, deniedN, v.outcomeOf())
	}

	// A record's entry, proven in b's final checkpoint.
	index := strings.TrimPrefix(loc, "/v1/records/")
	var pr answer
	nodetest.Eventually(t, 10*time.Second, "the record entry is final", func() bool {
		pr = call(t, "GET", b.url+"/v1/ledger/entries/"+index+"/proof", officer, nil)
		return pr.status == 200
	})
	if pr.body["Kind"] != "record" || pr.body["Checkpoint"] == "" {
		t.Fatalf("proof: %s", pr.raw)
	}
	call(t, "GET", a.url+"/v1/federation", a.token(t, "admin"), nil).want(t, 200, "federation status")
}

func mustKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
