package centre_test

import (
	"context"
	"fmt"
	"testing"

	patientproto "github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/centre"
)

// A patient's view relayed again after the holder restarted is refused
// all the same: the holder reads the nonces of the requests it answered
// within the replay window back from its ledger when it starts, where
// each was recorded before its answer left.
func TestAbusePatientRequestReplayedAcrossRestart(t *testing.T) {
	cfgs, nodes, p := abuseFed(t, 3, nil)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	key := attestPatient(t, a, p)
	view, err := centre.PatientRequest(cfgs[0], patientproto.View, p, key)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.PatientRelay(ctx, view); err != nil || len(res.Holders) != 2 || res.Holders[0].Outcome != centre.Answered {
		t.Fatalf("the first time: %+v, %v", res, err)
	}
	restarted := restart(t, b, cfgs[1], a)
	before := states(t, []*centre.Node{restarted}, p)
	res, err := a.PatientRelay(ctx, view)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Holders {
		if h.Name != "centre-b" {
			continue
		}
		if h.Outcome != centre.Failed {
			t.Fatalf("the replay after a restart: centre-b answered again: %+v", h)
		}
		refusal(t, "the view relayed again after centre-b restarted", fmt.Sprint(h.Err), p, "answered before")
		unchanged(t, before, []*centre.Node{restarted}, p, "a view replayed across a restart")
		return
	}
	t.Fatalf("the replay after a restart did not reach centre-b: %+v", res)
}
