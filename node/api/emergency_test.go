package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/nodetest"
)

// TestAbuseEmergencyStop: break-glass access is stopped by the clinician
// who started it, at every holder, on the holder's ledger and in its
// feed; another clinician's stop stops nothing and changes nothing.
func TestAbuseEmergencyStop(t *testing.T) {
	a, b := federation(t)
	registrar, clinicianA, other, clinicianB := a.token(t, "registrar"), a.token(t, "clinician"), a.token(t, "clinician"), b.token(t, "clinician")
	officerB := b.token(t, "privacy-officer")

	reg := call(t, "POST", a.url+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register")
	p, _ := reg.body["id"].(string)
	call(t, "POST", b.url+"/v1/records", clinicianB, map[string]any{"patient": p, "class": "lab-result", "data": []byte("synthetic HbA1c 48")}).want(t, 201, "a record at b")
	nodetest.Eventually(t, 15*time.Second, "the record is final and found", func() bool {
		q := call(t, "POST", a.url+"/v1/query", clinicianA, map[string]any{"patient": p, "purpose": "treatment"}).want(t, 200, "query")
		return len(q.entries("DocumentReference")) == 1
	})
	em := call(t, "POST", a.url+"/v1/emergency", clinicianA, map[string]any{"patient": p, "reason": "unconscious"}).want(t, 200, "emergency")
	if n := len(em.entries("DocumentReference")); n != 1 {
		t.Fatalf("emergency released %d records: %s", n, em.outcomeOf())
	}
	stop := func(token string) api.EmergencyStops {
		t.Helper()
		var res api.EmergencyStops
		decode(t, call(t, "POST", a.url+"/v1/emergency/stop", token, map[string]any{"patient": p}).want(t, 200, "stop").raw, &res)
		return res
	}
	stopped := func(res api.EmergencyStops, centre string) int {
		for _, h := range res.Holders {
			if h.Centre == centre {
				if h.Error != "" {
					t.Fatalf("%s: %s", centre, h.Error)
				}
				return h.Stopped
			}
		}
		t.Fatalf("%s not asked: %+v", centre, res)
		return 0
	}

	// Another clinician's stop is not this one's: nothing stops, nothing
	// is recorded.
	size := b.node.Centre.Ledger.Size()
	if n := stopped(stop(other), "centre-b"); n != 0 {
		t.Fatalf("another clinician stopped %d sessions", n)
	}
	if b.node.Centre.Ledger.Size() != size {
		t.Fatal("a stop that stopped nothing grew centre-b's ledger")
	}

	// The clinician's own stop ends the session at centre-b, on its ledger.
	if n := stopped(stop(clinicianA), "centre-b"); n != 1 {
		t.Fatalf("the clinician's stop stopped %d sessions at centre-b", n)
	}
	if b.node.Centre.Ledger.Size() != size+1 {
		t.Fatalf("centre-b's ledger grew by %d entries for the stop, want 1", b.node.Centre.Ledger.Size()-size)
	}
	if n := stopped(stop(clinicianA), "centre-b"); n != 0 {
		t.Fatalf("a second stop stopped %d", n)
	}
	feed := string(call(t, "GET", b.url+"/v1/notifications", officerB, nil).want(t, 200, "notifications").raw)
	if !strings.Contains(feed, "emergency-start") || !strings.Contains(feed, "emergency-stop") {
		t.Fatalf("the feed lacks the start or the stop: %s", feed)
	}
	// A bad body changes nothing either.
	call(t, "POST", a.url+"/v1/emergency/stop", clinicianA, map[string]any{"patient": "zz"}).want(t, 400, "a bad pseudonym")
	if b.node.Centre.Ledger.Size() != size+1 {
		t.Fatal("a refused stop reached centre-b's ledger")
	}
}
