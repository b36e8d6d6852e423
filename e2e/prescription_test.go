package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// foundThreeWithoutKey founds centre-a, centre-b and centre-c from
// configs/ as operators do and starts their nodes, without a pseudonym
// key (the patients here are named by pseudonym); it returns the client
// of their APIs once each reaches the other two.
func foundThreeWithoutKey(t *testing.T, root string, all []*centre) *api {
	t.Helper()
	file := func(name string) string { return filepath.Join(root, name) }
	founding := []string{"federation", "init"}
	for _, c := range all[1:] {
		c.run("federation", "request", "--out", file(c.name+"-request.txt"))
		founding = append(founding, "--member", file(c.name+"-request.txt"))
	}
	all[0].run(append(founding, "--out", file("charter.txt"))...)
	for _, c := range all[1:] {
		c.run("federation", "sign", file("charter.txt"))
	}
	x := newAPI()
	for _, c := range all {
		c.run("federation", "install", file("charter.txt"))
		x.add(t, c)
		c.start()
	}
	for _, c := range all {
		waitFor(t, 30*time.Second, c.name+" is ready and reaches the others", x.ready(c.name, len(all)-1))
	}
	return x
}

// rxPatient is a test patient's pseudonym, in hex.
func rxPatient(name string) string {
	p := sha256.Sum256([]byte("prescription e2e patient " + name))
	return hex.EncodeToString(p[:])
}

var rxToken = regexp.MustCompile(`(?m)^token: (rx1\.\S+)$`)

// fhirMedicationRequest is what the test reads of a MedicationRequest.
type fhirMedicationRequest struct {
	ResourceType string
	Status       string
	Identifier   []struct{ System, Value string }
	Contained    []struct {
		ResourceType string
		Detail       string
	}
	DispenseRequest struct{ NumberOfRepeatsAllowed int }
}

func (m fhirMedicationRequest) token() string {
	for _, id := range m.Identifier {
		if id.System == "urn:medfed:prescription-token" {
			return id.Value
		}
	}
	return ""
}

// A prescriber at centre-a issues prescriptions; pharmacies at centre-b
// and centre-c dispense them. Through the commands: a prescription's two
// supplies, a third refused, a cancellation by someone else refused and
// by the prescriber taken, a claim of it refused, an expired one, a
// forged token and one that is not a token. Then through the API, 100
// times: a fresh prescription with one repeat, its first supply at
// centre-b, and both pharmacies claiming the last at once, with centre-a
// stopped and started again half way: exactly one yes a round, the other
// told nothing is left, and afterwards centre-a's ledger holds exactly one
// dispense per supply. A second prescriber of the same medication is
// warned of the first; every FHIR answer passes both validators.
func TestPrescriptionsCannotBeFilledTwice(t *testing.T) {
	start := time.Now()
	root := t.TempDir()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	all := []*centre{a, b, c}
	logsIfFailed(t, all)
	// The issuer's audit trail goes to its hospital's repository as FHIR
	// AuditEvents, a pharmacy's to its own as DICOM audit messages.
	issuerAudit := &auditExport{c: a, collector: nodetest.NewSyslogCollector(t), format: "fhir", facility: 10}
	pharmacyAudit := &auditExport{c: b, collector: nodetest.NewSyslogCollector(t), format: "dicom", facility: 13}
	for _, e := range []*auditExport{issuerAudit, pharmacyAudit} {
		e.hostname, e.metrics = "medfed."+e.c.name+".test", fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))
		e.collector.Start()
		e.c.extra = e.env()
	}
	x := foundThreeWithoutKey(t, root, all)
	prescriberTok, prescriber := staffMember(a, "clinician")
	_, otherStaff := staffMember(a, "clinician")
	pharmacistB, pharmacistBID := staffMember(b, "clinician")
	pharmacistC, pharmacistCID := staffMember(c, "clinician")
	t.Logf("founded in %v", time.Since(start).Round(time.Millisecond))

	// Through the commands.
	p := rxPatient("commands")
	issue := func(args ...string) string {
		t.Helper()
		out := a.run(append([]string{"prescription", "issue", "--pseudonym", p, "--prescriber", prescriber, "--system", "dmd", "--code", "39732311000001104",
			"--display", "Paracetamol 500mg tablets", "--quantity", "32", "--unit", "tablet", "--dosage", "Two tablets up to four times a day"}, args...)...)
		m := rxToken.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("issue printed no token:\n%s", out)
		}
		return m[1]
	}
	tok := issue("--repeats", "1")
	for i, x := range []*centre{b, c} {
		id := []string{pharmacistBID, pharmacistCID}[i]
		out := x.run("prescription", "dispense", "--token", tok, "--pharmacist", id)
		if want := fmt.Sprintf("dispensed supply %d of 2 of centre-a's prescription", i+1); !strings.Contains(out, want) || !strings.Contains(out, "Paracetamol 500mg tablets") {
			t.Fatalf("%s: dispense printed %q, want %q", x.name, out, want)
		}
	}
	if code, _, errOut := b.try("prescription", "dispense", "--token", tok, "--pharmacist", pharmacistBID); code != 1 || !strings.Contains(errOut, "every supply of the prescription is dispensed") {
		t.Fatalf("a third supply of two: exit %d, %s", code, errOut)
	}
	cancelled := issue("--repeats", "3")
	index := strings.Split(cancelled, ".")[2]
	if code, _, errOut := a.try("prescription", "cancel", "--index", index, "--prescriber", otherStaff, "--reason", "changed"); code != 1 || !strings.Contains(errOut, "only the prescriber") {
		t.Fatalf("a cancellation by another clinician: exit %d, %s", code, errOut)
	}
	a.run("prescription", "cancel", "--index", index, "--prescriber", prescriber, "--reason", "changed")
	if code, _, errOut := c.try("prescription", "dispense", "--token", cancelled, "--pharmacist", pharmacistCID); code != 1 || !strings.Contains(errOut, "cancelled") {
		t.Fatalf("a claim of a cancelled prescription: exit %d, %s", code, errOut)
	}
	// At least 5 s ahead: the issue, a medfed process, must reach the
	// node before the validity ends on a loaded machine.
	ends := time.Now().Add(6 * time.Second).UTC().Truncate(time.Second)
	expiring := issue("--valid-until", ends.Format(time.RFC3339))
	forged := tok[:len(tok)-1] + map[bool]string{true: "1", false: "0"}[tok[len(tok)-1] == '0']
	time.Sleep(time.Until(ends) + 100*time.Millisecond)
	for _, tc := range []struct {
		name, token string
		code        int
		want        string
	}{
		{"an expired prescription", expiring, 1, "expired"},
		{"a forged token", forged, 1, "no prescription of this centre matches the token"},
		{"a token of a centre not in the federation", strings.Replace(tok, "centre-a", "centre-z", 1), 1, "not a member"},
		{"not a token", "rx1.centre-a.12", 2, "not a prescription token"},
	} {
		code, _, errOut := b.try("prescription", "dispense", "--token", tc.token, "--pharmacist", pharmacistBID)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, %s; want %d saying %q", tc.name, code, errOut, tc.code, tc.want)
		}
	}
	waitFor(t, 20*time.Second, "show lists the prescriptions with their supplies", func() bool {
		code, out, _ := a.try("prescription", "show", "--pseudonym", p, "--staff", prescriber)
		return code == 0 && strings.Contains(out, "completed, 0 left") && strings.Contains(out, "cancelled, 4 left") &&
			strings.Contains(out, "supply 2 dispensed by centre-c (pharmacist "+pharmacistCID+")") && strings.Contains(out, "expired, 1 left") && strings.Contains(out, "# "+p+": 3 prescription(s)")
	})
	// Another centre's clinician reads them through the query, in words.
	if out := b.run("query", "--pseudonym", p, "--staff", pharmacistBID, "--purpose", "treatment", "--class", "prescription"); strings.Count(out, "prescription: Paracetamol 500mg tablets (dmd 39732311000001104)") != 3 {
		t.Fatalf("the query at centre-b shows:\n%s", out)
	}
	t.Logf("commands done at %v", time.Since(start).Round(time.Millisecond))

	// FHIR answers, kept for the validators.
	fhirDir := filepath.Join(root, "fhir")
	if err := os.MkdirAll(fhirDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := func(name string, raw []byte) {
		t.Helper()
		writeFile(t, filepath.Join(fhirDir, name+".json"), raw)
	}
	body := func(patient string, repeats int) httpapi.PrescriptionBody {
		return httpapi.PrescriptionBody{Patient: patient, Medication: httpapi.MedicationBody{System: "snomed", Code: "322236009", Display: "Paracetamol 500 mg oral tablet"},
			Quantity: 32, Unit: "tablet", Repeats: repeats, Dosage: "One or two tablets every 4 to 6 hours"}
	}
	issueAPI := func(patient string, repeats int) (fhirMedicationRequest, []byte) {
		t.Helper()
		var mr fhirMedicationRequest
		ans := x.must(t, 201, "POST", "centre-a", "/v1/prescriptions", prescriberTok, body(patient, repeats), &mr)
		if mr.ResourceType != "MedicationRequest" || mr.Status != "active" || mr.token() == "" || mr.DispenseRequest.NumberOfRepeatsAllowed != repeats {
			t.Fatalf("the issue's answer: %s", ans.raw)
		}
		return mr, ans.raw
	}
	dispenseAPI := func(centre, token, tok string) (httpAnswer, error) {
		return x.do("POST", centre, "/v1/prescriptions/dispense", token, httpapi.DispenseBody{Token: tok})
	}

	// The race, 100 times, centre-a restarted half way.
	type round struct {
		index  int64
		winner string
	}
	var rounds []round
	raceStart := time.Now()
	for i := range 100 {
		if i == 50 {
			a.stop()
			a.start()
			for _, y := range all {
				waitFor(t, 30*time.Second, y.name+" reaches the others again", x.ready(y.name, 2))
			}
			t.Logf("centre-a restarted at round %d", i)
		}
		mr, raw := issueAPI(rxPatient(fmt.Sprint("race ", i)), 1)
		tok := mr.token()
		var idx int64
		fmt.Sscan(strings.Split(tok, ".")[2], &idx)
		first, err := dispenseAPI("centre-b", pharmacistB, tok)
		if err != nil || first.status != 200 {
			t.Fatalf("round %d: the first supply: %v, %d %s", i, err, first.status, first.raw)
		}
		if i == 0 {
			keep("issued", raw)
			keep("dispensed", first.raw)
		}
		var wg sync.WaitGroup
		var answers [2]httpAnswer
		var errs [2]error
		begin := make(chan struct{})
		for j, y := range []struct{ centre, token string }{{"centre-b", pharmacistB}, {"centre-c", pharmacistC}} {
			wg.Go(func() {
				<-begin
				answers[j], errs[j] = dispenseAPI(y.centre, y.token, tok)
			})
		}
		close(begin)
		wg.Wait()
		r := round{index: idx}
		for j, name := range []string{"centre-b", "centre-c"} {
			switch {
			case errs[j] != nil:
				t.Fatalf("round %d: %s: %v", i, name, errs[j])
			case answers[j].status == 200:
				if r.winner != "" {
					t.Fatalf("round %d: both pharmacies were given the last supply", i)
				}
				r.winner = name
				if !bytes.Contains(answers[j].raw, []byte(`"resourceType":"MedicationDispense"`)) || !bytes.Contains(answers[j].raw, []byte("supply 2 of 2")) {
					t.Fatalf("round %d: %s's answer: %s", i, name, answers[j].raw)
				}
			case answers[j].status != 409 || !bytes.Contains(answers[j].raw, []byte("every supply of the prescription is dispensed")):
				t.Fatalf("round %d: %s was told %d %s", i, name, answers[j].status, answers[j].raw)
			}
		}
		if r.winner == "" {
			t.Fatalf("round %d: no pharmacy was given the last supply: %s | %s", i, answers[0].raw, answers[1].raw)
		}
		rounds = append(rounds, r)
	}
	won := map[string]int{}
	for _, r := range rounds {
		won[r.winner]++
	}
	t.Logf("100 races in %v: centre-b won %d, centre-c %d", time.Since(raceStart).Round(time.Millisecond), won["centre-b"], won["centre-c"])

	// A second prescriber of the same medication is warned of the first.
	q := rxPatient("two prescribers")
	_, first := issueAPI(q, 0)
	keep("issued-first", first)
	otherTok, _ := staffMember(b, "clinician")
	waitFor(t, 20*time.Second, "centre-b's clinician sees centre-a's prescription", func() bool {
		ans, err := x.do("GET", "centre-b", "/fhir/MedicationRequest?patient="+q, otherTok, nil)
		return err == nil && ans.status == 200 && bytes.Contains(ans.raw, []byte("322236009"))
	})
	var warned fhirMedicationRequest
	ans := x.must(t, 201, "POST", "centre-b", "/v1/prescriptions", otherTok, body(q, 0), &warned)
	if len(warned.Contained) != 1 || warned.Contained[0].ResourceType != "DetectedIssue" || !strings.Contains(warned.Contained[0].Detail, "centre-a's prescription") {
		t.Fatalf("the second prescriber was not warned: %s", ans.raw)
	}
	keep("issued-warned", ans.raw)
	// The searches, at the issuer, once the prescriptions are final.
	waitFor(t, 20*time.Second, "centre-a's search lists the patient's three prescriptions", func() bool {
		ans, err := x.do("GET", "centre-a", "/fhir/MedicationRequest?patient="+p, prescriberTok, nil)
		if err != nil || ans.status != 200 || bytes.Count(ans.raw, []byte(`"resourceType":"MedicationRequest"`)) != 3 {
			return false
		}
		keep("search-requests", ans.raw)
		return true
	})
	ans = x.must(t, 200, "GET", "centre-a", "/fhir/MedicationDispense?patient="+p, prescriberTok, nil, nil)
	if bytes.Count(ans.raw, []byte(`"resourceType":"MedicationDispense"`)) != 2 {
		t.Fatalf("the dispenses of the patient's prescriptions: %s", ans.raw)
	}
	keep("search-dispenses", ans.raw)
	_, cancelledAgain := issueAPI(p, 2)
	var toCancel fhirMedicationRequest
	json.Unmarshal(cancelledAgain, &toCancel)
	ci := strings.Split(toCancel.token(), ".")[2]
	ans = x.must(t, 200, "POST", "centre-a", "/v1/prescriptions/"+ci+"/cancel", prescriberTok, httpapi.CancelBody{Reason: "adverse-reaction"}, nil)
	if !bytes.Contains(ans.raw, []byte(`"status":"cancelled"`)) {
		t.Fatalf("the cancel's answer: %s", ans.raw)
	}
	keep("cancelled", ans.raw)
	ans = x.must(t, 200, "GET", "centre-a", "/fhir/metadata", "", nil, nil)
	for _, want := range []string{`"type":"MedicationRequest"`, `"type":"MedicationDispense"`} {
		if !bytes.Contains(ans.raw, []byte(want)) {
			t.Errorf("the CapabilityStatement lacks %s", want)
		}
	}

	for _, e := range []*auditExport{issuerAudit, pharmacyAudit} {
		e.waitCaughtUp(t)
		e.collector.Stop()
	}

	// Afterwards: centre-a's ledger holds exactly one dispense per supply,
	// and each pharmacy's the ones it was confirmed; no log holds a
	// medication's code or name, nor the dosage.
	for _, y := range all {
		y.stop()
		for _, secret := range []string{"39732311000001104", "322236009", "Paracetamol", "tablets up to four"} {
			if bytes.Contains(y.logs.Bytes(), []byte(secret)) {
				t.Errorf("%s's node logged %q", y.name, secret)
			}
		}
	}
	dispensed := dispensesOf(t, a)
	// The refused claims of the commands changed nothing: two supplies of
	// the first prescription, none of the cancelled or expired ones.
	for _, tc := range []struct {
		token string
		want  int
	}{{tok, 2}, {cancelled, 0}, {expiring, 0}} {
		var idx int64
		fmt.Sscan(strings.Split(tc.token, ".")[2], &idx)
		if got := len(dispensed[idx]); got != tc.want {
			t.Errorf("prescription %d: %d supplies on centre-a's ledger, want %d", idx, got, tc.want)
		}
	}
	for i, r := range rounds {
		fills := dispensed[r.index]
		if len(fills) != 2 || fills[0] != 1 || fills[1] != 2 {
			t.Errorf("round %d: centre-a's ledger holds supplies %v of prescription %d", i, fills, r.index)
		}
	}
	received := 0
	for _, y := range []*centre{b, c} {
		received += receivedDispenses(t, y)
	}
	if want := 2*len(rounds) + 2; received != want {
		t.Errorf("the pharmacies recorded %d dispenses, want %d", received, want)
	}
	// Every supply and cancellation reached the issuer's audit
	// repository, and each supply centre-b was confirmed its own: the
	// prescription by its index, never its medication.
	supplies := 0
	for _, fills := range dispensed {
		supplies += len(fills)
	}
	events := issuerAudit.audited("dispense", "cancellation")
	if len(events["dispense"]) != supplies || len(events["cancellation"]) != 2 { // the command's and the API's
		t.Errorf("centre-a's audit repository holds %d dispenses and %d cancellations, want %d and 2", len(events["dispense"]), len(events["cancellation"]), supplies)
	}
	var auditFiles []string
	for _, kind := range []string{"dispense", "cancellation"} {
		for i, body := range events[kind][:min(3, len(events[kind]))] {
			auditFiles = append(auditFiles, writeJSONFile(t, filepath.Join(root, fmt.Sprintf("audit-%s-%d.json", kind, i)), json.RawMessage(body)))
		}
	}
	atPharmacy := pharmacyAudit.audited("dispense")["dispense"]
	if len(atPharmacy) != receivedDispenses(t, b) {
		t.Errorf("centre-b's audit repository holds %d dispenses, its ledger %d", len(atPharmacy), receivedDispenses(t, b))
	}
	for _, body := range atPharmacy {
		if !bytes.Contains(body, []byte(`csd-code="110109"`)) || !bytes.Contains(body, []byte(`ParticipantObjectName>prescription<`)) {
			t.Fatalf("centre-b's audit message of a dispense is not an Order Record update of the prescription: %s", body)
		}
	}
	for _, e := range []*auditExport{issuerAudit, pharmacyAudit} {
		for _, secret := range []string{"39732311000001104", "Paracetamol", "tablets up to four"} {
			if bytes.Contains(e.collector.Raw(), []byte(secret)) {
				t.Errorf("%s's audit repository received %q", e.c.name, secret)
			}
		}
	}
	validateFHIR(t, append([]string{fhirDir}, auditFiles...))
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// dispensesOf opens centre c's ledger (its node stopped) and returns the
// supplies dispensed of each prescription it issued, in ledger order.
func dispensesOf(t *testing.T, c *centre) map[int64][]uint8 {
	t.Helper()
	out := map[int64][]uint8{}
	eachDispense(t, c, func(d ledger.Dispense) {
		if len(d.Issuer) == 0 {
			out[d.Prescription] = append(out[d.Prescription], d.Fill)
		}
	})
	return out
}

// receivedDispenses counts the dispenses centre c recorded as confirmed
// by another issuer.
func receivedDispenses(t *testing.T, c *centre) int {
	t.Helper()
	n := 0
	eachDispense(t, c, func(d ledger.Dispense) {
		if len(d.Issuer) > 0 && d.Confirmed > 0 {
			n++
		}
	})
	return n
}

func eachDispense(t *testing.T, c *centre, f func(ledger.Dispense)) {
	t.Helper()
	ctx := context.Background()
	cfg := node.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = c.name, "medfed-demo", c.dir
	cen, err := node.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cen.Close()
	es, err := cen.Ledger.EntriesOfKind(ctx, ledger.KindDispense)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		d, err := e.Dispense()
		if err != nil {
			t.Fatalf("%s: entry %d: %v", c.name, e.Index, err)
		}
		f(d)
	}
}
