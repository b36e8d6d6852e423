package api_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	fed "github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// TestAbuseKeyTakeoverByOneRegistrar: a registrar attests a key of their
// own for a patient who has one, marking the patient's key compromised.
// Until a second staff member approves it and the notice passes, the new
// key cannot view or erase anything and the patient's key still speaks
// for them; the attesting registrar cannot approve it themselves; the
// patient's key vetoes it during the notice, and it never takes effect.
// Every step is on the ledger and in the notification feed.
func TestAbuseKeyTakeoverByOneRegistrar(t *testing.T) {
	// A notice long enough for the steps between the approval and the
	// veto on a loaded machine: a replacement takes effect a notice after
	// the second its approval is dated to, so the tests' usual notice of
	// one second left them between 0 and 1 s.
	const notice = 10 * time.Second
	a, b := federationWith(t, func(p *fed.Policy) { p.KeyNotice = notice })
	registrar, clinicianB := a.token(t, "registrar"), b.token(t, "clinician")
	officerA, officerB := a.token(t, "privacy-officer"), b.token(t, "privacy-officer")

	reg := call(t, "POST", a.url+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register")
	p, _ := reg.body["id"].(string)
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	rec := call(t, "POST", b.url+"/v1/records", clinicianB, map[string]any{"patient": p, "class": "lab-result", "data": []byte("synthetic HbA1c 48")}).want(t, 201, "a record at b")
	loc := rec.header.Get("Location")

	patientKey, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	mallory, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	attest := func(k ed25519.PrivateKey, compromised bool) answer {
		return call(t, "POST", a.url+"/v1/patients/"+p+"/keys", registrar,
			map[string]any{"publicKey": consent.FormatPublicKey(k.Public().(ed25519.PublicKey)), "compromised": compromised})
	}
	attest(patientKey, false).want(t, 200, "the patient's first key")
	consentView := func() api.KeyList {
		t.Helper()
		var v api.KeyList
		decode(t, call(t, "GET", a.url+"/v1/patients/"+p+"/keys", registrar, nil).want(t, 200, "the patient's keys").raw, &v)
		return v
	}
	patientPub := consent.FormatPublicKey(patientKey.Public().(ed25519.PublicKey))
	if v := consentView(); v.Key != patientPub || len(v.Keys) != 1 || v.Keys[0].Status != "in effect" {
		t.Fatalf("after the first attestation: %+v", v)
	}
	time.Sleep(notice + time.Second) // the patient's key could erase now; the registrar's must not

	// The takeover: one registrar attests mallory's key, "compromised".
	attest(mallory, true).want(t, 200, "the registrar's own key")
	v := consentView()
	if v.Key != patientPub || len(v.Keys) != 2 || v.Keys[1].Status != "awaiting a second approval" || !v.Keys[1].Replaces {
		t.Fatalf("an unapproved replacement took effect: %+v", v)
	}
	takeover := v.Keys[1].Attestation
	sizeB := b.node.Centre.Ledger.Size()

	// The new key can neither erase nor view: refused at the relay.
	for _, op := range []patient.Op{patient.Erase, patient.View} {
		req, err := centre.PatientRequest(a.cfg, op, subject, mallory)
		if err != nil {
			t.Fatal(err)
		}
		got := call(t, "POST", a.url+"/v1/patient/"+op.String(), "", map[string]any{"request": req}).want(t, 403, "the registrar's key: "+op.String())
		if !strings.Contains(got.diagnostics(), "not a key that speaks for the patient") {
			t.Fatalf("%s with the unapproved key: %s", op, got.diagnostics())
		}
	}
	if b.node.Centre.Ledger.Size() != sizeB {
		t.Fatal("a refused request reached centre-b's ledger")
	}
	call(t, "GET", b.url+loc, clinicianB, nil).want(t, 200, "the record is still there")

	// The same registrar cannot be the second staff member.
	call(t, "POST", a.url+"/v1/patients/"+p+"/keys/approvals", registrar, map[string]any{"attestation": takeover}).want(t, 403, "self-approval")
	if v := consentView(); v.Keys[1].Status != "awaiting a second approval" {
		t.Fatalf("after a self-approval: %+v", v.Keys[1])
	}

	// A privacy officer at the other centre approves (deceived, say): the
	// notice starts, and the patient's key vetoes it.
	call(t, "POST", b.url+"/v1/patients/"+p+"/keys/approvals", officerB, map[string]any{"attestation": takeover}).want(t, 200, "a second approval")
	v = consentView()
	if v.Keys[1].Status != "in its notice period" || v.Keys[1].Effect == nil || v.Key != patientPub {
		t.Fatalf("after the approval: %+v", v)
	}
	effect := *v.Keys[1].Effect
	att, err := consent.ParseHash(takeover)
	if err != nil {
		t.Fatal(err)
	}
	veto, err := consent.SignVeto(patientKey, consent.Veto{Federation: a.node.Membership.Current().Federation, Subject: subject, Attestation: att, Issued: now()})
	if err != nil {
		t.Fatal(err)
	}
	// The veto is the patient's, not mallory's: mallory's key cannot sign one.
	forged, err := consent.SignVeto(mallory, consent.Veto{Federation: a.node.Membership.Current().Federation, Subject: subject, Attestation: att, Issued: now()})
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", a.url+"/v1/consent", "", map[string]any{"document": forged}).want(t, 409, "a veto by the new key")
	call(t, "POST", a.url+"/v1/consent", "", map[string]any{"document": veto}).want(t, 200, "the patient's veto")
	time.Sleep(time.Until(effect) + time.Second) // the notice has passed
	if v := consentView(); v.Keys[1].Status != "vetoed by the patient" || v.Key != patientPub {
		t.Fatalf("after the veto and the notice: %+v", v)
	}
	req, err := centre.PatientRequest(a.cfg, patient.Erase, subject, mallory)
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", a.url+"/v1/patient/erase", "", map[string]any{"request": req}).want(t, 403, "the vetoed key erases")
	call(t, "GET", b.url+loc, clinicianB, nil).want(t, 200, "the record is still there")

	// The patient's own view, signed by each holder, tells them of each
	// step: both attestations, the approval and their veto.
	view, err := centre.PatientRequest(a.cfg, patient.View, subject, patientKey)
	if err != nil {
		t.Fatal(err)
	}
	seen := call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": view}).want(t, 200, "the patient's view")
	var events []string
	for _, ev := range seen.entries("AuditEvent") {
		site, _ := ev["source"].(map[string]any)["site"].(string)
		code, _ := ev["subtype"].([]any)[0].(map[string]any)["code"].(string)
		if strings.HasPrefix(site, "urn:medfed:ledger:centre-b#") && strings.HasPrefix(code, "key-") {
			events = append(events, code)
		}
	}
	if got := strings.Join(events, " "); got != "key-attestation key-attestation key-approval key-veto" {
		t.Fatalf("centre-b tells the patient of %q: %s", got, seen.raw)
	}

	// Each step is in the feed, at both centres.
	for _, c := range []struct {
		url, token string
	}{{a.url, officerA}, {b.url, officerB}} {
		feed := string(call(t, "GET", c.url+"/v1/notifications", c.token, nil).want(t, 200, "notifications").raw)
		for _, ev := range []string{"key-attestation", "key-approval", "key-veto"} {
			if !strings.Contains(feed, ev) {
				t.Fatalf("the feed at %s lacks %s: %s", c.url, ev, feed)
			}
		}
	}
}

func decode(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
