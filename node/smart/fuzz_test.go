package smart_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/smart"
)

// FuzzTokenRequest feeds the token endpoint forms of every shape, the
// assertion's bytes above all: whatever comes in, the answer is a token
// that Check takes, or a refusal with an RFC 6749 code that carries
// neither the assertion nor a token (nor the token prefix, wherever it was
// put), never a failure of the centre's and never a panic.
func FuzzTokenRequest(f *testing.F) {
	fx := newFixture(f)
	s := ecSigner()
	c := fx.add(f, []string{"system/Patient.rs system/DocumentReference.crs"}, []string{"clinician", "researcher"}, s)
	id := staffID()
	fx.staff.set(id, "clinician")
	now := fx.clock.Now()
	withIUA := claims(c.ID, now)
	withIUA["extensions"] = iua(id, "clinician", "TREAT")
	for _, a := range []string{
		sign(f, s, claims(c.ID, now)),
		sign(f, s, withIUA),
		unsigned(claims(c.ID, now)),
		"eyJhbGciOiJFUzM4NCJ9.e30.",
		"",
	} {
		f.Add(smart.GrantType, "system/Patient.rs", smart.AssertionType, a, "")
		f.Add(smart.GrantType, "system/*.read system/DocumentReference.c", smart.AssertionType, a, c.ID)
	}
	f.Add("password", "launch openid", "", "x.y.z", "client")
	codes := []string{"invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "unsupported_grant_type"}
	f.Fuzz(func(t *testing.T, grantType, scope, assertionType, assertion, clientID string) {
		form := url.Values{
			"grant_type":            {grantType},
			"scope":                 {scope},
			"client_assertion_type": {assertionType},
			"client_assertion":      {assertion},
		}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		resp, err := fx.srv.Token(context.Background(), form, tokenURL)
		if err != nil {
			var e *smart.Error
			if !errors.As(err, &e) || !slices.Contains(codes, e.Code) || e.Description == "" {
				t.Fatalf("refusal %v (%T) is not an RFC 6749 error", err, err)
			}
			if len(assertion) >= 16 && strings.Contains(e.Description, assertion) {
				t.Fatalf("the refusal carries the assertion: %v", err)
			}
			if strings.Contains(e.Description, smart.TokenPrefix) {
				t.Fatalf("the refusal carries what may be a token: %v", err)
			}
			return
		}
		g, err := fx.srv.Check(context.Background(), resp.AccessToken)
		if err != nil {
			t.Fatalf("a token issued does not check: %v", err)
		}
		if g.Client != c.ID || strings.Join(g.Scopes, " ") != resp.Scope || !g.Allows("Patient", 'r') && !g.Allows("DocumentReference", 'c') {
			t.Fatalf("grant %+v for response scope %q", g, resp.Scope)
		}
	})
}
