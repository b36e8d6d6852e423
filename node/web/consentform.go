package web

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/medfed/medfed/federation/consent"
)

// consentForm is the portal's consent form as its script posts it: who
// may see the patient's records (centres and roles; none named: any), for
// what (treatment, research), which data classes (none: all), from when
// until when (dates), and the classes kept back all the same.
type consentForm struct {
	Centres  []string `json:"centres"`
	Roles    []string `json:"roles"`
	Purposes []string `json:"purposes"`
	Classes  []string `json:"classes"`
	From     string   `json:"from"`
	Until    string   `json:"until"`
	Except   []string `json:"except"`
}

// formRoles and formPurposes are what the form offers: the roles that
// read records, and the purposes a patient chooses (emergency access is
// the charter's).
var (
	formRoles    = []string{"clinician", "researcher"}
	formPurposes = []string{"treatment", "research"}
)

// spec turns the form into the contract's terms, the JSON a patient's
// CLI takes (consent.Spec): opt-out, with one permit for what the form
// names, and a deny nested in it for the classes kept back. Every value
// is checked against what the form offers.
func (f consentForm) spec(members, classes []string) (consent.Spec, error) {
	in := func(what string, got, offered []string) error {
		for _, v := range got {
			if !slices.Contains(offered, v) {
				return fmt.Errorf("%s %q is not one the form offers", what, v)
			}
		}
		if len(got) != len(compact(got)) {
			return fmt.Errorf("a %s named twice", what)
		}
		return nil
	}
	for _, err := range []error{
		in("centre", f.Centres, members), in("role", f.Roles, formRoles), in("purpose", f.Purposes, formPurposes),
		in("data class", f.Classes, classes), in("data class", f.Except, classes),
	} {
		if err != nil {
			return consent.Spec{}, err
		}
	}
	if len(f.Purposes) == 0 {
		return consent.Spec{}, fmt.Errorf("choose what your records may be used for: treatment, research or both")
	}
	if len(f.Centres)*max(len(f.Roles), 1) > 16 {
		return consent.Spec{}, fmt.Errorf("at most 16 centre and role pairs in one consent")
	}
	permit := consent.ProvisionSpec{Type: "permit", Purpose: slices.Clone(f.Purposes), Class: slices.Clone(f.Classes)}
	switch {
	case len(f.Centres) > 0 && len(f.Roles) > 0:
		for _, c := range f.Centres {
			for _, r := range f.Roles {
				permit.Actor = append(permit.Actor, consent.ActorSpec{Centre: c, Role: r})
			}
		}
	case len(f.Centres) > 0:
		for _, c := range f.Centres {
			permit.Actor = append(permit.Actor, consent.ActorSpec{Centre: c})
		}
	default:
		for _, r := range f.Roles {
			permit.Actor = append(permit.Actor, consent.ActorSpec{Role: r})
		}
	}
	if f.From != "" || f.Until != "" {
		for _, d := range []string{f.From, f.Until} {
			if _, err := date(d); err != nil {
				return consent.Spec{}, err
			}
		}
		permit.Period = &consent.PeriodSpec{Start: f.From, End: f.Until}
	}
	if len(f.Except) > 0 {
		permit.Provision = []consent.ProvisionSpec{{Type: "deny", Class: slices.Clone(f.Except)}}
	}
	return consent.Spec{Base: "opt-out", Provision: []consent.ProvisionSpec{permit}}, nil
}

func compact(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func date(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
	}
	return t, nil
}

// preview says in plain words what the form's consent allows, as the
// patient reads it before signing.
func (f consentForm) preview() []string {
	who := "Anyone at any centre of the federation"
	roles := words(f.Roles, map[string]string{"clinician": "Clinicians", "researcher": "Researchers"}, "and")
	switch {
	case len(f.Centres) > 0 && len(f.Roles) > 0:
		who = roles + " at " + words(f.Centres, nil, "or")
	case len(f.Centres) > 0:
		who = "Staff at " + words(f.Centres, nil, "or")
	case len(f.Roles) > 0:
		who = roles + " at any centre"
	}
	what := "all your records"
	if len(f.Classes) > 0 {
		what = "your " + words(f.Classes, classWords, "and")
	}
	first := fmt.Sprintf("%s may see %s for %s", who, what, words(f.Purposes, nil, "or"))
	from, _ := date(f.From)
	until, _ := date(f.Until)
	if !from.IsZero() {
		first += " from " + from.Format("2 January 2006")
	}
	if !until.IsZero() {
		first += " until " + until.Format("2 January 2006")
	}
	out := []string{first + "."}
	if len(f.Except) > 0 {
		out = append(out, "They may never see your "+words(f.Except, classWords, "or")+".")
	}
	return append(out,
		"No one else may see your records, but in an emergency as your federation's rules allow: you will be told of every emergency access.",
		"This consent replaces the one you gave before, at every centre.")
}

// classWords names data classes as a patient reads them.
var classWords = map[string]string{
	"lab-result": "lab results", "clinic-letter": "clinic letters", "discharge-summary": "discharge summaries",
	"mental-health": "mental health records", "allergy": "allergies", "diagnosis": "diagnoses", "imaging": "imaging",
	"medication": "medications", "observation": "observations", "prescription": "prescriptions", "procedure": "procedures",
	"referral": "referrals", "vaccination": "vaccinations", "genomics": "genomic data",
}

// words joins values as a sentence does: "a, b and c".
func words(vs []string, names map[string]string, and string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if n, ok := names[v]; ok {
			v = n
		}
		out[i] = v
	}
	switch len(out) {
	case 0:
		return ""
	case 1:
		return out[0]
	}
	return strings.Join(out[:len(out)-1], ", ") + " " + and + " " + out[len(out)-1]
}
