package api_test

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
)

// FuzzHTTPBody sends arbitrary bytes as the body of every route that takes
// one, to a real centre's API (two founders on 127.0.0.1), with a token of
// a role the route allows (none on the patient's routes). Every answer
// must be a status the API gives on purpose: never a 500, every error an
// OperationOutcome; and a body refused as malformed (400, 413) must change
// neither centre's ledger.
func FuzzHTTPBody(f *testing.F) {
	a, b := federation(f)
	tokens := map[string]string{}
	for _, r := range api.Roles {
		tokens[r] = a.token(f, r)
	}
	var ops []operation
	for _, op := range operations(f, a) {
		if op.body {
			ops = append(ops, op)
		}
	}
	// The route is chosen by a byte of the input: keep the order fixed.
	slices.SortFunc(ops, func(x, y operation) int { return cmp.Or(cmp.Compare(x.path, y.path), cmp.Compare(x.method, y.method)) })
	p := strings.Repeat("ab", 32)
	seeds := map[string][]string{
		"/v1/patients":                  {`{"identifier": {"system": "nhs", "value": "943 476 5919"}}`, `{"identifier": {"system": "nhs|x", "value": ""}}`},
		"/v1/patients/{pseudonym}/keys": {`{"publicKey": "` + strings.Repeat("0f", 32) + `"}`, `{"publicKey": "zz", "compromised": true}`},
		"/v1/patients/{pseudonym}/delegations": {`{"delegateKey": "` + strings.Repeat("0f", 32) + `", "relationship": "guardian", "scope": ["view", "consent"], "evidence": "court-order", "expires": "2027-06-01T00:00:00Z"}`,
			`{"delegateKey": "zz", "relationship": "x", "scope": ["nope"], "evidence": "", "expires": "soon"}`},
		"/v1/patients/{pseudonym}/delegations/approvals": {`{"delegation": "` + p + `"}`},
		"/v1/records":                    {`{"patient": "` + p + `", "class": "lab-result", "data": "eA==", "occurred": "2026-11-01"}`, `{"identifier": {"system": "nhs", "value": "1"}, "class": "x", "data": "!"}`},
		"/v1/records/{index}/amendments": {`{"patient": "` + p + `", "class": "lab-result", "data": "eA=="}`},
		"/v1/query":                      {`{"patient": "` + p + `", "purpose": "treatment", "classes": ["lab-result"]}`, `{"patient": "` + p + `", "purpose": "research", "token": "AAAA"}`},
		"/v1/emergency":                  {`{"patient": "` + p + `", "reason": "unconscious"}`},
		"/v1/transfer":                   {`{"patient": "` + p + `", "token": "AAAA", "classes": []}`},
		"/v1/consent":                    {`{"document": "AAAA"}`},
		"/v1/consent/tokens/check":       {`{"token": "AAAA"}`},
		"/v1/patient/view":               {`{"request": "AAAA"}`},
		"/v1/patient/erase":              {`{"request": "AAAA"}`},
	}
	for path := range seeds {
		if !slices.ContainsFunc(ops, func(op operation) bool { return op.path == path }) {
			f.Fatalf("seeds for %s, which takes no body", path)
		}
	}
	for i, op := range ops {
		f.Add(uint8(i), []byte(`{}`))
		for _, s := range seeds[op.path] {
			f.Add(uint8(i), []byte(s))
		}
	}
	sizes := func() [2]int64 { return [2]int64{a.node.Centre.Ledger.Size(), b.node.Centre.Ledger.Size()} }
	// A request that was served may still be writing elsewhere (a
	// contract delivered to the other centre): before judging the next
	// one, wait until both ledgers hold still.
	settle := func(t *testing.T) {
		last, still := sizes(), 0
		for deadline := time.Now().Add(10 * time.Second); still < 3; {
			if time.Now().After(deadline) {
				t.Fatalf("the ledgers kept growing for 10 s after a request: %v", sizes())
			}
			time.Sleep(50 * time.Millisecond)
			if now := sizes(); now == last {
				still++
			} else {
				last, still = now, 0
			}
		}
	}
	served := true
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		op := ops[int(route)%len(ops)]
		token := ""
		if op.roles != nil {
			token = tokens[op.roles[0]]
		}
		if served {
			settle(t)
		}
		before := sizes()
		res := call(t, op.method, a.url+concrete(op.path), token, body)
		what := op.method + " " + op.path
		// Only a refusal of the body itself is known to have written
		// nothing, anywhere; after anything else, wait before judging.
		served = res.status != 400 && res.status != 413
		if res.status >= 500 && res.status != 503 && res.status != 504 {
			t.Fatalf("%s answered %d to %q: %s", what, res.status, body, res.raw)
		}
		if res.status >= 400 {
			res.want(t, res.status, what)
		}
		if res.status == 400 || res.status == 413 {
			if after := sizes(); after != before {
				t.Fatalf("%s refused %q as malformed (%d) but the ledgers changed: %v before, %v after", what, body, res.status, before, after)
			}
		}
	})
}
