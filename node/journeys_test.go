package node_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	patientproto "github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

func entriesOf(t *testing.T, n *node.Node, p ledger.Pseudonym, k ledger.Kind) []ledger.Entry {
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
	admin := node.Admin(cfgs[0].Data.Dir)
	res, err := admin.Transfer(ctx, node.TransferRequest{Pseudonym: p.String(), Role: "clinician"})
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
		l, err := nodes[1].LookupPseudonym(ctx, p.String())
		return err == nil && len(l.Holders) == 3
	})

	// Again: nothing is copied twice, nothing recorded twice; centre-a,
	// a holder now, records its own holder's access.
	size := a.Centre.Ledger.Size()
	res, err = admin.Transfer(ctx, node.TransferRequest{Pseudonym: p.String(), Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sources {
		if s.Status != "copied" || s.Before != 1 || !s.Recorded {
			t.Fatalf("again from %s: %+v", s.Name, s)
		}
	}
	if got := a.Centre.Ledger.Size(); got != size+1 {
		t.Fatalf("a second transfer appended %d entries at centre-a, want its access entry alone", got-size)
	}
	if e, err := a.Centre.Ledger.Entry(ctx, size); err != nil || e.Kind != ledger.KindAccess {
		t.Fatalf("entry %d: %v, %v", size, e.Kind, err)
	}
	for _, n := range nodes[1:] {
		if got := len(entriesOf(t, n, p, ledger.KindTransfer)); got != 1 {
			t.Fatalf("%s has %d transfer entries after a second transfer", n.Centre.Name, got)
		}
	}
	for _, cfg := range cfgs {
		if _, err := node.Verify(ctx, cfg.Data.Dir); err != nil {
			t.Fatalf("%s: %v", cfg.Centre.Name, err)
		}
	}
}

// A forged receipt records nothing: one for an access that released
// nothing to copy, and one naming a record of another patient.
func TestTransferReceiptsAreChecked(t *testing.T) {
	_, nodes, p := queryFed(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	res, err := a.QueryRecords(ctx, node.QueryRequest{Pseudonym: p.String(), Purpose: "treatment", Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	var access, record int64 = -1, -1
	for _, h := range res.Holders {
		if h.Name == "centre-b" && len(h.Records) == 1 {
			access, record = h.Access, h.Records[0].Index
		}
	}
	if access < 0 {
		t.Fatalf("no answer from centre-b: %+v", res)
	}
	// The query's access was for reading, not copying.
	err = a.Query.Acknowledge(ctx, query.Receipt{Holder: b.Centre.ID(), Subject: p, Access: access, Copies: []query.Copied{{Source: record, Copy: 1}}})
	if err == nil || !strings.Contains(err.Error(), "for copying") {
		t.Fatalf("a receipt for a read access: %v", err)
	}
	if got := len(entriesOf(t, b, p, ledger.KindTransfer)); got != 0 {
		t.Fatalf("centre-b recorded %d transfers", got)
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
	pub := consent.FormatPublicKey(key.Public().(ed25519.PublicKey))
	if _, err := b.Attest(ctx, node.AttestRequest{Pseudonym: p.String(), Key: pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.QueryRecords(ctx, node.QueryRequest{Pseudonym: p.String(), Purpose: "emergency", Reason: "unconscious", Role: "clinician"}); err != nil {
		t.Fatal(err)
	}
	admin := node.Admin(cfgs[0].Data.Dir)
	view, err := node.PatientRequest(cfgs[0], patientproto.View, p.String(), key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := admin.Patient(ctx, view)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 2 {
		t.Fatalf("view: %+v", res)
	}
	for _, h := range res.Holders {
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

	other, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := node.PatientRequest(cfgs[0], patientproto.View, p.String(), other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PatientRelay(ctx, forged); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a request signed with another key: %v", err)
	}
	elsewhere, err := node.PatientRequest(cfgs[1], patientproto.View, p.String(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PatientRelay(ctx, elsewhere); !errors.Is(err, patientproto.ErrMalformed) {
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

	erase, err := node.PatientRequest(cfgs[0], patientproto.Erase, p.String(), key)
	if err != nil {
		t.Fatal(err)
	}
	res, err = admin.Patient(ctx, erase)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 2 {
		t.Fatalf("erase: %+v", res)
	}
	for _, h := range res.Holders {
		if h.Status != "answered" || len(h.Erasures) != 1 || !h.Withdrawn {
			t.Fatalf("%s: %+v", h.Name, h)
		}
	}
	for _, n := range nodes[1:] {
		rec := entriesOf(t, n, p, ledger.KindRecord)[0]
		if _, err := n.Centre.Payload(ctx, rec.Index); !errors.Is(err, node.ErrErased) {
			t.Fatalf("%s still has the payload: %v", n.Centre.Name, err)
		}
	}
	eventually(t, 15*time.Second, "the directory lists no holder", func() bool {
		l, err := a.LookupPseudonym(ctx, p.String())
		return err == nil && len(l.Holders) == 0
	})
	for _, cfg := range cfgs {
		if _, err := node.Verify(ctx, cfg.Data.Dir); err != nil {
			t.Fatalf("%s: %v", cfg.Centre.Name, err)
		}
	}
}
