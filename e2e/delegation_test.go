package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
)

// A parent acts for their child, as the medfed commands let a family do:
// the child's key (held for them) delegates consent to the parent's key
// for a term; the parent signs the child's contract with their own key,
// naming the delegation, and a clinician at the other centre gets the
// child's records under it. A carer delegated only the view sees the
// child's view, each centre recording the delegation, but cannot sign a
// contract or erase: refused, nothing changed. Once the term is over, the
// parent's revocation is refused and the contract the parent signed
// within it stays in force.
func TestAParentGrantsConsentForAChild(t *testing.T) {
	root := t.TempDir()
	a, b := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b")
	foundTwo(t, root, a, b)
	file := func(name string) string { return filepath.Join(root, name) }
	p := recordAtEach(t, root, a, b)
	keygen := func(name string) string {
		t.Helper()
		code, out, errOut := medfedCmd(t, "patient", "keygen", "--out", file(name+".key"))
		if code != 0 {
			t.Fatalf("keygen exited %d: %s", code, errOut)
		}
		return strings.TrimSpace(out)
	}
	child, parent, carer := keygen("child"), keygen("parent"), keygen("carer")
	a.run("patient", "attest", "--pseudonym", p, "--public-key", child)

	delegationID := regexp.MustCompile(`delegation ([0-9a-f]{32}) \(`)
	delegate := func(pub, relationship, scope, term string) string {
		t.Helper()
		out := a.run("consent", "delegate", "--key", file("child.key"), "--pseudonym", p, "--delegate-key", pub,
			"--relationship", relationship, "--scope", scope, "--for", term)
		m := delegationID.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("consent delegate printed no delegation ID: %s", out)
		}
		return m[1]
	}
	term := 20 * time.Second
	started := time.Now()
	byParent := delegate(parent, "parent", "consent", term.String())
	byCarer := delegate(carer, "carer", "view", "1h")

	if err := os.WriteFile(file("terms.json"), []byte(`{"base": "opt-out", "provision": [{"type": "permit", "purpose": ["treatment"], "actor": [{"role": "clinician"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	standing := func() (string, string) {
		t.Helper()
		code, out, errOut := a.try("consent", "show", "--pseudonym", p, "--json")
		if code != 0 {
			t.Fatalf("consent show exited %d: %s", code, errOut)
		}
		var v httpapi.ConsentView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("consent show --json: %v: %s", err, out)
		}
		if v.Contract == nil {
			return v.Standing, ""
		}
		return v.Standing, v.Contract.ID
	}

	// The carer, delegated the view alone, signs a contract: refused.
	if code, _, errOut := a.try("consent", "grant", "--key", file("carer.key"), "--delegation", byCarer, "--pseudonym", p, "--terms", file("terms.json")); code == 0 || !strings.Contains(errOut, "scope") {
		t.Fatalf("a contract signed by a delegate of the view alone: exit %d, %s; want a refusal naming the scope", code, errOut)
	}
	if s, _ := standing(); s == "in force" {
		t.Fatal("the carer's refused contract is in force")
	}

	// The carer sees the child's view, as the child would, each holder
	// recording the delegation beside the request; the carer's erasure,
	// beyond the view, is refused and erases nothing (the clinician below
	// gets both records).
	out := a.run("patient", "view", "--key", file("carer.key"), "--delegation", byCarer, "--pseudonym", p)
	for _, want := range []string{"centre-a: 1 record(s)", "centre-b: 1 record(s)", "patient-view through centre-a, by a delegate under delegation " + byCarer} {
		if !strings.Contains(out, want) {
			t.Fatalf("the carer's view lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := a.try("patient", "erase", "--key", file("carer.key"), "--delegation", byCarer, "--pseudonym", p); code == 0 || !strings.Contains(errOut, "scope") {
		t.Fatalf("an erasure by the carer, delegated the view alone: exit %d, %s; want a refusal naming the scope", code, errOut)
	}

	// The parent signs the child's contract; a clinician at centre-b gets
	// both centres' records under it.
	b.run("consent", "grant", "--key", file("parent.key"), "--delegation", byParent, "--pseudonym", p, "--terms", file("terms.json"))
	s, contract := standing()
	if s != "in force" {
		t.Fatalf("after the parent's contract: standing %q", s)
	}
	waitReleased(t, b, p, 2)

	// The child's delegates as FHIR RelatedPersons, as an EHR reads them:
	// the parent by their key, a parent, in force; valid FHIR R4.
	token, _ := staffMember(a, "clinician")
	api, err := pinnedClient(a.dir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", "https://127.0.0.1:8101/fhir/RelatedPerson?patient="+p, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := api.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /fhir/RelatedPerson: %d %v: %s", resp.StatusCode, err, raw)
	}
	bundle := bundleOf(t, "RelatedPerson search", raw, "searchset")
	people := bundle.entries("RelatedPerson")
	if len(people) != 2 || !strings.Contains(string(raw), parent) || !strings.Contains(string(raw), `"PRN"`) {
		t.Errorf("the RelatedPerson search holds %d delegates, want the parent (PRN, their key) and the carer: %s", len(people), raw)
	}
	validateFHIR(t, []string{writeJSONFile(t, file("related.json"), json.RawMessage(raw))})

	// The term ends: the parent can no longer revoke, and what they
	// signed within it stays.
	time.Sleep(time.Until(started.Add(term + 2*time.Second)))
	if code, _, errOut := a.try("consent", "revoke", "--key", file("parent.key"), "--delegation", byParent, "--pseudonym", p); code == 0 {
		t.Fatalf("the parent revoked after the delegation expired: %s", errOut)
	}
	if s, id := standing(); s != "in force" || id != contract {
		t.Fatalf("after the refused revocation: standing %q, contract %s; want the parent's %s in force", s, id, contract)
	}
}
