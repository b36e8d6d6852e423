package web

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// What a delegate's key may draft under its delegation: within the
// delegation's scope while it is in force; stepping down from it in any
// state; never another's ending, a note or a device.
func TestDelegateMay(t *testing.T) {
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	own, sibling, lapsed := consent.ID{1}, consent.ID{2}, consent.ID{3}
	v := centre.ConsentView{Delegations: []centre.ConsentDelegation{
		{ID: own, Delegate: key, Scope: consent.ScopeConsent | consent.ScopeView, Status: consent.DelegationInForce},
		{ID: sibling, Delegate: other, Scope: consent.ScopeConsent, Status: consent.DelegationInForce},
		{ID: lapsed, Delegate: key, Scope: consent.ScopeConsent, Status: consent.DelegationExpired},
	}}
	for name, c := range map[string]struct {
		via  consent.ID
		key  []byte
		b    draftBody
		want error // nil, or the kind of the refusal
	}{
		"a contract":                       {own, key, draftBody{What: "contract"}, nil},
		"a token":                          {own, key, draftBody{What: "token"}, nil},
		"the withdrawal of the contract":   {own, key, draftBody{What: "revocation"}, nil},
		"stepping down":                    {own, key, draftBody{What: "revocation", Target: own.String()}, nil},
		"stepping down from a lapsed one":  {lapsed, key, draftBody{What: "revocation", Target: lapsed.String()}, nil},
		"a contract under a lapsed one":    {lapsed, key, draftBody{What: "contract"}, node.ErrForbidden},
		"an erasure without its scope":     {own, key, draftBody{What: "erasure"}, node.ErrForbidden},
		"another delegate's ending":        {own, key, draftBody{What: "revocation", Target: sibling.String()}, node.ErrForbidden},
		"a delegation naming another key":  {sibling, key, draftBody{What: "contract"}, node.ErrForbidden},
		"a delegation the patient has not": {consent.ID{9}, key, draftBody{What: "contract"}, node.ErrForbidden},
		"a note":                           {own, key, draftBody{What: "note"}, node.ErrForbidden},
		"a device":                         {own, key, draftBody{What: "device"}, node.ErrForbidden},
		"a delegate of their own":          {own, key, draftBody{What: "delegation"}, node.ErrForbidden},
	} {
		err := delegateMay(v, c.via, c.key, c.b)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// The patient's delegation form: a key that is not one, an unknown
// relationship or scope, nothing ticked, or a term out of range is
// refused, saying why; a good one is what consent signs.
func TestDelegationOf(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	p := ledger.Pseudonym{7}
	good := delegateForm{Key: strings.Repeat("ab", 32), Relationship: "carer", Scope: []string{"view", "records"}, Days: 30}
	g, lines, err := delegationOf("fed", p, now, &good)
	if err != nil || g.Scope != consent.ScopeView|consent.ScopeRecords || g.Relationship != consent.Carer || !g.Expires.Equal(now.Add(30*24*time.Hour)) || len(lines) != 2 {
		t.Fatalf("the form made %+v, %q, %v", g, lines, err)
	}
	if _, err := consent.DraftDelegation(bytes.Repeat([]byte{1}, 32), false, g); err != nil {
		t.Fatalf("consent refuses the delegation made: %v", err)
	}
	for name, edit := range map[string]func(f *delegateForm){
		"a key of 31 bytes":       func(f *delegateForm) { f.Key = f.Key[:62] },
		"an unknown relationship": func(f *delegateForm) { f.Relationship = "neighbour" },
		"an unknown scope":        func(f *delegateForm) { f.Scope = []string{"everything"} },
		"nothing ticked":          func(f *delegateForm) { f.Scope = nil },
		"no days":                 func(f *delegateForm) { f.Days = 0 },
		"three years":             func(f *delegateForm) { f.Days = 3 * 366 },
	} {
		f := good
		edit(&f)
		if _, _, err := delegationOf("fed", p, now, &f); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := delegationOf("fed", p, now, nil); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("no form: %v", err)
	}
}
