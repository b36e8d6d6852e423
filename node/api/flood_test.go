package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// TestAbuseConsentFlood: 100,000 well-formed contracts, each signed by the
// sender's own key (1,000 keys), about 100,000 patients nobody attested a
// key for, from 10,000 client addresses, at POST /v1/consent, which takes
// no token. The patient routes' bounds (all callers, per address, per
// key) refuse most with 429 before they are read; the rest are refused
// for their unattested keys. Nothing is accepted, neither ledger grows,
// the consent state keeps no patient, and the heap grows by no more than
// the bounded rate tables.
func TestAbuseConsentFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 requests")
	}
	a, b := federation(t)
	srv, err := api.New(api.Options{Node: a.node, Staff: a.staff})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	fed := a.node.Membership.Current().Federation

	const docs, keys, clients = 100_000, 1_000, 10_000
	signers := make([]ed25519.PrivateKey, keys)
	for i := range signers {
		s := sha256.Sum256([]byte("flood key " + strconv.Itoa(i)))
		signers[i] = ed25519.NewKeyFromSeed(s[:])
	}
	issued := time.Now().UTC().Truncate(time.Second)
	body := func(i int) []byte {
		var p ledger.Pseudonym
		binary.BigEndian.PutUint64(p[:], uint64(i)+1)
		p[31] = 0xf1
		doc, err := consent.SignContract(signers[i%keys], consent.Contract{ID: consent.ID{1}, Version: 1, Federation: fed, Subject: p, Issued: issued, Base: consent.OptIn})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(map[string]any{"document": doc})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	sizes := func() [2]int64 { return [2]int64{a.node.Centre.Ledger.Size(), b.node.Centre.Ledger.Size()} }
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before, patients, heapBefore, rssBefore := sizes(), a.node.Consent.Patients(), heap(), rss(t)
	statuses := map[int]int{}
	start := time.Now()
	for i := range docs {
		req := httptest.NewRequest("POST", "/v1/consent", bytes.NewReader(body(i)))
		req.Header.Set("Content-Type", "application/json")
		c := i % clients
		req.RemoteAddr = fmt.Sprintf("10.0.%d.%d:%d", c/256, c%256, 1024+i%7)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		statuses[w.Code]++
		if w.Code != http.StatusTooManyRequests && w.Code != http.StatusForbidden {
			t.Fatalf("document %d: status %d: %s", i, w.Code, w.Body)
		}
	}
	elapsed := time.Since(start)
	heapAfter, rssAfter := heap(), rss(t)
	t.Logf("%d documents in %v: %d refused at the bounds (429), %d for their unattested keys (403); heap in use %.1f -> %.1f MiB, resident %.1f -> %.1f MiB",
		docs, elapsed.Round(time.Millisecond), statuses[http.StatusTooManyRequests], statuses[http.StatusForbidden],
		float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20), float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20))
	if after := sizes(); after != before {
		t.Fatalf("the flood changed the ledgers: sizes %v before, %v after", before, after)
	}
	if got := a.node.Consent.Patients(); got != patients {
		t.Fatalf("the consent state keeps %d patients after the flood, %d before", got, patients)
	}
	if statuses[http.StatusForbidden] == 0 || statuses[http.StatusTooManyRequests] < docs/2 {
		t.Fatalf("statuses %v: want most refused at the bounds, and the rest for their keys", statuses)
	}
	if grown := int64(heapAfter) - int64(heapBefore); grown > 48<<20 {
		t.Fatalf("the heap grew by %.1f MiB", float64(grown)/(1<<20))
	}
}

// rss is the process's resident memory, from /proc/self/statm.
func rss(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * uint64(os.Getpagesize())
}

// TestAbusePatientKeyFlood: one patient key (attested or not) sends 30
// signed view requests at once, from one address and then from thirty.
// Past the key's burst they are refused with 429 before they are relayed,
// whatever address they come from; nothing reaches a ledger.
func TestAbusePatientKeyFlood(t *testing.T) {
	a, b := federation(t)
	key := mustKey(t)
	var p ledger.Pseudonym
	p[0] = 0x42
	sizes := func() [2]int64 { return [2]int64{a.node.Centre.Ledger.Size(), b.node.Centre.Ledger.Size()} }
	before := sizes()
	srv, err := api.New(api.Options{Node: a.node, Staff: a.staff})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	statuses := map[int]int{}
	began := time.Now()
	for i := range 30 {
		req, err := centre.PatientRequest(a.cfg, patient.View, p, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(map[string]any{"request": req})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/v1/patient/view", bytes.NewReader(raw))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = fmt.Sprintf("10.1.0.%d:4000", i)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		statuses[w.Code]++
	}
	// The key's bucket refills at 1 a second: on a loaded machine the
	// flood may last long enough for a request or two more to pass it.
	took := time.Since(began)
	refilled := int(took / time.Second)
	if refused, bounded := statuses[http.StatusForbidden], statuses[http.StatusTooManyRequests]; refused < 10 || refused > 10+refilled || refused+bounded != 30 {
		t.Fatalf("statuses %v in %v: want the key's burst of 10 (and %d refilled at most) refused for the unattested key (403), the others at its bound (429)",
			statuses, took.Round(time.Millisecond), refilled)
	}
	if after := sizes(); after != before {
		t.Fatalf("the flood changed the ledgers: %v, then %v", before, after)
	}
}
