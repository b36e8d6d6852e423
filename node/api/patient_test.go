package api_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// relaying is a centre whose patient relay returns one result: what the
// patient's view makes of it is the API's own business.
type relaying struct {
	api.Centre
	res centre.PatientResult
}

func (r relaying) PatientRelay(context.Context, []byte) (centre.PatientResult, error) {
	return r.res, nil
}

// The patient's view over HTTP says how many centres were asked and how
// many hold nothing, and names the centre that could not be reached, with
// why: it may hold records. The directory's incomplete lookup is then a
// warning, since a holder may be missing.
func TestPatientViewNamesCentresNotReached(t *testing.T) {
	key := mustKey(t)
	p := ledger.Pseudonym{3}
	q := patient.Request{Op: patient.View, Federation: "test-federation", Relay: peer.ID("centre-a"), Subject: p, Time: time.Now().UTC()}
	rand.Read(q.Nonce[:])
	view, err := q.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	res := centre.PatientResult{Op: patient.View, Pseudonym: p, Asked: 12, HoldNothing: 9, EveryMember: true, Lookup: errors.New("2 of 5 replicas answered"),
		Holders: []centre.PatientHolder{
			{Name: "centre-b", Outcome: centre.Answered, LedgerSize: 10, Records: []centre.PatientRecord{{Index: 4, Kind: ledger.KindRecord,
				Record: ledger.Record{DataClass: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)}}}},
			{Name: "centre-c", Outcome: centre.Answered, LedgerSize: 7},
			{Name: "centre-k", Outcome: centre.Failed, Err: errors.New("failed to dial: connection refused")},
		}}
	srv, err := api.New(api.Options{Node: relaying{res: res}, Staff: openStaff(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	v := call(t, "POST", hs.URL+"/v1/patient/view", "", map[string]any{"request": view}).want(t, 200, "the patient's view")
	if n := len(v.entries("DocumentReference")); n != 1 {
		t.Fatalf("%d records in the view, want 1: %s", n, v.raw)
	}
	outcome := v.outcomeOf()
	for _, want := range []string{
		"asked 12 centre(s): 2 hold entries about the patient, 9 hold nothing, 1 could not be reached: centre-k",
		"centre-k: could not be reached, and may hold records: failed to dial: connection refused",
		"the directory lookup was incomplete",
	} {
		if !strings.Contains(outcome, want) {
			t.Errorf("the view's outcome lacks %q: %s", want, outcome)
		}
	}
	var severities []string
	for _, oo := range v.entries("OperationOutcome") {
		for _, i := range oo["issue"].([]any) {
			m := i.(map[string]any)
			if d, _ := m["diagnostics"].(string); strings.HasPrefix(d, "centre-k") || strings.HasPrefix(d, "the directory") {
				severities = append(severities, m["severity"].(string))
			}
		}
	}
	if strings.Join(severities, " ") != "error warning" {
		t.Errorf("centre-k and the lookup are %v, want an error and a warning", severities)
	}
}
