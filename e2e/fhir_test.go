package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
)

// labReport is the document submitted over MHD: text, with bytes beyond
// ASCII, so that ITI-68 is shown to return them exactly.
const labReport = "synthetic laboratory report\npotassium 4.1 mmol/L (reference 3.5–5.3)\nsodium 139 mmol/L — µ-sample\n"

// exchangeConfig is what fhirjs/exchange.mjs reads (see its header).
type exchangeConfig struct {
	Out             string                    `json:"out"`
	NHSNumber       string                    `json:"nhsNumber"`
	ConsentDocument string                    `json:"consentDocument"`
	Payload         string                    `json:"payload"`
	Centres         map[string]exchangeCentre `json:"centres"`
	Actors          map[string]exchangeActor  `json:"actors"`
}

type exchangeCentre struct {
	Name     string `json:"name"`
	Base     string `json:"base"`
	ClientID string `json:"clientId"`
	KeyFile  string `json:"keyFile"`
	Alg      string `json:"alg"`
	Kid      string `json:"kid"`
}

// exchangeActor is a person the EHR acts for: their staff ID and role at
// the centre ("a" or "b"), the purpose of use, and the scopes asked for.
type exchangeActor struct {
	Centre  string `json:"centre"`
	StaffID string `json:"staffId"`
	Role    string `json:"role"`
	Purpose string `json:"purpose"`
	Scope   string `json:"scope"`
}

// exchangeSummary is the driver's summary.json.
type exchangeSummary struct {
	Pseudonym  string            `json:"pseudonym"`
	DocumentID string            `json:"documentId"`
	ConsentID  string            `json:"consentId"`
	Files      map[string]string `json:"files"`
	Statuses   map[string]int    `json:"statuses"`
	Refusals   map[string]struct {
		Centre      string   `json:"centre"`
		Status      int      `json:"status"`
		ContentType string   `json:"contentType"`
		File        string   `json:"file"`
		Problem     string   `json:"problem"`
		Issues      []string `json:"issues"`
	} `json:"refusals"`
	Submitted struct {
		Locations        []string `json:"locations"`
		MasterIdentifier string   `json:"masterIdentifier"`
		PayloadBytes     int      `json:"payloadBytes"`
	} `json:"submitted"`
	Binary struct {
		ContentType    string `json:"contentType"`
		BytesMatch     bool   `json:"bytesMatch"`
		RawStatus      int    `json:"rawStatus"`
		RawContentType string `json:"rawContentType"`
		RawBytesMatch  bool   `json:"rawBytesMatch"`
	} `json:"binary"`
	Audit struct {
		Events      int      `json:"events"`
		FromQuerier []string `json:"fromQuerier"`
	} `json:"audit"`
	TokenErrorJSON struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"tokenErrorJSON"`
	Phases []struct {
		Phase    string   `json:"phase"`
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	} `json:"phases"`
}

// ehrKey is a hospital EHR's signing key, in a PEM file for the driver,
// and its public half in a JWKS file for "medfed client add".
type ehrKey struct {
	alg, kid          string
	keyFile, jwksFile string
}

// newEHRKey makes a key for alg (RS384: RSA 2048; ES384: P-384) in dir.
func newEHRKey(t *testing.T, dir, name, alg string) ehrKey {
	t.Helper()
	k := ehrKey{alg: alg, kid: name + "-" + strings.ToLower(alg), keyFile: filepath.Join(dir, name+".pem"), jwksFile: filepath.Join(dir, name+".jwks.json")}
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]string{"kid": k.kid, "alg": alg, "use": "sig"}
	var private any
	switch alg {
	case "RS384":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		private = key
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes())
	case "ES384":
		key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		private = key
		point, err := key.PublicKey.Bytes() // 0x04 || X || Y, 48 bytes each
		if err != nil {
			t.Fatal(err)
		}
		jwk["kty"], jwk["crv"], jwk["x"], jwk["y"] = "EC", "P-384", b64(point[1:49]), b64(point[49:])
	default:
		t.Fatalf("newEHRKey: alg %s", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, k.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	writeJSONFile(t, k.jwksFile, map[string]any{"keys": []map[string]string{jwk}})
	return k
}

// centre is the driver's configuration of the centre this key's client
// is registered at.
func (k ehrKey) centre(name, base, clientID string) exchangeCentre {
	return exchangeCentre{Name: name, Base: base, ClientID: clientID, KeyFile: k.keyFile, Alg: k.alg, Kid: k.kid}
}

var staffLine = regexp.MustCompile(`(?m)^staff ([0-9a-f]{32}) \(`)

// staffMember adds a staff member of role at centre c and returns their
// bearer token (standard output) and staff ID (standard error).
func staffMember(c *centre, role string) (token, id string) {
	c.t.Helper()
	code, out, errOut := c.try("staff", "add", "--role", role)
	m := staffLine.FindStringSubmatch(errOut)
	token = strings.TrimSpace(out)
	if code != 0 || m == nil || token == "" || strings.ContainsAny(token, " \n") {
		c.t.Fatalf("%s: staff add --role %s exited %d, printed %q and %q", c.name, role, code, out, errOut)
	}
	return token, m[1]
}

// apiCertificate returns the path of centre c's self-made API certificate
// after checking that it is good for the host of its API's URL: the
// driver reaches the centre there and trusts this file alone.
func apiCertificate(t *testing.T, c *centre, apiURL string) string {
	t.Helper()
	path := filepath.Join(c.dir, httpapi.CertFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: u.Hostname()}); err != nil {
		t.Fatalf("%s's API certificate does not serve %s: %v", c.name, u.Hostname(), err)
	}
	return path
}

// ledgerSizes returns each centre's ledger size once it has held still
// for a while: the exchange's last appends (records, access entries,
// directory evaluations) are in, so that what follows is measured alone.
func ledgerSizes(t *testing.T, x *api, all []*centre, admin map[string]string) map[string]int64 {
	t.Helper()
	read := func() map[string]int64 {
		sizes := map[string]int64{}
		for _, y := range all {
			var st httpapi.LedgerStatus
			x.must(t, 200, "GET", y.name, "/v1/ledger", admin[y.name], nil, &st)
			sizes[y.name] = st.Size
		}
		return sizes
	}
	last := read()
	waitFor(t, 30*time.Second, "every ledger holds still for 2 s", func() bool {
		time.Sleep(2 * time.Second)
		now := read()
		same := maps.Equal(now, last)
		last = now
		return same
	})
	return last
}

// Three centres found a federation; a patient is registered at centre-a
// and attests a key over medfed's own API. Then an EHR at centre-a and one
// at centre-b, registered as SMART Backend Services clients (RS384 and
// ES384), do the whole exchange with fhir-kit-client under node
// (fhirjs/exchange.mjs): tokens for the acting persons, PDQm, the
// patient's signed consent as a PCF Consent, an ITI-65 submission at
// centre-a, ITI-67 and ITI-68 from centre-b with the bytes as submitted,
// the Consent and mCSD directory at centre-b, and BALP AuditEvents at
// centre-a that show centre-b's query. Bad input (malformed Bundles, a
// wrong resourceType, unknown search parameters, a wrong-audience,
// replayed or expired assertion, another centre's token, an expired token)
// is each refused with a 4xx OperationOutcome, and no ledger grows
// meanwhile. Every resource received is valid FHIR R4 to two validators,
// and has what the IHE profiles require.
func TestFHIRExchangeWithAStandardClient(t *testing.T) {
	nodeModules(t)
	began := time.Now()
	root := t.TempDir()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	all := []*centre{a, b, c}
	// centre-b's clock can be moved (node/clock): its tokens then expire.
	clockB := filepath.Join(root, "centre-b.clock")
	b.extra = append(b.extra, clock.FaultEnv+"="+clockB)
	logsIfFailed(t, all)
	x := foundAndStart(t, root, all)
	t.Logf("founded and ready after %v", time.Since(began).Round(time.Millisecond))

	admin := map[string]string{}
	for _, y := range all {
		admin[y.name] = y.token("admin")
	}
	registrarToken, registrarID := staffMember(a, "registrar")
	_, officerID := staffMember(a, "privacy-officer")
	_, clinicianID := staffMember(b, "clinician")

	// The patient, registered at centre-a, attests a key; their opt-in
	// contract is signed here and posted by the driver as a FHIR Consent.
	var registered struct{ ID string }
	x.must(t, 200, "POST", a.name, "/v1/patients", registrarToken, map[string]any{"identifier": map[string]string{"system": "nhs", "value": nhsNumber}}, &registered)
	subject, err := ledger.ParsePseudonym(registered.ID)
	if err != nil {
		t.Fatalf("registered as %q: %v", registered.ID, err)
	}
	key, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	x.must(t, 200, "POST", a.name, "/v1/patients/"+registered.ID+"/keys", registrarToken, map[string]any{"publicKey": consent.FormatPublicKey(key.Public().(ed25519.PublicKey))}, nil)
	signed, err := consent.SignContract(key, consent.Contract{ID: consent.NewID(), Version: 1, Federation: "medfed-demo",
		Subject: subject, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn})
	if err != nil {
		t.Fatal(err)
	}

	// Each hospital registers its EHR with the public half of its key.
	dir := filepath.Join(root, "ehr")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyA, keyB := newEHRKey(t, dir, "ehr-a", "RS384"), newEHRKey(t, dir, "ehr-b", "ES384")
	registrarScope := "system/Patient.rs system/DocumentReference.c system/List.c system/Binary.c"
	officerScope := "system/AuditEvent.rs"
	clinicianScope := "system/Patient.rs system/DocumentReference.rs system/Binary.r system/Consent.rs system/Organization.rs system/Endpoint.rs"
	clientID := func(at *centre, k ehrKey, scope, roles string) string {
		t.Helper()
		out := at.run("client", "add", "--jwks", k.jwksFile, "--scope", scope, "--role", roles, "--label", "e2e EHR")
		id := strings.TrimSpace(out)
		if id == "" || strings.ContainsAny(id, " \n") {
			t.Fatalf("%s: client add printed %q, not a client ID", at.name, out)
		}
		return id
	}
	cfg := exchangeConfig{
		Out:             filepath.Join(root, "fhir-out"),
		NHSNumber:       nhsNumber,
		ConsentDocument: filepath.Join(root, "consent.signed"),
		Payload:         filepath.Join(root, "report.txt"),
		Centres: map[string]exchangeCentre{
			"a": keyA.centre(a.name, x.url[a.name], clientID(a, keyA, registrarScope+" "+officerScope, "registrar,privacy-officer")),
			"b": keyB.centre(b.name, x.url[b.name], clientID(b, keyB, clinicianScope, "clinician")),
		},
		Actors: map[string]exchangeActor{
			"registrar":      {Centre: "a", StaffID: registrarID, Role: "registrar", Purpose: "TREAT", Scope: registrarScope},
			"privacyOfficer": {Centre: "a", StaffID: officerID, Role: "privacy-officer", Purpose: "HOPERAT", Scope: officerScope},
			"clinician":      {Centre: "b", StaffID: clinicianID, Role: "clinician", Purpose: "TREAT", Scope: clinicianScope},
		},
	}
	writeFile(t, cfg.ConsentDocument, signed)
	writeFile(t, cfg.Payload, []byte(labReport))
	config := writeJSONFile(t, filepath.Join(root, "fhir-exchange.json"), cfg)
	certs := map[string]string{"a": apiCertificate(t, a, cfg.Centres["a"].Base), "b": apiCertificate(t, b, cfg.Centres["b"].Base)}

	// phase runs one phase of the driver, trusting the certificate of the
	// one centre it talks to (see exchange.mjs on why only one).
	script := fhirjsScript(t, "exchange.mjs")
	// A phase the later ones depend on stops the test when it fails; a
	// bad-input phase does not, so that every refusal is reported.
	phase := func(name, centre string, later bool) {
		t.Helper()
		started := time.Now()
		code, said := runNode(t, 3*time.Minute, []string{"NODE_EXTRA_CA_CERTS=" + certs[centre]}, script, name, config)
		t.Logf("exchange.mjs %s (%v):\n%s", name, time.Since(started).Round(time.Millisecond), strings.TrimSpace(said))
		switch {
		case code != 0 && later:
			t.Fatalf("exchange.mjs %s exited %d", name, code)
		case code != 0:
			t.Errorf("exchange.mjs %s exited %d", name, code)
		}
	}
	phase("submit", "a", true)
	phase("retrieve", "b", true)
	phase("audit", "a", true)
	phase("prepare-expiry", "b", true)

	// Bad input, with every ledger measured around it.
	before := ledgerSizes(t, x, all, admin)
	phase("bad-a", "a", false)
	phase("bad-b", "b", false)
	setClock(t, clockB, 10*time.Minute) // past the token's 300 s
	phase("expired", "b", false)
	setClock(t, clockB, 0)
	after := ledgerSizes(t, x, all, admin)
	for _, y := range all {
		if after[y.name] != before[y.name] {
			t.Errorf("%s's ledger grew from %d to %d entries while only bad input came in", y.name, before[y.name], after[y.name])
		}
	}

	checkExchange(t, cfg, registered.ID, []string{a.name, b.name, c.name})

	// No centre logged the NHS number or the report: read once each node
	// has stopped and its log is whole (and no longer being written).
	for _, y := range all {
		y.stop()
		for _, secret := range []string{nhsNumber, "potassium 4.1"} {
			if bytes.Contains(y.logs.Bytes(), []byte(secret)) {
				t.Errorf("%s's node logged %q", y.name, secret)
			}
		}
	}
	t.Logf("the test took %v", time.Since(began).Round(time.Millisecond))
}

// checkExchange checks what the driver received in the exchange, from the
// files and summary it wrote to cfg.Out: every resource valid FHIR R4 to
// both validators (and every one it sent), what the IHE profiles require
// of each, and each bad input refused with a clear OperationOutcome.
// pseudonym is the patient's, members the federation's centres.
func checkExchange(t *testing.T, cfg exchangeConfig, pseudonym string, members []string) {
	t.Helper()
	var sum exchangeSummary
	readJSONFile(t, filepath.Join(cfg.Out, "summary.json"), &sum)
	for _, p := range sum.Phases {
		if !p.OK {
			t.Errorf("phase %s: %v", p.Phase, p.Problems)
		}
	}

	// Every FHIR resource received, and every one sent, to both
	// validators.
	received, err := filepath.Glob(filepath.Join(cfg.Out, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	received = slices.DeleteFunc(received, func(p string) bool { return filepath.Base(p) == "summary.json" })
	sent, err := filepath.Glob(filepath.Join(cfg.Out, "sent", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(received) < len(sum.Files) || len(sent) != 2 {
		t.Fatalf("%d resources received for %d steps, %d sent", len(received), len(sum.Files), len(sent))
	}
	validateFHIR(t, append(received, sent...))

	// What the IHE profiles require, which the validators do not check.
	p := pseudonym
	if sum.Pseudonym != p {
		t.Fatalf("PDQm found the patient as %q, registered as %q", sum.Pseudonym, p)
	}
	res := func(step string) []byte {
		t.Helper()
		file, ok := sum.Files[step]
		if !ok {
			t.Fatalf("the driver received no %s", step)
		}
		raw, err := os.ReadFile(filepath.Join(cfg.Out, file))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	baseB := cfg.Centres["b"].Base
	checkCapabilityStatement(t, res("metadata"))
	checkPDQm(t, res("pdqm-search"), res("patient-read"), p)
	checkPDQmPatient(t, "Patient resolved at centre-b", res("resolve-subject"), p)
	checkPCFConsent(t, "the Consent created", res("consent-create"), p)
	for _, e := range bundleOf(t, "Consent?patient=", res("consent-search"), "searchset").entries("Consent") {
		checkPCFConsent(t, "the Consent found at centre-b", e, p)
	}
	holder := cfg.Centres["a"].Name
	checkMHDResponse(t, res("iti65-response"), holder, sum.DocumentID)
	checkMHDSearch(t, res("iti67-search"), baseB, sum.DocumentID, p, holder)
	checkMHDDocument(t, "DocumentReference read at centre-b", res("documentreference-read"), baseB, sum.DocumentID, p, holder)
	payload, err := os.ReadFile(cfg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	checkBinary(t, res("iti68-binary"), payload)
	if !sum.Binary.BytesMatch || !sum.Binary.RawBytesMatch || sum.Binary.RawStatus != 200 || !strings.HasPrefix(sum.Binary.RawContentType, "text/plain") {
		t.Errorf("ITI-68 at centre-b: %+v", sum.Binary)
	}
	if raw, err := os.ReadFile(filepath.Join(cfg.Out, "raw", "iti68-raw.bin")); err != nil || !bytes.Equal(raw, payload) {
		t.Errorf("ITI-68's raw bytes are not the report submitted: %q, %v", raw, err)
	}
	checkBALP(t, res("audit-search"), p, cfg.Centres["b"].Name)
	checkMCSDOrganization(t, "the custodian resolved", res("resolve-custodian"))
	orgs := bundleOf(t, "Organization search", res("organization-search"), "searchset")
	var names []string
	for _, o := range orgs.entries("Organization") {
		names = append(names, checkMCSDOrganization(t, "an Organization found", o))
	}
	for _, m := range members {
		if !slices.Contains(names, m) {
			t.Errorf("the Organizations at centre-b are %v: %s is missing", names, m)
		}
	}
	endpoints := bundleOf(t, "Endpoint search", res("endpoint-search"), "searchset").entries("Endpoint")
	if len(endpoints) == 0 {
		t.Error("no Endpoint at centre-b")
	}
	for _, e := range endpoints {
		checkMCSDEndpoint(t, e)
	}

	// Each bad input, refused with a clear OperationOutcome.
	for _, name := range []string{
		"not-json-bundle", "batch-bundle", "bundle-without-type",
		"wrong-resource-type-transaction", "wrong-resource-type-consent",
		"unknown-search-parameter-pdqm", "unknown-search-parameter-iti67",
		"wrong-audience-assertion", "replayed-assertion", "expired-assertion",
		"another-centres-token", "expired-access-token",
	} {
		r, ok := sum.Refusals[name]
		switch {
		case !ok:
			t.Errorf("%s: not tried", name)
		case r.Problem != "" || r.Status < 400 || r.Status > 499 || r.File == "":
			t.Errorf("%s at %s: status %d, %s: %s", name, r.Centre, r.Status, r.ContentType, r.Problem)
		default:
			raw, err := os.ReadFile(filepath.Join(cfg.Out, r.File))
			if err != nil {
				t.Fatal(err)
			}
			checkOutcome(t, name, raw)
			t.Logf("%s at %s: %d %v", name, r.Centre, r.Status, r.Issues)
		}
	}
	if e := sum.TokenErrorJSON; (e.Status != 400 && e.Status != 401) || !slices.Contains([]string{"invalid_client", "invalid_grant", "invalid_request"}, e.Error) {
		t.Errorf("the token endpoint's RFC 6749 answer to a wrong audience: %+v", e)
	}

}

// ----------------------------------------------- the profiles' requirements

// The shapes of the resources the checks below read; what they leave out
// the validators have checked.
type (
	fhirCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	fhirConcept struct {
		Coding []fhirCoding `json:"coding"`
		Text   string       `json:"text"`
	}
	fhirIdentifier struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	fhirReference struct {
		Reference  string          `json:"reference"`
		Identifier *fhirIdentifier `json:"identifier"`
		Display    string          `json:"display"`
	}
	fhirBundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   *struct {
				Mode string `json:"mode"`
			} `json:"search"`
			Response *struct {
				Status   string `json:"status"`
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
)

type (
	balpAgent struct {
		Role      []fhirConcept  `json:"role"`
		Who       *fhirReference `json:"who"`
		Requestor bool           `json:"requestor"`
	}
	balpEntity struct {
		What *fhirReference `json:"what"`
	}
	outcomeIssue struct {
		Severity    string      `json:"severity"`
		Code        string      `json:"code"`
		Diagnostics string      `json:"diagnostics"`
		Details     fhirConcept `json:"details"`
	}
)

func (c fhirConcept) has(system, code string) bool {
	return slices.ContainsFunc(c.Coding, func(x fhirCoding) bool { return x.System == system && (code == "" || x.Code == code) })
}

// names reports whether r refers to typ/id: literally (relative, or
// absolute on base when base is not ""), or, with logical, by an
// identifier whose value is id.
func (r *fhirReference) names(typ, id, base string, logical bool) bool {
	if r == nil {
		return false
	}
	if r.Reference == typ+"/"+id || (base != "" && r.Reference == base+"/fhir/"+typ+"/"+id) {
		return true
	}
	return logical && r.Identifier != nil && r.Identifier.Value == id
}

func decode(t *testing.T, what string, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, raw)
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, path, raw, v)
}

// bundleOf decodes a Bundle that must be of type typ.
func bundleOf(t *testing.T, what string, raw []byte, typ string) fhirBundle {
	t.Helper()
	var b fhirBundle
	decode(t, what, raw, &b)
	if b.ResourceType != "Bundle" || b.Type != typ {
		t.Fatalf("%s: a %s of type %q, want a Bundle of type %s", what, b.ResourceType, b.Type, typ)
	}
	return b
}

// entries returns the raw resources of the Bundle's entries of type typ.
func (b fhirBundle) entries(typ string) [][]byte {
	var out [][]byte
	for _, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &head) == nil && head.ResourceType == typ {
			out = append(out, e.Resource)
		}
	}
	return out
}

// fhirCode is an element of a code alone (an interaction).
type fhirCode struct {
	Code string `json:"code"`
}

func checkCapabilityStatement(t *testing.T, raw []byte) {
	t.Helper()
	var cs struct {
		ResourceType string   `json:"resourceType"`
		FHIRVersion  string   `json:"fhirVersion"`
		Kind         string   `json:"kind"`
		Format       []string `json:"format"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type string `json:"type"`
			} `json:"resource"`
			Interaction []fhirCode `json:"interaction"`
		} `json:"rest"`
	}
	decode(t, "metadata", raw, &cs)
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Kind != "instance" || len(cs.Rest) == 0 || cs.Rest[0].Mode != "server" ||
		!slices.ContainsFunc(cs.Format, func(f string) bool { return strings.Contains(f, "json") }) {
		t.Errorf("metadata: %s", raw)
		return
	}
	var types []string
	for _, r := range cs.Rest[0].Resource {
		types = append(types, r.Type)
	}
	// A SubmissionSet List is taken inside a transaction and not kept:
	// the statement names the transaction, not a List it could not serve.
	for _, want := range []string{"Patient", "DocumentReference", "Binary", "Consent", "AuditEvent", "Organization", "Endpoint"} {
		if !slices.Contains(types, want) {
			t.Errorf("metadata: %s is not among the resources served, %v", want, types)
		}
	}
	if slices.Contains(types, "List") || !slices.ContainsFunc(cs.Rest[0].Interaction, func(i fhirCode) bool { return i.Code == "transaction" }) {
		t.Errorf("metadata: want the transaction interaction (MHD ITI-65) and no List resource: %s", raw)
	}
}

// checkPDQm: ITI-78's searchset holds the one Patient, named by the
// pseudonym, with the pseudonym as its identifier and no demographics,
// and the NHS number asked for appears nowhere in the answer.
func checkPDQm(t *testing.T, search, read []byte, pseudonym string) {
	t.Helper()
	b := bundleOf(t, "PDQm search", search, "searchset")
	patients := b.entries("Patient")
	if len(patients) != 1 || len(b.Entry) != 1 || b.Entry[0].FullURL == "" {
		t.Errorf("PDQm search: %d Patients in %d entries (want one, with a fullUrl): %s", len(patients), len(b.Entry), search)
	}
	for _, p := range patients {
		checkPDQmPatient(t, "the Patient found", p, pseudonym)
	}
	checkPDQmPatient(t, "Patient/{id}", read, pseudonym)
	if bytes.Contains(search, []byte(nhsNumber)) || bytes.Contains(read, []byte(nhsNumber)) {
		t.Error("PDQm answered with the NHS number")
	}
}

func checkPDQmPatient(t *testing.T, what string, raw []byte, pseudonym string) {
	t.Helper()
	var p struct {
		ResourceType string           `json:"resourceType"`
		ID           string           `json:"id"`
		Identifier   []fhirIdentifier `json:"identifier"`
		Name         json.RawMessage  `json:"name"`
		BirthDate    string           `json:"birthDate"`
		Gender       string           `json:"gender"`
		Address      json.RawMessage  `json:"address"`
		Telecom      json.RawMessage  `json:"telecom"`
	}
	decode(t, what, raw, &p)
	if p.ResourceType != "Patient" || p.ID != pseudonym || !slices.Contains(p.Identifier, fhirIdentifier{"urn:medfed:pseudonym", pseudonym}) {
		t.Errorf("%s: want Patient/%s with identifier urn:medfed:pseudonym|%[2]s: %s", what, pseudonym, raw)
	}
	if p.Name != nil || p.BirthDate != "" || p.Gender != "" || p.Address != nil || p.Telecom != nil {
		t.Errorf("%s carries demographics: %s", what, raw)
	}
}

// checkPCFConsent: status, scope patient-privacy, a category, the patient,
// and a policy rule or policy.
func checkPCFConsent(t *testing.T, what string, raw []byte, pseudonym string) {
	t.Helper()
	var c struct {
		ResourceType string          `json:"resourceType"`
		Status       string          `json:"status"`
		Scope        fhirConcept     `json:"scope"`
		Category     []fhirConcept   `json:"category"`
		Patient      *fhirReference  `json:"patient"`
		PolicyRule   *fhirConcept    `json:"policyRule"`
		Policy       json.RawMessage `json:"policy"`
	}
	decode(t, what, raw, &c)
	if c.ResourceType != "Consent" || c.Status != "active" || !c.Scope.has("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy") ||
		len(c.Category) == 0 || !c.Patient.names("Patient", pseudonym, "", true) || (c.PolicyRule == nil && c.Policy == nil) {
		t.Errorf("%s: want an active Consent, scope patient-privacy, a category, the patient %s, a policy rule: %s", what, pseudonym, raw)
	}
}

// checkMHDResponse: ITI-65's transaction-response has an entry per entry
// sent, each 201 Created with a location but the SubmissionSet's (200 OK:
// it is not kept as a resource); the DocumentReference's names the
// document as <centre>-<ledger index>.
func checkMHDResponse(t *testing.T, raw []byte, centre, docID string) {
	t.Helper()
	b := bundleOf(t, "ITI-65 response", raw, "transaction-response")
	if len(b.Entry) != 3 {
		t.Errorf("ITI-65 response: %d entries for the 3 sent", len(b.Entry))
	}
	docLocation := regexp.MustCompile(`^DocumentReference/(` + regexp.QuoteMeta(centre) + `-\d+)(/_history/\S+)?$`)
	found := false
	for i, e := range b.Entry {
		if i == 0 { // the SubmissionSet: not kept as a resource, which the recipient says
			if e.Response == nil || !strings.HasPrefix(e.Response.Status, "200") || e.Response.Location != "" {
				t.Errorf("ITI-65 response entry 0 (the SubmissionSet List): %+v, want 200 OK, no location", e.Response)
			}
			continue
		}
		if e.Response == nil || !strings.HasPrefix(e.Response.Status, "201") || e.Response.Location == "" {
			t.Errorf("ITI-65 response entry %d: %+v, want 201 Created and a location", i, e.Response)
			continue
		}
		if m := docLocation.FindStringSubmatch(e.Response.Location); m != nil {
			found = found || m[1] == docID
		}
	}
	if !found {
		t.Errorf("ITI-65 response: no location DocumentReference/%s: %s", docID, raw)
	}
}

// checkMHDSearch: ITI-67's searchset has a fullUrl on every entry, the
// document released as a DocumentReference with what MHD requires, and
// the holders' outcomes as entries of search mode outcome.
func checkMHDSearch(t *testing.T, raw []byte, base, docID, pseudonym, custodian string) {
	t.Helper()
	b := bundleOf(t, "ITI-67", raw, "searchset")
	found := false
	for i, e := range b.Entry {
		if e.FullURL == "" {
			t.Errorf("ITI-67 entry %d has no fullUrl", i)
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		decode(t, "ITI-67 entry", e.Resource, &head)
		switch head.ResourceType {
		case "DocumentReference":
			if e.FullURL != base+"/fhir/DocumentReference/"+head.ID || (e.Search != nil && e.Search.Mode != "match") {
				t.Errorf("ITI-67 entry %d: fullUrl %q, search %+v", i, e.FullURL, e.Search)
			}
			if head.ID == docID {
				found = true
				checkMHDDocument(t, "ITI-67's DocumentReference", e.Resource, base, docID, pseudonym, custodian)
			}
		case "OperationOutcome":
			if e.Search == nil || e.Search.Mode != "outcome" {
				t.Errorf("ITI-67 entry %d, an OperationOutcome, has search %+v, want mode outcome", i, e.Search)
			}
		default:
			t.Errorf("ITI-67 entry %d is a %s", i, head.ResourceType)
		}
	}
	if !found {
		t.Errorf("ITI-67: document %s not released: %s", docID, raw)
	}
}

// checkMHDDocument: status, a LOINC type, the subject and custodian as
// references a client can resolve, the attachment's URL (ITI-68 on the
// centre that answered) and content type, and a master identifier or an
// identifier.
func checkMHDDocument(t *testing.T, what string, raw []byte, base, docID, pseudonym, custodian string) {
	t.Helper()
	var d struct {
		ResourceType     string           `json:"resourceType"`
		ID               string           `json:"id"`
		MasterIdentifier *fhirIdentifier  `json:"masterIdentifier"`
		Identifier       []fhirIdentifier `json:"identifier"`
		Status           string           `json:"status"`
		Type             fhirConcept      `json:"type"`
		Subject          *fhirReference   `json:"subject"`
		Date             string           `json:"date"`
		Custodian        *fhirReference   `json:"custodian"`
		Content          []struct {
			Attachment struct {
				ContentType string `json:"contentType"`
				URL         string `json:"url"`
			} `json:"attachment"`
		} `json:"content"`
	}
	decode(t, what, raw, &d)
	var problems []string
	if d.ResourceType != "DocumentReference" || d.ID != docID || d.Status != "current" {
		problems = append(problems, "want DocumentReference/"+docID+", status current")
	}
	if !d.Type.has("http://loinc.org", "11502-2") {
		problems = append(problems, "type is not LOINC 11502-2")
	}
	if !d.Subject.names("Patient", pseudonym, base, false) {
		problems = append(problems, "subject is not a reference to Patient/"+pseudonym)
	}
	if !d.Custodian.names("Organization", custodian, base, false) {
		problems = append(problems, "custodian is not a reference to Organization/"+custodian)
	}
	if len(d.Content) == 0 || !strings.HasPrefix(d.Content[0].Attachment.URL, base+"/fhir/Binary/") || d.Content[0].Attachment.ContentType != "text/plain" {
		problems = append(problems, "content[0].attachment is not text/plain at "+base+"/fhir/Binary/…")
	}
	if (d.MasterIdentifier == nil || d.MasterIdentifier.Value == "") && len(d.Identifier) == 0 {
		problems = append(problems, "neither masterIdentifier nor identifier")
	}
	if d.Date == "" {
		problems = append(problems, "no date")
	}
	if len(problems) > 0 {
		t.Errorf("%s: %s: %s", what, strings.Join(problems, "; "), raw)
	}
}

func checkBinary(t *testing.T, raw, want []byte) {
	t.Helper()
	var b struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         []byte `json:"data"`
	}
	decode(t, "ITI-68 Binary", raw, &b)
	if b.ResourceType != "Binary" || b.ContentType != "text/plain" || !bytes.Equal(b.Data, want) {
		t.Errorf("ITI-68 Binary: want text/plain, the bytes submitted: %s", raw)
	}
}

// checkBALP: each AuditEvent has a type (rest, or DICOM's), a subtype, when
// it was recorded, a requestor among its agents, the observer as source,
// and the patient as an entity; those of centre-b's query name the
// requestor's role and the purpose of use (TREAT).
func checkBALP(t *testing.T, raw []byte, pseudonym, querier string) {
	t.Helper()
	events := bundleOf(t, "AuditEvent?patient=", raw, "searchset").entries("AuditEvent")
	if len(events) == 0 {
		t.Fatal("no AuditEvent about the patient")
	}
	ofQuery := 0
	for _, ev := range events {
		var e struct {
			ID       string       `json:"id"`
			Type     fhirCoding   `json:"type"`
			Subtype  []fhirCoding `json:"subtype"`
			Recorded string       `json:"recorded"`
			Agent    []balpAgent  `json:"agent"`
			Source   struct {
				Observer *fhirReference `json:"observer"`
			} `json:"source"`
			Entity         []balpEntity  `json:"entity"`
			PurposeOfEvent []fhirConcept `json:"purposeOfEvent"`
		}
		decode(t, "AuditEvent", ev, &e)
		var problems []string
		if !(e.Type.System == "http://terminology.hl7.org/CodeSystem/audit-event-type" && e.Type.Code == "rest") &&
			!(e.Type.System == "http://dicom.nema.org/resources/ontology/DCM" && e.Type.Code != "") {
			problems = append(problems, "type is neither rest nor a DICOM code")
		}
		if len(e.Subtype) == 0 || e.Subtype[0].Code == "" {
			problems = append(problems, "no subtype")
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Recorded); err != nil {
			problems = append(problems, "recorded: "+err.Error())
		}
		requestor := slices.IndexFunc(e.Agent, func(a balpAgent) bool { return a.Requestor })
		if requestor < 0 {
			problems = append(problems, "no requestor among the agents")
		}
		if o := e.Source.Observer; o == nil || (o.Reference == "" && o.Display == "" && o.Identifier == nil) {
			problems = append(problems, "no source.observer")
		}
		if !slices.ContainsFunc(e.Entity, func(en balpEntity) bool { return en.What.names("Patient", pseudonym, "", true) }) {
			problems = append(problems, "the patient is not an entity")
		}
		if bytes.Contains(ev, []byte(querier)) && requestor >= 0 {
			ofQuery++
			if r := e.Agent[requestor]; len(r.Role) == 0 || len(r.Role[0].Coding) == 0 {
				problems = append(problems, "the requestor of "+querier+"'s query has no role")
			}
			if !slices.ContainsFunc(e.PurposeOfEvent, func(c fhirConcept) bool {
				return c.has("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT")
			}) {
				problems = append(problems, querier+"'s query has no purposeOfEvent TREAT")
			}
		}
		if len(problems) > 0 {
			t.Errorf("AuditEvent %s: %s: %s", e.ID, strings.Join(problems, "; "), ev)
		}
	}
	if ofQuery == 0 {
		t.Errorf("no AuditEvent shows %s's query", querier)
	}
}

// checkMCSDOrganization: an identifier, a name, active; it returns the id.
func checkMCSDOrganization(t *testing.T, what string, raw []byte) string {
	t.Helper()
	var o struct {
		ResourceType string           `json:"resourceType"`
		ID           string           `json:"id"`
		Identifier   []fhirIdentifier `json:"identifier"`
		Name         string           `json:"name"`
		Active       *bool            `json:"active"`
	}
	decode(t, what, raw, &o)
	if o.ResourceType != "Organization" || len(o.Identifier) == 0 || o.Identifier[0].Value == "" || o.Name == "" || o.Active == nil || !*o.Active {
		t.Errorf("%s: want an active Organization with an identifier and a name: %s", what, raw)
	}
	return o.ID
}

// checkMCSDEndpoint: a status, a connection type, an address.
func checkMCSDEndpoint(t *testing.T, raw []byte) {
	t.Helper()
	var e struct {
		ResourceType   string     `json:"resourceType"`
		Status         string     `json:"status"`
		ConnectionType fhirCoding `json:"connectionType"`
		Address        string     `json:"address"`
	}
	decode(t, "Endpoint", raw, &e)
	if e.ResourceType != "Endpoint" || e.Status == "" || e.ConnectionType.Code == "" || e.Address == "" {
		t.Errorf("Endpoint: want a status, a connectionType and an address: %s", raw)
	}
}

// checkOutcome: a refusal's OperationOutcome has an error issue that says
// what was wrong.
func checkOutcome(t *testing.T, what string, raw []byte) {
	t.Helper()
	var oo struct {
		ResourceType string         `json:"resourceType"`
		Issue        []outcomeIssue `json:"issue"`
	}
	decode(t, what, raw, &oo)
	if oo.ResourceType != "OperationOutcome" || !slices.ContainsFunc(oo.Issue, func(i outcomeIssue) bool {
		return (i.Severity == "error" || i.Severity == "fatal") && i.Code != "" && strings.TrimSpace(i.Diagnostics+i.Details.Text) != ""
	}) {
		t.Errorf("%s: want an OperationOutcome with an error issue that says what is wrong: %s", what, raw)
	}
}
