package main

import (
	"strings"
	"testing"

	"github.com/medfed/medfed/node/api"
)

// The patient reads how many centres were asked, how many hold nothing,
// and each that could not be reached, by name and with why; then each
// holder's part.
func TestPrintPatientSaysWhoCouldNotBeReached(t *testing.T) {
	holder := api.PatientHolder{Name: "centre-b", Status: "answered", Records: []api.PatientRecord{{Index: 1, Kind: "record", Class: "lab-result"}},
		Accesses: []api.PatientAccess{}, Erasures: []api.PatientErasure{{Index: 4, Record: 1}}, Withdrawn: true}
	down := api.PatientHolder{Name: "centre-k", Status: "failed", Error: "failed to dial: connection refused"}
	for _, tc := range []struct {
		name    string
		res     api.PatientResult
		want    []string
		wantNot []string
	}{
		{
			name: "a view with a centre down and the directory incomplete",
			res: api.PatientResult{Op: "view", Pseudonym: "ab12", Asked: 12, HoldNothing: 8, EveryMember: true, Lookup: "2 of 5 replicas answered",
				Holders: []api.PatientHolder{holder, {Name: "centre-c", Status: "answered"}, {Name: "centre-d", Status: "answered"}, down}},
			want: []string{
				"# ab12: asked 12 centre(s): 3 hold entries about the patient, 8 hold nothing, 1 could not be reached: centre-k\n",
				"# the directory lookup was incomplete (every member was asked all the same): 2 of 5 replicas answered\n",
				"centre-k: could not be reached, and may hold records: failed to dial: connection refused\n",
				"centre-b: 1 record(s), 0 access(es)\n",
			},
			wantNot: []string{"centre-k: 0 record(s)"},
		},
		{
			name: "an erasure every centre answered",
			res:  api.PatientResult{Op: "erase", Pseudonym: "ab12", Asked: 3, HoldNothing: 2, EveryMember: true, Holders: []api.PatientHolder{holder}},
			want: []string{
				"# ab12: asked 3 centre(s): 1 held records, 2 hold none, 0 could not be reached\n",
				"centre-b: 1 record(s) erased, withdrawn from the directory\n",
			},
			wantNot: []string{"could not be reached:", "lookup"},
		},
		{
			name: "a view in a federation too large to ask every member",
			res:  api.PatientResult{Op: "view", Pseudonym: "ab12", Asked: 2, Holders: []api.PatientHolder{holder, {Name: "centre-c", Status: "answered"}}},
			want: []string{
				"# ab12: asked 2 centre(s): 2 hold entries about the patient, 0 hold nothing, 0 could not be reached\n",
				"# asked the holders the directory lists (the federation is too large to ask every member)\n",
			},
			wantNot: []string{"lookup was incomplete"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			printPatient(&out, tc.res)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("holds %q:\n%s", w, out.String())
				}
			}
		})
	}
}
