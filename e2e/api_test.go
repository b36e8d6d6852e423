package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
)

// httpAnswer is one answer of a centre's HTTP API.
type httpAnswer struct {
	status int
	header http.Header
	raw    []byte
}

// api calls the HTTP APIs of the centres, as an EHR would: over HTTPS,
// pinning each centre's own certificate.
type api struct {
	url     map[string]string // by centre name, from api.listen in configs/
	dir     map[string]string // their data directories, where api.crt is
	mu      sync.Mutex
	clients map[string]*http.Client // once the centre's certificate is there
}

func newAPI() *api {
	return &api{url: map[string]string{}, dir: map[string]string{}, clients: map[string]*http.Client{}}
}

// add makes centre c's API callable.
func (x *api) add(t *testing.T, c *centre) {
	x.url[c.name], x.dir[c.name] = apiURL(t, c), c.dir
}

// client returns the client that pins centre's certificate, made once
// the node has made the certificate (at its first start).
func (x *api) client(centre string) (*http.Client, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c := x.clients[centre]; c != nil {
		return c, nil
	}
	c, err := pinnedClient(x.dir[centre], 15*time.Second)
	if err != nil {
		return nil, err
	}
	x.clients[centre] = c
	return c, nil
}

// do sends one request; a transport error (a node down, a connection
// reset by a kill) is returned, not a test failure, so that callers that
// expect them can carry on.
func (x *api) do(method, centre, path, token string, body any) (httpAnswer, error) {
	return x.doContext(context.Background(), method, centre, path, token, body)
}

// doContext is do with the request's context (a deadline, a trace).
func (x *api) doContext(ctx context.Context, method, centre, path, token string, body any) (httpAnswer, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return httpAnswer{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, x.url[centre]+path, rd)
	if err != nil {
		return httpAnswer{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client, err := x.client(centre)
	if err != nil {
		return httpAnswer{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpAnswer{}, err
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, raw: raw}, nil
}

// must sends one request that must be answered with want, and decodes the
// answer into out (unless nil).
func (x *api) must(t *testing.T, want int, method, centre, path, token string, body, out any) httpAnswer {
	t.Helper()
	a, err := x.do(method, centre, path, token, body)
	if err != nil {
		t.Fatalf("%s %s at %s: %v", method, path, centre, err)
	}
	if a.status != want {
		t.Fatalf("%s %s at %s: status %d, want %d: %s", method, path, centre, a.status, want, a.raw)
	}
	if out != nil {
		if err := json.Unmarshal(a.raw, out); err != nil {
			t.Fatalf("%s %s at %s: %v in %s", method, path, centre, err, a.raw)
		}
	}
	return a
}

// ready reports whether centre's /readyz answers 200 with at least
// connected other members connected.
func (x *api) ready(centre string, connected int) func() bool {
	return func() bool {
		ans, err := x.do("GET", centre, "/readyz", "", nil)
		var r httpapi.Readiness
		return err == nil && ans.status == 200 && json.Unmarshal(ans.raw, &r) == nil && r.Connected >= connected
	}
}

// token issues a staff token of role at centre c ("medfed staff add"),
// with its node running or not.
func (c *centre) token(role string) string {
	c.t.Helper()
	tok := strings.TrimSpace(c.run("staff", "add", "--role", role))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		c.t.Fatalf("%s: staff add printed %q, not a token", c.name, tok)
	}
	return tok
}

// witnessesAgree checks, once each centre's whole ledger is final, that
// its final checkpoint is cosigned by the charter's witness quorum
// (counting the log's own signature; the others' cosignatures make up the
// rest) and that no centre holds evidence of a member signing two
// histories. It returns each centre's final checkpoint.
func (x *api) witnessesAgree(t *testing.T, all []*centre, admin map[string]string) map[string]*httpapi.CheckpointStatus {
	t.Helper()
	quorum := federation.DefaultPolicy(len(all)).WitnessQuorum
	final := map[string]*httpapi.CheckpointStatus{}
	for _, y := range all {
		var st httpapi.LedgerStatus
		waitFor(t, 15*time.Second, y.name+"'s whole ledger is final", func() bool {
			st = httpapi.LedgerStatus{}
			x.must(t, 200, "GET", y.name, "/v1/ledger", admin[y.name], nil, &st)
			return st.Final != nil && st.Final.Size == st.Size
		})
		if len(st.Final.Cosigners) < quorum-1 || slices.Contains(st.Final.Cosigners, y.name) || len(st.Evidence) != 0 {
			t.Fatalf("%s: final checkpoint of size %d cosigned by %v (quorum %d with its own); evidence %v", y.name, st.Final.Size, st.Final.Cosigners, quorum, st.Evidence)
		}
		var ev struct {
			Evidence []httpapi.EvidenceStatus
		}
		if ans := x.must(t, 200, "GET", y.name, "/v1/federation/evidence", admin[y.name], nil, &ev); ev.Evidence == nil || len(ev.Evidence) != 0 {
			t.Fatalf("%s holds evidence of equivocation: %s", y.name, ans.raw)
		}
		t.Logf("%s: ledger of %d entries, final, cosigned by %v", y.name, st.Size, st.Final.Cosigners)
		final[y.name] = st.Final
	}
	return final
}

// apiURL reads api.listen from a centre's configuration file.
func apiURL(t *testing.T, c *centre) string {
	t.Helper()
	raw, err := os.ReadFile(c.config())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^api:\s*\n\s+listen:\s*(\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("%s has no api.listen", c.config())
	}
	return "https://" + string(m[1])
}

// pinnedClient returns a client that trusts only the certificate the
// centre with data directory dir made for its API.
func pinnedClient(dir string, timeout time.Duration) (*http.Client, error) {
	tc, err := httpapi.PinnedClient(filepath.Join(dir, httpapi.CertFile))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

// searchset is the part of a query's FHIR Bundle the test reads.
type searchset struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Content      []struct {
				Attachment struct {
					Data string `json:"data"`
				} `json:"attachment"`
			} `json:"content"`
			Issue []struct {
				Diagnostics string `json:"diagnostics"`
			} `json:"issue"`
		} `json:"resource"`
	} `json:"entry"`
}

// issues returns what the Bundle's OperationOutcome says, one line per
// holder (and one for an incomplete lookup).
func (s searchset) issues() []string {
	var out []string
	for _, e := range s.Entry {
		if e.Resource.ResourceType == "OperationOutcome" {
			for _, i := range e.Resource.Issue {
				out = append(out, i.Diagnostics)
			}
		}
	}
	return out
}

// diagnostics joins what the Bundle's OperationOutcome says about each
// holder.
func (s searchset) diagnostics() string { return strings.Join(s.issues(), " | ") }

// acked is one record the API acknowledged with 201.
type acked struct {
	holder  string
	index   int64
	payload string
	at      time.Time
}

// released returns the Bundle's records as "holder index payload" lines
// (a DocumentReference's id is holder-index).
func (s searchset) released(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range s.Entry {
		r := e.Resource
		if r.ResourceType != "DocumentReference" {
			continue
		}
		cut := strings.LastIndex(r.ID, "-")
		if cut < 0 || len(r.Content) != 1 {
			t.Fatalf("a released record with id %q and %d contents", r.ID, len(r.Content))
		}
		payload, err := base64.StdEncoding.DecodeString(r.Content[0].Attachment.Data)
		if err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
		line := r.ID[:cut] + " " + r.ID[cut+1:] + " " + string(payload)
		if out[line] {
			t.Fatalf("record %s released twice", line)
		}
		out[line] = true
	}
	return out
}

// foundAndStart has the first of all found the federation with the rest
// in one go (join requests, init, signatures, install), starts every
// node, waits until each one's /readyz says it reaches all the others,
// so that the pseudonym threshold and the witnesses are there, and has
// them generate the pseudonym key (federation keygen).
// It returns the client of their APIs.
func foundAndStart(t *testing.T, root string, all []*centre) *api {
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
		if out := c.run("federation", "install", file("charter.txt")); !strings.Contains(out, "version 1") {
			t.Fatalf("%s: install said %q", c.name, out)
		}
		x.add(t, c)
		c.start()
	}
	for _, c := range all {
		waitFor(t, 30*time.Second, fmt.Sprintf("%s is ready and reaches the %d others", c.name, len(all)-1), x.ready(c.name, len(all)-1))
	}
	// The founders generate the pseudonym key, a majority of them needed.
	var names []string
	for _, c := range all {
		names = append(names, c.name)
	}
	keyCeremony(t, "keygen", len(all)/2+1, names, all...)
	return x
}

func (a acked) line() string { return fmt.Sprintf("%s %d %s", a.holder, a.index, a.payload) }

// optedIn is a patient registered, with a key attested and an opt-in
// contract confirmed.
type optedIn struct {
	id       string // the pseudonym, as the API names the patient
	subject  ledger.Pseudonym
	key      ed25519.PrivateKey
	contract consent.ID
}

// optIn registers the patient with NHS number at centre reg (answered
// with a Patient named by a pseudonym, without the number), attests a
// new key for them at attest, and posts their opt-in contract at post,
// which a majority must confirm; registrar is each centre's registrar
// token.
func (x *api) optIn(t *testing.T, registrar map[string]string, number, reg, attest, post string) optedIn {
	t.Helper()
	var patient struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	ans := x.must(t, 200, "POST", reg, "/v1/patients", registrar[reg], map[string]any{"identifier": map[string]string{"system": "nhs", "value": number}}, &patient)
	if patient.ResourceType != "Patient" || !pseudonymLine.MatchString(patient.ID) ||
		bytes.Contains(ans.raw, []byte(number)) || bytes.Contains(ans.raw, []byte(strings.ReplaceAll(number, " ", ""))) {
		t.Fatalf("register at %s: %s", reg, ans.raw)
	}
	o := optedIn{id: patient.ID, contract: consent.NewID()}
	var err error
	if o.subject, err = ledger.ParsePseudonym(o.id); err != nil {
		t.Fatal(err)
	}
	if o.key, _, err = consent.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	x.must(t, 200, "POST", attest, "/v1/patients/"+o.id+"/keys", registrar[attest], map[string]any{"publicKey": consent.FormatPublicKey(o.key.Public().(ed25519.PublicKey))}, nil)
	doc, err := consent.SignContract(o.key, consent.Contract{ID: o.contract, Version: 1, Federation: "medfed-demo",
		Subject: o.subject, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn})
	if err != nil {
		t.Fatal(err)
	}
	var delivery httpapi.ConsentDelivery
	if grant := x.must(t, 200, "POST", post, "/v1/consent", "", map[string]any{"document": doc}, &delivery); !delivery.Confirmed {
		t.Fatalf("the contract posted at %s was not confirmed by a majority: %s", post, grant.raw)
	}
	return o
}

// Four centres, each a real "medfed node" from configs/, found the
// federation together and serve the HTTP API. A patient is registered,
// attests a key and opts in; three holders take records continuously
// while a clinician at centre-a queries; centre-c's node is killed with
// SIGKILL mid-run and restarted. Afterwards every record the API
// acknowledged is proven in a final checkpoint at its holder and released
// by a query, every ledger verifies, the witness quorum cosigned every
// ledger and no centre holds evidence of two histories.
func TestFourCentresOverHTTPSurviveSIGKILL(t *testing.T) {
	began := time.Now()
	root := t.TempDir()
	a, b, c, d := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c"), newCentre(t, root, "centre-d")
	all := []*centre{a, b, c, d}
	holders := []*centre{b, c, d}
	var killedLogs []byte // centre-c's node's logs before the kill
	// Registered before any node starts, so it runs after the helpers'
	// cleanups have ended the nodes and their logs are complete.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if killedLogs != nil {
			t.Logf("centre-c before SIGKILL:\n%s", killedLogs)
		}
		for _, x := range all {
			if x.logs != nil {
				t.Logf("%s:\n%s", x.name, x.logs)
			}
		}
	})

	// All four found the federation in one go.
	x := foundAndStart(t, root, all)
	t.Logf("founded and ready after %v", time.Since(began).Round(time.Millisecond))

	// Staff tokens, issued while the nodes run.
	registrar := a.token("registrar")
	clinician, admin := map[string]string{}, map[string]string{}
	for _, y := range all {
		clinician[y.name], admin[y.name] = y.token("clinician"), y.token("admin")
	}

	// The patient: registered at centre-a, a key attested, opted in.
	p := x.optIn(t, map[string]string{a.name: registrar}, "943 476 5919", a.name, a.name, a.name).id

	// Continuous intake at the three holders, and queries from centre-a,
	// for 12 s; centre-c is killed 4 s in and restarted 2 s later.
	// Transport errors and non-201 answers are expected while centre-c
	// is down: only a 201 acknowledges a record.
	ctx, stopIntake := context.WithTimeout(context.Background(), 12*time.Second)
	var (
		mu       sync.Mutex
		acks     []acked
		sent     = map[string]bool{} // every payload sent, acknowledged or not
		refused  = map[string]int{}  // non-201 answers and transport errors, by holder
		outcomes []string            // what each query during the run said
		wg       sync.WaitGroup
	)
	// On an early failure, the callers stop before the nodes do.
	defer func() {
		stopIntake()
		wg.Wait()
	}()
	location := regexp.MustCompile(`^/v1/records/(\d+)$`)
	for _, h := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				payload := fmt.Sprintf("synthetic result %s-%d", strings.TrimPrefix(h.name, "centre-"), i)
				mu.Lock()
				sent[h.name+" "+payload] = true
				mu.Unlock()
				ans, err := x.do("POST", h.name, "/v1/records", clinician[h.name], map[string]any{"patient": p, "class": "lab-result",
					"data": []byte(payload), "occurred": "2026-11-01"})
				mu.Lock()
				if m := location.FindStringSubmatch(ans.header.Get("Location")); err == nil && ans.status == 201 && m != nil {
					index, _ := strconv.ParseInt(m[1], 10, 64)
					acks = append(acks, acked{h.name, index, payload, time.Now()})
				} else {
					if err == nil && ans.status == 201 {
						t.Errorf("%s acknowledged a record without a Location: %q", h.name, ans.header.Get("Location"))
					}
					refused[h.name]++
				}
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			ans, err := x.do("POST", a.name, "/v1/query", clinician[a.name], map[string]any{"patient": p, "purpose": "treatment"})
			var s searchset
			said := ""
			switch {
			case err != nil:
				said = "error: " + err.Error()
			case ans.status != 200 || json.Unmarshal(ans.raw, &s) != nil:
				said = fmt.Sprintf("status %d: %s", ans.status, ans.raw)
			default:
				said = s.diagnostics()
			}
			mu.Lock()
			outcomes = append(outcomes, said)
			mu.Unlock()
			time.Sleep(500 * time.Millisecond)
		}
	}()

	time.Sleep(4 * time.Second)
	if err := c.node.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	var exit *exec.ExitError
	if err := c.node.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("centre-c's node ended with %v, not by SIGKILL", err)
	}
	killedLogs = bytes.Clone(c.logs.Bytes())
	time.Sleep(2 * time.Second)
	// A fresh start on the same data directory: the killed process's lock
	// and admin socket must not stand in its way.
	c.start()
	restartedAt := time.Now()
	waitFor(t, 15*time.Second, "centre-c is ready again after SIGKILL", x.ready(c.name, 1))
	t.Logf("centre-c ready %v after its restart", time.Since(restartedAt).Round(time.Millisecond))
	<-ctx.Done()
	wg.Wait()

	mu.Lock()
	byHolder := map[string][]acked{}
	for _, k := range acks {
		byHolder[k.holder] = append(byHolder[k.holder], k)
	}
	afterRestart := 0
	for _, k := range byHolder[c.name] {
		if k.at.After(restartedAt) {
			afterRestart++
		}
	}
	for _, h := range holders {
		t.Logf("%s: %d record(s) acknowledged, %d refused or failed", h.name, len(byHolder[h.name]), refused[h.name])
		if len(byHolder[h.name]) == 0 {
			t.Fatalf("%s acknowledged no record", h.name)
		}
	}
	if afterRestart == 0 {
		t.Fatal("centre-c acknowledged no record after its restart")
	}
	failedC := 0
	for _, o := range outcomes {
		if strings.Contains(o, "centre-c: failed") {
			failedC++
		}
	}
	if len(outcomes) == 0 {
		t.Fatal("centre-a ran no query during the intake")
	}
	t.Logf("%d queries during the run, %d with centre-c failed; the last said: %s", len(outcomes), failedC, outcomes[len(outcomes)-1])
	mu.Unlock()
	t.Logf("centre-c killed at %v, intake stopped at %v", killedAt.Sub(began).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// Every acknowledged record is proven in a final checkpoint at its
	// holder: an entry of kind record, about the patient.
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range acks {
		path := fmt.Sprintf("/v1/ledger/entries/%d/proof", k.index)
		var proof httpapi.EntryProof
		for {
			ans, err := x.do("GET", k.holder, path, admin[k.holder], nil)
			if err == nil && ans.status == 200 {
				if err := json.Unmarshal(ans.raw, &proof); err != nil {
					t.Fatalf("%s %s: %v", k.holder, path, err)
				}
				break
			}
			if err == nil && ans.status != http.StatusServiceUnavailable {
				t.Fatalf("acknowledged record %s: proof: status %d: %s", k.line(), ans.status, ans.raw)
			}
			if time.Now().After(deadline) {
				t.Fatalf("acknowledged record %s not proven final within 30 s: %v %d %s", k.line(), err, ans.status, ans.raw)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if proof.Index != k.index || proof.Kind != "record" || proof.Subject != p || proof.Size <= k.index || len(proof.Entry) == 0 ||
			!strings.Contains(proof.Checkpoint, "medfed/medfed-demo/"+k.holder) {
			t.Fatalf("acknowledged record %s: proof index %d, kind %q, subject %q, size %d, checkpoint %q", k.line(), proof.Index, proof.Kind, proof.Subject, proof.Size, proof.Checkpoint)
		}
	}
	t.Logf("%d acknowledged records proven final after %v", len(acks), time.Since(began).Round(time.Millisecond))

	// A query from centre-a releases, from each holder, what it
	// acknowledged. A record sent but not acknowledged (its answer lost
	// to the kill) may be there too; nothing else may.
	var final searchset
	var got map[string]bool
	waitFor(t, 15*time.Second, "a query from centre-a has every holder answer with nothing pending", func() bool {
		ans, err := x.do("POST", a.name, "/v1/query", clinician[a.name], map[string]any{"patient": p, "purpose": "treatment"})
		final = searchset{}
		if err != nil || ans.status != 200 || json.Unmarshal(ans.raw, &final) != nil {
			return false
		}
		said := final.diagnostics()
		for _, h := range holders {
			if !strings.Contains(said, h.name+": ") || strings.Contains(said, h.name+": failed") || strings.Contains(said, h.name+": denied") {
				return false
			}
		}
		return !strings.Contains(said, "pending")
	})
	if final.ResourceType != "Bundle" || final.Type != "searchset" {
		t.Fatalf("the query's answer is a %s %s", final.ResourceType, final.Type)
	}
	t.Logf("final query: %s", final.diagnostics())
	got = final.released(t)
	for _, k := range acks {
		if !got[k.line()] {
			t.Errorf("acknowledged record %s was not released", k.line())
		}
		delete(got, k.line())
	}
	for line := range got {
		f := strings.SplitN(line, " ", 3)
		if !sent[f[0]+" "+f[2]] {
			t.Errorf("released a record never sent: %s", line)
		} else {
			t.Logf("released a record sent but not acknowledged: %s", line)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Witnesses agree: each ledger's final checkpoint covers all of it and
	// is cosigned by the charter's witness quorum, and no centre holds
	// evidence of a member signing two histories.
	x.witnessesAgree(t, all, admin)

	for _, y := range all {
		y.stop()
		if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", y.dir); code != 0 || !strings.Contains(out, "every signature valid") {
			t.Errorf("%s: ledger verify exited %d: %s%s", y.name, code, out, errOut)
		}
		logs := y.logs.Bytes()
		if y == c {
			logs = append(killedLogs, logs...)
		}
		for _, secret := range []string{nhsNumber, "943 476 5919", "synthetic result"} {
			if bytes.Contains(logs, []byte(secret)) {
				t.Errorf("%s's node logged %q", y.name, secret)
			}
		}
	}
	t.Logf("the test took %v", time.Since(began).Round(time.Millisecond))
}
