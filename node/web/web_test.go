package web_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
	"github.com/medfed/medfed/node/web"
	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// TestMain runs the pages' tests, a federation of real centres in
// process, in their turn with the other heavy suites.
func TestMain(m *testing.M) { os.Exit(nodetest.RunInTurn(m)) }

const nhs = "943 476 5919" // a valid NHS number (mod-11), synthetic

// site is centre-a's pages over real TLS, with centre-b beside it; skew
// moves the pages' clock (sessions expire).
type site struct {
	a, b   *centre.Node
	staff  *api.StaffStore
	base   string // https://localhost:port
	client *http.Client
	tls    *tls.Config
	skew   atomic.Int64
}

func start(t testing.TB) *site {
	t.Helper()
	root := t.TempDir()
	cfgs := []centre.Config{nodetest.Config(t, root, "centre-a"), nodetest.Config(t, root, "centre-b")}
	nodetest.Found(t, cfgs...)
	s := &site{a: nodetest.Start(t, cfgs[0]), b: nodetest.Start(t, cfgs[1])}
	st, err := api.OpenStaff(cfgs[0].Data.Dir, s.a.Centre.RowKey(api.StaffFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.staff = st
	pages, err := web.New(web.Options{Node: s.a, Staff: st, Now: func() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	mounts := map[string]http.Handler{}
	for _, p := range web.Paths {
		mounts[p] = pages
	}
	srv, err := api.New(api.Options{Node: s.a, Staff: st, Pages: mounts})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.StartTLS()
	t.Cleanup(hs.Close)
	u, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.base = "https://localhost:" + u.Port()
	s.tls = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	s.tls.ServerName = "example.com" // what httptest's certificate names
	s.client = s.browser(t)
	nodetest.Eventually(t, 10*time.Second, "the founders connect", func() bool {
		_, err := s.a.Ready()
		return err == nil
	})
	return s
}

// browser is a client with its own cookies, trusting the test server's
// certificate (made for example.com) at https://localhost.
func (s *site) browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.tls
	return &http.Client{Jar: jar, Timeout: time.Minute, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type reply struct {
	status int
	body   []byte
}

func (s *site) do(t testing.TB, c *http.Client, method, path, contentType, origin string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, b}
}

// json posts v to a portal route as the portal's script does.
func (s *site) json(t testing.TB, path string, v, out any) reply {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(t, s.client, "POST", path, "application/json", s.base, b)
	if r.status == http.StatusOK && out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, r.body)
		}
	}
	return r
}

// form posts a console form as a browser does.
func (s *site) form(t testing.TB, c *http.Client, path string, v url.Values) reply {
	t.Helper()
	return s.do(t, c, "POST", path, "application/x-www-form-urlencoded", s.base, []byte(v.Encode()))
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs a staff member in and returns their browser and the
// session's CSRF token.
func (s *site) signIn(t testing.TB, role string) (*http.Client, string) {
	t.Helper()
	tok, _, err := s.staff.Add(context.Background(), role, "")
	if err != nil {
		t.Fatal(err)
	}
	c := s.browser(t)
	if r := s.form(t, c, "/console/signin", url.Values{"token": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", r.status, r.body)
	}
	r := s.do(t, c, "GET", "/console/", "", "", nil)
	m := csrfField.FindSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("the console after signing in: %d %s", r.status, r.body)
	}
	return c, string(m[1])
}

type draft struct {
	What      string
	Draft     []byte
	Signed    []byte
	Challenge []byte
	Preview   []string
}

// passkeyProof is what the portal's script posts for an assertion.
func passkeyProof(t *testing.T, pk *passkeytest.Passkey, a wire.Passkey) map[string]any {
	return map[string]any{"rpId": a.RPID, "publicKey": pk.SPKI(t), "authenticatorData": a.AuthData, "clientDataJSON": a.ClientData, "signature": a.Sig}
}

// A patient's passkey is enrolled in the portal, attested by a
// registrar at the console with the code, and signs a consent made from
// the form: it is the contract medfed consent grant makes of the same
// terms, in force at both centres. Each refusal changes nothing: a draft
// changed after signing, an assertion replayed on another draft, a form
// without the session's CSRF token or from another origin, a form field
// no form offers, and a session gone idle.
func TestPasskeyPatientAndRegistrar(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	pk := passkeytest.New(t, "localhost")
	pk.Origin = s.base

	var enrolled struct{ Key, Code string }
	if r := s.json(t, "/portal/enrol", map[string]any{"kind": "passkey", "rpId": "localhost", "publicKey": pk.SPKI(t)}, &enrolled); r.status != 200 {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	if enrolled.Key != hex.EncodeToString(pk.ID(t)) || len(enrolled.Code) != 9 {
		t.Fatalf("enrolled as %+v, want the passkey's ID and a code", enrolled)
	}
	if r := s.json(t, "/portal/enrol", map[string]any{"kind": "passkey", "rpId": "evil.example", "publicKey": pk.SPKI(t)}, nil); r.status != 400 {
		t.Errorf("a passkey for another site: %d %s", r.status, r.body)
	}

	registrar, csrf := s.signIn(t, "registrar")
	attest := url.Values{"nhs": {nhs}, "code": {strings.ToLower(enrolled.Code)}}
	if r := s.form(t, registrar, "/console/attest", attest); r.status != http.StatusForbidden || !bytes.Contains(r.body, []byte("security token")) {
		t.Fatalf("attest without the CSRF token: %d %s", r.status, r.body)
	}
	attest.Set("csrf", csrf)
	if r := s.do(t, registrar, "POST", "/console/attest", "application/x-www-form-urlencoded", "https://evil.example", []byte(attest.Encode())); r.status != http.StatusForbidden {
		t.Fatalf("attest from another origin: %d %s", r.status, r.body)
	}
	var status struct {
		Attested  bool
		Pseudonym string
	}
	s.json(t, "/portal/enrolment", map[string]string{"code": enrolled.Code, "key": enrolled.Key}, &status)
	if status.Attested {
		t.Fatal("attested by a refused form")
	}
	if r := s.form(t, registrar, "/console/attest", attest); r.status != 200 || !bytes.Contains(r.body, []byte("passkey is attested")) {
		t.Fatalf("attest: %d %s", r.status, r.body)
	}
	if r := s.json(t, "/portal/enrolment", map[string]string{"code": enrolled.Code, "key": enrolled.Key}, &status); r.status != 200 || !status.Attested {
		t.Fatalf("the enrolment after attesting: %d %s", r.status, r.body)
	}
	// The code is spent: typed again, for another patient, it attests
	// nothing.
	again := url.Values{"nhs": {"401 023 2137"}, "code": {enrolled.Code}, "csrf": {csrf}}
	if r := s.form(t, registrar, "/console/attest", again); r.status != http.StatusNotFound {
		t.Fatalf("a spent code: %d %s", r.status, r.body)
	}
	// The console's forms are for their roles: a registrar does not
	// query, a researcher never resolves an NHS number.
	if r := s.form(t, registrar, "/console/find", url.Values{"patient": {nhs}, "csrf": {csrf}}); r.status != http.StatusForbidden {
		t.Errorf("a registrar's query: %d %s", r.status, r.body)
	}
	researcher, rcsrf := s.signIn(t, "researcher")
	if r := s.form(t, researcher, "/console/find", url.Values{"patient": {nhs}, "csrf": {rcsrf}}); r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte("by pseudonym")) {
		t.Errorf("a researcher's query by NHS number: %d %s", r.status, r.body)
	}
	if r := s.form(t, researcher, "/console/emergency/stop", url.Values{"patient": {status.Pseudonym}, "csrf": {rcsrf}}); r.status != http.StatusForbidden {
		t.Errorf("a researcher's emergency stop: %d %s", r.status, r.body)
	}
	if r := s.json(t, "/portal/enrolment", map[string]string{"code": enrolled.Code, "key": strings.Repeat("0", 64)}, nil); r.status != 404 {
		t.Errorf("the code with another key: %d %s", r.status, r.body)
	}

	// The consent form, previewed in plain words and signed.
	form := map[string]any{"centres": []string{"centre-b"}, "roles": []string{"clinician"}, "purposes": []string{"treatment"}, "classes": []string{"lab-result"}, "until": "2027-06-01"}
	ask := map[string]any{"what": "contract", "pseudonym": status.Pseudonym, "key": enrolled.Key, "passkey": true, "form": form}
	var d draft
	if r := s.json(t, "/portal/draft", ask, &d); r.status != 200 {
		t.Fatalf("draft: %d %s", r.status, r.body)
	}
	if want := "Clinicians at centre-b may see your lab results for treatment until 1 June 2027."; d.Preview[0] != want {
		t.Errorf("preview %q, want %q", d.Preview[0], want)
	}
	var challenge [32]byte
	copy(challenge[:], d.Challenge)
	assertion := pk.Assert(t, challenge)
	submit := func(draftBytes []byte, a wire.Passkey) reply {
		return s.json(t, "/portal/submit", map[string]any{"what": "contract", "draft": draftBytes, "key": enrolled.Key, "passkey": passkeyProof(t, pk, a)}, nil)
	}
	size := s.a.Centre.Ledger.Size()
	tampered := bytes.Clone(d.Draft)
	tampered[len(tampered)-1] ^= 1 // the contract's last field
	if r := submit(tampered, assertion); r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
		t.Fatalf("a tampered draft: %d %s", r.status, r.body)
	}
	bad := form
	bad["centres"] = []string{"centre-z"}
	if r := s.json(t, "/portal/draft", ask, nil); r.status != 400 || !bytes.Contains(r.body, []byte("centre-z")) {
		t.Fatalf("a form naming no member: %d %s", r.status, r.body)
	}
	form["centres"] = []string{"centre-b"}
	if s.a.Centre.Ledger.Size() != size {
		t.Fatal("a refused consent reached the ledger")
	}
	var del api.ConsentDelivery
	if r := s.json(t, "/portal/submit", map[string]any{"what": "contract", "draft": d.Draft, "key": enrolled.Key, "passkey": passkeyProof(t, pk, assertion)}, &del); r.status != 200 || !del.Confirmed {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	for _, n := range []*centre.Node{s.a, s.b} {
		v, err := n.ShowConsent(ctx, ledgerPseudonym(t, status.Pseudonym))
		if err != nil || v.Standing != centre.InForce {
			t.Fatalf("%s: %+v %v", n.Name(), v, err)
		}
		// The contract medfed consent grant makes of the same terms.
		spec, err := consent.ParseSpec([]byte(`{"base":"opt-out","provision":[{"type":"permit","actor":[{"centre":"centre-b","role":"clinician"}],"purpose":["treatment"],"class":["lab-result"],"period":{"end":"2027-06-01T00:00:00Z"}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(v.Contract.Terms)
		want, _ := json.Marshal(spec)
		if !bytes.Equal(got, want) {
			t.Errorf("%s holds terms\n %s, want\n %s", n.Name(), got, want)
		}
	}

	// The assertion again, on the revocation's draft: refused.
	ask = map[string]any{"what": "revocation", "pseudonym": status.Pseudonym, "key": enrolled.Key, "passkey": true}
	var rev draft
	if r := s.json(t, "/portal/draft", ask, &rev); r.status != 200 {
		t.Fatalf("revocation draft: %d %s", r.status, r.body)
	}
	if r := s.json(t, "/portal/submit", map[string]any{"what": "revocation", "draft": rev.Draft, "key": enrolled.Key, "passkey": passkeyProof(t, pk, assertion)}, nil); r.status != http.StatusForbidden {
		t.Fatalf("a replayed assertion: %d %s", r.status, r.body)
	}

	// A registrar names a carer (awaiting a second approval): the
	// patient's view lists the delegation.
	carer := make([]byte, 32)
	carer[0] = 0xca
	if _, _, _, err := s.a.Delegate(ctx, consent.Delegation{Subject: ledgerPseudonym(t, status.Pseudonym), Delegate: carer, Relationship: consent.Carer,
		Scope: consent.ScopeView, Evidence: consent.CourtOrder, Expires: time.Now().UTC().Add(time.Hour).Truncate(time.Second), Staff: ledger.StaffID{9}}); err != nil {
		t.Fatal(err)
	}

	// The patient's view, signed by the passkey.
	var view draft
	if r := s.json(t, "/portal/draft", map[string]any{"what": "view", "pseudonym": status.Pseudonym, "key": enrolled.Key, "passkey": true}, &view); r.status != 200 {
		t.Fatalf("view draft: %d %s", r.status, r.body)
	}
	copy(challenge[:], view.Challenge)
	var res struct {
		api.PatientResult
		Delegations []api.ConsentDelegation
	}
	if r := s.json(t, "/portal/submit", map[string]any{"what": "view", "draft": view.Draft, "key": enrolled.Key, "passkey": passkeyProof(t, pk, pk.Assert(t, challenge))}, &res); r.status != 200 || res.Asked != 2 {
		t.Fatalf("view: %d %s", r.status, r.body)
	}
	if len(res.Delegations) != 1 || res.Delegations[0].Relationship != "carer" || res.Delegations[0].Status != "awaiting a second approval" {
		t.Fatalf("the patient's view lists the delegations %+v", res.Delegations)
	}

	// A note or a device's registration the form gets wrong is refused
	// at its draft, with nothing on the ledger; a note signed for one
	// draft and sent with another is refused at its submission.
	size = s.a.Centre.Ledger.Size()
	meter := strings.Repeat("ab", 32)
	for name, body := range map[string]map[string]any{
		"an empty note":            {"what": "note", "note": " \n "},
		"a note past its length":   {"what": "note", "note": strings.Repeat("a", api.MaxNoteText+1)},
		"a device key of 31 bytes": {"what": "device", "device": map[string]any{"key": meter[:62], "type": "glucose-meter", "classes": []string{"observation"}, "days": 30}},
		"a device of no type":      {"what": "device", "device": map[string]any{"key": meter, "type": "toaster", "classes": []string{"observation"}, "days": 30}},
		"a device for no days":     {"what": "device", "device": map[string]any{"key": meter, "type": "scale", "classes": []string{"observation"}, "days": 0}},
		"a device for 3 years":     {"what": "device", "device": map[string]any{"key": meter, "type": "scale", "classes": []string{"observation"}, "days": 1096}},
		"a device adding letters":  {"what": "device", "device": map[string]any{"key": meter, "type": "scale", "classes": []string{"clinic-letter"}, "days": 30}},
		"a device adding nothing":  {"what": "device", "device": map[string]any{"key": meter, "type": "scale", "days": 30}},
		"a device's form missing":  {"what": "device"},
		"a revocation of no key":   {"what": "device-revocation", "deviceKey": "not hex"},
		"the patient's own key":    {"what": "device", "device": map[string]any{"key": enrolled.Key, "type": "scale", "classes": []string{"observation"}, "days": 30}},
	} {
		body["pseudonym"], body["key"], body["passkey"] = status.Pseudonym, enrolled.Key, true
		if r := s.json(t, "/portal/draft", body, nil); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	var note draft
	if r := s.json(t, "/portal/draft", map[string]any{"what": "note", "note": "a note", "pseudonym": status.Pseudonym, "key": enrolled.Key, "passkey": true}, &note); r.status != 200 {
		t.Fatalf("note draft: %d %s", r.status, r.body)
	}
	if r := s.json(t, "/portal/submit", map[string]any{"what": "note", "draft": note.Draft, "key": enrolled.Key, "passkey": passkeyProof(t, pk, pk.Assert(t, challenge))}, nil); r.status != http.StatusForbidden {
		t.Errorf("a note with the view's assertion: %d %s", r.status, r.body)
	}
	if s.a.Centre.Ledger.Size() != size {
		t.Fatal("a refused note or device reached the ledger")
	}
	copy(challenge[:], note.Challenge)
	var stored api.ReadingsStored
	if r := s.json(t, "/portal/submit", map[string]any{"what": "note", "draft": note.Draft, "key": enrolled.Key, "passkey": passkeyProof(t, pk, pk.Assert(t, challenge))}, &stored); r.status != 200 || stored.Count != 1 {
		t.Fatalf("the note: %d %s", r.status, r.body)
	}

	// A session gone idle is over: the console asks to sign in again.
	s.skew.Store(int64(web.IdleTimeout + time.Minute))
	if r := s.form(t, registrar, "/console/attest", attest); r.status != http.StatusUnauthorized || !bytes.Contains(r.body, []byte("expired")) {
		t.Fatalf("an expired session: %d %s", r.status, r.body)
	}
}

// The registrar's delegation form and a delegate's drafts: bad input is
// refused, saying why, and changes nothing.
func TestDelegateForms(t *testing.T) {
	s := start(t)
	registrar, csrf := s.signIn(t, "registrar")
	// A delegation the registrar's form gets wrong, or for a code no key
	// waits with, changes nothing; a draft under a delegation that does
	// not name the key is refused.
	size := s.a.Centre.Ledger.Size()
	good := url.Values{"nhs": {"401 023 2137"}, "code": {"0000-0000"}, "relationship": {"parent"}, "scope": {"consent"}, "evidence": {"birth-record"}, "until": {"2030-01-01"}, "csrf": {csrf}}
	for name, c := range map[string]struct {
		field, value string
		status       int
	}{
		"an unknown relationship":  {"relationship", "neighbour", http.StatusBadRequest},
		"an unknown scope":         {"scope", "everything", http.StatusBadRequest},
		"no scope":                 {"scope", "", http.StatusBadRequest},
		"an unknown evidence":      {"evidence", "hearsay", http.StatusBadRequest},
		"no date":                  {"until", "soon", http.StatusBadRequest},
		"a code no key waits with": {"code", "1234-5678", http.StatusNotFound},
	} {
		v := url.Values{}
		for k, vs := range good {
			v[k] = vs
		}
		v.Set(c.field, c.value)
		if c.value == "" {
			v.Del(c.field)
		}
		if r := s.form(t, registrar, "/console/delegate", v); r.status != c.status {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	for name, c := range map[string]struct {
		delegation string
		status     int
	}{
		"a delegation that is no ID":      {"zz", http.StatusBadRequest},
		"a delegation naming another key": {strings.Repeat("ab", 16), http.StatusForbidden},
	} {
		ask := map[string]any{"what": "revocation", "pseudonym": strings.Repeat("cd", 32), "key": strings.Repeat("ef", 32), "passkey": true, "delegation": c.delegation}
		if r := s.json(t, "/portal/draft", ask, nil); r.status != c.status {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if s.a.Centre.Ledger.Size() != size {
		t.Fatal("a refused delegation reached the ledger")
	}

}

// Every answer carries the Content-Security-Policy without inline script,
// and the session cookie is Secure, HttpOnly and SameSite=Strict.
func TestPagesHeaders(t *testing.T) {
	s := start(t)
	tok, _, err := s.staff.Add(context.Background(), "clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", s.base+"/console/signin", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.base)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-medfed-session=", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("the session cookie %q lacks %s", set, want)
		}
	}
	for _, p := range []string{"/portal/", "/console/", "/assets/portal.js"} {
		resp, err := s.client.Get(s.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, CSP %q", p, resp.StatusCode, csp)
		}
	}
}

func ledgerPseudonym(t *testing.T, s string) ledger.Pseudonym {
	t.Helper()
	p, err := ledger.ParsePseudonym(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
