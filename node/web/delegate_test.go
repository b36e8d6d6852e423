package web

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
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
	} {
		err := delegateMay(v, c.via, c.key, c.b)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
