package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/device"
	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
)

// The people's pages in a real browser: each step is what a patient, a
// registrar, a clinician or a privacy officer does with a mouse and a
// keyboard, on real medfed nodes; every page passes axe-core and is
// photographed at a desktop's and a phone's width.

// person is one person's browser: their own cookies and storage (a
// browser context of its own), in a tab of the test's chromium.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// newPerson opens a fresh browser context (no cookies, no storage) in the
// test's browser.
func newPerson(t *testing.T, browserCtx context.Context, name string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s's browser: %v", name, err)
	}
	if l, ok := browserCtx.Value(browserLogKey{}).(*browserLog); ok {
		if err := chromedp.Listen(ctx, l.add); err != nil {
			t.Fatal(err)
		}
	}
	return &person{t: t, name: name, ctx: ctx}
}

// do runs actions in the person's tab, failing the test with what they
// were doing.
func (p *person) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail(what, err)
	}
}

// fail ends the test with what the person was doing and what the page
// said.
func (p *person) fail(what string, err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	body, berr := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if berr != nil {
		body = "(unreadable: " + berr.Error() + ")"
	}
	p.t.Fatalf("%s: %s: %v\nthe page said: %s\nscript errors: %v", p.name, what, err, body, jsErrors(p.ctx))
}

// text returns the text of the element sel.
func (p *person) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.fail("read "+sel, err)
	}
	return s
}

// waitText waits until the text of an element matching sel contains want.
func (p *person) waitText(sel, want string) {
	p.t.Helper()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).some(e => e.textContent.includes(%q))`, sel, want)
	p.until(fmt.Sprintf("wait for %q in %s", want, sel), js, 100*time.Millisecond, nil)
}

// until evaluates js in the page until it is true, for 90 s at most,
// doing step first in each round when there is one; it returns the
// rounds it took. Asked again and again rather than polled in the page:
// a form's submission replaces the page, and a poll with it.
func (p *person) until(what, js string, pause time.Duration, step func()) int {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for round := 1; ; round++ {
		if step != nil {
			step()
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		found, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		switch {
		case err == nil && found:
			return round
		case time.Now().After(deadline):
			if err == nil {
				err = errors.New("not there after 90 s")
			}
			p.fail(what, err)
		}
		time.Sleep(pause)
	}
}

// page checks the page the person is on with axe-core and photographs
// it.
func (p *person) page(name string) {
	p.t.Helper()
	checkAccessibility(p.t, p.ctx, name)
	screenshot(p.t, p.ctx, name)
	if errs := jsErrors(p.ctx); len(errs) > 0 {
		p.t.Fatalf("%s: script or security errors: %v", name, errs)
	}
}

// signIn signs a staff member in at the console of base.
func (p *person) signIn(base, token string) {
	p.t.Helper()
	p.do("sign in", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("main h1")))
	p.waitText("main h1", "Console")
}

// enrol makes the patient's key in the portal of base (a passkey, or the
// browser key) and returns the code it shows.
func (p *person) enrol(base, button string) string {
	p.t.Helper()
	p.do("open the portal", chromedp.Navigate(base+"/portal/"), chromedp.WaitVisible(chromedp.CSS("#setup")))
	p.do("make a key", chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS("#waiting")))
	p.waitText("#code", "-")
	return p.text("#code")
}

// attest has the registrar, signed in at base's console, attest the key
// whose code the patient shows.
func (p *person) attest(base, nhs, code string) {
	p.t.Helper()
	p.do("attest a key", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#attest-nhs")),
		chromedp.SendKeys(chromedp.CSS("#attest-nhs"), nhs), chromedp.SendKeys(chromedp.CSS("#attest-code"), code),
		chromedp.Submit(chromedp.CSS("#attest-code")))
	p.waitText(".alert.notice", "is attested")
}

// sign previews the document the button prepares and signs it.
func (p *person) sign(button, preview, done string) {
	p.t.Helper()
	p.do("prepare "+button, chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if preview != "" {
		p.waitText("#preview", preview)
	}
	p.do("sign", chromedp.Click(chromedp.CSS("#sign")))
	p.waitText("#result", done)
}

// find shows the care network of the patient at the clinician's console.
func (p *person) find(base, patient string) {
	p.t.Helper()
	p.do("find "+patient, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#find-patient")),
		chromedp.SendKeys(chromedp.CSS("#find-patient"), patient), chromedp.Submit(chromedp.CSS("#find-patient")))
	p.waitText("main h1", "Care network")
}

// findUntil shows the care network of the patient at the clinician's
// console until the answer of holder says want, asking again while it
// does not, as a clinician does when a holder says records are pending:
// a record is released once a checkpoint that the holder's witnesses
// cosigned covers it, a second or more after it was written.
func (p *person) findUntil(base, patient, holder, want string) {
	p.t.Helper()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll("li.holder.answered")).some(li => li.querySelector("h2").textContent.includes(%q) && li.textContent.includes(%q))`, holder, want)
	asked := p.until(fmt.Sprintf("ask until %s's answer says %q", holder, want), js, 500*time.Millisecond, func() { p.find(base, patient) })
	if asked > 1 {
		p.t.Logf("%s: %s's answer said %q when asked %d times", p.name, holder, want, asked)
	}
}

// The patient's journey with a passkey, the clinician's with and without
// breaking the glass, the registrar's and the privacy officer's, and a
// second patient's with the browser key: on three real medfed nodes, in
// chromium. Every signature the browser makes is checked in Go by every
// holder that takes it (the consent, its withdrawal, the view, the
// records request).
func TestPeoplesPagesInABrowser(t *testing.T) {
	nodeModules(t)
	browserCtx := newBrowser(t)
	root := t.TempDir()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	all := []*centre{a, b, c}
	logsIfFailed(t, all)
	x := foundAndStart(t, root, all)
	// The pages are served at localhost: a passkey's relying party is a
	// host name, never an address.
	site := func(y *centre) string { return strings.Replace(x.url[y.name], "127.0.0.1", "localhost", 1) }
	registrarToken, _ := staffMember(a, "registrar")
	clinicianToken, _ := staffMember(a, "clinician")
	officerToken, _ := staffMember(b, "privacy-officer")
	recorderB, _ := staffMember(b, "clinician")

	// The patient makes a passkey in the portal; it shows a code.
	patient := newPerson(t, browserCtx, "patient")
	auth := addVirtualAuthenticator(t, patient.ctx)
	patient.do("open the portal", chromedp.Navigate(site(a)+"/portal/"), chromedp.WaitVisible(chromedp.CSS("#setup")))
	patient.page("portal-setup")
	code := patient.enrol(site(a), "#make-passkey")
	if n := len(virtualCredentials(t, patient.ctx, auth)); n != 1 {
		t.Fatalf("the authenticator holds %d credentials, want the patient's passkey", n)
	}
	patient.page("portal-code")

	// The registrar checks the patient in person and attests the key.
	registrar := newPerson(t, browserCtx, "registrar")
	registrar.do("open the console", chromedp.Navigate(site(a)+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	registrar.page("console-signin")
	registrar.signIn(site(a), registrarToken)
	registrar.attest(site(a), nhsNumber, code)
	registrar.page("console-registrar")

	// The portal goes on by itself: the patient's pseudonym, the forms.
	patient.do("the portal after attestation", chromedp.WaitVisible(chromedp.CSS("#home")))
	attr, err := chromedp.Run(patient.ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-patient"))
	if err != nil {
		t.Fatal(err)
	}
	pseudonym := attr.Value
	if !pseudonymLine.MatchString(pseudonym) {
		t.Fatalf("the portal names the patient %q", pseudonym)
	}
	patient.page("portal-home")

	// centre-b holds a lab report.
	const report = "potassium 4.1 mmol/L, sodium 139 mmol/L"
	x.must(t, 201, "POST", b.name, "/v1/records", recorderB, map[string]any{"patient": pseudonym, "class": "lab-result", "data": []byte(report), "occurred": "2026-11-01"}, nil)

	// The patient consents in the form: clinicians at centre-a, for
	// treatment, their lab results; previewed in plain words and signed
	// with the passkey.
	patient.do("fill in the consent form",
		chromedp.Click(chromedp.CSS("#centre-centre-a")), chromedp.Click(chromedp.CSS("#role-clinician")),
		chromedp.Click(chromedp.CSS("#purpose-treatment")), chromedp.Click(chromedp.CSS("#class-lab-result")), chromedp.Click(chromedp.CSS("#class-observation")))
	patient.do("preview", chromedp.Click(chromedp.CSS("#preview-consent")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	patient.waitText("#preview", "Clinicians at centre-a may see your lab results and observations for treatment.")
	patient.page("portal-consent-preview")
	patient.do("sign the consent", chromedp.Click(chromedp.CSS("#sign")))
	patient.waitText("#result", "in force everywhere")

	// The clinician finds the patient by NHS number: centre-b releases the
	// report, which opens with its provenance.
	clinician := newPerson(t, browserCtx, "clinician")
	clinician.signIn(site(a), clinicianToken)
	clinician.page("console-clinician")
	clinician.findUntil(site(a), nhsNumber, "centre-b", "1 record(s) released")
	clinician.page("console-network")
	clinician.do("open the record", chromedp.Click(chromedp.CSS("li.holder.answered button.link")))
	clinician.waitText("pre.doc", report)
	clinician.waitText("dl.facts", "inclusion proof")
	clinician.page("console-record")

	// The patient sees the clinician's access, and reads and downloads
	// their record, opened in the browser.
	patient.do("ask every centre", chromedp.Click(chromedp.CSS("#view")))
	patient.waitText("#view-result", "clinician")
	patient.waitText("#view-result", "permitted")
	// Once centre-b's witnesses cosign a checkpoint covering the access,
	// the patient's next view shows it proven.
	waitFor(t, time.Minute, "the access proven in a cosigned checkpoint", func() bool {
		patient.do("ask every centre", chromedp.Click(chromedp.CSS("#view")))
		time.Sleep(2 * time.Second)
		got, err := chromedp.Run(patient.ctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll("#view-result tr")).some(r => r.textContent.includes("clinician") && r.textContent.includes("proven"))`))
		return err == nil && got
	})
	patient.do("ask for the records", chromedp.Click(chromedp.CSS("#records")))
	patient.waitText("#records-result", report)
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(patient.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: chromedp.FromContext(patient.ctx).BrowserContextID, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	patient.do("download the record", chromedp.Click(chromedp.CSS("#records-result a[download]")))
	waitFor(t, 30*time.Second, "the downloaded record", func() bool {
		files, _ := os.ReadDir(downloads)
		for _, f := range files {
			if b, err := os.ReadFile(filepath.Join(downloads, f.Name())); err == nil && string(b) == report {
				return true
			}
		}
		return false
	})
	patient.page("portal-records")

	// centre-b's clinician prescribes, centre-c dispenses the first
	// supply: the patient's records show the prescription, read in this
	// browser, and their view the supply, at the issuer and the pharmacy,
	// as centre-a relays it.
	pharmacistC, _ := staffMember(c, "clinician")
	var mr fhirMedicationRequest
	x.must(t, 201, "POST", b.name, "/v1/prescriptions", recorderB, httpapi.PrescriptionBody{Patient: pseudonym,
		Medication: httpapi.MedicationBody{System: "snomed", Code: "322236009", Display: "Paracetamol 500 mg oral tablet"},
		Quantity:   32, Unit: "tablet", Repeats: 1, Dosage: "One or two tablets every 4 to 6 hours"}, &mr)
	x.must(t, 200, "POST", c.name, "/v1/prescriptions/dispense", pharmacistC, httpapi.DispenseBody{Token: mr.token()}, nil)
	patient.do("ask for the records", chromedp.Click(chromedp.CSS("#records")))
	patient.waitText("#records-result dl.rx", "Paracetamol 500 mg oral tablet (SNOMED CT 322236009)")
	patient.waitText("#records-result dl.rx", "32 tablet")
	patient.waitText("#records-result dl.rx", "2 (the first and 1 repeat(s))")
	patient.do("ask every centre", chromedp.Click(chromedp.CSS("#view")))
	for _, holder := range []string{"centre-b", "centre-c"} {
		waitFor(t, 30*time.Second, "the supply in "+holder+"'s part of the view", func() bool {
			got, err := chromedp.Run(patient.ctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll("#view-result section.holder")).some(s =>
				s.querySelector("h3").textContent === "`+holder+`" && s.textContent.includes("supply 1 of centre-b's prescription") && s.textContent.includes("dispensed by centre-c"))`))
			return err == nil && got
		})
	}
	patient.page("portal-prescription")

	// The patient adds a note in their own words, previewed and signed
	// with the passkey: centre-a keeps it as a record the patient wrote,
	// and the clinician they let see their observations reads it.
	const note = "Dizzy in the mornings since the new tablets."
	patient.do("write a note", chromedp.SendKeys(chromedp.CSS("#note-text"), note))
	patient.sign("#add-note", note, "Your note was signed and added to your records here")
	patient.page("portal-note")
	clinician.findUntil(site(a), nhsNumber, "centre-a", "Open record")
	clinician.do("open the note", chromedp.Evaluate[chromedp.Void](`Array.from(document.querySelectorAll("li.holder.answered")).find(li => li.textContent.includes("centre-a")).querySelector("button.link").click()`))
	clinician.waitText("pre.doc", note)
	clinician.waitText("pre.doc", "51855-5")
	// As FHIR, the note is an Observation the patient performed, valid
	// to both validators.
	search := x.must(t, 200, "GET", a.name, "/fhir/Observation?patient="+pseudonym, clinicianToken, nil, nil)
	var notes struct {
		Entry []struct {
			Resource struct {
				ResourceType, ValueString string
				Performer                 []struct{ Reference string }
				Code                      struct {
					Coding []struct{ System, Code string }
				}
			}
		}
	}
	if err := json.Unmarshal(search.raw, &notes); err != nil || len(notes.Entry) != 2 {
		t.Fatalf("GET /fhir/Observation: %v, want the note and the outcome: %s", err, search.raw)
	}
	if r := notes.Entry[0].Resource; r.ResourceType != "Observation" || r.ValueString != note || len(r.Performer) != 1 || r.Performer[0].Reference != "Patient/"+pseudonym ||
		len(r.Code.Coding) != 1 || r.Code.Coding[0].Code != "51855-5" {
		t.Fatalf("the note as FHIR: %+v", r)
	}
	notesFile := filepath.Join(t.TempDir(), "notes.json")
	if err := os.WriteFile(notesFile, search.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// And the query's DocumentReference names the patient as its author,
	// never a Practitioner.
	docs := x.must(t, 200, "POST", a.name, "/v1/query", clinicianToken, httpapi.QueryBody{Patient: pseudonym, Purpose: "treatment", Classes: []string{"observation"}}, nil)
	if !strings.Contains(string(docs.raw), `"author":[{"reference":"Patient/`+pseudonym+`"`) || strings.Contains(string(docs.raw), "Practitioner") {
		t.Fatalf("the note's DocumentReference does not name the patient as its author: %s", docs.raw)
	}
	docsFile := filepath.Join(t.TempDir(), "note-documents.json")
	if err := os.WriteFile(docsFile, docs.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	validateFHIR(t, []string{notesFile, docsFile})

	// The patient registers their glucose meter by the key it shows,
	// signed with the passkey; the meter's readings reach the clinician;
	// revoked in one click, the meter adds nothing more.
	meter := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x6d}, 32))
	patient.do("fill in the device form", chromedp.SendKeys(chromedp.CSS("#device-key"), hex.EncodeToString(meter.Public().(ed25519.PublicKey))),
		chromedp.SetValue(chromedp.CSS("#device-type"), "glucose-meter"), chromedp.Click(chromedp.CSS("#device-class-observation")))
	patient.sign("#add-device", "Your glucose meter, device "+device.ID(meter.Public().(ed25519.PublicKey)).String()+", may add your observations to your records at centre-a", "is registered: it is in force")
	patient.waitText("#devices", "Device "+device.ID(meter.Public().(ed25519.PublicKey)).String())
	patient.page("portal-device")
	var addr httpapi.DeviceAddress
	x.must(t, 200, "GET", a.name, "/v1/devices/address", "", nil, &addr)
	centreA, err := peer.Decode(addr.Centre)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := ledger.ParsePseudonym(pseudonym)
	if err != nil {
		t.Fatal(err)
	}
	readings := deviceReadings(pseudonym)[:1]
	batch := func(nonce byte) httpapi.ReadingsBody {
		raw, err := device.Batch{Federation: addr.Federation, Centre: centreA, Subject: subject, Nonce: [16]byte{nonce, 0xb0}, Time: time.Now().UTC(),
			Readings: [][]byte{[]byte(readings[0])}}.Sign(meter)
		if err != nil {
			t.Fatal(err)
		}
		return httpapi.ReadingsBody{Batch: raw}
	}
	x.must(t, 201, "POST", a.name, "/v1/devices/readings", "", batch(1), nil)
	clinician.findUntil(site(a), nhsNumber, "centre-a", "2 record(s) released")
	patient.sign("#devices button.danger", "adds nothing more to your records at centre-a", "is revoked: it adds nothing more")
	patient.waitText("#devices", "(revoked)")
	if ans, err := x.do("POST", a.name, "/v1/devices/readings", "", batch(2)); err != nil || ans.status != 403 || !strings.Contains(string(ans.raw), "revoked") {
		t.Fatalf("a batch of the revoked meter: %v, %d %s", err, ans.status, ans.raw)
	}

	// A token for centre-c's research team, for a day, one use; then
	// withdrawn in one click.
	patient.do("fill in the token form", chromedp.SetValue(chromedp.CSS("#token-centre"), "centre-c"), chromedp.Click(chromedp.CSS("#token-purpose-research")))
	patient.sign("#token-form button[type=submit]", "Staff at centre-c who present this token may see all your records for research, 1 time(s)", "hand it to the team")
	patient.waitText("#tokens", "Token for centre-c")
	patient.sign("#tokens button.danger", "Withdraw the token", "Your withdrawal was signed")
	patient.waitText("#tokens", "(withdrawn)")

	// A withdrawal whose bytes are changed on the way, after the passkey
	// signed them, is refused by the centre, and changes nothing: the
	// clinician's next view still shows the record released.
	patient.do("tamper with what the page sends", chromedp.Evaluate[chromedp.Void](tamperSubmit))
	patient.sign("#revoke", "Withdraw your consent", "Not signed")
	patient.waitText("#result", "signature")
	patient.do("stop tampering", chromedp.Evaluate[chromedp.Void](`window.fetch = window.untamperedFetch`))
	clinician.find(site(a), nhsNumber)
	clinician.waitText("li.holder.answered", "centre-b")

	// Another site's page posts the console's form in the clinician's
	// browser: the session cookie stays behind (SameSite=Strict) and the
	// centre refuses the request from another origin.
	evil := evilSite(t, site(a)+"/console/find", nhsNumber)
	clinician.do("visit another site", chromedp.Navigate(evil))
	clinician.waitText("body", "Refused")
	clinician.waitText("body", "another")
	clinician.page("console-refused")

	// The patient withdraws; the clinician's next view shows the denial.
	patient.sign("#revoke", "Withdraw your consent", "Your withdrawal was signed")
	clinician.find(site(a), nhsNumber)
	clinician.waitText("li.holder.denied", "centre-b")
	clinician.waitText("li.holder.denied", "Denied")

	// Break the glass: a coded reason, a deliberate confirmation, a
	// banner while it lasts, and a stop.
	clinician.do("break the glass", chromedp.Navigate(site(a)+"/console/"), chromedp.WaitVisible(chromedp.CSS("#glass-patient")),
		chromedp.SendKeys(chromedp.CSS("#glass-patient"), nhsNumber),
		chromedp.SetValue(chromedp.CSS("#glass-reason"), "unconscious"),
		chromedp.Click(chromedp.CSS("#glass-confirm")),
		chromedp.Submit(chromedp.CSS("#glass-patient")))
	clinician.waitText(".alert.emergency", "Emergency access in use")
	clinician.waitText("li.holder.answered", "centre-b")
	clinician.page("console-emergency")
	clinician.do("stop", chromedp.Click(chromedp.CSS(".alert.emergency button.danger")))
	clinician.waitText(".alert.notice", "Emergency access stopped at")

	// centre-b's privacy officer sees the emergency in the feed; the
	// patient is told of it.
	// The privacy officer signs in with the keyboard alone: Tab to the
	// token's field, type, Enter.
	officer := newPerson(t, browserCtx, "privacy officer")
	officer.do("open the console", chromedp.Navigate(site(b)+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	for range 5 {
		id, err := chromedp.Run(officer.ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
		if err != nil {
			t.Fatal(err)
		}
		if id == "token" {
			break
		}
		officer.do("press Tab", chromedp.KeyEvent(kb.Tab))
	}
	officer.do("type the token and press Enter", chromedp.KeyEvent(officerToken), chromedp.KeyEvent(kb.Enter))
	officer.waitText("main h1", "Console")
	officer.waitText("#feed-h + div table", "emergency-start")
	officer.page("console-privacy-officer")
	patient.do("ask every centre again", chromedp.Click(chromedp.CSS("#view")))
	patient.waitText("#notifications", "Emergency access at centre-b")

	// A second patient without passkeys keeps an Ed25519 key in the
	// browser: attested, they consent and see where their records are.
	const nhsSecond = "4010232137"
	second := newPerson(t, browserCtx, "second patient")
	registrar.attest(site(a), nhsSecond, second.enrol(site(a), "#make-browser-key"))
	second.do("the portal after attestation", chromedp.WaitVisible(chromedp.CSS("#home")))
	second.do("fill in the consent form", chromedp.Click(chromedp.CSS("#purpose-research")))
	second.sign("#preview-consent", "Anyone at any centre of the federation may see all your records for research.", "in force everywhere")
	second.do("ask every centre", chromedp.Click(chromedp.CSS("#view")))
	second.waitText("#view-result", "centre(s) asked")

	// A child with no key: their parent makes a passkey in their own
	// portal; the registrar, having seen the birth record, names it the
	// child's delegate for consent and the view. Until a registrar at
	// centre-b approves, the parent signs nothing; then the parent's
	// portal consents for the child and asks where their records are,
	// each document and request naming the delegation.
	const nhsChild = "4857773457"
	parent := newPerson(t, browserCtx, "parent")
	addVirtualAuthenticator(t, parent.ctx)
	parentCode := parent.enrol(site(a), "#make-passkey")
	registrar.do("name the parent the child's delegate", chromedp.Navigate(site(a)+"/console/"), chromedp.WaitVisible(chromedp.CSS("#delegate-nhs")),
		chromedp.SendKeys(chromedp.CSS("#delegate-nhs"), nhsChild), chromedp.SendKeys(chromedp.CSS("#delegate-code"), parentCode),
		chromedp.SetValue(chromedp.CSS("#delegate-relationship"), "parent"),
		chromedp.Click(chromedp.CSS("#delegate-scope-consent")), chromedp.Click(chromedp.CSS("#delegate-scope-view")),
		chromedp.SetValue(chromedp.CSS("#delegate-evidence"), "birth-record"),
		chromedp.SetValue(chromedp.CSS("#delegate-until"), time.Now().AddDate(1, 0, 0).Format(time.DateOnly)),
		chromedp.Submit(chromedp.CSS("#delegate-until")))
	registrar.waitText(".alert.notice", "The delegation is made")
	registrar.page("console-delegate")
	made := regexp.MustCompile(`hash ([0-9a-f]{64})`).FindStringSubmatch(registrar.text(".alert.notice"))
	if made == nil {
		t.Fatalf("the delegation's notice shows no hash: %s", registrar.text(".alert.notice"))
	}
	parent.do("the portal after the delegation", chromedp.WaitVisible(chromedp.CSS("#home")))
	parent.waitText("#portal-status", "You act for patient")
	parent.do("fill in the consent form", chromedp.Click(chromedp.CSS("#purpose-treatment")))
	parent.do("preview before the approval", chromedp.Click(chromedp.CSS("#preview-consent")))
	parent.waitText("#result", "awaiting a second approval")

	registrarTokenB, _ := staffMember(b, "registrar")
	registrarB := newPerson(t, browserCtx, "registrar at centre-b")
	registrarB.signIn(site(b), registrarTokenB)
	registrarB.do("approve the delegation", chromedp.Navigate(site(b)+"/console/"), chromedp.WaitVisible(chromedp.CSS("#approve-nhs")),
		chromedp.SendKeys(chromedp.CSS("#approve-nhs"), nhsChild), chromedp.SendKeys(chromedp.CSS("#approve-att"), made[1]),
		chromedp.Submit(chromedp.CSS("#approve-att")))
	registrarB.waitText(".alert.notice", "Approved")

	parent.sign("#preview-consent", "Anyone at any centre of the federation may see all your records for treatment.", "in force everywhere")
	parent.page("portal-delegate")
	parent.do("ask every centre for the child", chromedp.Click(chromedp.CSS("#view")))
	parent.waitText("#view-result", "centre(s) asked")
	var delegations httpapi.DelegationList
	attr, err = chromedp.Run(parent.ctx, chromedp.AttributeValue(chromedp.CSS("body"), "data-patient"))
	if err != nil {
		t.Fatal(err)
	}
	x.must(t, 200, "GET", a.name, "/v1/patients/"+attr.Value+"/delegations", registrarToken, nil, &delegations)
	if len(delegations.Delegations) != 1 || delegations.Delegations[0].Status != "in force" || delegations.Delegations[0].Relationship != "parent" {
		t.Fatalf("the child's delegations: %+v", delegations)
	}

	// The view lists the parent's delegation; the parent steps down in
	// one click, and their portal acts for the child no more.
	parent.waitText("#delegations", "You act for the patient (consent, view)")
	parent.sign("#delegations button.danger", "Step down from the delegation", "Your withdrawal was signed")
	parent.waitText("#portal-status", "You stepped down from the delegation")
	x.must(t, 200, "GET", a.name, "/v1/patients/"+attr.Value+"/delegations", registrarToken, nil, &delegations)
	if len(delegations.Delegations) != 1 || delegations.Delegations[0].Status != "revoked" {
		t.Fatalf("the child's delegations after the parent stepped down: %+v", delegations)
	}

	// The second patient names a carer to see where their records are:
	// the carer makes a key in their own portal and reads it out; the
	// patient signs the delegation in theirs and hands over their patient
	// number and the delegation, with which the carer's portal acts for
	// them.
	carer := newPerson(t, browserCtx, "carer")
	carer.enrol(site(a), "#make-browser-key")
	carerKey := carer.text("#key-id")
	second.do("name the carer", chromedp.SendKeys(chromedp.CSS("#delegate-key"), carerKey),
		chromedp.SetValue(chromedp.CSS("#delegate-relationship"), "carer"), chromedp.Click(chromedp.CSS("#delegate-scope-view")))
	second.sign("#add-delegate", "Your carer, whose key is "+carerKey+", may see where your records are and who looked for you", "in force everywhere")
	second.waitText("#delegate-handover", "Give them your patient number")
	handover := regexp.MustCompile(`patient number ([0-9a-f]{64}) and the delegation ([0-9a-f]{32})`).FindStringSubmatch(second.text("#delegate-handover"))
	if handover == nil {
		t.Fatalf("the hand-over reads %q", second.text("#delegate-handover"))
	}
	carer.do("act for the patient", chromedp.SendKeys(chromedp.CSS("#act-patient"), handover[1]), chromedp.SendKeys(chromedp.CSS("#act-delegation"), handover[2]),
		chromedp.Click(chromedp.CSS("#act-for")))
	carer.do("the portal acting for the patient", chromedp.WaitVisible(chromedp.CSS("#home")))
	carer.waitText("#portal-status", "You act for patient "+handover[1])
	carer.do("ask every centre for the patient", chromedp.Click(chromedp.CSS("#view")))
	carer.waitText("#view-result", "centre(s) asked")
	carer.waitText("#delegations", "You act for the patient (view)")
	// Outside its scope, the carer's consent is refused before it is shown.
	carer.do("try to consent", chromedp.Click(chromedp.CSS("#preview-consent")))
	carer.waitText("#result", "does not let its delegate give or withdraw consent")
}

// tamperSubmit makes the page's fetch flip a bit of the draft it submits
// after signing: what an attacker between the browser's signature and
// the centre would do.
const tamperSubmit = `
window.untamperedFetch = window.untamperedFetch || window.fetch;
window.fetch = (url, opts) => {
  if (String(url).endsWith("/portal/submit")) {
    const body = JSON.parse(opts.body);
    const bytes = Uint8Array.from(atob(body.draft), (c) => c.charCodeAt(0));
    bytes[bytes.length - 1] ^= 1;
    body.draft = btoa(String.fromCharCode(...bytes));
    opts = { ...opts, body: JSON.stringify(body) };
  }
  return window.untamperedFetch(url, opts);
};`

// evilSite serves, at another origin, a page whose script posts a form
// to target at once: a cross-site request forgery.
func evilSite(t *testing.T, target, patient string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>prize</title><script src="/go.js" defer></script></head>
<body><form id="f" method="post" action=%q><input name="patient" value=%q><input name="csrf" value="guessed"></form></body></html>`, target, patient)
	})
	mux.HandleFunc("/go.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.getElementById("f").submit();`)
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}
