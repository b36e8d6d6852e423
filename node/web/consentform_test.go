package web

import (
	"encoding/json"
	"strings"
	"testing"
)

// The form makes the terms a patient would write for medfed consent grant,
// reads back in plain words, and refuses what it does not offer.
func TestConsentForm(t *testing.T) {
	members := []string{"centre-a", "centre-b", "centre-c"}
	classes := []string{"lab-result", "imaging", "mental-health"}
	for _, c := range []struct {
		form    consentForm
		spec    string
		preview string
	}{
		{consentForm{Centres: []string{"centre-c"}, Roles: []string{"researcher"}, Purposes: []string{"research"}, Classes: []string{"lab-result"}, Until: "2027-06-01"},
			`{"base":"opt-out","provision":[{"type":"permit","actor":[{"centre":"centre-c","role":"researcher"}],"purpose":["research"],"class":["lab-result"],"period":{"end":"2027-06-01"}}]}`,
			"Researchers at centre-c may see your lab results for research until 1 June 2027."},
		{consentForm{Purposes: []string{"treatment", "research"}, Except: []string{"mental-health"}},
			`{"base":"opt-out","provision":[{"type":"permit","purpose":["treatment","research"],"provision":[{"type":"deny","class":["mental-health"]}]}]}`,
			"Anyone at any centre of the federation may see all your records for treatment or research."},
		{consentForm{Centres: []string{"centre-a", "centre-b"}, Purposes: []string{"treatment"}, From: "2026-12-05"},
			`{"base":"opt-out","provision":[{"type":"permit","actor":[{"centre":"centre-a"},{"centre":"centre-b"}],"purpose":["treatment"],"period":{"start":"2026-12-05"}}]}`,
			"Staff at centre-a or centre-b may see all your records for treatment from 5 December 2026."},
	} {
		spec, err := c.form.spec(members, classes)
		if err != nil {
			t.Fatalf("%+v: %v", c.form, err)
		}
		got, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.spec {
			t.Errorf("%+v:\n got  %s\n want %s", c.form, got, c.spec)
		}
		if p := c.form.preview(); p[0] != c.preview {
			t.Errorf("preview %q, want %q", p[0], c.preview)
		}
	}
	for _, bad := range []consentForm{
		{Purposes: []string{"emergency"}},
		{Purposes: []string{"treatment"}, Centres: []string{"centre-z"}},
		{Purposes: []string{"treatment"}, Classes: []string{"genomics"}},
		{Purposes: []string{"treatment"}, Roles: []string{"admin"}},
		{Purposes: []string{"treatment"}, Roles: []string{"clinician", "clinician"}},
		{},
		{Purposes: []string{"treatment"}, Until: "1 June"},
	} {
		if _, err := bad.spec(members, classes); err == nil {
			t.Errorf("%+v accepted", bad)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("%+v: a broken message: %v", bad, err)
		}
	}
}
