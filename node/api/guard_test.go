package api_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
)

// operation is one route as /openapi.json describes it.
type operation struct {
	method, path string
	roles        []string // staff routes
	body         bool
	patient      bool // authenticated by the patient's signature
}

func operations(t testing.TB, c *testCentre) []operation {
	t.Helper()
	doc := call(t, "GET", c.url+"/openapi.json", "", nil).want(t, 200, "openapi.json")
	paths, _ := doc.body["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatalf("openapi.json has no paths: %.200s", doc.raw)
	}
	var ops []operation
	for path, v := range paths {
		for method, o := range v.(map[string]any) {
			op := o.(map[string]any)
			x := operation{method: strings.ToUpper(method), path: path, body: op["requestBody"] != nil, patient: op["x-medfed-auth"] != nil}
			for _, r := range asSlice(op["x-medfed-roles"]) {
				x.roles = append(x.roles, r.(string))
			}
			if _, ok := op["responses"].(map[string]any); !ok {
				t.Errorf("%s %s: no responses documented", method, path)
			}
			ops = append(ops, x)
		}
	}
	return ops
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// concrete fills a documented path's parameters.
func concrete(path string) string {
	r := strings.NewReplacer("{pseudonym}", strings.Repeat("ab", 32), "{index}", "1")
	return r.Replace(path)
}

// TestEveryRouteIsDocumentedAndGuarded walks /openapi.json against the
// server: every documented operation is routed (never the 404 of an
// unknown path or a 405), a staff route refuses a missing or unknown
// token (401) and every role it does not list (403) and lets through the
// roles it lists, and what is not documented is not served.
func TestEveryRouteIsDocumentedAndGuarded(t *testing.T) {
	a, _ := federation(t)
	tokens := map[string]string{}
	for _, r := range api.Roles {
		tokens[r] = a.token(t, r)
	}
	ops := operations(t, a)
	if len(ops) < 20 {
		t.Fatalf("openapi.json documents %d operations; the API has more", len(ops))
	}
	for _, op := range ops {
		url := a.url + concrete(op.path)
		switch {
		case op.roles != nil:
			res := call(t, op.method, url, "", nil).want(t, 401, op.method+" "+op.path+" without a token")
			if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: 401 without WWW-Authenticate", op.method, op.path)
			}
			call(t, op.method, url, "mfs_not-a-token-this-centre-issued", nil).want(t, 401, op.method+" "+op.path+" with an unknown token")
			for _, role := range api.Roles {
				res := call(t, op.method, url, tokens[role], nil)
				listed := false
				for _, r := range op.roles {
					listed = listed || r == role
				}
				switch {
				case !listed && res.status != http.StatusForbidden:
					t.Errorf("%s %s as %s: status %d, want 403: %s", op.method, op.path, role, res.status, res.raw)
				case listed && (res.status == http.StatusForbidden && strings.Contains(res.diagnostics(), "role") || res.status == 401 || res.status == 404 && strings.Contains(res.diagnostics(), "no such route")):
					t.Errorf("%s %s as %s, a listed role: status %d: %s", op.method, op.path, role, res.status, res.raw)
				}
			}
		case op.patient:
			// No signature at all: the empty body is refused before anything else.
			call(t, op.method, url, "", nil).want(t, 400, op.method+" "+op.path+" without a body")
		default:
			if res := call(t, op.method, url, "", nil); res.status != 200 {
				t.Errorf("%s %s: status %d: %s", op.method, op.path, res.status, res.raw)
			}
		}
		other := http.MethodDelete
		call(t, other, url, tokens["admin"], nil).want(t, 405, other+" "+op.path)
	}
	call(t, "GET", a.url+"/v1/nowhere", tokens["admin"], nil).want(t, 404, "an undocumented path")
	call(t, "GET", a.url+"/v2/query", tokens["admin"], nil).want(t, 404, "another version")
}

// unthrottled is call, sent again a second later while the answer is
// 429: the routes without a token share one bound per address, which a
// test's many requests from one address reach, and what such a test
// checks is the answer to the request itself.
func unthrottled(t *testing.T, method, url, token string, body any) answer {
	t.Helper()
	for range 10 {
		res := call(t, method, url, token, body)
		if res.status != http.StatusTooManyRequests {
			return res
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s %s: throttled for 10 s", method, url)
	return answer{}
}

// TestBadInputChangesNothing sends every route with a body malformed
// JSON, unknown fields, an oversized body and (patient routes) a bad
// signature: each gets the right status and an OperationOutcome, and
// neither centre's ledger grows.
func TestBadInputChangesNothing(t *testing.T) {
	a, b := federation(t)
	tokens := map[string]string{}
	for _, r := range api.Roles {
		tokens[r] = a.token(t, r)
	}
	sizes := func() [2]int64 { return [2]int64{a.node.Centre.Ledger.Size(), b.node.Centre.Ledger.Size()} }
	before := sizes()
	for _, op := range operations(t, a) {
		if !op.body {
			continue
		}
		url := a.url + concrete(op.path)
		token := ""
		if op.roles != nil {
			token = tokens[op.roles[0]]
		}
		name := op.method + " " + op.path
		send := func(token string, body any) answer { return unthrottled(t, op.method, url, token, body) }
		send(token, `{"patient": `).want(t, 400, name+" with truncated JSON")
		send(token, `[1, 2]`).want(t, 400, name+" with an array")
		send(token, `{"surprise": true}`).want(t, 400, name+" with an unknown field")
		send(token, `{} {}`).want(t, 400, name+" with two objects")
		big := `{"patient": "` + strings.Repeat("a", 25<<20) + `"}`
		send(token, big).want(t, 413, name+" with 25 MiB")
		if op.patient {
			field := "request"
			switch {
			case strings.HasSuffix(op.path, "/consent"):
				field = "document"
			case op.path == "/v1/devices":
				field = "registration"
			case op.path == "/v1/devices/revocations":
				field = "revocation"
			case op.path == "/v1/devices/readings":
				field = "batch"
			}
			send("", map[string]any{field: []byte("not a signed document at all")}).want(t, 400, name+" with garbage")
		}
	}
	if after := sizes(); after != before {
		t.Fatalf("malformed bodies changed the ledgers: sizes %v before, %v after", before, after)
	}
	// A signature that does not verify: a real contract with one byte of
	// its signature flipped.
	p := call(t, "POST", a.url+"/v1/patients", tokens["registrar"], map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register").body["id"].(string)
	before = sizes() // registering counts an OPRF evaluation on the other founder's ledger
	key := mustKey(t)
	doc := contract(t, key, a.node, p, 1)
	doc[len(doc)-1] ^= 1
	unthrottled(t, "POST", a.url+"/v1/consent", "", map[string]any{"document": doc}).want(t, 403, "a contract whose signature does not verify")
	// A well-signed contract by a key nobody attested is refused too.
	unthrottled(t, "POST", a.url+"/v1/consent", "", map[string]any{"document": contract(t, key, a.node, p, 1)}).want(t, 403, "a contract by an unattested key")
	// Bad values in well-formed bodies.
	call(t, "POST", a.url+"/v1/records", tokens["clinician"], map[string]any{"patient": "zz", "class": "lab-result", "data": []byte("x")}).want(t, 400, "a bad pseudonym")
	call(t, "POST", a.url+"/v1/records", tokens["clinician"], map[string]any{"patient": p, "class": "Lab Result!", "data": []byte("x")}).want(t, 400, "a bad class")
	call(t, "POST", a.url+"/v1/records", tokens["clinician"], map[string]any{"patient": p, "class": "lab-result"}).want(t, 400, "no payload")
	// A class or a location outside the centre's vocabulary, such as a
	// number typed in the wrong field, never reaches the ledger, nor is it
	// repeated in the answer.
	for _, f := range []map[string]any{{"class": "9434765919"}, {"class": "lab-result", "location": "9434765919"}, {"class": "lab-result", "location": "smith"}} {
		body := map[string]any{"patient": p, "data": []byte("x")}
		maps.Copy(body, f)
		if got := call(t, "POST", a.url+"/v1/records", tokens["clinician"], body).want(t, 400, fmt.Sprintf("a code outside the vocabulary %v", f)); strings.Contains(string(got.raw), "9434765919") {
			t.Fatalf("the refusal repeats what was typed: %s", got.raw)
		}
	}
	call(t, "POST", a.url+"/v1/patients", tokens["registrar"], map[string]any{"identifier": map[string]string{"system": "nhs", "value": "943 476 5918"}}).want(t, 400, "a bad check digit")
	call(t, "POST", a.url+"/v1/query", tokens["clinician"], map[string]any{"patient": p, "purpose": "emergency"}).want(t, 400, "emergency through the query route")
	call(t, "POST", a.url+"/v1/emergency", tokens["clinician"], map[string]any{"patient": p}).want(t, 400, "emergency without a reason")
	call(t, "POST", a.url+"/v1/query", tokens["researcher"], map[string]any{"patient": p, "purpose": "treatment"}).want(t, 403, "a researcher claiming treatment")
	call(t, "POST", a.url+"/v1/records", tokens["clinician"], map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}, "class": "Bad!", "data": []byte("x")}).want(t, 400, "a bad class with an identifier")
	call(t, "POST", a.url+"//v1/ledger", tokens["admin"], nil).want(t, 404, "a path not in its clean form")
	if res := call(t, "HEAD", a.url+"/v1/records/1", tokens["clinician"], nil); res.status != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD on an audited read: %d, want 405", res.status)
	}
	call(t, "GET", a.url+"/v1/records/abc", tokens["clinician"], nil).want(t, 400, "a bad index")
	call(t, "GET", a.url+"/v1/records/99999", tokens["clinician"], nil).want(t, 404, "no such record")
	call(t, "GET", a.url+"/v1/notifications?after=x", tokens["privacy-officer"], nil).want(t, 400, "a bad cursor")
	if after := sizes(); after != before {
		t.Fatalf("bad input changed the ledgers: sizes %v before, %v after", before, after)
	}
	// Neither the answers nor the API's log repeat an identifier.
	bad := call(t, "POST", a.url+"/v1/patients", tokens["registrar"], map[string]any{"identifier": map[string]string{"system": "nhs", "value": "943 476 5918"}})
	if strings.Contains(string(bad.raw), "5918") {
		t.Fatalf("an error repeats the identifier: %s", bad.raw)
	}
	// Either number, with any separators or none. Fragments of a few
	// digits are not looked for: staff IDs (hex) and timings hold them by
	// chance.
	nhsInLog := regexp.MustCompile(`943\D?476\D?591[89]`)
	if m := nhsInLog.FindString(a.logs.String()); m != "" {
		t.Fatalf("the API's log holds an NHS number (%q):\n%s", m, a.logs)
	}
	if !strings.Contains(a.logs.String(), "route=/v1/patients status=400") {
		t.Fatalf("the API's log does not record the refusals:\n%.2000s", a.logs)
	}
	// A revoked credential stops at once.
	tok, st, err := a.staff.Add(context.Background(), "clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	call(t, "GET", a.url+"/v1/consent/"+p, tok, nil).want(t, 404, "no contract yet")
	if err := a.staff.Revoke(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", a.url+"/v1/consent/"+p, tok, nil).want(t, 401, "a revoked token")
}

// TestAbusePastTheAuditedPath: a clinician reads no raw ledger entry (its
// proof is the audit roles'), free text never reaches a ledger through a
// record's class or location, and a lookup of which centres hold a
// patient is on the asking centre's ledger, with who and why.
func TestAbusePastTheAuditedPath(t *testing.T) {
	a, _ := federation(t)
	clinician, registrar := a.token(t, "clinician"), a.token(t, "registrar")
	p := call(t, "POST", a.url+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhs}}).want(t, 200, "register").body["id"].(string)
	size := a.node.Centre.Ledger.Size
	before := size()
	call(t, "GET", a.url+"/v1/ledger/entries/0/proof", clinician, nil).want(t, 403, "a clinician reading a raw ledger entry")
	for _, f := range []map[string]any{{"class": "9434765919"}, {"class": "lab-result", "location": "smith"}} {
		body := map[string]any{"patient": p, "data": []byte("x")}
		maps.Copy(body, f)
		call(t, "POST", a.url+"/v1/records", clinician, body).want(t, 400, fmt.Sprintf("free text %v", f))
	}
	if after := size(); after != before {
		t.Fatalf("refused requests changed the ledger: %d entries, then %d", before, after)
	}
	call(t, "GET", a.url+"/v1/patients/"+p+"/holders?purpose=treatment", clinician, nil).want(t, 200, "a lookup")
	if after := size(); after != before+1 {
		t.Fatalf("a lookup: the ledger went from %d to %d entries, want one access entry", before, after)
	}
	e, err := a.node.Centre.Ledger.Entry(context.Background(), before)
	if err != nil || e.Kind != ledger.KindAccess || e.Subject.String() != p {
		t.Fatalf("the lookup's entry: %+v, %v", e, err)
	}
}
