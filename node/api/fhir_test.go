package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest"
)

const nhsURI = "https://fhir.nhs.uk/Id/nhs-number"

// system is an EHR registered at a centre: its client ID and its key.
type system struct {
	id  string
	key *ecdsa.PrivateKey
}

// register registers an EHR at c with an ES384 key.
func register(t *testing.T, c *testCentre, scopes, roles []string) system {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.clients.Add(context.Background(), "ehr", raw, scopes, roles)
	if err != nil {
		t.Fatal(err)
	}
	return system{id: cl.ID, key: key}
}

// assertion is a client assertion of sys for the token URL aud, acting
// for a staff member (empty: for no one).
func (sys system) assertion(t *testing.T, aud, staffID, role, purpose string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: sys.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	var jti [16]byte
	rand.Read(jti[:])
	claims := map[string]any{"iss": sys.id, "sub": sys.id, "aud": aud, "exp": exp.Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:])}
	if staffID != "" {
		claims["extensions"] = map[string]any{"ihe_iua": map[string]any{
			"subject_id":     staffID,
			"subject_role":   map[string]string{"system": "urn:medfed:staff-role", "code": role},
			"purpose_of_use": map[string]string{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": purpose},
		}}
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// token asks c's token endpoint for an access token with the assertion.
func token(t *testing.T, c *testCentre, assertion, scope string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	resp, err := client.Post(c.url+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// TestFHIRDocumentExchange runs the IHE exchange over the FHIR routes: an
// EHR at centre-a finds the patient (PDQm), posts their consent (PCF) and
// a document (MHD ITI-65) with a SMART token; a clinician's EHR at
// centre-b finds it (ITI-67) and retrieves its bytes (ITI-68); centre-a's
// audit (BALP) shows centre-b's query.
func TestFHIRDocumentExchange(t *testing.T) {
	a, b := federation(t)
	ctx := context.Background()
	_, registrar, err := a.staff.Add(ctx, "registrar", "")
	if err != nil {
		t.Fatal(err)
	}
	_, clinician, err := b.staff.Add(ctx, "clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	ehrA := register(t, a, []string{"system/Patient.rs", "system/DocumentReference.c", "system/Binary.c", "system/List.c"}, []string{"registrar"})
	ehrB := register(t, b, []string{"system/DocumentReference.rs", "system/Binary.r", "system/Consent.rs", "system/Organization.rs", "system/Endpoint.rs"}, []string{"clinician"})

	meta := call(t, "GET", a.url+"/fhir/metadata", "", nil).want(t, 200, "metadata")
	if meta.body["resourceType"] != "CapabilityStatement" || meta.header.Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("metadata: %s", meta.raw)
	}
	smartCfg := call(t, "GET", a.url+"/.well-known/smart-configuration", "", nil).want(t, 200, "smart-configuration")
	tokenURL, _ := smartCfg.body["token_endpoint"].(string)
	if tokenURL != a.url+"/auth/token" {
		t.Fatalf("token endpoint %q", tokenURL)
	}

	status, tok := token(t, a, ehrA.assertion(t, tokenURL, registrar.ID, "registrar", "TREAT", time.Now().Add(time.Minute)), "system/Patient.rs system/DocumentReference.c system/Binary.c system/List.c")
	if status != 200 {
		t.Fatalf("token at a: %d %v", status, tok)
	}
	atA := tok["access_token"].(string)

	// PDQm.
	found := call(t, "GET", a.url+"/fhir/Patient?identifier="+url.QueryEscape(nhsURI+"|"+strings.ReplaceAll(nhs, " ", "")), atA, nil).want(t, 200, "PDQm")
	patients := found.entries("Patient")
	if len(patients) != 1 || strings.Contains(string(found.raw), strings.ReplaceAll(nhs, " ", "")) {
		t.Fatalf("PDQm: %s", found.raw)
	}
	p := patients[0]["id"].(string)
	call(t, "GET", a.url+"/fhir/Patient/"+p, atA, nil).want(t, 200, "Patient read")
	form := url.Values{"identifier": {nhsURI + "|" + strings.ReplaceAll(nhs, " ", "")}}.Encode()
	req, _ := http.NewRequest("POST", a.url+"/fhir/Patient/_search", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+atA)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(got), `"id":"`+p+`"`) {
		t.Fatalf("PDQm by POST: %d %s", resp.StatusCode, got)
	}

	// The patient's key and consent: attested over /v1 (a registrar who
	// checked who they are), the contract posted as a PCF Consent.
	key, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	call(t, "POST", a.url+"/v1/patients/"+p+"/keys", a.token(t, "registrar"), map[string]any{"publicKey": consent.FormatPublicKey(key.Public().(ed25519.PublicKey))}).want(t, 200, "attest")
	doc := contract(t, key, a.node, p, consent.OptIn)
	posted := call(t, "POST", a.url+"/fhir/Consent", "", map[string]any{"resourceType": "Consent", "status": "active",
		"scope":            map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category":         []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"patient":          map[string]any{"reference": "Patient/" + p},
		"sourceAttachment": map[string]any{"contentType": "application/vnd.medfed.consent", "data": base64.StdEncoding.EncodeToString(doc)},
	}).want(t, 201, "PCF Consent")
	if posted.body["resourceType"] != "Consent" {
		t.Fatalf("posted consent: %s", posted.raw)
	}

	// MHD ITI-65.
	payload := "Hb 135 g/L"
	sizeA := a.node.Centre.Ledger.Size()
	bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:0c287d32-01e3-4d87-9953-9fcc9404eb21", "request": map[string]any{"method": "POST", "url": "List"},
			"resource": map[string]any{"resourceType": "List", "status": "current", "mode": "working", "subject": map[string]any{"reference": "Patient/" + p},
				"entry": []any{map[string]any{"item": map[string]any{"reference": "urn:uuid:5d2c9a5b-7b1e-4d0e-9f6c-8a3b2c1d0e9f"}}}}},
		map[string]any{"fullUrl": "urn:uuid:5d2c9a5b-7b1e-4d0e-9f6c-8a3b2c1d0e9f", "request": map[string]any{"method": "POST", "url": "DocumentReference"},
			"resource": map[string]any{"resourceType": "DocumentReference", "status": "current",
				"type":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11502-2", "display": "Laboratory report"}}},
				"subject": map[string]any{"reference": "Patient/" + p}, "date": "2026-11-30T09:00:00Z",
				"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "url": "urn:uuid:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}}}}},
		map[string]any{"fullUrl": "urn:uuid:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "request": map[string]any{"method": "POST", "url": "Binary"},
			"resource": map[string]any{"resourceType": "Binary", "contentType": "text/plain", "data": base64.StdEncoding.EncodeToString([]byte(payload))}},
	}}
	// Bad input first: nothing stored.
	for what, bad := range map[string]any{
		"not JSON":            "{",
		"a Patient":           map[string]any{"resourceType": "Patient"},
		"a batch":             map[string]any{"resourceType": "Bundle", "type": "batch"},
		"an unmapped type":    strings.Replace(mustJSON(t, bundle), "11502-2", "99999-9", 1),
		"a Binary not linked": strings.Replace(mustJSON(t, bundle), `"url":"urn:uuid:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"`, `"url":"urn:uuid:00000000-5e4f-4a3b-8c2d-1e0f9a8b7c6d"`, 1),
		"a wrong hash":        strings.Replace(mustJSON(t, bundle), `"contentType":"text/plain","url"`, `"contentType":"text/plain","hash":"2jmj7l5rSw0yVb/vlWAYkK/YBwk=","url"`, 1),
		"an empty document":   strings.Replace(mustJSON(t, bundle), base64.StdEncoding.EncodeToString([]byte(payload)), "", 1),
	} {
		call(t, "POST", a.url+"/fhir", atA, bad).want(t, 400, what)
	}
	// A second document whose patient's identifier does not check: the
	// first, good, is not stored either.
	badSecond := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": append(slices.Clone(bundle["entry"].([]any)),
		map[string]any{"fullUrl": "urn:uuid:3f2e1d0c-5b4a-4c3d-8e2f-1a0b9c8d7e6f", "request": map[string]any{"method": "POST", "url": "DocumentReference"},
			"resource": map[string]any{"resourceType": "DocumentReference", "status": "current",
				"type":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "11502-2"}}},
				"subject": map[string]any{"identifier": map[string]any{"system": nhsURI, "value": "9434765910"}},
				"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": "eA=="}}}}})}
	if got := call(t, "POST", a.url+"/fhir", atA, badSecond).want(t, 400, "a second document of a bad identifier"); !strings.Contains(got.diagnostics(), "check digit") {
		t.Fatalf("a second document of a bad identifier was refused for another reason: %s", got.raw)
	}
	if got := a.node.Centre.Ledger.Size(); got != sizeA {
		t.Fatalf("refused bundles grew the ledger from %d to %d", sizeA, got)
	}
	stored := call(t, "POST", a.url+"/fhir", atA, bundle).want(t, 200, "ITI-65")
	if stored.body["type"] != "transaction-response" || !strings.Contains(string(stored.raw), `"status":"201 Created"`) {
		t.Fatalf("ITI-65: %s", stored.raw)
	}

	// ITI-67 and ITI-68 from centre-b, for a clinician.
	status, tok = token(t, b, ehrB.assertion(t, b.url+"/auth/token", clinician.ID, "clinician", "TREAT", time.Now().Add(time.Minute)), "system/DocumentReference.rs system/Binary.r system/Consent.rs system/Organization.rs system/Endpoint.rs")
	if status != 200 {
		t.Fatalf("token at b: %d %v", status, tok)
	}
	atB := tok["access_token"].(string)
	call(t, "GET", b.url+"/fhir/DocumentReference?patient="+p+"&colour=red", atB, nil).want(t, 400, "an unknown search parameter")
	var docs []map[string]any
	var search answer
	nodetest.Eventually(t, 20*time.Second, "centre-a's document is found from centre-b", func() bool {
		search = call(t, "GET", b.url+"/fhir/DocumentReference?patient="+p+"&status=current&type="+url.QueryEscape("http://loinc.org|11502-2"), atB, nil)
		docs = search.entries("DocumentReference")
		return search.status == 200 && len(docs) == 1
	})
	attURL := docs[0]["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)["url"].(string)
	if !strings.HasPrefix(attURL, b.url+"/fhir/Binary/") {
		t.Fatalf("attachment url %q", attURL)
	}
	req, _ = http.NewRequest("GET", attURL, nil)
	req.Header.Set("Authorization", "Bearer "+atB)
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != payload || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Fatalf("ITI-68: %d %q %s", resp.StatusCode, got, resp.Header.Get("Content-Type"))
	}
	// The filters MHD names: by date, period and category.
	for q, want := range map[string]int{
		"&date=ge2026-12-01": 0, "&date=le2026-11-30": 1, "&date=2026-11": 1, "&period=lt2026-11-30T09:00:00Z": 0,
		"&category=lab-result": 1, "&category=imaging": 0, "&status=superseded": 0, "&type=" + url.QueryEscape("http://loinc.org|18842-5"): 0,
	} {
		got := call(t, "GET", b.url+"/fhir/DocumentReference?patient="+p+q, atB, nil).want(t, 200, "ITI-67 "+q)
		if n := len(got.entries("DocumentReference")); n != want {
			t.Errorf("ITI-67 %s: %d documents, want %d", q, n, want)
		}
	}

	// A replacement (relatesTo replaces) is an amendment: the search
	// then releases the new version alone, which names the one it replaces.
	id := docs[0]["id"].(string)
	amended := strings.Replace(strings.Replace(mustJSON(t, bundle), base64.StdEncoding.EncodeToString([]byte(payload)), base64.StdEncoding.EncodeToString([]byte("Hb 140 g/L")), 1),
		`"date":"2026-11-30T09:00:00Z"`, `"date":"2026-11-30T09:00:00Z","relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/`+id+`"}}]`, 1)
	if !strings.Contains(amended, "relatesTo") {
		t.Fatalf("the amendment's bundle: %s", amended)
	}
	call(t, "POST", a.url+"/fhir", atA, strings.Replace(amended, "DocumentReference/"+id, "DocumentReference/centre-b-1", 1)).want(t, 400, "a replacement of another centre's document")
	call(t, "POST", a.url+"/fhir", atA, amended).want(t, 200, "ITI-65, an amendment")
	nodetest.Eventually(t, 20*time.Second, "the amendment replaces the document", func() bool {
		search = call(t, "GET", b.url+"/fhir/DocumentReference?patient="+p, atB, nil)
		docs = search.entries("DocumentReference")
		return search.status == 200 && len(docs) == 1 && docs[0]["id"] != id
	})
	if rel, _ := docs[0]["relatesTo"].([]any); len(rel) != 1 || !strings.Contains(mustJSON(t, rel), "DocumentReference/"+id) {
		t.Fatalf("the amendment: %s", search.raw)
	}
	call(t, "GET", b.url+"/fhir/Consent?patient="+p, atB, nil).want(t, 200, "Consent search")
	orgs := call(t, "GET", b.url+"/fhir/Organization", atB, nil).want(t, 200, "Organization")
	if len(orgs.entries("Organization")) != 2 {
		t.Fatalf("organizations: %s", orgs.raw)
	}
	call(t, "GET", b.url+"/fhir/Endpoint", atB, nil).want(t, 200, "Endpoint")

	// BALP at centre-a: centre-b's query is there.
	officer := a.token(t, "privacy-officer")
	audit := call(t, "GET", a.url+"/fhir/AuditEvent?patient="+p, officer, nil).want(t, 200, "AuditEvent")
	events := audit.entries("AuditEvent")
	if !strings.Contains(string(audit.raw), "Organization/centre-b") || len(events) == 0 {
		t.Fatalf("audit: %s", audit.raw)
	}
	// Every fullUrl of these searches resolves here.
	for _, u := range []string{a.url + "/fhir/AuditEvent/" + events[0]["id"].(string), a.url + "/fhir/Consent/" + p} {
		call(t, "GET", u, officer, nil).want(t, 200, "GET "+u)
	}
	// A researcher does not turn an identifier into a pseudonym.
	call(t, "GET", b.url+"/fhir/DocumentReference?patient.identifier="+url.QueryEscape(nhsURI+"|9434765919"), b.token(t, "researcher"), nil).want(t, 403, "a researcher's search by identifier")
	// A Patient's id that is not a pseudonym is not repeated back.
	if got := call(t, "GET", a.url+"/fhir/Patient/9434765919", a.token(t, "registrar"), nil).want(t, 404, "a Patient by number"); strings.Contains(string(got.raw), "9434765919") {
		t.Fatalf("the error repeats the number: %s", got.raw)
	}

	// Tokens refused: a wrong audience, a replay, a token of the other centre.
	wrong := ehrA.assertion(t, b.url+"/auth/token", registrar.ID, "registrar", "TREAT", time.Now().Add(time.Minute))
	if status, out := token(t, a, wrong, "system/Patient.rs"); status != 400 && status != 401 {
		t.Fatalf("a wrong audience: %d %v", status, out)
	}
	once := ehrA.assertion(t, tokenURL, registrar.ID, "registrar", "TREAT", time.Now().Add(time.Minute))
	if status, out := token(t, a, once, "system/Patient.rs"); status != 200 {
		t.Fatalf("first use: %d %v", status, out)
	}
	if status, out := token(t, a, once, "system/Patient.rs"); status == 200 {
		t.Fatalf("a replayed assertion: %d %v", status, out)
	}
	call(t, "GET", a.url+"/fhir/DocumentReference?patient="+p, atB, nil).want(t, 401, "centre-b's token at centre-a")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzFHIRBody sends arbitrary bytes to the FHIR routes that take a body
// (an MHD transaction, a PCF Consent) and to the token endpoint, of a
// real centre: never a 500, every FHIR error an OperationOutcome, and a
// body refused as malformed changes neither ledger.
func FuzzFHIRBody(f *testing.F) {
	a, b := federation(f)
	registrar := a.token(f, "registrar")
	p := strings.Repeat("ab", 32)
	type target struct{ path, token, contentType string }
	targets := []target{{"/fhir", registrar, "application/fhir+json"}, {"/fhir/Consent", "", "application/fhir+json"}, {"/auth/token", "", "application/x-www-form-urlencoded"}}
	f.Add(uint8(0), []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","request":{"method":"POST","url":"List"},"resource":{"resourceType":"List","status":"current","mode":"working"}},`+
		`{"fullUrl":"urn:uuid:2","request":{"method":"POST","url":"DocumentReference"},"resource":{"resourceType":"DocumentReference","status":"current",`+
		`"type":{"coding":[{"system":"http://loinc.org","code":"11502-2"}]},"subject":{"reference":"Patient/`+p+`"},"content":[{"attachment":{"contentType":"text/plain","data":"eA=="}}]}}]}`))
	f.Add(uint8(0), []byte(`{"resourceType":"Bundle","type":"batch"}`))
	f.Add(uint8(1), []byte(`{"resourceType":"Consent","sourceAttachment":{"contentType":"application/vnd.medfed.consent","data":"AAAA"}}`))
	f.Add(uint8(2), []byte(`grant_type=client_credentials&scope=system%2FPatient.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e30.e30.e30`))
	sizes := func() [2]int64 { return [2]int64{a.node.Centre.Ledger.Size(), b.node.Centre.Ledger.Size()} }
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		tg := targets[int(route)%len(targets)]
		before := sizes()
		req, err := http.NewRequest("POST", a.url+tg.path, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tg.contentType)
		req.Header.Set("Accept", "application/fhir+json")
		if tg.token != "" {
			req.Header.Set("Authorization", "Bearer "+tg.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != 503 && resp.StatusCode != 504 {
			t.Fatalf("POST %s answered %d to %q: %s", tg.path, resp.StatusCode, body, raw)
		}
		if resp.StatusCode >= 400 && !strings.Contains(string(raw), `"resourceType":"OperationOutcome"`) {
			t.Fatalf("POST %s: the error is not an OperationOutcome: %s", tg.path, raw)
		}
		if resp.StatusCode == 400 || resp.StatusCode == 413 {
			if after := sizes(); after != before {
				t.Fatalf("POST %s refused %q as malformed but the ledgers changed", tg.path, body)
			}
		}
	})
}

// TestFHIRRoutesAreGuarded walks the CapabilityStatement against the
// server: every interaction it names is routed, and each refuses a call
// without a token (401, but the patient's signed Consent), a system's
// token whose scopes do not cover it (403), and a staff role it does not
// serve (403).
func TestFHIRRoutesAreGuarded(t *testing.T) {
	a, _ := federation(t)
	ctx := context.Background()
	_, person, err := a.staff.Add(ctx, "clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	ehr := register(t, a, []string{"system/Endpoint.r"}, []string{"clinician"})
	status, tok := token(t, a, ehr.assertion(t, a.url+"/auth/token", person.ID, "clinician", "TREAT", time.Now().Add(time.Minute)), "system/Endpoint.r")
	if status != 200 {
		t.Fatalf("token: %d %v", status, tok)
	}
	narrow := tok["access_token"].(string)
	researcher := a.token(t, "researcher")
	meta := call(t, "GET", a.url+"/fhir/metadata", "", nil).want(t, 200, "metadata")
	rest := meta.body["rest"].([]any)[0].(map[string]any)
	type op struct{ method, path string }
	ops := []op{{"POST", "/fhir"}}
	for _, r := range rest["resource"].([]any) {
		res := r.(map[string]any)
		kind := res["type"].(string)
		for _, i := range res["interaction"].([]any) {
			switch i.(map[string]any)["code"] {
			case "search-type":
				ops = append(ops, op{"GET", "/fhir/" + kind})
			case "read":
				ops = append(ops, op{"GET", "/fhir/" + kind + "/x"})
			case "create":
				ops = append(ops, op{"POST", "/fhir/" + kind})
			}
		}
	}
	if len(ops) < 12 {
		t.Fatalf("the CapabilityStatement names %d interactions: %s", len(ops), meta.raw)
	}
	for _, o := range ops {
		what := o.method + " " + o.path
		if o.path == "/fhir/Consent" && o.method == "POST" {
			call(t, o.method, a.url+o.path, "", `{"resourceType":"Patient"}`).want(t, 400, what+" (signed by the patient: no token, a body checked)")
			continue
		}
		call(t, o.method, a.url+o.path, "", nil).want(t, 401, what+" without a token")
		if o.path != "/fhir/Endpoint/x" {
			call(t, o.method, a.url+o.path, narrow, nil).want(t, 403, what+" with a token of other scopes")
		}
		if strings.HasPrefix(o.path, "/fhir/Patient") || strings.HasPrefix(o.path, "/fhir/AuditEvent") || strings.HasPrefix(o.path, "/fhir/Consent") || o.path == "/fhir" {
			call(t, o.method, a.url+o.path, researcher, nil).want(t, 403, what+" for a researcher")
		}
	}
	call(t, "GET", a.url+"/fhir/Encounter", narrow, nil).want(t, 404, "a resource not served")
}

// TestAHostNotServedIsRefused: the API answers only to the hosts its
// certificate covers, since the URLs it writes (the token endpoint an
// assertion's audience must name) come from the request's Host.
func TestAHostNotServedIsRefused(t *testing.T) {
	cert, err := api.ServerCertificate(t.TempDir(), centre.APIConfig{Listen: "127.0.0.1:8443", TLS: centre.APITLSConfig{Hosts: []string{"centre-a.example", "*.trust.example"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Node: failing{}, Staff: openStaff(t), Hosts: cert.Serves(8443)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for host, want := range map[string]int{"centre-a.example:8443": 200, "elsewhere.example:8443": 421, "CENTRE-A.example:8443": 200,
		"ehr.trust.example:8443": 200, "centre-a.example:9000": 421, "127.0.0.1:8443": 200} {
		req, _ := http.NewRequest("GET", hs.URL+"/.well-known/smart-configuration", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d: %s", host, resp.StatusCode, want, body)
		}
		if want == 200 && !strings.Contains(string(body), `"token_endpoint":"http://`+strings.ToLower(host)+`/auth/token"`) && !strings.Contains(string(body), `"token_endpoint":"http://`+host+`/auth/token"`) {
			t.Errorf("Host %s: %s", host, body)
		}
	}
}
