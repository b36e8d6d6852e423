package smart_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/smart"
)

const tokenURL = "https://centre-a.example:8443/auth/token"

// Keys are made once per test binary: a 3072-bit RSA key takes a while.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			panic(err)
		}
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// staff is a centre's staff as Options.Staff sees them.
type staff struct {
	mu    sync.Mutex
	roles map[string]string
}

func (s *staff) role(_ context.Context, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.roles[id]; ok {
		return r, nil
	}
	return "", node.E(node.Unauthenticated, "unknown or revoked staff credential")
}

func (s *staff) set(id, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if role == "" {
		delete(s.roles, id)
	} else {
		s.roles[id] = role
	}
}

// fixture is a centre's authorization server on a real SQLite file.
type fixture struct {
	dir   string
	key   []byte
	clock *clock
	staff *staff
	srv   *smart.Server
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		dir:   t.TempDir(),
		key:   make([]byte, 32),
		clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)},
		staff: &staff{roles: map[string]string{}},
	}
	rand.Read(f.key)
	f.open(t)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// open opens the server (again) on the fixture's file.
func (f *fixture) open(t testing.TB) {
	t.Helper()
	srv, err := smart.Open(smart.Options{Dir: f.dir, Key: f.key, Now: f.clock.Now, Staff: f.staff.role})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
}

// sqlExec changes the store's file behind the server's back.
func (f *fixture) sqlExec(t *testing.T, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, smart.ClientsFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed no row", query)
	}
}

// spent counts the jtis kept: the rows of table jtis but the floor's.
func (f *fixture) spent(t *testing.T) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, smart.ClientsFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM jtis WHERE client <> ''`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// signer is a client's private key.
type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // *rsa.PrivateKey or *ecdsa.PrivateKey
}

func rsaSigner() signer { return signer{kid: "rsa-1", alg: jose.RS384, key: rsaKey()} }
func ecSigner() signer  { return signer{kid: "ec-1", alg: jose.ES384, key: ecKey()} }

// jwks is the public JWK Set of signers.
func jwks(t testing.TB, signers ...signer) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, s := range signers {
		k := jose.JSONWebKey{Key: s.key, KeyID: s.kid, Algorithm: string(s.alg)}
		set.Keys = append(set.Keys, k.Public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// add registers a client with signers' keys.
func (f *fixture) add(t testing.TB, scopes, roles []string, signers ...signer) smart.Client {
	t.Helper()
	c, err := f.srv.Add(context.Background(), "ward 7 EHR", jwks(t, signers...), scopes, roles)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claims are an assertion's claims for client, valid at now.
func claims(client string, now time.Time) map[string]any {
	return map[string]any{
		"iss": client, "sub": client, "aud": tokenURL,
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(),
		"jti": rand.Text(),
	}
}

// iua are IUA claims for a staff member.
func iua(id, role, purpose string) map[string]any {
	return map[string]any{"ihe_iua": map[string]any{
		"subject_id":     id,
		"subject_role":   map[string]any{"system": smart.RoleSystem, "code": role},
		"purpose_of_use": map[string]any{"system": smart.PurposeSystem, "code": purpose},
	}}
}

// sign signs claims with s, its kid in the header unless kid is "-".
func sign(t testing.TB, s signer, c map[string]any) string {
	t.Helper()
	key := jose.JSONWebKey{Key: s.key, KeyID: s.kid}
	if s.kid == "-" {
		key.KeyID = ""
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(sg).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned is a JWT with alg none.
func unsigned(c map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// form is a token request.
func form(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {smart.AssertionType},
		"client_assertion":      {assertion},
	}
}

func staffID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// refusal returns err's *smart.Error, failing the test when it is none.
func refusal(t *testing.T, err error) *smart.Error {
	t.Helper()
	var e *smart.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *smart.Error", err, err)
	}
	return e
}

func TestTokenIsIssuedForRS384AndES384Clients(t *testing.T) {
	for _, s := range []signer{rsaSigner(), ecSigner()} {
		t.Run(string(s.alg), func(t *testing.T) {
			f := newFixture(t)
			c := f.add(t, []string{"system/Patient.rs system/DocumentReference.crs"}, []string{"clinician"}, s)
			now := f.clock.Now()
			resp, err := f.srv.Token(context.Background(), form(sign(t, s, claims(c.ID, now)), "system/Patient.rs system/DocumentReference.r"), tokenURL)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.AccessToken, "mfa_") || len(resp.AccessToken) != 4+43 {
				t.Errorf("access token %q is not mfa_ and 32 bytes in base64url", resp.AccessToken)
			}
			if resp.TokenType != "bearer" || resp.ExpiresIn != 300 || resp.Scope != "system/Patient.rs system/DocumentReference.r" || resp.Extensions != nil {
				t.Errorf("response %+v", resp)
			}
			g, err := f.srv.Check(context.Background(), resp.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if g.Client != c.ID || g.Staff != "" || g.Purpose != "" || !g.Issued.Equal(now) || !g.Expires.Equal(now.Add(5*time.Minute)) {
				t.Errorf("grant %+v", g)
			}
			if !g.Allows("Patient", 's') || !g.Allows("DocumentReference", 'r') || g.Allows("DocumentReference", 'c') {
				t.Errorf("grant %v allows more or less than was asked", g.Scopes)
			}
		})
	}
}

func TestTokenWithIUAClaimsEchoesThem(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/*.rs"}, []string{"clinician", "registrar"}, s)
	id := staffID()
	f.staff.set(id, "clinician")
	cl := claims(c.ID, f.clock.Now())
	cl["extensions"] = iua(id, "clinician", "TREAT")
	resp, err := f.srv.Token(context.Background(), form(sign(t, s, cl), "system/Patient.rs"), tokenURL)
	if err != nil {
		t.Fatal(err)
	}
	want := &smart.IUA{SubjectID: id, SubjectRole: &smart.Coding{System: smart.RoleSystem, Code: "clinician"}, PurposeOfUse: &smart.Coding{System: smart.PurposeSystem, Code: "TREAT"}}
	if got, _ := json.Marshal(resp.Extensions); resp.Extensions == nil || string(got) != mustJSON(t, smart.Extensions{IUA: want}) {
		t.Errorf("extensions %s, want %s", got, mustJSON(t, smart.Extensions{IUA: want}))
	}
	g, err := f.srv.Check(context.Background(), resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if g.Staff != id || g.Role != "clinician" || g.Purpose != "treatment" {
		t.Errorf("grant %+v", g)
	}
	in := f.srv.Introspect(context.Background(), resp.AccessToken)
	if !in.Active || in.Sub != id || in.ClientID != c.ID || in.Scope != "system/Patient.rs" || in.TokenType != "bearer" ||
		in.Exp != g.Expires.Unix() || in.Iat != g.Issued.Unix() || mustJSON(t, in.Extensions) != mustJSON(t, smart.Extensions{IUA: want}) {
		t.Errorf("introspection %+v", in)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTokenRefusals: every refusal names its RFC 6749 code and carries
// no token or assertion in its description. One that comes before the
// assertion is verified spends nothing: the same assertion, the form put
// right, is granted. One that comes after (spent) spends its jti: the
// same assertion, put right, is refused as a replay.
func TestTokenRefusals(t *testing.T) {
	f := newFixture(t)
	rs, ec := rsaSigner(), ecSigner()
	c := f.add(t, []string{"system/Patient.rs", "system/DocumentReference.read"}, []string{"clinician", "researcher"}, rs, ec)
	revoked := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, ec)
	if err := f.srv.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	clinician, registrar, researcher := staffID(), staffID(), staffID()
	f.staff.set(clinician, "clinician")
	f.staff.set(registrar, "registrar")
	f.staff.set(researcher, "researcher")
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS384, Key: []byte("the client's public key, as an HMAC secret, forty-eight bytes at least")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	tests := []struct {
		name   string
		signer signer
		claims func(map[string]any)
		form   func(url.Values)
		raw    func(map[string]any) string // the assertion, made otherwise than by signer
		code   string
		spent  bool // refused once the assertion was verified: its jti is spent
	}{
		{name: "no grant_type", form: func(v url.Values) { v.Del("grant_type") }, code: "invalid_request"},
		{name: "grant_type password", form: func(v url.Values) { v.Set("grant_type", "password") }, code: "unsupported_grant_type"},
		{name: "grant_type twice", form: func(v url.Values) { v.Add("grant_type", "client_credentials") }, code: "invalid_request"},
		{name: "no client_assertion_type", form: func(v url.Values) { v.Del("client_assertion_type") }, code: "invalid_client"},
		{name: "client_assertion_type saml", form: func(v url.Values) {
			v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		}, code: "invalid_client"},
		{name: "no client_assertion", form: func(v url.Values) { v.Del("client_assertion") }, code: "invalid_client"},
		{name: "no scope", form: func(v url.Values) { v.Del("scope") }, code: "invalid_request", spent: true},
		{name: "patient scope", form: func(v url.Values) { v.Set("scope", "patient/Patient.rs") }, code: "invalid_scope", spent: true},
		{name: "scope of no resource type served", form: func(v url.Values) { v.Set("scope", "system/Encounter.rs") }, code: "invalid_scope", spent: true},
		{name: "scope letters out of order", form: func(v url.Values) { v.Set("scope", "system/Patient.sr") }, code: "invalid_scope", spent: true},
		{name: "scope with a query", form: func(v url.Values) { v.Set("scope", "system/Patient.rs?gender=female") }, code: "invalid_scope", spent: true},
		{name: "scope not registered", form: func(v url.Values) { v.Set("scope", "system/DocumentReference.crs") }, code: "invalid_scope", spent: true},
		{name: "wildcard scope not registered", form: func(v url.Values) { v.Set("scope", "system/*.rs") }, code: "invalid_scope", spent: true},
		{name: "client_id is not iss", form: func(v url.Values) { v.Set("client_id", revoked.ID) }, code: "invalid_client"},
		{name: "alg none", raw: unsigned, code: "invalid_client"},
		{name: "alg HS384", raw: func(c map[string]any) string {
			s, err := jwt.Signed(hs).Claims(c).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, code: "invalid_client"},
		{name: "alg RS256", signer: signer{kid: rs.kid, alg: jose.RS256, key: rs.key}, code: "invalid_client"},
		{name: "alg PS384", signer: signer{kid: rs.kid, alg: jose.PS384, key: rs.key}, code: "invalid_client"},
		{name: "not a JWS", raw: func(map[string]any) string { return "eyJhbGciOiJSUzM4NCJ9.e30" }, code: "invalid_client"},
		{name: "kid of no key", signer: signer{kid: "rsa-2", alg: rs.alg, key: rs.key}, code: "invalid_client"},
		{name: "kid of the other alg's key", signer: signer{kid: ec.kid, alg: rs.alg, key: rs.key}, code: "invalid_client"},
		{name: "a key not registered", signer: signer{kid: ec.kid, alg: jose.ES384, key: other}, code: "invalid_client"},
		{name: "wrong aud", claims: func(c map[string]any) { c["aud"] = "https://centre-b.example:8443/auth/token" }, code: "invalid_client"},
		{name: "aud of another path", claims: func(c map[string]any) { c["aud"] = "https://centre-a.example:8443/auth/introspect" }, code: "invalid_client"},
		{name: "no aud", claims: func(c map[string]any) { delete(c, "aud") }, code: "invalid_client"},
		{name: "no exp", claims: func(c map[string]any) { delete(c, "exp") }, code: "invalid_client"},
		{name: "expired", claims: func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }, code: "invalid_client"},
		{name: "exp too far ahead", claims: func(c map[string]any) { c["exp"] = now.Add(5*time.Minute + 31*time.Second).Unix() }, code: "invalid_client"},
		{name: "nbf ahead", claims: func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }, code: "invalid_client"},
		{name: "iat ahead", claims: func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }, code: "invalid_client"},
		{name: "no jti", claims: func(c map[string]any) { delete(c, "jti") }, code: "invalid_client"},
		{name: "jti over 255 characters", claims: func(c map[string]any) { c["jti"] = strings.Repeat("j", 256) }, code: "invalid_client"},
		{name: "sub is not iss", claims: func(c map[string]any) { c["sub"] = revoked.ID }, code: "invalid_client"},
		{name: "unknown client", claims: func(c map[string]any) { id := staffID(); c["iss"], c["sub"] = id, id }, code: "invalid_client"},
		{name: "unknown client, not an ID", claims: func(c map[string]any) { c["iss"] = "ward 7"; c["sub"] = "ward 7" }, code: "invalid_client"},
		{name: "revoked client", signer: ec, claims: func(c map[string]any) { c["iss"], c["sub"] = revoked.ID, revoked.ID }, code: "invalid_client"},
		{name: "staff unknown", claims: func(c map[string]any) { c["extensions"] = iua(staffID(), "clinician", "TREAT") }, code: "invalid_grant", spent: true},
		{name: "subject_id not a staff ID", claims: func(c map[string]any) { c["extensions"] = iua("9434765919", "clinician", "TREAT") }, code: "invalid_grant", spent: true},
		{name: "role mismatch", claims: func(c map[string]any) { c["extensions"] = iua(registrar, "clinician", "TREAT") }, code: "invalid_grant", spent: true},
		{name: "role the client is not registered for", claims: func(c map[string]any) { c["extensions"] = iua(registrar, "registrar", "TREAT") }, code: "invalid_grant", spent: true},
		{name: "role of another system", claims: func(c map[string]any) {
			x := iua(clinician, "clinician", "TREAT")
			x["ihe_iua"].(map[string]any)["subject_role"] = map[string]any{"system": "http://snomed.info/sct", "code": "clinician"}
			c["extensions"] = x
		}, code: "invalid_grant", spent: true},
		{name: "researcher treats", claims: func(c map[string]any) { c["extensions"] = iua(researcher, "researcher", "TREAT") }, code: "invalid_grant", spent: true},
		{name: "clinician researches", claims: func(c map[string]any) { c["extensions"] = iua(clinician, "clinician", "HRESCH") }, code: "invalid_grant", spent: true},
		{name: "clinician reviews the audit trail", claims: func(c map[string]any) { c["extensions"] = iua(clinician, "clinician", "HOPERAT") }, code: "invalid_grant", spent: true},
		{name: "unknown purpose", claims: func(c map[string]any) { c["extensions"] = iua(clinician, "clinician", "PUBHLTH") }, code: "invalid_grant", spent: true},
		{name: "no purpose", claims: func(c map[string]any) {
			x := iua(clinician, "clinician", "TREAT")
			delete(x["ihe_iua"].(map[string]any), "purpose_of_use")
			c["extensions"] = x
		}, code: "invalid_grant", spent: true},
		{name: "purpose without subject", claims: func(c map[string]any) {
			x := iua(clinician, "clinician", "TREAT")
			delete(x["ihe_iua"].(map[string]any), "subject_id")
			c["extensions"] = x
		}, code: "invalid_grant", spent: true},
		{name: "ihe_iua not an object", claims: func(c map[string]any) { c["extensions"] = map[string]any{"ihe_iua": "clinician"} }, code: "invalid_grant", spent: true},
		{name: "emergency through a token", claims: func(c map[string]any) { c["extensions"] = iua(clinician, "clinician", "ETREAT") }, code: "invalid_grant", spent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.signer
			if s.key == nil {
				s = rs
			}
			cl := claims(c.ID, now)
			if tt.claims != nil {
				tt.claims(cl)
			}
			var assertion string
			if tt.raw != nil {
				assertion = tt.raw(cl)
			} else {
				assertion = sign(t, s, cl)
			}
			v := form(assertion, "system/Patient.rs")
			if tt.form != nil {
				tt.form(v)
			}
			_, err := f.srv.Token(context.Background(), v, tokenURL)
			e := refusal(t, err)
			if e.Code != tt.code {
				t.Errorf("code %s (%s), want %s", e.Code, e.Description, tt.code)
			}
			if want := map[bool]int{true: 401, false: 400}[tt.code == "invalid_client"]; e.Status != want {
				t.Errorf("status %d, want %d", e.Status, want)
			}
			if e.Description == "" || strings.Contains(e.Description, assertion) || strings.Contains(e.Description, c.ID) {
				t.Errorf("description %q is empty, or carries the assertion or the client ID", e.Description)
			}
			if tt.code == "invalid_client" && !errors.Is(err, node.ErrUnauthenticated) {
				t.Errorf("invalid_client is not of kind unauthenticated: %v", node.KindOf(err))
			}
			// The same assertion, put right: granted if the refusal
			// came before it was verified, else a replay.
			if tt.form == nil && !tt.spent {
				return
			}
			_, err = f.srv.Token(context.Background(), form(assertion, "system/Patient.rs"), tokenURL)
			switch {
			case !tt.spent && err != nil:
				t.Errorf("the same assertion, put right: %v", err)
			case tt.spent && err == nil:
				t.Errorf("an assertion refused once verified is granted when sent again")
			case tt.spent:
				if e := refusal(t, err); e.Code != "invalid_client" || !strings.Contains(e.Description, "used before") {
					t.Errorf("the same assertion, put right: %v, want a replay", err)
				}
			}
		})
	}
}

// TestRefusedRequestSpendsTheJTI: an assertion refused for its scope or
// its subject once it verified is spent: sent again with a good scope, or
// once the subject is put right, it is refused as a replay. One refused
// for its form before it was verified is not.
func TestRefusedRequestSpendsTheJTI(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	replayed := func(t *testing.T, err error) {
		t.Helper()
		if e := refusal(t, err); e.Code != "invalid_client" || !strings.Contains(e.Description, "used before") {
			t.Fatalf("replayed: %v, want a replay refused", err)
		}
	}

	t.Run("scope", func(t *testing.T) {
		assertion := sign(t, s, claims(c.ID, f.clock.Now()))
		if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.crs"), tokenURL); refusal(t, err).Code != "invalid_scope" {
			t.Fatalf("a scope not registered: %v", err)
		}
		_, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL)
		replayed(t, err)
	})
	t.Run("subject", func(t *testing.T) {
		id := staffID()
		cl := claims(c.ID, f.clock.Now())
		cl["extensions"] = iua(id, "clinician", "TREAT")
		assertion := sign(t, s, cl)
		if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_grant" {
			t.Fatalf("staff not yet added: %v", err)
		}
		f.staff.set(id, "clinician")
		_, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL)
		replayed(t, err)
	})
	t.Run("form", func(t *testing.T) {
		assertion := sign(t, s, claims(c.ID, f.clock.Now()))
		v := form(assertion, "system/Patient.rs")
		v.Set("grant_type", "password")
		if _, err := f.srv.Token(ctx, v, tokenURL); refusal(t, err).Code != "unsupported_grant_type" {
			t.Fatalf("grant_type password: %v", err)
		}
		if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); err != nil {
			t.Fatalf("put right: %v", err)
		}
		_, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL)
		replayed(t, err)
	})
}

// TestClockJumpDoesNotReopenAJTI: a centre's clock run two hours ahead
// prunes the jtis of assertions that are valid again once it comes back;
// those assertions are refused all the same, after a restart too, while
// a new one is granted.
func TestClockJumpDoesNotReopenAJTI(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	assertion := sign(t, s, claims(c.ID, f.clock.Now()))
	if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Hour)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatalf("with the clock ahead: %v", err)
	}
	if n := f.spent(t); n != 1 {
		t.Fatalf("%d jtis kept with the clock two hours ahead, want the first pruned", n)
	}
	f.clock.Add(-2 * time.Hour)
	for _, restart := range []bool{false, true} {
		if restart {
			if err := f.srv.Close(); err != nil {
				t.Fatal(err)
			}
			f.open(t)
		}
		_, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL)
		if e := refusal(t, err); e.Code != "invalid_client" || !strings.Contains(e.Description, "no longer keeps") {
			t.Fatalf("replay once the clock is back (restarted: %v): %v", restart, err)
		}
	}
	f.clock.Add(time.Minute)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatalf("a new assertion once the clock is back: %v", err)
	}
	if n, err := smart.CheckClients(ctx, f.dir, f.key); err != nil || n != 1 {
		t.Fatalf("medfed check: %d, %v", n, err)
	}
}

// TestEmergencyIsNotAToken: ETREAT is refused at the token endpoint, with
// the way to break the glass; the same clinician's TREAT is granted.
func TestEmergencyIsNotAToken(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	id := staffID()
	f.staff.set(id, "clinician")
	ctx := context.Background()
	ask := func(purpose string) error {
		cl := claims(c.ID, f.clock.Now())
		cl["extensions"] = iua(id, "clinician", purpose)
		_, err := f.srv.Token(ctx, form(sign(t, s, cl), "system/Patient.rs"), tokenURL)
		return err
	}
	e := refusal(t, ask("ETREAT"))
	if want := "emergency access (break-glass) needs a coded reason and is stopped when done: POST /v1/emergency with a staff token"; e.Code != "invalid_grant" || e.Status != 400 || e.Description != want {
		t.Fatalf("ETREAT: %v (status %d), want invalid_grant: %s", e, e.Status, want)
	}
	if err := ask("TREAT"); err != nil {
		t.Fatalf("TREAT: %v", err)
	}
}

// TestRefusalsRepeatNoTokenOrAssertion: a token or an assertion sent in
// the wrong field is not repeated in the refusal.
func TestRefusalsRepeatNoTokenOrAssertion(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	resp, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL)
	if err != nil {
		t.Fatal(err)
	}
	other := sign(t, s, claims(c.ID, f.clock.Now()))
	secrets := []string{resp.AccessToken, strings.TrimPrefix(resp.AccessToken, smart.TokenPrefix), other}
	tests := []struct {
		name, scope, url string
	}{
		{name: "a token as the scope", scope: resp.AccessToken},
		{name: "a token's secret as a resource type", scope: "system/" + strings.TrimPrefix(resp.AccessToken, smart.TokenPrefix) + ".rs"},
		{name: "an assertion as the scope", scope: other},
		{name: "an assertion as a resource type", scope: "system/" + other},
		{name: "an assertion as the host", scope: "system/Patient.rs", url: "https://" + other + "/auth/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tokenURL
			if tt.url != "" {
				u = tt.url
			}
			_, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), tt.scope), u)
			e := refusal(t, err)
			for _, sec := range secrets {
				for _, part := range strings.Split(sec, ".") {
					if strings.Contains(e.Description, part[:20]) {
						t.Fatalf("the refusal repeats a secret: %s", e.Description)
					}
				}
			}
		})
	}
	// What is not a secret is repeated, as it helps the client's developer.
	_, err = f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "patient/Patient.rs"), tokenURL)
	if e := refusal(t, err); !strings.Contains(e.Description, `"patient/Patient.rs"`) {
		t.Errorf("a patient scope: %s", e.Description)
	}
	cl := claims(c.ID, f.clock.Now())
	cl["aud"] = "https://elsewhere.example/auth/token"
	_, err = f.srv.Token(ctx, form(sign(t, s, cl), "system/Patient.rs"), tokenURL)
	if e := refusal(t, err); !strings.Contains(e.Description, tokenURL) {
		t.Errorf("a wrong aud: %s", e.Description)
	}
}

func TestReplayedJTIIsRefusedAlsoAfterRestart(t *testing.T) {
	f := newFixture(t)
	s := rsaSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	cl := claims(c.ID, f.clock.Now())
	assertion := sign(t, s, cl)
	if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
		t.Fatalf("replay: %v", err)
	}
	// Another assertion with the same jti, signed anew, is a replay too.
	again := sign(t, s, cl)
	if _, err := f.srv.Token(ctx, form(again, "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
		t.Fatalf("the same jti signed again: %v", err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	f.clock.Add(3 * time.Minute)
	if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
		t.Fatalf("replay after a restart: %v", err)
	}
	// The jti is kept past the assertion's life, so that a clock set back
	// does not reopen it.
	f.clock.Add(10 * time.Minute)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(-13 * time.Minute)
	if _, err := f.srv.Token(ctx, form(assertion, "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
		t.Fatalf("replay with the clock set back: %v", err)
	}
	// Another client may use the same jti.
	s2 := ecSigner()
	c2 := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s2)
	cl2 := claims(c2.ID, f.clock.Now())
	cl2["jti"] = cl["jti"]
	if _, err := f.srv.Token(ctx, form(sign(t, s2, cl2), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatalf("another client's jti: %v", err)
	}
	// Once no clock could take them, the jtis go: the file does not grow
	// for ever.
	f.clock.Add(2 * time.Hour)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	if n := f.spent(t); n != 1 {
		t.Fatalf("%d jtis kept, want the last one alone", n)
	}
}

// TestRacingReplaysGetOneToken: one assertion sent many times at once is
// granted once.
func TestRacingReplaysGetOneToken(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	assertion := sign(t, s, claims(c.ID, f.clock.Now()))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int
	)
	for range 8 {
		wg.Go(func() {
			_, err := f.srv.Token(context.Background(), form(assertion, "system/Patient.rs"), tokenURL)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				granted++
			} else if e := new(smart.Error); !errors.As(err, &e) || e.Code != "invalid_client" {
				t.Errorf("a racing replay: %v", err)
			}
		})
	}
	wg.Wait()
	if granted != 1 {
		t.Fatalf("%d tokens for one assertion", granted)
	}
}

func TestAssertionWithoutKidAndAudArray(t *testing.T) {
	f := newFixture(t)
	rs, ec := rsaSigner(), ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, rs, ec)
	cl := claims(c.ID, f.clock.Now())
	cl["aud"] = []string{"https://elsewhere.example/token", tokenURL}
	cl["client_id"] = c.ID
	v := form(sign(t, signer{kid: "-", alg: jose.ES384, key: ec.key}, cl), "system/Patient.rs")
	v.Set("client_id", c.ID)
	if _, err := f.srv.Token(context.Background(), v, tokenURL); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAndExpiry(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/*.read", "system/DocumentReference.c"}, []string{"clinician"}, s)
	ctx := context.Background()
	resp, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/*.read system/DocumentReference.c"), tokenURL)
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.srv.Check(ctx, resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		resource    string
		interaction byte
		want        bool
	}{
		{"Patient", 'r', true},
		{"Patient", 's', true},
		{"Patient", 'c', false},
		{"DocumentReference", 'c', true},
		{"DocumentReference", 'u', false},
		{"Observation", 'r', true}, // system/*.read
		{"Patient", 'x', false},
		{"*", 'r', false},
	} {
		if got := g.Allows(tt.resource, tt.interaction); got != tt.want {
			t.Errorf("Allows(%s, %c) = %v", tt.resource, tt.interaction, got)
		}
	}
	f.clock.Add(5*time.Minute - time.Second)
	if _, err := f.srv.Check(ctx, resp.AccessToken); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	f.clock.Add(time.Second)
	if _, err := f.srv.Check(ctx, resp.AccessToken); !errors.Is(err, smart.ErrExpiredToken) || !errors.Is(err, node.ErrUnauthenticated) {
		t.Fatalf("at expiry: %v", err)
	}
	if _, err := f.srv.Check(ctx, resp.AccessToken); !errors.Is(err, smart.ErrUnknownToken) {
		t.Fatalf("once expired and forgotten: %v", err)
	}
	for _, tok := range []string{"", "mfa_", resp.AccessToken[:len(resp.AccessToken)-1] + "A", "mfs_" + resp.AccessToken[4:], strings.Repeat("x", 100000)} {
		if _, err := f.srv.Check(ctx, tok); !errors.Is(err, smart.ErrUnknownToken) {
			t.Errorf("Check(%.10q…): %v", tok, err)
		}
		if in := f.srv.Introspect(ctx, tok); in.Active || mustJSON(t, in) != `{"active":false}` {
			t.Errorf("Introspect(%.10q…) = %s", tok, mustJSON(t, in))
		}
	}
}

func TestAllowsV1AndV2Scopes(t *testing.T) {
	tests := []struct {
		name        string
		scopes      []string
		resource    string
		interaction byte
		want        bool
	}{
		{"v2 letter", []string{"system/Patient.rs"}, "Patient", 'r', true},
		{"v2 letter missing", []string{"system/Patient.rs"}, "Patient", 'u', false},
		{"v2 other resource", []string{"system/Patient.rs"}, "Consent", 'r', false},
		{"v1 read searches", []string{"system/Consent.read"}, "Consent", 's', true},
		{"v1 read does not create", []string{"system/Consent.read"}, "Consent", 'c', false},
		{"v1 write creates", []string{"system/Binary.write"}, "Binary", 'c', true},
		{"v1 write does not read", []string{"system/Binary.write"}, "Binary", 'r', false},
		{"v1 star", []string{"system/AuditEvent.*"}, "AuditEvent", 'd', true},
		{"wildcard v2", []string{"system/*.cruds"}, "Endpoint", 'u', true},
		{"no scopes", nil, "Patient", 'r', false},
		{"not a scope", []string{"patient/Patient.rs"}, "Patient", 'r', false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (smart.Grant{Scopes: tt.scopes}).Allows(tt.resource, tt.interaction); got != tt.want {
				t.Errorf("Allows = %v", got)
			}
		})
	}
}

func TestRevokingEndsTokensAtOnce(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician", "researcher"}, s)
	ctx := context.Background()
	token := func() string {
		t.Helper()
		id := staffID()
		f.staff.set(id, "researcher")
		cl := claims(c.ID, f.clock.Now())
		cl["extensions"] = iua(id, "researcher", "HRESCH")
		resp, err := f.srv.Token(ctx, form(sign(t, s, cl), "system/Patient.rs"), tokenURL)
		if err != nil {
			t.Fatal(err)
		}
		if in := f.srv.Introspect(ctx, resp.AccessToken); !in.Active || in.Sub != id {
			t.Fatalf("introspection %+v", in)
		}
		return resp.AccessToken
	}

	// The staff member's credential is revoked.
	tok := token()
	g, err := f.srv.Check(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	f.staff.set(g.Staff, "")
	if _, err := f.srv.Check(ctx, tok); !errors.Is(err, smart.ErrUnknownToken) {
		t.Fatalf("staff revoked: %v", err)
	}
	// The staff member's role changed.
	tok = token()
	if g, err = f.srv.Check(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.staff.set(g.Staff, "clinician")
	if _, err := f.srv.Check(ctx, tok); !errors.Is(err, smart.ErrUnknownToken) {
		t.Fatalf("role changed: %v", err)
	}

	// The client is revoked by another process (medfed client revoke).
	tok = token()
	cli, err := smart.Open(smart.Options{Dir: f.dir, Key: f.key})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.Revoke(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Check(ctx, tok); !errors.Is(err, smart.ErrUnknownToken) {
		t.Fatalf("client revoked: %v", err)
	}
	if in := f.srv.Introspect(ctx, tok); in.Active {
		t.Fatal("a revoked client's token is active")
	}
	if err := cli.Revoke(ctx, c.ID); !errors.Is(err, smart.ErrUnknownClient) {
		t.Fatalf("revoked twice: %v", err)
	}
	if err := cli.Revoke(ctx, "not an ID"); node.KindOf(err) != node.Invalid {
		t.Fatalf("revoke of no ID: %v", err)
	}
	list, err := f.srv.List(ctx)
	if err != nil || len(list) != 1 || list[0].Revoked.IsZero() || list[0].Tampered {
		t.Fatalf("list %+v, %v", list, err)
	}
}

func TestTooManyLiveTokens(t *testing.T) {
	defer smart.SetLiveLimit(3)()
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	ask := func() error {
		_, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL)
		return err
	}
	for range 3 {
		if err := ask(); err != nil {
			t.Fatal(err)
		}
	}
	err := ask()
	if e := refusal(t, err); e.Status != 429 || !strings.Contains(e.Description, "live access tokens") || !errors.Is(err, node.ErrUnavailable) {
		t.Fatalf("the fourth token: %v (status %d)", err, e.Status)
	}
	f.clock.Add(5 * time.Minute)
	if err := ask(); err != nil {
		t.Fatalf("once the tokens expired: %v", err)
	}
}

// TestTamperedRowAuthenticatesNoOne: a registration changed with SQL, as
// someone with the disk but not the centre's key would, fails its MAC:
// the client's assertions are refused, its tokens stop working, List
// marks it and the full check names it.
func TestTamperedRowAuthenticatesNoOne(t *testing.T) {
	tests := []struct {
		name, sql string
		table     string
	}{
		{"scopes widened", "UPDATE clients SET scopes = 'system/*.cruds' WHERE id = ?", "clients"},
		{"role added", "UPDATE clients SET roles = 'clinician,admin' WHERE id = ?", "clients"},
		{"a key swapped", "UPDATE clients SET jwks = CAST(replace(CAST(jwks AS TEXT), 'ec-1', 'ec-2') AS BLOB) WHERE id = ?", "clients"},
		{"row removed", "DELETE FROM clients WHERE id <> ?", "seal"},
		{"seal zeroed", "UPDATE seal SET mac = zeroblob(32) WHERE ? <> ''", "seal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			s := ecSigner()
			c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
			f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
			ctx := context.Background()
			resp, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := smart.CheckClients(ctx, f.dir, f.key); err != nil || n != 2 {
				t.Fatalf("intact: %d, %v", n, err)
			}
			f.sqlExec(t, tt.sql, c.ID)
			if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
				t.Fatalf("a tampered registration authenticates: %v", err)
			}
			if _, err := f.srv.Check(ctx, resp.AccessToken); !errors.Is(err, smart.ErrUnknownToken) {
				t.Fatalf("a tampered registration's token: %v", err)
			}
			_, err = smart.CheckClients(ctx, f.dir, f.key)
			var de *centre.DataError
			if !errors.As(err, &de) || de.File != smart.ClientsFile || de.Table != tt.table || !errors.Is(err, centre.ErrTampered) {
				t.Fatalf("medfed check: %v", err)
			}
			if tt.table == "clients" {
				list, err := f.srv.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if i := slices.IndexFunc(list, func(l smart.Client) bool { return l.ID == c.ID }); i < 0 || !list[i].Tampered {
					t.Fatalf("list does not mark the tampered row: %+v", list)
				}
			}
			// A store that does not check out takes no new client.
			if _, err := f.srv.Add(ctx, "", jwks(t, s), []string{"system/Patient.rs"}, []string{"clinician"}); tt.table == "seal" && !errors.Is(err, smart.ErrTampered) {
				t.Fatalf("add to a store whose seal fails: %v", err)
			}
		})
	}
}

// TestRevocationPutBackIsRefused: a revoked row put back as it was before
// (its old MAC with it) passes its own MAC but not the seal.
func TestRevocationPutBackIsRefused(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, smart.ClientsFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mac []byte
	if err := db.QueryRow(`SELECT mac FROM clients WHERE id = ?`, c.ID).Scan(&mac); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Revoke(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE clients SET revoked = NULL, mac = ? WHERE id = ?`, mac, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); refusal(t, err).Code != "invalid_client" {
		t.Fatalf("a revocation undone: %v", err)
	}
	if _, err := smart.CheckClients(ctx, f.dir, f.key); !errors.Is(err, centre.ErrTampered) {
		t.Fatalf("medfed check: %v", err)
	}
}

func TestCheckClientsNamesATamperedJTI(t *testing.T) {
	f := newFixture(t)
	s := ecSigner()
	c := f.add(t, []string{"system/Patient.rs"}, []string{"clinician"}, s)
	ctx := context.Background()
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	f.sqlExec(t, "UPDATE jtis SET expires = expires - 86400 WHERE client = ?", c.ID)
	var de *centre.DataError
	if _, err := smart.CheckClients(ctx, f.dir, f.key); !errors.As(err, &de) || de.Table != "jtis" {
		t.Fatalf("medfed check: %v", err)
	}
	// The floor, lowered to reopen pruned jtis, is named too, and the
	// token endpoint takes no assertion until it checks out.
	f.sqlExec(t, "DELETE FROM jtis WHERE client = ?", c.ID)
	f.clock.Add(2 * time.Hour)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Hour)
	if _, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL); err != nil {
		t.Fatal(err)
	}
	if n, err := smart.CheckClients(ctx, f.dir, f.key); err != nil || n != 1 {
		t.Fatalf("medfed check with a floor: %d, %v", n, err)
	}
	f.sqlExec(t, "UPDATE jtis SET expires = 0 WHERE client = '' AND ? <> ''", c.ID)
	if _, err := smart.CheckClients(ctx, f.dir, f.key); !errors.As(err, &de) || de.Table != "jtis" || !strings.Contains(de.Row, "floor") || !errors.Is(err, centre.ErrTampered) {
		t.Fatalf("medfed check of a lowered floor: %v", err)
	}
	_, err := f.srv.Token(ctx, form(sign(t, s, claims(c.ID, f.clock.Now())), "system/Patient.rs"), tokenURL)
	if e := refusal(t, err); e.Code != "server_error" || strings.Contains(e.Description, "floor") {
		t.Fatalf("a token with the floor tampered: %v", err)
	}
	if n, err := smart.CheckClients(ctx, t.TempDir(), f.key); n != 0 || err != nil {
		t.Fatalf("a directory without clients.db: %d, %v", n, err)
	}
}

func TestAddChecksItsInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rsaPub := func(bits int) jose.JSONWebKey {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: "r", Algorithm: "RS384"}
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec := ecKey()
	set := func(keys ...jose.JSONWebKey) []byte {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e", Algorithm: "ES384"}
	withUse := jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "u", Use: "sig"}
	tests := []struct {
		name   string
		label  string
		jwks   []byte
		scopes []string
		roles  []string
		ok     bool
	}{
		{name: "EC P-384 with alg", jwks: set(good), ok: true},
		{name: "RSA 3072 and EC with use sig", jwks: set(jose.JSONWebKey{Key: &rsaKey().PublicKey, KeyID: "r", Algorithm: "RS384"}, withUse), ok: true},
		{name: "a private key", jwks: set(jose.JSONWebKey{Key: ec, KeyID: "e", Algorithm: "ES384"})},
		{name: "a private RSA key", jwks: set(jose.JSONWebKey{Key: rsaKey(), KeyID: "r", Algorithm: "RS384"})},
		{name: "a symmetric key", jwks: set(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k", Algorithm: "HS384"})},
		{name: "RSA 1024", jwks: set(rsaPub(1024))},
		{name: "EC P-256", jwks: set(jose.JSONWebKey{Key: &p256.PublicKey, KeyID: "e", Algorithm: "ES256"})},
		{name: "EC P-256 claiming ES384", jwks: set(jose.JSONWebKey{Key: &p256.PublicKey, KeyID: "e", Algorithm: "ES384"})},
		{name: "no kid", jwks: set(jose.JSONWebKey{Key: &ec.PublicKey, Algorithm: "ES384"})},
		{name: "kid twice", jwks: set(good, withUse, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e", Algorithm: "ES384"})},
		{name: "alg of the other key type", jwks: set(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e", Algorithm: "RS384"})},
		{name: "alg RS256", jwks: set(jose.JSONWebKey{Key: &rsaKey().PublicKey, KeyID: "r", Algorithm: "RS256"})},
		{name: "no alg and no use", jwks: set(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e"})},
		{name: "use enc", jwks: set(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "e", Algorithm: "ES384", Use: "enc"})},
		{name: "no keys", jwks: []byte(`{"keys":[]}`)},
		{name: "no keys member", jwks: []byte(`{"kty":"EC"}`)},
		{name: "keys twice", jwks: []byte(`{"keys":[],"keys":[]}`)},
		{name: "not JSON", jwks: []byte(`keys`)},
		{name: "a scope of no resource type served", jwks: set(good), scopes: []string{"system/Encounter.rs"}},
		{name: "a user scope", jwks: set(good), scopes: []string{"user/Patient.rs"}},
		{name: "no scope", jwks: set(good), scopes: []string{" "}},
		{name: "an unknown role", jwks: set(good), roles: []string{"nurse"}},
		{name: "no role", jwks: set(good), roles: []string{}},
		{name: "a label with a newline", label: "ward\n7", jwks: set(good)},
		{name: "a long label", label: strings.Repeat("l", 201), jwks: set(good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scopes, roles := tt.scopes, tt.roles
			if scopes == nil {
				scopes = []string{"system/Patient.rs", "system/DocumentReference.crs system/Patient.rs"}
			}
			if roles == nil {
				roles = []string{"clinician", "registrar", "clinician"}
			}
			c, err := f.srv.Add(ctx, tt.label, tt.jwks, scopes, roles)
			if !tt.ok {
				if node.KindOf(err) != node.Invalid {
					t.Fatalf("Add = %+v, %v: want an error of kind invalid", c, err)
				}
				if strings.Contains(err.Error(), `"d"`) == false && strings.Contains(tt.name, "private") {
					t.Errorf("the refusal of a private key does not say so: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.ID) != 32 || !slices.Equal(c.Scopes, []string{"system/Patient.rs", "system/DocumentReference.crs"}) || !slices.Equal(c.Roles, []string{"clinician", "registrar"}) {
				t.Errorf("client %+v", c)
			}
			if strings.Contains(string(c.JWKS), `"d"`) || !strings.Contains(string(c.JWKS), `"alg":"ES384"`) {
				t.Errorf("stored JWKS %s", c.JWKS)
			}
		})
	}
}

func TestOpenChecksItsOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []smart.Options{
		{Key: make([]byte, 32)},
		{Dir: dir, Key: make([]byte, 16)},
		{Dir: dir, Key: make([]byte, 32), TokenLifetime: 2 * time.Hour},
		{Dir: dir, Key: make([]byte, 32), TokenLifetime: -time.Second},
	} {
		if s, err := smart.Open(o); err == nil {
			s.Close()
			t.Errorf("Open(%+v) took the options", o)
		}
	}
	s, err := smart.Open(smart.Options{Dir: dir, Key: make([]byte, 32), TokenLifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Add(context.Background(), "", jwks(t, ecSigner()), []string{"system/Patient.rs"}, []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Token(context.Background(), form(sign(t, ecSigner(), claims(c.ID, time.Now())), "system/Patient.rs"), tokenURL)
	if err != nil || resp.ExpiresIn != 60 {
		t.Fatalf("a token of a configured lifetime, on the real clock: %+v, %v", resp, err)
	}
}

func TestScopesSupportedParse(t *testing.T) {
	f := newFixture(t)
	if _, err := f.srv.Add(context.Background(), "", jwks(t, ecSigner()), smart.ScopesSupported, []string{"admin"}); err != nil {
		t.Fatalf("ScopesSupported %v: %v", smart.ScopesSupported, err)
	}
	if !slices.Contains(smart.ScopesSupported, "system/Patient.rs") || !slices.Contains(smart.ScopesSupported, "system/DocumentReference.read") {
		t.Errorf("ScopesSupported %v", smart.ScopesSupported)
	}
}

func ExampleServer_Token() {
	dir, _ := os.MkdirTemp("", "smart-example")
	defer os.RemoveAll(dir)
	key := make([]byte, 32) // centre.RowKey(dir, smart.ClientsFile) in a centre
	srv, err := smart.Open(smart.Options{Dir: dir, Key: key})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	// The hospital registers its EHR's public key (medfed client add).
	ehr, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pub := jose.JSONWebKey{Key: &ehr.PublicKey, KeyID: "ehr-2026", Algorithm: "ES384"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	client, err := srv.Add(context.Background(), "ward 7 EHR", set, []string{"system/Patient.rs"}, []string{"clinician"})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The EHR signs an assertion and trades it for an access token.
	sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: ehr, KeyID: "ehr-2026"}}, nil)
	now := time.Now()
	assertion, _ := jwt.Signed(sg).Claims(jwt.Claims{
		Issuer: client.ID, Subject: client.ID, Audience: jwt.Audience{"https://centre-a.example/auth/token"},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: rand.Text(),
	}).Serialize()
	resp, err := srv.Token(context.Background(), url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/Patient.rs"},
		"client_assertion_type": {smart.AssertionType},
		"client_assertion":      {assertion},
	}, "https://centre-a.example/auth/token")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.TokenType, resp.ExpiresIn, resp.Scope)

	// node/api checks the token on each /fhir request.
	grant, _ := srv.Check(context.Background(), resp.AccessToken)
	fmt.Println(grant.Allows("Patient", 's'), grant.Allows("Patient", 'c'))
	// Output:
	// bearer 300 system/Patient.rs
	// true false
}
