package smart

import (
	"context"
	"crypto/sha256"
	"database/sql"
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
// research alone, a clinician or a registrar serves treatment, and an
// administrator or privacy officer reviewing the audit trail serves the
// centre's operations. ETREAT is not among them: see emergencyPurpose.
var purposes = []purpose{
	{"TREAT", "treatment", []string{"clinician", "registrar"}},
	{"HRESCH", "research", []string{"researcher"}},
	{"HOPERAT", "operations", []string{"privacy-officer", "admin"}},
}

// purposeCodes lists the codes of purposes, for refusals.
const purposeCodes = "TREAT, HRESCH or HOPERAT"

// emergencyPurpose is IUA's code for emergency treatment. A token endpoint
// cannot grant it: no /fhir route takes a token as break-glass, which
// needs a coded reason, goes on the ledger and is stopped when done
// (POST /v1/emergency), so a token for it would be granted and then
// refused everywhere. It is refused here, with the way to do it.
const emergencyPurpose = "ETREAT"

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
	PurposeOfUse *Coding `json:"purpose_of_use,omitempty"` // system PurposeSystem, code TREAT, HRESCH or HOPERAT
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
// identifier: what it repeats of the request goes through quote.
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

// assertion is what a verified client assertion says: its registered
// claims, and its payload, whose extensions are read once its jti is
// spent.
type assertion struct {
	client  clientRow
	claims  jwt.Claims
	payload josejson.RawMessage
}

// request is a token request's form, its envelope checked.
type request struct {
	scope     string // as sent: checked once the assertion is
	assertion string
	clientID  string
}

// Token answers a token request: form is the POST /auth/token form;
// tokenURL the endpoint's URL the assertion's aud must equal. Its errors
// are *Error.
//
// The checks run in three steps, and where a refusal falls says whether
// it spends the assertion's jti:
//
//  1. The form's envelope: each parameter at most once, grant_type,
//     client_assertion_type, an assertion of a sane size. A refusal here
//     spends nothing: no assertion has been verified.
//  2. The assertion (authenticate): signed by a key the client
//     registered, iss and sub the client, aud this endpoint, valid now,
//     with a jti.
//     A refusal here spends nothing either: the assertion is not a
//     genuine, live one of a client for this endpoint.
//  3. The jti is spent (consume), in one transaction with the check that
//     it is new, so that two requests racing with one assertion cannot
//     both get past it. Only then are the scope, the IUA claims and the
//     client's live tokens looked at. SMART Backend Services asks that a
//     jti never have been seen before, so an assertion refused here (for
//     a scope the client is not registered for, a subject it may not act
//     for, too many live tokens), or one whose request failed for the
//     centre's reasons, is spent all the same: the client signs a new one to try again, and
//     whoever copied it cannot replay it with other parameters.
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
	if e := s.consume(ctx, a.client.ID, a.claims, now); e != nil {
		return TokenResponse{}, e
	}
	iua, e := parseIUA(a.payload)
	if e != nil {
		return TokenResponse{}, e
	}
	scopes, e := checkScope(req.scope, a.client)
	if e != nil {
		return TokenResponse{}, e
	}
	g := Grant{Client: a.client.ID, Scopes: scopes, Issued: now, Expires: now.Add(s.lifetime)}
	if e := s.subject(ctx, a.client, iua, &g); e != nil {
		return TokenResponse{}, e
	}
	if e := s.reserve(g.Client, now); e != nil {
		return TokenResponse{}, e
	}
	resp := TokenResponse{
		AccessToken: s.issue(&g),
		TokenType:   "bearer",
		ExpiresIn:   int(s.lifetime / time.Second),
		Scope:       strings.Join(g.Scopes, " "),
	}
	if iua != nil {
		resp.Extensions = g.extensions()
	}
	return resp, nil
}

// checkScope checks the scope a request asks for against those the
// client is registered for, and returns the scopes asked for.
func checkScope(raw string, c clientRow) ([]string, *Error) {
	if strings.TrimSpace(raw) == "" {
		return nil, refuse(CodeInvalidRequest, "scope is missing: ask for the system scopes the token is for, such as system/Patient.rs")
	}
	names, parsed, err := parseScopes([]string{raw})
	if err != nil {
		return nil, refuse(CodeInvalidScope, err.Error())
	}
	_, registered, err := parseScopes(c.Scopes)
	if err != nil {
		return nil, failed(fmt.Errorf("smart token: a registration's scopes do not parse: %w", err))
	}
	for _, sc := range parsed {
		if !covers(registered, sc) {
			return nil, refuse(CodeInvalidScope, "a requested scope is not among those the client is registered for: "+quote(scopeName(sc)))
		}
	}
	return names, nil
}

// scopeName writes a parsed scope back in v2 form.
func scopeName(sc scope) string { return "system/" + sc.resource + "." + sc.ops.String() }

// checkForm checks the form's envelope: each parameter at most once, the
// grant and assertion types, an assertion of a sane size. The scope is
// checked once the assertion is (checkScope).
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
	req := request{scope: form.Get("scope"), assertion: form.Get("client_assertion"), clientID: form.Get("client_id")}
	if req.assertion == "" {
		return request{}, refuse(CodeInvalidClient, "client_assertion is missing")
	}
	if len(req.assertion) > maxAssertionBytes {
		return request{}, refuse(CodeInvalidClient, fmt.Sprintf("client_assertion is over %d bytes", maxAssertionBytes))
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
// registered client's, and its registered claims. Every refusal is
// invalid_client, as SMART Backend Services asks. Its extensions are not
// read here: a refusal for them must come after the jti is spent.
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
	a := assertion{client: c, payload: payload}
	if err := josejson.Unmarshal(payload, &a.claims); err != nil {
		return assertion{}, refuse(CodeInvalidClient, "client_assertion's claims are not a JSON object of JWT claims")
	}
	if e := checkClaims(a.claims, c.ID, tokenURL, now); e != nil {
		return assertion{}, e
	}
	return a, nil
}

// parseIUA reads the IUA claims of a verified assertion's payload, if any.
func parseIUA(payload []byte) (*IUA, *Error) {
	var ext claims
	if err := josejson.Unmarshal(payload, &ext); err != nil {
		return nil, refuse(CodeInvalidGrant, "client_assertion's extensions.ihe_iua is not an object of subject_id, subject_role and purpose_of_use")
	}
	if ext.Extensions == nil {
		return nil, nil
	}
	return ext.Extensions.IUA, nil
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
		// tokenURL is made of the request's Host: quote it, as anything
		// else the caller sent.
		return refuse(CodeInvalidClient, "client_assertion's aud is not this token endpoint: it is "+quote(tokenURL))
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
		return refuse(CodeInvalidGrant, "extensions.ihe_iua needs a purpose_of_use of system "+PurposeSystem+" ("+purposeCodes+") with a subject")
	case iua.PurposeOfUse.Code == emergencyPurpose:
		return refuse(CodeInvalidGrant, "emergency access (break-glass) needs a coded reason and is stopped when done: POST /v1/emergency with a staff token")
	}
	i := slices.IndexFunc(purposes, func(p purpose) bool { return p.code == iua.PurposeOfUse.Code })
	if i < 0 {
		return refuse(CodeInvalidGrant, "extensions.ihe_iua's purpose_of_use is not "+purposeCodes)
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
// kept: a centre's clock set back by less than that finds the jtis of the
// assertions it would take again still there.
const jtiKeep = time.Hour

// consume spends an assertion's jti: in one transaction, it refuses a jti
// the client used before, and one it cannot tell from such (its exp is
// not after the floor, below), records it, and prunes the jtis no
// assertion can use any more.
//
// Pruning follows the centre's clock, which can jump: node/clock moves it
// in the fault tests, and an administrator may set a wrong one right. A
// clock run ahead would prune jtis whose assertions become valid again
// once it comes back. No bound on how far ahead it ran makes that safe,
// so what keeps a pruned jti from being replayed is not the clock but the
// floor: the latest expiry of any jti row pruned, kept in the store under
// a MAC. An assertion whose row would expire no later than the floor is
// refused, whatever the clock says, as its jti may have been forgotten.
// The floor is always more than jtiKeep behind the clock that pruned, so
// an honest assertion (exp no earlier than now less Leeway) is above it
// unless the clock is now set back further than that below a time at
// which the centre pruned; it is then refused until the clock catches up
// (minutes, when what was pruned was recorded before the jump), which is
// the price of never taking a replay.
func (s *Server) consume(ctx context.Context, client string, c jwt.Claims, now time.Time) *Error {
	jti := sha256.Sum256([]byte(c.ID))
	expires := c.Expiry.Time().Add(Leeway + jtiKeep).Unix()
	tx, err := s.store.DB.BeginTx(ctx, nil)
	if err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	defer tx.Rollback()
	floor, err := jtiFloor(ctx, tx, s.key)
	if errors.Is(err, ErrTampered) {
		s.log.Error("the client store's jti floor fails its MAC: no assertion is taken until medfed check passes")
	}
	if err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	if expires <= floor {
		return refuse(CodeInvalidClient, "client_assertion's exp is no later than those of assertions whose jtis this centre no longer keeps (its clock was set back), so a replay could not be told: try again with a later exp")
	}
	var seen int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM jtis WHERE client = ? AND jti = ?`, client, jti[:]).Scan(&seen); err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	if seen > 0 {
		return refuse(CodeInvalidClient, "client_assertion's jti was used before: sign a new assertion for each request")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jtis (client, jti, expires, mac) VALUES (?, ?, ?, ?)`,
		client, jti[:], expires, jtiMAC(s.key, client, jti[:], expires)); err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	if err := pruneJTIs(ctx, tx, s.key, now, floor); err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return failed(fmt.Errorf("smart token: %w", err))
	}
	return nil
}

// pruneJTIs deletes the jti rows that expired before now, raising the
// floor (floor now) to the latest expiry among them.
func pruneJTIs(ctx context.Context, tx *sql.Tx, key []byte, now time.Time, floor int64) error {
	var latest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(expires) FROM jtis WHERE expires < ? AND client <> ?`, now.Unix(), floorClient).Scan(&latest); err != nil {
		return err
	}
	if !latest.Valid {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM jtis WHERE expires <= ? AND client <> ?`, latest.Int64, floorClient); err != nil {
		return err
	}
	if latest.Int64 <= floor {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO jtis (client, jti, expires, mac) VALUES (?, ?, ?, ?)`,
		floorClient, floorJTI, latest.Int64, jtiMAC(key, floorClient, floorJTI, latest.Int64))
	return err
}
