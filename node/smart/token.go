package smart

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/medfed/medfed/node"
)

// The token request's constants (RFC 6749, RFC 7523) and the code systems
// of the IUA claims.
const (
	GrantType     = "client_credentials"
	AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	RoleSystem    = "urn:medfed:staff-role"
	PurposeSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
)

// SigningAlgs are the algorithms an assertion may be signed with: the
// smart-configuration's token_endpoint_auth_signing_alg_values_supported.
var SigningAlgs = []string{string(jose.RS384), string(jose.ES384)}

// signingAlgs are SigningAlgs as go-jose takes them.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// maxAssertionBytes bounds a client_assertion: an RS384 signature of an
// 8192-bit key and IUA claims fit many times over.
const maxAssertionBytes = 16 << 10

// purposes are the IUA purpose-of-use codes medfed takes, medfed's name
// for each, and the roles that may act for it: a researcher acts for
// research alone, a clinician treats (in an emergency too), a registrar
// serves treatment, and an administrator or privacy officer reviewing
// the audit trail serves the centre's operations.
var purposes = []purpose{
	{"TREAT", "treatment", []string{"clinician", "registrar"}},
	{"HRESCH", "research", []string{"researcher"}},
	{"ETREAT", "emergency", []string{"clinician"}},
	{"HOPERAT", "operations", []string{"privacy-officer", "admin"}},
}

// purpose is a purpose-of-use code, medfed's name for it and the roles
// that may act for it.
type purpose struct {
	code, name string
	roles      []string
}

// TokenResponse is the token endpoint's answer (RFC 6749, section 5.1).
type TokenResponse struct {
	AccessToken string      `json:"access_token"`
	TokenType   string      `json:"token_type"`
	ExpiresIn   int         `json:"expires_in"`
	Scope       string      `json:"scope"`
	Extensions  *Extensions `json:"extensions,omitempty"`
}

// LogValue keeps the access token out of logs.
func (r TokenResponse) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_type", r.TokenType), slog.Int("expires_in", r.ExpiresIn), slog.String("scope", r.Scope))
}

// Extensions are the extensions claims of an assertion, echoed in the
// token response and the introspection.
type Extensions struct {
	IUA *IUA `json:"ihe_iua,omitempty"`
}

// IUA are IHE IUA's claims about the person a client acts for.
type IUA struct {
	SubjectID    string  `json:"subject_id,omitempty"`     // a medfed staff ID, 32 hex digits
	SubjectRole  *Coding `json:"subject_role,omitempty"`   // system RoleSystem, code a staff role
	PurposeOfUse *Coding `json:"purpose_of_use,omitempty"` // system PurposeSystem, code TREAT, HRESCH, ETREAT or HOPERAT
}

// Coding is a FHIR Coding, reduced to what the IUA claims use.
type Coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// Error is a refused token request: an RFC 6749 error code (section 5.2)
// with a description for the client's developers, and the HTTP status to
// answer with: 401 for invalid_client, 429 when the client holds too many
// live tokens, 500 (server_error) for a failure of the centre, 400
// otherwise. A description never carries a token, an assertion or an
// identifier.
type Error struct {
	Code, Description string
	Status            int

	err error // the centre's failure behind a server_error
}

// The RFC 6749 error codes, and server_error for the centre's own failures.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeInvalidScope         = "invalid_scope"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeServerError          = "server_error"
)

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Unwrap gives the error its node kind: invalid_client is
// node.Unauthenticated, too many live tokens node.Unavailable, the other
// refusals node.Invalid; a server_error unwraps to the centre's failure.
func (e *Error) Unwrap() error {
	switch {
	case e.err != nil:
		return e.err
	case e.Code == CodeInvalidClient:
		return node.ErrUnauthenticated
	case e.Status == http.StatusTooManyRequests:
		return node.ErrUnavailable
	}
	return node.ErrInvalid
}

// refuse is a refusal of code.
func refuse(code, description string) *Error {
	status := http.StatusBadRequest
	if code == CodeInvalidClient {
		status = http.StatusUnauthorized
	}
	return &Error{Code: code, Description: description, Status: status}
}

// failed is a failure of the centre's.
func failed(err error) *Error {
	return &Error{Code: CodeServerError, Description: "the centre could not answer the token request; try again later", Status: http.StatusInternalServerError, err: err}
}

// assertion is what a verified client assertion says.
type assertion struct {
	client clientRow
	claims jwt.Claims
	iua    *IUA
}

// request is a token request's form, checked.
type request struct {
	scopes    []string
	parsed    []scope
	assertion string
	clientID  string
}

// Token answers a token request: form is the POST /auth/token form;
// tokenURL the endpoint's URL the assertion's aud must equal. Its errors
// are *Error. A refused request changes nothing; a granted one consumes
// the assertion's jti for good.
//
// The checks run cheapest first, and the jti is consumed last, in one
// transaction with the check that it is new: a request refused for its
// scope or its subject can be put right and sent again with the same
// assertion, and two requests racing with one assertion get one token.
func (s *Server) Token(ctx context.Context, form url.Values, tokenURL string) (TokenResponse, error) {
	req, e := checkForm(form)
	if e != nil {
		return TokenResponse{}, e
	}
	now := s.now()
	a, e := s.authenticate(ctx, req, tokenURL, now)
	if e != nil {
		return TokenResponse{}, e
	}
	_, registered, err := parseScopes(a.client.Scopes)
	if err != nil {
		return TokenResponse{}, failed(fmt.Errorf("smart token: a registration's scopes do not parse: %w", err))
	}
	for _, sc := range req.parsed {
		if !covers(registered, sc) {
			return TokenResponse{}, refuse(CodeInvalidScope, "a requested scope is not among those the client is registered for: "+quote(scopeName(sc)))
		}
	}
	g := Grant{Client: a.client.ID, Scopes: req.scopes, Issued: now, Expires: now.Add(s.lifetime)}
	if e := s.subject(ctx, a.client, a.iua, &g); e != nil {
		return TokenResponse{}, e
	}
	if e := s.reserve(g.Client, now); e != nil {
		return TokenResponse{}, e
	}
	if e := s.consume(ctx, a.client.ID, a.claims, now); e != nil {
		s.release(g.Client)
		return TokenResponse{}, e
	}
	resp := TokenResponse{
		AccessToken: s.issue(&g),
		TokenType:   "bearer",
		ExpiresIn:   int(s.lifetime / time.Second),
		Scope:       strings.Join(g.Scopes, " "),
	}
	if a.iua != nil {
		resp.Extensions = g.extensions()
	}
	return resp, nil
}

// scopeName writes a parsed scope back in v2 form.
func scopeName(sc scope) string { return "system/" + sc.resource + "." + sc.ops.String() }

// checkForm checks the form's parameters, each of which may be given once.
func checkForm(form url.Values) (request, *Error) {
	for _, p := range []string{"grant_type", "scope", "client_assertion_type", "client_assertion", "client_id"} {
		if len(form[p]) > 1 {
			return request{}, refuse(CodeInvalidRequest, p+" is given more than once")
		}
	}
	switch form.Get("grant_type") {
	case GrantType:
	case "":
		return request{}, refuse(CodeInvalidRequest, "grant_type is missing: it is "+GrantType)
	default:
		return request{}, refuse(CodeUnsupportedGrantType, "the only grant_type is "+GrantType)
	}
	switch form.Get("client_assertion_type") {
	case AssertionType:
	case "":
		return request{}, refuse(CodeInvalidClient, "client_assertion_type is missing: a client authenticates with a signed JWT ("+AssertionType+")")
	default:
		return request{}, refuse(CodeInvalidClient, "the only client_assertion_type is "+AssertionType)
	}
	req := request{assertion: form.Get("client_assertion"), clientID: form.Get("client_id")}
	if req.assertion == "" {
		return request{}, refuse(CodeInvalidClient, "client_assertion is missing")
	}
	if len(req.assertion) > maxAssertionBytes {
		return request{}, refuse(CodeInvalidClient, fmt.Sprintf("client_assertion is over %d bytes", maxAssertionBytes))
	}
	if strings.TrimSpace(form.Get("scope")) == "" {
		return request{}, refuse(CodeInvalidRequest, "scope is missing: ask for the system scopes the token is for, such as system/Patient.rs")
	}
	var err error
	if req.scopes, req.parsed, err = parseScopes([]string{form.Get("scope")}); err != nil {
		return request{}, refuse(CodeInvalidScope, err.Error())
	}
	return req, nil
}

// claims are an assertion's claims beside the registered ones.
type claims struct {
	Extensions *struct {
		IUA *IUA `json:"ihe_iua"`
	} `json:"extensions"`
}

// authenticate checks a client assertion: its signature by a key of a
// registered client's, and its claims. Every refusal is invalid_client,
// as SMART Backend Services asks.
func (s *Server) authenticate(ctx context.Context, req request, tokenURL string, now time.Time) (assertion, *Error) {
	tok, err := jwt.ParseSigned(req.assertion, signingAlgs)
	if err != nil {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion is not a compact JWS signed with RS384 or ES384")
	}
	h := tok.Headers[0]
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion has critical header parameters, which medfed does not understand")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion's claims are not a JSON object of JWT claims")
	}
	switch {
	case unverified.Issuer == "":
		return assertion{}, refuse(CodeInvalidClient, "client_assertion has no iss: it is the client ID")
	case unverified.Subject != unverified.Issuer:
		return assertion{}, refuse(CodeInvalidClient, "client_assertion's sub is not its iss: both are the client ID")
	case req.clientID != "" && req.clientID != unverified.Issuer:
		return assertion{}, refuse(CodeInvalidClient, "client_id is not client_assertion's iss")
	}
	c, err := s.client(ctx, unverified.Issuer)
	switch {
	case errors.Is(err, ErrUnknownClient):
		return assertion{}, refuse(CodeInvalidClient, "the client is not registered at this centre, or was revoked")
	case errors.Is(err, ErrTampered):
		return assertion{}, refuse(CodeInvalidClient, "the client's registration does not check out at this centre; its administrators have been told")
	case err != nil:
		return assertion{}, failed(err)
	}
	keys, err := s.keysOf(c)
	if err != nil {
		return assertion{}, failed(err)
	}
	key, e := pickKey(keys, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if e != nil {
		return assertion{}, e
	}
	var payload josejson.RawMessage
	if err := tok.Claims(key.key, &payload); err != nil {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion's signature does not verify with the client's key")
	}
	a := assertion{client: c}
	var ext claims
	if err := josejson.Unmarshal(payload, &a.claims); err != nil {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion's claims are not a JSON object of JWT claims")
	}
	if err := josejson.Unmarshal(payload, &ext); err != nil {
		return assertion{}, refuse(CodeInvalidGrant, "client_assertion's extensions.ihe_iua is not an object of subject_id, subject_role and purpose_of_use")
	}
	if ext.Extensions != nil {
		a.iua = ext.Extensions.IUA
	}
	if e := checkClaims(a.claims, c.ID, tokenURL, now); e != nil {
		return assertion{}, e
	}
	return a, nil
}

// pickKey chooses the client's key that verifies an assertion: the one kid
// names, which must be for alg, or without a kid the only key for alg.
func pickKey(keys []verifyKey, kid string, alg jose.SignatureAlgorithm) (verifyKey, *Error) {
	if kid != "" {
		i := slices.IndexFunc(keys, func(k verifyKey) bool { return k.kid == kid })
		switch {
		case i < 0:
			return verifyKey{}, refuse(CodeInvalidClient, "client_assertion's kid names no key of the client's registered JWK Set")
		case keys[i].alg != alg:
			return verifyKey{}, refuse(CodeInvalidClient, "client_assertion's kid names a key for another alg than the header's")
		}
		return keys[i], nil
	}
	var found []verifyKey
	for _, k := range keys {
		if k.alg == alg {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return verifyKey{}, refuse(CodeInvalidClient, "the client registered no key for client_assertion's alg")
	case 1:
		return found[0], nil
	}
	return verifyKey{}, refuse(CodeInvalidClient, "client_assertion has no kid, and the client registered several keys for its alg: name one")
}

// checkClaims checks an assertion's registered claims, once its signature
// verified.
func checkClaims(c jwt.Claims, client, tokenURL string, now time.Time) *Error {
	switch {
	case c.Issuer != client || c.Subject != client:
		return refuse(CodeInvalidClient, "client_assertion's iss and sub are not both the client ID")
	case tokenURL == "" || !c.Audience.Contains(tokenURL):
		return refuse(CodeInvalidClient, "client_assertion's aud is not this token endpoint: it is "+tokenURL)
	case c.Expiry == nil:
		return refuse(CodeInvalidClient, "client_assertion has no exp")
	case c.Expiry.Time().Before(now.Add(-Leeway)):
		return refuse(CodeInvalidClient, "client_assertion has expired")
	case c.Expiry.Time().After(now.Add(MaxAssertionLifetime + Leeway)):
		return refuse(CodeInvalidClient, "client_assertion's exp is more than 5 minutes ahead")
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(Leeway)):
		return refuse(CodeInvalidClient, "client_assertion is not valid yet (nbf)")
	case c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(Leeway)):
		return refuse(CodeInvalidClient, "client_assertion is issued in the future (iat)")
	case c.ID == "":
		return refuse(CodeInvalidClient, "client_assertion has no jti")
	case len(c.ID) > 255:
		return refuse(CodeInvalidClient, "client_assertion's jti is over 255 characters")
	}
	return nil
}

// subject checks the IUA claims of an assertion, if any, and puts the
// staff member, role and purpose they name in g. Every refusal is
// invalid_grant: the client is who it says, but may not have this grant.
// The checks that need no lookup come first; the staff member's
// credential is looked up last.
func (s *Server) subject(ctx context.Context, c clientRow, iua *IUA, g *Grant) *Error {
	if iua == nil {
		return nil
	}
	switch {
	case iua.SubjectID == "":
		return refuse(CodeInvalidGrant, "extensions.ihe_iua names no subject_id: medfed's purposes of use are a staff member's")
	case !validID(iua.SubjectID):
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's subject_id is not a medfed staff ID (32 lowercase hex digits)")
	case iua.SubjectRole == nil || iua.SubjectRole.System != RoleSystem || !slices.Contains(Roles, iua.SubjectRole.Code):
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's subject_role is not a staff role of system "+RoleSystem+": "+strings.Join(Roles, ", "))
	case !slices.Contains(c.Roles, iua.SubjectRole.Code):
		return refuse(CodeInvalidGrant, "the client is not registered to act for the role "+iua.SubjectRole.Code)
	case iua.PurposeOfUse == nil || iua.PurposeOfUse.System != PurposeSystem:
		return refuse(CodeInvalidGrant, "extensions.ihe_iua needs a purpose_of_use of system "+PurposeSystem+" (TREAT, HRESCH, ETREAT or HOPERAT) with a subject")
	}
	i := slices.IndexFunc(purposes, func(p purpose) bool { return p.code == iua.PurposeOfUse.Code })
	if i < 0 {
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's purpose_of_use is not TREAT, HRESCH, ETREAT or HOPERAT")
	}
	role := iua.SubjectRole.Code
	if !slices.Contains(purposes[i].roles, role) {
		return refuse(CodeInvalidGrant, "the purpose of use "+purposes[i].code+" does not suit the role "+role)
	}
	if s.staff == nil {
		return refuse(CodeInvalidGrant, "this centre takes no subject in extensions.ihe_iua")
	}
	got, err := s.staff(ctx, iua.SubjectID)
	switch {
	case err != nil && node.KindOf(err) == node.Internal:
		return failed(fmt.Errorf("smart token: the staff store: %w", err))
	case err != nil:
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's subject_id is not a live staff member of this centre")
	case got != role:
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's subject_role is not the subject's role at this centre")
	}
	g.Staff, g.Role, g.Purpose = iua.SubjectID, role, purposes[i].name
	return nil
}

// jtiKeep is how long past the end of an assertion's validity its jti is
// kept: a centre's clock set back within it does not reopen the jti.
const jtiKeep = time.Hour

// consume records an assertion's jti, refusing one the client used
// before, in one transaction with the check, and prunes the jtis no
// assertion can use any more.
func (s *Server) consume(ctx context.Context, client string, c jwt.Claims, now time.Time) *Error {
	jti := sha256.Sum256([]byte(c.ID))
	expires := c.Expiry.Time().Add(Leeway + jtiKeep).Unix()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return failed(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM jtis WHERE expires < ?`, now.Unix()); err != nil {
		return failed(err)
	}
	var seen int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jtis WHERE client = ? AND jti = ?`, client, jti[:]).Scan(&seen); err != nil {
		return failed(err)
	}
	if seen > 0 {
		return refuse(CodeInvalidClient, "client_assertion's jti was used before: sign a new assertion for each request")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jtis (client, jti, expires, mac) VALUES (?, ?, ?, ?)`,
		client, jti[:], expires, jtiMAC(s.key, client, jti[:], expires)); err != nil {
		return failed(err)
	}
	if err := tx.Commit(); err != nil {
		return failed(err)
	}
	return nil
}
