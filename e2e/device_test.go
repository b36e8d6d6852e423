package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// deviceReadings are what the test's glucose meter posts: two glucose
// readings and a heart rate, as a device writes FHIR Observations.
func deviceReadings(p string) []string {
	obs := func(code, display, unit string, value float64, at string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","status":"final",`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
			`"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"subject":{"reference":"Patient/%s"},`+
			`"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}`, code, display, p, at, value, unit, unit)
	}
	now := time.Now().UTC()
	at := func(ago time.Duration) string { return now.Add(-ago).Truncate(time.Second).Format(time.RFC3339) }
	return []string{
		obs("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer", "mg/dL", 104, at(40*time.Minute)),
		obs("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer", "mg/dL", 131.5, at(10*time.Minute)),
		obs("8867-4", "Heart rate", "/min", 72, at(5*time.Minute)),
	}
}

var deviceIDLine = regexp.MustCompile(`(?m)^device ID  ([0-9a-f]{32})$`)

// A patient's glucose meter, registered at centre-a with a statement the
// patient signed, posts readings there through medfed device post; a
// clinician at centre-b, whom the patient's consent lets see their
// records for treatment, sees each reading as it was posted, written by
// the device, in the federated query and as FHIR Observations (both
// validators pass them). A batch with a forged signature, one replayed,
// one of a class the device is not registered for, and, once the patient
// revoked the device, any batch at all, are refused with nothing stored.
func TestDeviceReadingsReachAConsentedClinician(t *testing.T) {
	start := time.Now()
	root := t.TempDir()
	file := func(name string) string { return filepath.Join(root, name) }
	a, b := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b")
	// centre-a's audit trail goes to its hospital's repository as FHIR
	// AuditEvents.
	audit := &auditExport{c: a, collector: nodetest.NewSyslogCollector(t), format: "fhir", facility: 10, hostname: "medfed.centre-a.test",
		metrics: fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))}
	audit.collector.Start()
	// And its devices may add a reading an hour, 100 at once: the test's
	// readings fit, a full batch more does not.
	a.extra = append(audit.env(), "MEDFED_DEVICES_READINGS_PER_HOUR=1", "MEDFED_DEVICES_READINGS_BURST=100")
	foundTwo(t, root, a, b)
	p := pseudonymsOf(a, 1, "--nhs", nhsNumber)[0]
	grantTreatment(t, root, a, p)
	x := newAPI()
	x.add(t, a)
	x.add(t, b)
	clinician, _ := staffMember(b, "clinician")
	t.Logf("founded, patient registered and consenting in %v", time.Since(start).Round(time.Millisecond))

	// The device's key, and the patient's registration of it.
	code, out, errOut := medfedCmd(t, "device", "keygen", "--out", file("meter.key"))
	m := deviceIDLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("device keygen exited %d: %s%s", code, out, errOut)
	}
	deviceID := m[1]
	// From yesterday: the meter holds readings taken before it was
	// registered; none from before --from is taken.
	from, until := time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339), time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339)
	out = a.run("device", "register", "--key", file("patient.key"), "--pseudonym", p, "--device-key", file("meter.pub"),
		"--type", "glucose-meter", "--classes", "observation", "--from", from, "--until", until)
	if !strings.Contains(out, "device "+deviceID+" registered") || !strings.Contains(out, "in force") {
		t.Fatalf("device register printed:\n%s", out)
	}
	// A statement signed with a key that is not the patient's registers
	// nothing.
	if code, _, errOut := medfedCmd(t, "patient", "keygen", "--out", file("stranger.key")); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	if code, _, errOut := a.try("device", "register", "--key", file("stranger.key"), "--pseudonym", p, "--device-key", file("meter.pub"),
		"--type", "glucose-meter", "--classes", "observation", "--until", until); code == 0 || !strings.Contains(errOut, "not the key attested") {
		t.Fatalf("a registration with another key: exit %d, %s", code, errOut)
	}

	// The device posts its readings over HTTPS, pinning centre-a's certificate.
	readings := deviceReadings(p)
	if err := os.WriteFile(file("readings.json"), []byte("[\n  "+strings.Join(readings, ",\n  ")+"\n]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	post := func(args ...string) (int, string, string) {
		return medfedCmd(t, append([]string{"device", "post", "--device-key", file("meter.key"), "--pseudonym", p, "--url", x.url["centre-a"],
			"--cacert", filepath.Join(a.dir, httpapi.CertFile)}, args...)...)
	}
	code, out, errOut = post("--file", file("readings.json"))
	if code != 0 || !strings.Contains(out, "stored 3 reading(s) of device "+deviceID+" at centre-a") {
		t.Fatalf("device post exited %d: %s%s", code, out, errOut)
	}

	// A clinician at centre-b sees them: as posted, written by the device.
	var got httpapi.QueryResult
	waitFor(t, 20*time.Second, "centre-b's query releases the device's readings, proven", func() bool {
		code, out, _ := b.try("query", "--json", "--pseudonym", p, "--staff", "5eed5eed5eed5eed5eed5eed5eed5eed", "--purpose", "treatment")
		got = httpapi.QueryResult{}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
			return false
		}
		for _, h := range got.Holders {
			if h.Name == "centre-a" && h.Status == "answered" && len(h.Records) == 3 {
				return true
			}
		}
		return false
	})
	for _, h := range got.Holders {
		if h.Name != "centre-a" {
			continue
		}
		for i, r := range h.Records {
			if r.AuthorKind != "device" || r.Author != deviceID || r.Class != "observation" || !bytes.Equal(r.Payload, []byte(readings[i])) {
				t.Errorf("record %d: %s by %s %s, payload %s; want observation by device %s, payload %s", r.Index, r.Class, r.AuthorKind, r.Author, r.Payload, deviceID, readings[i])
			}
		}
	}
	t.Logf("readings posted and released at centre-b in %v", time.Since(start).Round(time.Millisecond))

	// As FHIR: Observations whose device is the meter, and the query's
	// DocumentReferences authored by it; both validators pass them.
	search := x.must(t, 200, "GET", "centre-b", "/fhir/Observation?patient="+p, clinician, nil, nil)
	var bundle struct {
		Total int
		Entry []struct {
			Resource struct {
				ResourceType string
				Contained    []struct {
					ResourceType string
					Identifier   []struct{ System, Value string }
				}
				Device            struct{ Reference string }
				Subject           struct{ Reference string }
				EffectiveDateTime string
			}
		}
	}
	if err := json.Unmarshal(search.raw, &bundle); err != nil || bundle.Total != 3 {
		t.Fatalf("GET /fhir/Observation: %d Observations, %v: %s", bundle.Total, err, search.raw)
	}
	for _, e := range bundle.Entry[:3] {
		r := e.Resource
		if r.ResourceType != "Observation" || r.Device.Reference != "#device" || len(r.Contained) != 1 || r.Contained[0].ResourceType != "Device" ||
			r.Contained[0].Identifier[0].System != "urn:medfed:device" || r.Contained[0].Identifier[0].Value != deviceID || r.Subject.Reference != "Patient/"+p {
			t.Errorf("an Observation: %+v", r)
		}
	}
	docs := x.must(t, 200, "POST", "centre-b", "/v1/query", clinician, httpapi.QueryBody{Patient: p, Purpose: "treatment", Classes: []string{"observation"}}, nil)
	if !strings.Contains(string(docs.raw), `"type":"Device","identifier":{"system":"urn:medfed:device","value":"`+deviceID+`"}`) {
		t.Errorf("the query's DocumentReferences do not name the device as their author: %s", docs.raw)
	}
	for name, raw := range map[string][]byte{"observations.json": search.raw, "documents.json": docs.raw} {
		if err := os.WriteFile(file(name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	validateFHIR(t, []string{file("observations.json"), file("documents.json")})

	// Bad batches, built as a device would, refused with nothing stored.
	kb, err := os.ReadFile(file("meter.key"))
	if err != nil {
		t.Fatal(err)
	}
	meter, err := consent.ParseKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	var addr httpapi.DeviceAddress
	x.must(t, 200, "GET", "centre-a", "/v1/devices/address", "", nil, &addr)
	centreID, err := peer.Decode(addr.Centre)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	var n byte
	batch := func(key ed25519.PrivateKey, readings ...string) []byte {
		t.Helper()
		n++
		bt := device.Batch{Federation: addr.Federation, Centre: centreID, Subject: subject, Nonce: [16]byte{n, 0xe2, 0xe0}, Time: time.Now().UTC()}
		for _, r := range readings {
			bt.Readings = append(bt.Readings, []byte(r))
		}
		raw, err := bt.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	size := func() int64 {
		var r httpapi.Readiness
		x.must(t, 200, "GET", "centre-a", "/readyz", "", nil, &r)
		return r.Size
	}
	refused := func(what string, want int, raw []byte, says string) {
		t.Helper()
		before := size()
		ans, err := x.do("POST", "centre-a", "/v1/devices/readings", "", httpapi.ReadingsBody{Batch: raw})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ans.status != want || !strings.Contains(string(ans.raw), says) {
			t.Errorf("%s: status %d, want %d saying %q: %s", what, ans.status, want, says, ans.raw)
		}
		if after := size(); after != before {
			t.Errorf("%s: centre-a's ledger went from %d to %d entries", what, before, after)
		}
	}
	forged := batch(meter, readings[0])
	forged[len(forged)-70] ^= 1 // a byte of the reading, under the signature
	refused("a forged signature", 403, forged, "signature does not verify")
	inr := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"34714-6"}]},` +
		`"effectiveDateTime":"` + time.Now().UTC().Format(time.RFC3339) + `","valueQuantity":{"value":2.4,"system":"http://unitsofmeasure.org","code":"{INR}"}}`
	refused("a class the device is not registered for", 403, batch(meter, inr), "not registered for")
	refused("a malformed Observation", 400, batch(meter, `{"resourceType":"Observation","status":"final"}`), "reading 1 of 1")
	ok := batch(meter, deviceReadings(p)[2])
	x.must(t, 201, "POST", "centre-a", "/v1/devices/readings", "", httpapi.ReadingsBody{Batch: ok}, nil)
	refused("a replayed batch", 409, ok, "taken before")
	// Past the device's rate (a burst of 5 batches, then one a second):
	// refused, nothing stored.
	for i := 0; ; i++ {
		before := size()
		ans, err := x.do("POST", "centre-a", "/v1/devices/readings", "", httpapi.ReadingsBody{Batch: batch(meter, deviceReadings(p)[2])})
		if err != nil {
			t.Fatal(err)
		}
		if ans.status == 429 {
			if after := size(); after != before || !strings.Contains(string(ans.raw), "rate limited") {
				t.Errorf("a batch past the device's rate: ledger from %d to %d entries: %s", before, after, ans.raw)
			}
			break
		}
		if ans.status != 201 || i == 8 {
			t.Fatalf("batch %d of a burst: status %d: %s", i+1, ans.status, ans.raw)
		}
	}
	time.Sleep(2 * time.Second) // the device's bucket fills again
	// Past the readings centre-a allows a device (devices.readings-burst):
	// refused, nothing stored.
	full := make([]string, device.MaxReadings)
	for i := range full {
		full[i] = deviceReadings(p)[2]
	}
	refused("a full batch past the device's readings", 503, batch(meter, full...), "over its rate of readings")
	time.Sleep(time.Second) // the batch bucket, for the revocation's check below

	// The patient revokes the device: its next batch is refused, nothing
	// stored, and the readings it added stay released.
	out = a.run("device", "revoke", "--key", file("patient.key"), "--pseudonym", p, "--device-key", file("meter.pub"))
	if !strings.Contains(out, "device "+deviceID+" revoked") || !strings.Contains(out, "state     revoked") {
		t.Fatalf("device revoke printed:\n%s", out)
	}
	before := size()
	code, out, errOut = post("--file", file("readings.json"))
	if code == 0 || !strings.Contains(errOut, "revoked the device") {
		t.Fatalf("a revoked device's post exited %d: %s%s", code, out, errOut)
	}
	if after := size(); after != before {
		t.Errorf("a revoked device's post: centre-a's ledger went from %d to %d entries", before, after)
	}
	refused("a revoked device's batch", 403, batch(meter, readings[1]), "revoked the device")
	out = a.run("device", "list", "--pseudonym", p)
	if !strings.Contains(out, "device "+deviceID) || !strings.Contains(out, "state     revoked") {
		t.Errorf("device list printed:\n%s", out)
	}

	// The patient's view shows the registration and its end, and both
	// reached the hospital's audit repository, valid FHIR AuditEvents.
	out = a.run("patient", "view", "--key", file("patient.key"), "--pseudonym", p)
	if !strings.Contains(out, "device "+deviceID+" registered for") || !strings.Contains(out, "device "+deviceID+" revoked") {
		t.Errorf("the patient's view does not show the device registered and revoked:\n%s", out)
	}
	audit.waitCaughtUp(t)
	audit.collector.Stop()
	events := audit.audited("device", "device-revocation")
	if len(events["device"]) != 1 || len(events["device-revocation"]) != 1 {
		t.Fatalf("centre-a's audit repository holds %d device registrations and %d revocations, want 1 and 1", len(events["device"]), len(events["device-revocation"]))
	}
	validateFHIR(t, []string{writeJSONFile(t, file("audit-device.json"), json.RawMessage(events["device"][0])),
		writeJSONFile(t, file("audit-device-revocation.json"), json.RawMessage(events["device-revocation"][0]))})
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}
