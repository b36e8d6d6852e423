package centre_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	patientproto "github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

func entriesOf(t *testing.T, n *centre.Node, p ledger.Pseudonym, k ledger.Kind) []ledger.Entry {
	t.Helper()
	es, err := n.Centre.Ledger.EntriesForKinds(context.Background(), p, k)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// The patient switches to centre-a: it copies both holders' records with
// their provenance, each source records the transfer, the directory lists
// centre-a; a second transfer copies nothing again.
func TestTransferCopiesWithProvenance(t *testing.T) {
	cfgs, nodes, p := queryFed(t)
	a := nodes[0]
	ctx := context.Background()
	sock := admin.Dial(cfgs[0].Data.Dir)
	res, err := sock.Transfer(ctx, admin.TransferRequest{Pseudonym: p.String(), Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sources) != 2 || !res.Announced {
		t.Fatalf("transfer: %+v", res)
	}
	for _, s := range res.Sources {
		if s.Status != "copied" || len(s.Copies) != 1 || !s.Recorded || s.Before != 0 {
			t.Fatalf("from %s: %+v", s.Name, s)
		}
		payload, err := a.Centre.Payload(ctx, s.Copies[0].Copy)
		if err != nil || string(payload) != "result from "+s.Name {
			t.Fatalf("copy from %s: %q, %v", s.Name, payload, err)
		}
	}
	// Provenance: each In entry follows its copy and proves the source's
	// entry in the source's final checkpoint.
	ins := entriesOf(t, a, p, ledger.KindTransfer)
	if len(ins) != 2 {
		t.Fatalf("%d transfer entries at centre-a", len(ins))
	}
	for _, e := range ins {
		x, err := query.DecodeTransfer(e)
		if err != nil || x.Direction != query.In {
			t.Fatalf("entry %d: %+v, %v", e.Index, x, err)
		}
		if err := ledger.VerifyInclusion(ledger.Checkpoint{Size: x.Size, Root: x.Root}, x.Source, x.Entry, x.Proof); err != nil {
			t.Fatalf("provenance of entry %d: %v", e.Index, err)
		}
		copyEntry, err := a.Centre.Ledger.Entry(ctx, e.Index-1)
		if err != nil || copyEntry.Kind != ledger.KindRecord || copyEntry.Subject != p {
			t.Fatalf("the entry before transfer %d is not the copy: %+v, %v", e.Index, copyEntry, err)
		}
	}
	for _, n := range nodes[1:] {
		outs := entriesOf(t, n, p, ledger.KindTransfer)
		if len(outs) != 1 {
			t.Fatalf("%s has %d transfer entries, want 1", n.Centre.Name, len(outs))
		}
		if x, err := query.DecodeTransfer(outs[0]); err != nil || x.Direction != query.Out || x.Centre != a.Centre.ID() {
			t.Fatalf("%s recorded %+v, %v", n.Centre.Name, x, err)
		}
	}
	eventually(t, 15*time.Second, "the directory lists centre-a too", func() bool {
		l, err := nodes[1].Lookup(ctx, p)
		return err == nil && len(l.Holders) == 3
	})

	// centre-b amends its record: the next transfer copies the amendment
	// as an amendment of centre-a's copy, not as a second record.
	b := nodes[1]
	var fromB int64 = -1
	for _, s := range res.Sources {
		if s.Name == "centre-b" {
			fromB = s.Copies[0].Copy
		}
	}
	first := entriesOf(t, b, p, ledger.KindRecord)[0]
	amended, err := b.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Replaces: first.Index, Payload: []byte("corrected result from centre-b")})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the amendment is in a final checkpoint", func() bool {
		f, ok := b.Centre.Ledger.LatestFinal()
		return ok && f.Size > amended.Index
	})
	if res, err = sock.Transfer(ctx, admin.TransferRequest{Pseudonym: p.String(), Role: "clinician"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sources {
		if s.Name != "centre-b" {
			continue
		}
		if s.Status != "copied" || len(s.Copies) != 1 || s.Before != 0 || s.Copies[0].Source != amended.Index {
			t.Fatalf("the amendment from centre-b: %+v", s)
		}
		e, err := a.Centre.Ledger.Entry(ctx, s.Copies[0].Copy)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := e.Record(); err != nil || e.Kind != ledger.KindAmendment || r.Replaces != fromB {
			t.Fatalf("the copy of the amendment: %v %+v, %v; want an amendment of %d", e.Kind, r, err, fromB)
		}
	}

	// Again: nothing is copied twice, nothing recorded twice; centre-a
	// does not ask itself.
	size := a.Centre.Ledger.Size()
	res, err = sock.Transfer(ctx, admin.TransferRequest{Pseudonym: p.String(), Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sources {
		if s.Status != "copied" || s.Before != 1 || len(s.Copies) != 1 || !s.Recorded {
			t.Fatalf("again from %s: %+v", s.Name, s)
		}
	}
	if got := a.Centre.Ledger.Size(); got != size+1 { // the lookup of who holds the patient, audited
		t.Fatalf("a second transfer appended %d entries at centre-a, want its lookup alone", got-size)
	}
	for _, n := range nodes[1:] {
		want := 1
		if n == b {
			want = 2 // the record, then its amendment
		}
		if got := len(entriesOf(t, n, p, ledger.KindTransfer)); got != want {
			t.Fatalf("%s has %d transfer entries after a third transfer, want %d", n.Centre.Name, got, want)
		}
	}
	for _, cfg := range cfgs {
		if _, err := centre.Verify(ctx, cfg.Data.Dir); err != nil {
			t.Fatalf("%s: %v", cfg.Centre.Name, err)
		}
	}
}

// A receipt records a transfer only for records its access entry released
// to the sender for copying: not for a read, not for a record the copy
// left out; and each copy once.
func TestTransferReceiptsAreChecked(t *testing.T) {
	_, nodes, p := queryFed(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	imaging, err := b.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "imaging", Occurred: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("an X-ray report")})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the X-ray is in a final checkpoint", func() bool {
		f, ok := b.Centre.Ledger.LatestFinal()
		return ok && f.Size > imaging.Index
	})
	ask := func(action consent.Action) (query.Result, query.Answer) {
		res, err := a.Query.Query(ctx, query.Spec{Subject: p, Role: consent.Clinician, Purpose: consent.Treatment, Action: action, Classes: []string{"lab-result"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.Holders {
			if h.Holder == b.Centre.ID() && h.Err == nil && len(h.Records) == 1 {
				return res, h
			}
		}
		t.Fatalf("no lab result from centre-b: %+v", res)
		return res, query.Answer{}
	}
	receipt := func(res query.Result, h query.Answer, source int64) error {
		return a.Query.Acknowledge(ctx, query.Receipt{Holder: b.Centre.ID(), Subject: p, Nonce: res.Nonce, Access: h.Access, Copies: []query.Copied{{Source: source, Copy: 1}}})
	}
	read, h := ask(consent.Access)
	if err := receipt(read, h, h.Records[0].Index); err == nil || !strings.Contains(err.Error(), "for copying") {
		t.Fatalf("a receipt for a read: %v", err)
	}
	copied, h := ask(consent.Copy)
	if err := receipt(copied, h, imaging.Index); err == nil || !strings.Contains(err.Error(), "did not release record") {
		t.Fatalf("a receipt naming a record the copy left out: %v", err)
	}
	other := copied
	other.Nonce[0] ^= 1
	if err := receipt(other, h, h.Records[0].Index); err == nil {
		t.Fatal("a receipt naming another request was taken")
	}
	if got := len(entriesOf(t, b, p, ledger.KindTransfer)); got != 0 {
		t.Fatalf("centre-b recorded %d transfers", got)
	}
	for range 2 {
		if err := receipt(copied, h, h.Records[0].Index); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(entriesOf(t, b, p, ledger.KindTransfer)); got != 1 {
		t.Fatalf("centre-b recorded %d transfers, want 1", got)
	}
}

// The patient sees, through centre-a, every holder's records and every
// access to them; then has every holder erase them: payloads gone,
// erasure entries, out of the directory, ledgers still verify. A request
// with another key, for another relay, or out of time is refused.
func TestPatientViewAndErase(t *testing.T) {
	cfgs, nodes, p := queryFed(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	key, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.QueryRecords(ctx, centre.QueryRequest{Pseudonym: p, Asker: centre.Asker{Role: consent.Clinician, Purpose: consent.Emergency, Reason: consent.Unconscious}}); err != nil {
		t.Fatal(err)
	}
	sock := admin.Dial(cfgs[0].Data.Dir)
	view, err := centre.PatientRequest(cfgs[0], patientproto.View, p, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sock.Patient(ctx, view)
	if err != nil {
		t.Fatal(err)
	}
	// The holders, and the relay, centre-a, which holds nothing but the
	// lookup its clinician's emergency query made.
	if len(res.Holders) != 3 || res.Asked != 3 || res.HoldNothing != 0 || res.Holders[0].Name != "centre-a" || len(res.Holders[0].Records) != 0 ||
		len(res.Holders[0].Accesses) != 1 || res.Holders[0].Accesses[0].Event != consent.EventLookup.String() {
		t.Fatalf("view: %+v", res)
	}
	for _, h := range res.Holders[1:] {
		if h.Status != "answered" || len(h.Records) != 1 || h.Records[0].Erased {
			t.Fatalf("%s: %+v", h.Name, h)
		}
		emergency := false
		for _, x := range h.Accesses {
			emergency = emergency || (x.Centre == "centre-a" && x.Emergency && x.Reason == "unconscious" && x.Permitted)
		}
		if !emergency {
			t.Fatalf("%s shows no emergency access by centre-a: %+v", h.Name, h.Accesses)
		}
	}

	// Each holder recorded the view, and takes the same request only once.
	for _, n := range nodes[1:] {
		views := 0
		for _, e := range entriesOf(t, n, p, ledger.KindAccess) {
			if x, err := consent.DecodeAccess(e); err == nil && x.Event == consent.EventPatientView && x.Requester == a.Centre.ID() {
				views++
			}
		}
		if views != 1 {
			t.Fatalf("%s recorded %d views", n.Centre.Name, views)
		}
	}
	if _, err := b.Patient.Answer(ctx, a.Centre.ID(), view); !errors.Is(err, patientproto.ErrStale) {
		t.Fatalf("a replayed view: %v", err)
	}

	other, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := centre.PatientRequest(cfgs[0], patientproto.View, p, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PatientRelay(ctx, forged); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a request signed with another key: %v", err)
	}
	elsewhere, err := centre.PatientRequest(cfgs[1], patientproto.View, p, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PatientRelay(ctx, elsewhere); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a request for another relay: %v", err)
	}
	if _, err := b.Patient.Answer(ctx, a.Centre.ID(), elsewhere); !errors.Is(err, patientproto.ErrSignature) {
		t.Fatalf("a holder took a request from another relay than the one named: %v", err)
	}
	old := patientproto.Request{Op: patientproto.View, Federation: cfgs[0].Federation.ID, Relay: a.Centre.ID(), Subject: p, Nonce: [16]byte{1}, Time: time.Now().Add(-time.Hour)}
	stale, err := old.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PatientRelay(ctx, stale); !errors.Is(err, patientproto.ErrStale) {
		t.Fatalf("an hour-old request: %v", err)
	}

	nodetest.SettleKey() // a key erases once in force for the charter's key notice
	erase, err := centre.PatientRequest(cfgs[0], patientproto.Erase, p, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err = sock.Patient(ctx, erase)
	if err != nil {
		t.Fatal(err)
	}
	// centre-a holds no record: it has nothing to erase.
	if len(res.Holders) != 2 || res.Asked != 3 || res.HoldNothing != 1 {
		t.Fatalf("erase: %+v", res)
	}
	for _, h := range res.Holders {
		if h.Status != "answered" || len(h.Erasures) != 1 || !h.Withdrawn {
			t.Fatalf("%s: %+v", h.Name, h)
		}
	}
	// Erasing again erases nothing more: one more entry, the request's.
	size := b.Centre.Ledger.Size()
	again, err := centre.PatientRequest(cfgs[0], patientproto.Erase, p, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Patient.Answer(ctx, a.Centre.ID(), again); err != nil {
		t.Fatal(err)
	}
	if got := b.Centre.Ledger.Size(); got != size+1 || len(entriesOf(t, b, p, ledger.KindErasure)) != 1 {
		t.Fatalf("a second erasure appended %d entries", got-size)
	}
	for _, n := range nodes[1:] {
		rec := entriesOf(t, n, p, ledger.KindRecord)[0]
		if _, err := n.Centre.Payload(ctx, rec.Index); !errors.Is(err, centre.ErrErased) {
			t.Fatalf("%s still has the payload: %v", n.Centre.Name, err)
		}
	}
	eventually(t, 15*time.Second, "the directory lists no holder", func() bool {
		l, err := a.Lookup(ctx, p)
		return err == nil && len(l.Holders) == 0
	})
	for _, cfg := range cfgs {
		if _, err := centre.Verify(ctx, cfg.Data.Dir); err != nil {
			t.Fatalf("%s: %v", cfg.Centre.Name, err)
		}
	}
}

// unlisted has centre-c, a holder of p's records, withdraw its
// announcement, waits until a lookup at centre-a lists centre-b alone,
// and attests a key for the patient at centre-b; it returns the key.
func unlisted(t *testing.T, a, b, c *centre.Node, p ledger.Pseudonym) ed25519.PrivateKey {
	t.Helper()
	ctx := context.Background()
	if err := c.Directory.Withdraw(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the directory lists centre-b alone", func() bool {
		l, err := a.Lookup(ctx, p)
		return err == nil && len(l.Holders) == 1 && l.Holders[0].ID == b.Centre.ID()
	})
	key, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestErasureReachesAHolderTheDirectoryDoesNotList: centre-c holds the
// patient's records but withdrew its announcement, so the directory lists
// centre-b alone. The patient's signed erasure reaches centre-c all the
// same (from the erasure feed: centre-c is not among the majority it was
// pushed to, and holds no lease), and centre-c crypto-shreds its record,
// without any relay asking it. The relay's erase then asks every member:
// centre-c answers with the erasure the feed made, centre-b erases.
func TestErasureReachesAHolderTheDirectoryDoesNotList(t *testing.T) {
	cfgs, nodes, p := queryFed(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	key := unlisted(t, a, b, c, p)
	nodetest.SettleKey()
	doc, err := consent.SignErasure(key, consent.Erasure{Federation: cfgs[0].Federation.ID, Subject: p, Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	del, err := a.SubmitConsent(ctx, doc)
	if err != nil || !del.Confirmed {
		t.Fatalf("erasure: %+v, %v", del, err)
	}
	if slices.Contains(del.Delivered, "centre-c") {
		t.Fatalf("the erasure was pushed to centre-c (%v): the test shows nothing", del.Delivered)
	}
	rec := entriesOf(t, c, p, ledger.KindRecord)[0]
	// The payload goes first, then the erasure entry.
	eventually(t, 15*time.Second, "centre-c erases the record the directory does not list", func() bool {
		return len(entriesOf(t, c, p, ledger.KindErasure)) == 1
	})
	if _, err := c.Centre.Payload(ctx, rec.Index); !errors.Is(err, centre.ErrErased) {
		t.Fatalf("centre-c still has the payload: %v", err)
	}
	erase, err := centre.PatientRequest(cfgs[0], patientproto.Erase, p, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.PatientRelay(ctx, erase)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 2 || res.Asked != 3 || res.HoldNothing != 1 {
		t.Fatalf("the relay's erase: %+v", res)
	}
	for _, h := range res.Holders {
		if h.Outcome != centre.Answered || len(h.Erasures) != 1 || !h.Withdrawn {
			t.Fatalf("the relay's erase at %s: %+v", h.Name, h)
		}
	}
	for _, n := range []*centre.Node{b, c} {
		if got := len(entriesOf(t, n, p, ledger.KindErasure)); got != 1 {
			t.Fatalf("%s holds %d erasure entries, want 1", n.Centre.Name, got)
		}
	}
}

// TestPatientViewReachesEveryMember: the relay asks every member, not
// only the holders the directory lists. centre-c holds a record but
// withdrew its announcement: it is in the patient's view with its
// entries all the same. centre-a (the relay) and centre-d hold nothing:
// they are counted, and append nothing to their ledgers, view after view.
// centre-e is down: it is named as could not be reached, with why, and
// the view is incomplete.
func TestPatientViewReachesEveryMember(t *testing.T) {
	cfgs, nodes, p := abuseFed(t, 5, func(_ string, cfg *centre.Config) { cfg.Consent.Lease = 2 * time.Second })
	a, b, c, d, e := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	ctx := context.Background()
	key := unlisted(t, a, b, c, p)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	sock := admin.Dial(cfgs[0].Data.Dir)
	view := func() api.PatientResult {
		t.Helper()
		req, err := centre.PatientRequest(cfgs[0], patientproto.View, p, key)
		if err != nil {
			t.Fatal(err)
		}
		res, err := sock.Patient(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := view()
	if res.Asked != 5 || res.HoldNothing != 2 || len(res.Holders) != 3 {
		t.Fatalf("asked %d, %d hold nothing, %d listed, want 5, 2 and 3: %+v", res.Asked, res.HoldNothing, len(res.Holders), res)
	}
	for _, h := range res.Holders {
		switch h.Name {
		case "centre-b", "centre-c":
			if h.Status != "answered" || len(h.Records) != 1 || len(h.Requests) != 1 {
				t.Fatalf("%s holds a record: %+v", h.Name, h)
			}
		case "centre-e":
			if h.Status != "failed" || h.Error == "" {
				t.Fatalf("centre-e is down: %+v", h)
			}
		default:
			t.Fatalf("%s is listed, holding nothing: %+v", h.Name, h)
		}
	}
	if got, want := res.Summary(), "asked 5 centre(s): 2 hold entries about the patient, 2 hold nothing, 1 could not be reached: centre-e"; got != want {
		t.Fatalf("the view says %q, want %q", got, want)
	}

	// Again: the centres holding nothing still hold nothing but the
	// patient's consent documents, and appended nothing.
	sizes := []int64{a.Centre.Ledger.Size(), d.Centre.Ledger.Size()}
	if res = view(); res.HoldNothing != 2 || len(res.Holders) != 3 {
		t.Fatalf("the second view: %+v", res)
	}
	for i, n := range []*centre.Node{a, d} {
		if got := n.Centre.Ledger.Size(); got != sizes[i] {
			t.Fatalf("%s appended %d entries for a view of a patient it holds nothing of", n.Centre.Name, got-sizes[i])
		}
		es, err := n.Centre.Ledger.EntriesFor(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			if x.Kind != ledger.KindConsent && x.Kind != ledger.KindRevocation {
				t.Fatalf("%s holds a %s entry about the patient", n.Centre.Name, x.Kind)
			}
		}
	}
	for _, n := range []*centre.Node{b, c} {
		views := 0
		for _, x := range entriesOf(t, n, p, ledger.KindAccess) {
			if ev, err := consent.DecodeAccess(x); err == nil && ev.Event == consent.EventPatientView {
				views++
			}
		}
		if views != 2 {
			t.Fatalf("%s recorded %d views, want 2", n.Centre.Name, views)
		}
	}
}
