package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzPortalBody posts arbitrary bodies to the portal's JSON routes and
// the console's forms, as anyone who reaches the port may: each answer is
// a refusal or a success, never a server error, and nothing a refusal
// answers reaches the ledger.
func FuzzPortalBody(f *testing.F) {
	s := start(f)
	clinician, csrf := s.signIn(f, "clinician")
	registrar, regCSRF := s.signIn(f, "registrar")
	routes := []string{"/portal/enrol", "/portal/enrolment", "/portal/draft", "/portal/submit", "/console/find", "/console/record", "/console/emergency", "/console/attest", "/console/approve"}
	p := strings.Repeat("ab", 32)
	seeds := map[string][]string{
		"/portal/enrol":     {`{"kind": "ed25519", "publicKey": "` + strings.Repeat("A", 43) + `="}`, `{"kind": "passkey", "rpId": "localhost", "publicKey": "MFkw"}`},
		"/portal/enrolment": {`{"code": "ABCD-EFGH", "key": "` + p + `"}`},
		"/portal/draft": {`{"what": "contract", "pseudonym": "` + p + `", "key": "` + p + `", "form": {"purposes": ["treatment"]}}`,
			`{"what": "records", "pseudonym": "` + p + `", "key": "` + p + `", "passkey": true, "seal": "AAAA"}`,
			`{"what": "token", "pseudonym": "` + p + `", "key": "` + p + `", "token": {"centre": "centre-b", "hours": 24, "uses": 1}}`},
		"/portal/submit": {`{"what": "view", "draft": "AgE=", "key": "` + p + `", "signature": "AAAA"}`,
			`{"what": "contract", "draft": "gQI=", "key": "` + p + `", "passkey": {"rpId": "localhost", "publicKey": "AA==", "authenticatorData": "AA==", "clientDataJSON": "e30=", "signature": "AA=="}}`},
		"/console/find":      {"patient=943+476+5919", "patient=" + p},
		"/console/record":    {"patient=" + p + "&holder=centre-b&index=3"},
		"/console/emergency": {"patient=943+476+5919&reason=unconscious&confirm=yes"},
		"/console/attest":    {"nhs=943+476+5919&code=ABCD-EFGH"},
		"/console/approve":   {"nhs=943+476+5919&attestation=" + p},
	}
	for i, r := range routes {
		f.Add(uint8(i), []byte(`{}`))
		for _, b := range seeds[r] {
			f.Add(uint8(i), []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := routes[int(route)%len(routes)]
		size := s.a.Centre.Ledger.Size()
		var r reply
		if strings.HasPrefix(path, "/portal/") {
			r = s.do(t, s.client, "POST", path, "application/json", s.base, body)
		} else {
			c, token := clinician, csrf
			if path == "/console/attest" || path == "/console/approve" {
				c, token = registrar, regCSRF
			}
			v, err := url.ParseQuery(string(body))
			if err != nil {
				v = url.Values{"patient": {string(body)}}
			}
			v.Set("csrf", token)
			r = s.form(t, c, path, v)
		}
		if r.status >= 500 {
			t.Fatalf("%s answered %d to %q: %s", path, r.status, body, r.body)
		}
		if r.status != http.StatusOK && s.a.Centre.Ledger.Size() != size && path != "/console/find" && path != "/console/emergency" {
			t.Fatalf("%s refused %q (%d) but the ledger grew", path, body, r.status)
		}
	})
}
