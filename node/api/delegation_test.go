package api_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// TestARegistrarDelegatesForAPatientWhoCannotSign: an adult who lacks
// capacity has no key; a registrar, having seen a court order, makes a
// carer their guardian for the view. Bad input changes nothing; until a
// second staff member approves, the carer's view is refused, and the
// registrar cannot be that second member. Once a privacy officer at the
// other centre approves, the carer sees the patient's view, each holder
// recording the delegation beside the request.
func TestARegistrarDelegatesForAPatientWhoCannotSign(t *testing.T) {
	a, b := federation(t)
	registrar, officerB, clinicianB := a.token(t, "registrar"), b.token(t, "privacy-officer"), b.token(t, "clinician")
	reg := call(t, "POST", a.url+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register")
	p, _ := reg.body["id"].(string)
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", b.url+"/v1/records", clinicianB, map[string]any{"patient": p, "class": "lab-result", "data": []byte("synthetic HbA1c 48")}).want(t, 201, "a record at b")
	carer, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	body := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{"delegateKey": consent.FormatPublicKey(carer.Public().(ed25519.PublicKey)), "relationship": "guardian",
			"scope": []string{"view"}, "evidence": "court-order", "expires": now().Add(time.Hour)}
		if edit != nil {
			edit(m)
		}
		return m
	}
	delegations := a.url + "/v1/patients/" + p + "/delegations"
	size := a.node.Centre.Ledger.Size()
	for what, edit := range map[string]func(map[string]any){
		"an unknown relationship": func(m map[string]any) { m["relationship"] = "neighbour" },
		"an unknown scope":        func(m map[string]any) { m["scope"] = []string{"view", "everything"} },
		"no evidence":             func(m map[string]any) { delete(m, "evidence") },
		"a key of 3 bytes":        func(m map[string]any) { m["delegateKey"] = "0a0b0c" },
		"an expiry passed":        func(m map[string]any) { m["expires"] = now().Add(-time.Hour) },
	} {
		if got := call(t, "POST", delegations, registrar, body(edit)); got.status/100 != 4 {
			t.Fatalf("%s: %d, want a refusal: %s", what, got.status, got.raw)
		}
	}
	call(t, "POST", delegations, a.token(t, "clinician"), body(nil)).want(t, 403, "a clinician makes a delegation")
	if a.node.Centre.Ledger.Size() != size {
		t.Fatal("a refused delegation reached the ledger")
	}

	var made api.DelegationDelivery
	decode(t, call(t, "POST", delegations, registrar, body(nil)).want(t, 200, "the registrar's delegation").raw, &made)
	view := func() {
		t.Helper()
		req, err := centre.PatientRequest(a.cfg, patient.View, subject, carer)
		if err != nil {
			t.Fatal(err)
		}
		call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": req}).want(t, 403, "the carer's view before the approval")
	}
	status := func() string {
		t.Helper()
		var v api.DelegationList
		decode(t, call(t, "GET", a.url+"/v1/patients/"+p+"/delegations", registrar, nil).want(t, 200, "the patient's delegations").raw, &v)
		for _, d := range v.Delegations {
			if d.ID == made.ID && d.Hash == made.Hash {
				return d.Status
			}
		}
		t.Fatalf("the delegation %s is not listed: %+v", made.ID, v.Delegations)
		return ""
	}
	if s := status(); s != "awaiting a second approval" {
		t.Fatalf("the registrar's delegation is %q before its approval", s)
	}
	view()
	approvals := "/v1/patients/" + p + "/delegations/approvals"
	call(t, "POST", a.url+approvals, registrar, map[string]any{"delegation": made.Hash}).want(t, 403, "the registrar approves their own delegation")
	view()

	call(t, "POST", b.url+approvals, officerB, map[string]any{"delegation": made.Hash}).want(t, 200, "a privacy officer's approval")
	if s := status(); s != "in force" {
		t.Fatalf("after the approval, the patient holding no key: %q", s)
	}
	req, err := centre.PatientRequest(a.cfg, patient.View, subject, carer)
	if err != nil {
		t.Fatal(err)
	}
	seen := call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": req}).want(t, 200, "the carer's view")
	if !strings.Contains(string(seen.raw), made.ID) {
		t.Fatalf("the view does not name the delegation %s beside the carer's request: %s", made.ID, seen.raw)
	}

	// The court ends the guardianship: the registrar ends the delegation
	// on the order's evidence. Bad input, a clinician, or the ending of a
	// contract instead, changes nothing; until a second staff member
	// approves, the carer still sees the view, and the registrar cannot
	// be that second member; from the approval on, the carer is refused.
	endings := a.url + "/v1/patients/" + p + "/delegations/endings"
	size = a.node.Centre.Ledger.Size()
	for what, b := range map[string]map[string]any{
		"no evidence":          {"delegation": made.ID},
		"an unknown evidence":  {"delegation": made.ID, "evidence": "hearsay"},
		"no delegation":        {"evidence": "court-order"},
		"a delegation unknown": {"delegation": strings.Repeat("ab", 16), "evidence": "court-order"},
	} {
		if got := call(t, "POST", endings, registrar, b); got.status/100 != 4 {
			t.Fatalf("%s: %d, want a refusal: %s", what, got.status, got.raw)
		}
	}
	call(t, "POST", endings, a.token(t, "clinician"), map[string]any{"delegation": made.ID, "evidence": "court-order"}).want(t, 403, "a clinician ends a delegation")
	if a.node.Centre.Ledger.Size() != size {
		t.Fatal("a refused ending reached the ledger")
	}
	var ended api.DelegationDelivery
	decode(t, call(t, "POST", endings, registrar, map[string]any{"delegation": made.ID, "evidence": "court-order"}).want(t, 200, "the registrar's ending").raw, &ended)
	if ended.ID != made.ID || ended.Hash == made.Hash || !ended.Confirmed {
		t.Fatalf("the ending answered %+v", ended)
	}
	if s := status(); s != "in force" {
		t.Fatalf("before the ending's approval: %q", s)
	}
	call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": req}).want(t, 200, "the carer's view before the ending's approval")
	call(t, "POST", a.url+approvals, registrar, map[string]any{"delegation": ended.Hash}).want(t, 403, "the registrar approves their own ending")
	call(t, "POST", b.url+approvals, officerB, map[string]any{"delegation": ended.Hash}).want(t, 200, "a privacy officer approves the ending")
	if s := status(); s != "revoked" {
		t.Fatalf("after the ending's approval: %q", s)
	}
	again, err := centre.PatientRequest(a.cfg, patient.View, subject, carer)
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", a.url+"/v1/patient/view", "", map[string]any{"request": again}).want(t, 403, "the carer's view after the ending")
}
