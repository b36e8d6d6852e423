package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// answered is one holder's answer to a query, as the requester saw it.
type answered struct {
	holder   string
	access   int64
	released int
}

// The story of the design's Fig. 3 with real medfed processes, as
// operators, clinicians and a patient run it: records at centre-a and
// centre-b; centre-c joins; a clinician at centre-c gets the records,
// proven, under the patient's contract; the patient revokes and the next
// query is refused; an emergency access with its reason; the patient's
// own view shows all of it. Then the patient moves to centre-c (a
// transfer with provenance) and has everything erased. Forged, replayed
// and expired requests from another process are refused, an answer
// altered in transit is rejected, and after the run every answer a
// holder gave has its access entry on that holder's ledger.
func TestQueryStoryAcrossCentres(t *testing.T) {
	root := t.TempDir()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	// The holders send a patient's view two entries a page: the view below
	// pages through each holder's entries (medfed patient view asks again
	// with cursors) and shows them all.
	for _, x := range []*centre{a, b} {
		x.extra = []string{"MEDFED_PATIENT_PAGE_SIZE=2"}
	}
	file := func(name string) string { return filepath.Join(root, name) }
	for _, x := range []*centre{a, b} {
		x.run("federation", "request", "--out", file(x.name+"-request.txt"))
	}
	// A key erases once in force for the key notice: a second here, not
	// the 72 hours of the default (the erasure below comes minutes later).
	a.run("federation", "init", "--member", file("centre-b-request.txt"), "--out", file("charter.txt"), "--key-notice", "1s")
	b.run("federation", "sign", file("charter.txt"))
	for _, x := range []*centre{a, b} {
		x.run("federation", "install", file("charter.txt"))
		x.start()
	}
	waitFor(t, 15*time.Second, "the founders connect", connectedTo(a, "centre-b"))
	keyCeremony(t, "keygen", 2, []string{"centre-a", "centre-b"}, a, b)
	p := pseudonymsOf(a, 1, "--nhs", nhsNumber)[0]

	// Records at Centres 1 and 2.
	payloads := map[string]string{"centre-a": "synthetic lab result: sodium 139 mmol/L", "centre-b": "synthetic clinic letter: reviewed, plan agreed"}
	for _, x := range []*centre{a, b} {
		if err := os.WriteFile(file(x.name+".txt"), []byte(payloads[x.name]), 0o600); err != nil {
			t.Fatal(err)
		}
		x.run("record", "add", "--nhs", nhsNumber, "--class", "lab-result", "--file", file(x.name+".txt"), "--occurred", "2025-05-01")
	}

	// The holder list, as an operator reads it through the admin socket.
	waitFor(t, 15*time.Second, "centre-a lists both holders", func() bool {
		code, out, _ := a.try("patient", "holders", "--pseudonym", p)
		return code == 0 && strings.Contains(out, "centre-a\t") && strings.Contains(out, "centre-b\t") && strings.Contains(out, "# 2 holding centres")
	})
	if code, _, errOut := a.try("patient", "holders", "--pseudonym", "not-hex"); code != 2 || !strings.Contains(errOut, "64 hex digits") {
		t.Fatalf("holders of a bad pseudonym: exit %d, %s; want 2 saying why", code, errOut)
	}

	// Centre 3 joins.
	c.run("federation", "request", "--out", file("centre-c-request.txt"))
	a.run("federation", "approve", file("centre-c-request.txt"))
	b.run("federation", "approve", file("centre-c-request.txt"))
	_, _, aID := a.status()
	waitFor(t, 10*time.Second, "centre-c can fetch the charter", func() bool {
		code, _, _ := c.try("federation", "join", "--peer", "/ip4/127.0.0.1/tcp/4101/p2p/"+aID)
		return code == 0
	})
	c.start()
	waitFor(t, 15*time.Second, "centre-c reaches both founders", connectedTo(c, "centre-a", "centre-b"))

	// The patient's key and contract: clinicians may see everything for
	// treatment.
	grantTreatment(t, root, a, p)

	const staff = "5eed5eed5eed5eed5eed5eed5eed5eed"
	var answers []answered
	ask := func(args ...string) (int, httpapi.QueryResult) {
		t.Helper()
		code, out, errOut := c.try(append([]string{"query", "--json", "--pseudonym", p, "--staff", staff}, args...)...)
		var res httpapi.QueryResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("query %v exited %d, printed %q: %v; %s", args, code, out, err, errOut)
		}
		for _, h := range res.Holders {
			if h.Status != "failed" {
				answers = append(answers, answered{h.Name, h.Access, len(h.Records)})
			}
		}
		return code, res
	}
	released := func(res httpapi.QueryResult) bool {
		if len(res.Holders) != 2 {
			return false
		}
		for _, h := range res.Holders {
			if h.Status != "answered" || len(h.Records) != 1 || string(h.Records[0].Payload) != payloads[h.Name] || h.Checkpoint <= h.Records[0].Index {
				return false
			}
		}
		return true
	}
	waitFor(t, 20*time.Second, "a clinician at centre-c gets both records, proven", func() bool {
		code, res := ask("--purpose", "treatment")
		return code == 0 && released(res)
	})

	// The patient revokes: the next query is refused by both holders.
	b.run("consent", "revoke", "--key", file("patient.key"), "--pseudonym", p)
	if code, res := ask("--purpose", "treatment"); code != 0 || len(res.Holders) != 2 || res.Holders[0].Status != "denied" || res.Holders[1].Status != "denied" ||
		!strings.Contains(res.Holders[0].Reason, "revoked") {
		t.Fatalf("after the revocation: exited %d, %+v", code, res)
	}
	// An emergency access, with its reason, is allowed by the charter.
	if code, res := ask("--purpose", "emergency"); code != 0 || res.Holders[0].Status != "denied" || !strings.Contains(res.Holders[0].Reason, "reason") {
		t.Fatalf("an emergency without a reason: exited %d, %+v", code, res)
	}
	if code, res := ask("--purpose", "emergency", "--reason", "unconscious"); code != 0 || !released(res) {
		t.Fatalf("an emergency access: exited %d, %+v", code, res)
	}

	// The patient's own view, through centre-c.
	out := c.run("patient", "view", "--key", file("patient.key"), "--pseudonym", p)
	for _, want := range []string{
		"centre-a: 1 record(s), ", "centre-b: 1 record(s), ",
		"access by centre-c (clinician " + staff + "): access for treatment, permitted (contract), 1 record(s) released",
		"access by centre-c (clinician " + staff + "): access for treatment, denied (withdrawn)",
		"emergency-start by centre-c (clinician " + staff + "): access for emergency, permitted (emergency), EMERGENCY: unconscious",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("the patient's view lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := medfedCmd(t, "patient", "keygen", "--out", file("other.key")); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	if code, _, errOut := c.try("patient", "view", "--key", file("other.key"), "--pseudonym", p); code != 1 || !strings.Contains(errOut, "is not the key attested") {
		t.Fatalf("a view with another key: exited %d: %s", code, errOut)
	}

	// Another process, holding centre-c's key, talks to centre-a directly.
	c.stop()
	answers = append(answers, attack(t, c, a, p))
	c.start()
	waitFor(t, 15*time.Second, "centre-c reconnects", connectedTo(c, "centre-a", "centre-b"))

	// The patient moves to centre-c: a single-use token for copying.
	c.run("consent", "token", "--key", file("patient.key"), "--pseudonym", p, "--grantee", "centre-c", "--purpose", "treatment", "--action", "copy", "--out", file("copy.token"))
	out = c.run("transfer", "--pseudonym", p, "--token", file("copy.token"), "--staff", staff)
	for _, want := range []string{"centre-a: 1 record(s) copied (0 before)", "the transfer is on centre-a's ledger", "centre-b: 1 record(s) copied", "the transfer is on centre-b's ledger", "announced in the directory"} {
		if !strings.Contains(out, want) {
			t.Fatalf("transfer printed %q, lacking %q", out, want)
		}
	}
	answers = append(answers, answered{"centre-a", -1, 1}, answered{"centre-b", -1, 1}) // the copies' accesses, found below

	// And has everything erased, at every holder, centre-c included, once
	// the key has been in force for the charter's key notice (a second
	// here: the story may reach this point sooner; a refused erasure
	// changes nothing).
	waitFor(t, 10*time.Second, "the patient's key has been in force for the key notice", func() bool {
		var code int
		var errOut string
		code, out, errOut = c.try("patient", "erase", "--key", file("patient.key"), "--pseudonym", p)
		if code != 0 && !strings.Contains(errOut, "an erasure needs a key in force for") {
			t.Fatalf("patient erase exited %d: %s%s", code, out, errOut)
		}
		return code == 0
	})
	for _, want := range []string{"centre-a: 1 record(s) erased, withdrawn", "centre-b: 1 record(s) erased, withdrawn", "centre-c: 2 record(s) erased, withdrawn", "erasure accepted", "a centre holding records the directory does not list erases them too"} {
		if !strings.Contains(out, want) {
			t.Fatalf("erase printed %q, lacking %q", out, want)
		}
	}
	waitFor(t, 15*time.Second, "the directory lists no holder", func() bool {
		code, out, _ := a.try("directory", "lookup", "--pseudonym", p)
		return code == 0 && !strings.Contains(out, "centre-")
	})

	_, _, cID := c.status()
	for _, x := range []*centre{a, b, c} {
		x.stop()
		if bytes.Contains(x.logs.Bytes(), []byte(nhsNumber)) || bytes.Contains(x.logs.Bytes(), []byte("synthetic")) {
			t.Errorf("%s's node logged the NHS number or a payload", x.name)
		}
		if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", x.dir); code != 0 {
			t.Errorf("%s: ledger verify exited %d: %s%s", x.name, code, out, errOut)
		}
	}
	checkAccesses(t, map[string]*centre{"centre-a": a, "centre-b": b}, cID, p, answers)
}

// attack runs centre-c's node in this test process (its own process
// stopped) and sends centre-a requests that must be refused, and checks
// that an answer altered in transit is rejected.
func attack(t *testing.T, self, holder *centre, p string) answered {
	t.Helper()
	ctx := context.Background()
	cfg := node.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = self.name, "medfed-demo", self.dir
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4103"}
	n, err := node.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()
	_, _, hid := holder.status()
	holderID, err := peer.Decode(hid)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the other process reaches "+holder.name, func() bool {
		return n.Host.Network().Connectedness(holderID) == network.Connected
	})
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	request := func(at time.Time) (query.Request, *query.SealingKey) {
		key, err := query.NewSealingKey()
		if err != nil {
			t.Fatal(err)
		}
		q := query.Request{Federation: cfg.Federation.ID, Requester: n.Centre.ID(), Role: consent.Clinician, Action: consent.Access,
			Purpose: consent.Emergency, Reason: consent.Unconscious, Subject: subject, Time: at, Key: key.Public()}
		rand.Read(q.Nonce[:])
		return q, key
	}
	send := func(raw []byte) (byte, string, []byte) {
		status, answer, err := wire.Exchange(ctx, n.Host, query.ProtocolID, holderID, 1, raw, wire.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		return status, string(answer), answer
	}
	q, key := request(time.Now())
	raw, err := q.Sign(n.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	status, reason, answer := send(raw)
	if status != 0 {
		t.Fatalf("a good request refused: %s", reason)
	}
	ans, err := n.Query.Verify(holderID, q, key, answer)
	if err != nil || len(ans.Records) != 1 {
		t.Fatalf("the answer does not verify: %+v, %v", ans, err)
	}
	altered := bytes.Clone(answer)
	altered[len(altered)-200] ^= 1 // inside the last item
	if _, err := n.Query.Verify(holderID, q, key, altered); !errors.Is(err, query.ErrRejected) {
		t.Fatalf("an answer altered in transit: %v", err)
	}
	if status, reason, _ := send(raw); status != 1 || !strings.Contains(reason, "replayed") {
		t.Fatalf("a replayed request: status %d, %s", status, reason)
	}
	old, _ := request(time.Now().Add(-2 * query.MaxSkew))
	if raw, err = old.Sign(n.Centre.Key()); err != nil {
		t.Fatal(err)
	}
	if status, reason, _ := send(raw); status != 1 || !strings.Contains(reason, "out of time") {
		t.Fatalf("an expired request: status %d, %s", status, reason)
	}
	forged, _ := request(time.Now())
	if raw, err = forged.Sign(n.Centre.Key()); err != nil {
		t.Fatal(err)
	}
	raw[40] ^= 1
	if status, reason, _ := send(raw); status != 1 || !strings.Contains(reason, "signature") {
		t.Fatalf("a forged request: status %d, %s", status, reason)
	}
	return answered{holder.name, ans.Access, len(ans.Records)}
}

// checkAccesses opens each holder's ledger after the run: every answer it
// gave is backed by an access entry about the patient, from the requester,
// releasing what the answer held; and it holds exactly as many access
// entries from the requester as answers given.
func checkAccesses(t *testing.T, holders map[string]*centre, requester, p string, answers []answered) {
	t.Helper()
	ctx := context.Background()
	subject, err := ledger.ParsePseudonym(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range holders {
		cfg := node.DefaultConfig()
		cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = name, "medfed-demo", x.dir
		c, err := node.Open(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		es, err := c.Ledger.EntriesForKinds(ctx, subject, ledger.KindAccess)
		if err != nil {
			t.Fatal(err)
		}
		byIndex := map[int64]consent.AccessEntry{}
		for _, e := range es {
			acc, err := consent.DecodeAccess(e)
			if err != nil {
				t.Fatal(err)
			}
			if acc.Event == consent.EventAccess && acc.Requester.String() == requester {
				byIndex[e.Index] = acc
			}
		}
		given, copies := 0, 0
		for _, a := range answers {
			if a.holder != name {
				continue
			}
			given++
			if a.access < 0 {
				copies++
				continue
			}
			acc, ok := byIndex[a.access]
			if !ok || int(acc.Released) != a.released {
				t.Errorf("%s answered with access entry %d releasing %d record(s); its ledger has %+v", name, a.access, a.released, acc)
			}
		}
		copied := 0
		for _, acc := range byIndex {
			if acc.Action == consent.Copy && acc.Released == 1 {
				copied++
			}
		}
		if len(byIndex) != given || copied != copies {
			t.Errorf("%s: %d access entries (%d for copying) for %d answers (%d transfers)", name, len(byIndex), copied, given, copies)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
