package centre_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// prescriptionFed starts three centres: centre-a prescribes, centre-b
// and centre-c dispense.
func prescriptionFed(t *testing.T) []*centre.Node {
	t.Helper()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	for i := range cfgs {
		cfgs[i].Ledger.CheckpointInterval = 50 * time.Millisecond
	}
	found(t, cfgs...)
	nodes := make([]*centre.Node, len(cfgs))
	for i, cfg := range cfgs {
		nodes[i] = start(t, cfg)
	}
	eventually(t, 15*time.Second, "the centres connect", func() bool {
		return connected(nodes[0], nodes[1]) && connected(nodes[0], nodes[2]) && connected(nodes[1], nodes[2])
	})
	return nodes
}

var (
	prescriber  = ledger.StaffID{0xd0, 1}
	pharmacist  = ledger.StaffID{0xf0, 2}
	paracetamol = prescription.Medication{System: prescription.DMD, Code: "39732311000001104", Display: "Paracetamol 500mg tablets"}
)

func rxRequest(p ledger.Pseudonym, repeats int) centre.IssueRequest {
	return centre.IssueRequest{Pseudonym: p, Prescriber: prescriber, Medication: paracetamol, Quantity: 32, Unit: "tablet", Repeats: repeats, Dosage: "two tablets four times a day"}
}

// Prescriptions over real nodes: issued at centre-a, dispensed by
// centre-b and centre-c (the last supply raced for), recorded on every
// ledger; a forged and a replayed claim refused over the wire; a
// cancelled one not dispensed; a second prescriber warned.
func TestPrescriptionsAcrossCentres(t *testing.T) {
	nodes := prescriptionFed(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("prescription test patient")))

	res, err := a.IssuePrescription(ctx, rxRequest(p, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Checked || len(res.Warnings) != 0 || res.Token.Issuer != "centre-a" || res.Token.Index != res.Index {
		t.Fatalf("issued: %+v", res)
	}
	d, err := b.ClaimDispense(ctx, centre.DispenseRequest{Token: res.Token, Pharmacist: pharmacist})
	if err != nil || d.Fill != 1 || d.Supplies != 2 || d.Content.Medication != paracetamol || d.Record != nil || d.Recorded <= 0 {
		t.Fatalf("the first supply: %+v, %v", d, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []*centre.Node{b, c} {
		wg.Go(func() {
			_, errs[i] = n.ClaimDispense(ctx, centre.DispenseRequest{Token: res.Token, Pharmacist: pharmacist})
		})
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("the race for the last supply: %v, %v; want one yes", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && (node.KindOf(err) != node.Conflict || !strings.Contains(err.Error(), "every supply of the prescription is dispensed")) {
			t.Fatalf("the loser was told %v", err)
		}
	}
	v, err := a.PrescriptionStatus(ctx, res.Index)
	if err != nil || v.State != prescription.StateCompleted || len(v.Dispenses) != 2 || v.Dispenses[0].Pharmacy != "centre-b" {
		t.Fatalf("status after two supplies: %+v, %v", v, err)
	}

	// Over the wire, as centre-b: a forged claim, then a good one twice.
	tok2, err := a.IssuePrescription(ctx, rxRequest(p, 5))
	if err != nil {
		t.Fatal(err)
	}
	claim := prescription.Claim{Federation: a.Membership.Current().Federation, Pharmacy: b.Centre.ID(), Issuer: a.Centre.ID(), Pharmacist: pharmacist, Prescription: tok2.Index,
		Secret: tok2.Token.Secret, Time: time.Now()}
	rand.Read(claim.Nonce[:])
	raw, err := claim.Sign(b.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	size := a.Centre.Ledger.Size()
	forged := append([]byte(nil), raw...)
	forged[40] ^= 1
	ask := func(raw []byte) (byte, string) {
		t.Helper()
		status, answer, err := wire.Exchange(ctx, b.Host, prescription.ProtocolID, a.Centre.ID(), 1, raw, wire.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		return status, string(answer)
	}
	if status, reason := ask(forged); status == 0 || !strings.Contains(reason, "signature") {
		t.Fatalf("a forged claim: status %d, %q", status, reason)
	}
	if a.Centre.Ledger.Size() != size {
		t.Fatal("a forged claim appended to the issuer's ledger")
	}
	status, confirmed := ask(raw)
	if status != 0 {
		t.Fatalf("a good claim: status %d, %q", status, confirmed)
	}
	size = a.Centre.Ledger.Size()
	// Sent again, as a pharmacy whose answer was lost does: the same
	// confirmation, nothing appended.
	if status, again := ask(raw); status != 0 || again != confirmed {
		t.Fatalf("a claim sent again: status %d, another answer", status)
	}
	if a.Centre.Ledger.Size() != size {
		t.Fatal("a claim sent again appended to the issuer's ledger")
	}

	// Cancelled by someone else: refused; by the prescriber: no supply after.
	if _, err := a.CancelPrescription(ctx, tok2.Index, ledger.StaffID{9}, ledger.CancelChanged); !errors.Is(err, prescription.ErrNotPrescriber) {
		t.Fatalf("a cancellation by another: %v", err)
	}
	if _, err := a.CancelPrescription(ctx, tok2.Index, prescriber, ledger.CancelChanged); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClaimDispense(ctx, centre.DispenseRequest{Token: tok2.Token, Pharmacist: pharmacist}); node.KindOf(err) != node.Conflict || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("a claim of a cancelled prescription: %v", err)
	}

	// Records are not prescriptions: a payload that reads as one, or an
	// amendment of one, is refused.
	if _, err := a.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "prescription", Occurred: time.Now(), Payload: []byte("medfed/prescription/v1\nforged")}); !errors.Is(err, centre.ErrBadRecord) {
		t.Fatalf("a record that reads as a prescription: %v", err)
	}
	if _, err := a.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "prescription", Occurred: time.Now(), Replaces: res.Index, Payload: []byte("changed my mind")}); !errors.Is(err, centre.ErrBadRecord) {
		t.Fatalf("an amendment of a prescription: %v", err)
	}

	// A second prescriber of the same medication, at centre-b, is warned
	// once the query releases centre-a's prescriptions to them.
	q := ledger.Pseudonym(sha256.Sum256([]byte("two prescribers")))
	first, err := a.IssuePrescription(ctx, rxRequest(q, 0))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "centre-b sees centre-a's prescription", func() bool {
		r, err := b.Prescriptions(ctx, centre.PrescriptionsRequest{Pseudonym: q, Asker: centre.Asker{Role: consent.Clinician, Staff: ledger.StaffID{3}, Purpose: consent.Treatment}})
		return err == nil && len(r.Prescriptions) == 1 && !r.Prescriptions[0].Known && r.Prescriptions[0].Index == first.Index
	})
	other := rxRequest(q, 0)
	other.Prescriber = ledger.StaffID{3}
	second, err := b.IssuePrescription(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Warnings) != 1 || second.Warnings[0].Holder != "centre-a" || second.Warnings[0].Index != first.Index {
		t.Fatalf("the second prescriber's warnings: %+v", second.Warnings)
	}

	// Every supply is on the issuer's ledger (three: two of the first
	// prescription, the good claim over the wire) and those claimed
	// through a node on its pharmacy's too, naming the issuer.
	issuerDispenses, pharmacyDispenses := 0, 0
	for _, n := range nodes {
		es, err := n.Centre.Ledger.EntriesOfKind(ctx, ledger.KindDispense)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			d, err := e.Dispense()
			if err != nil {
				t.Fatalf("%s: entry %d: %v", n.Centre.Name, e.Index, err)
			}
			switch {
			case n == a && len(d.Issuer) == 0:
				issuerDispenses++
			case n != a && peer.ID(d.Issuer) == a.Centre.ID():
				pharmacyDispenses++
			default:
				t.Errorf("%s: dispense entry %d names issuer %q", n.Centre.Name, e.Index, peer.ID(d.Issuer))
			}
		}
	}
	if issuerDispenses != 3 || pharmacyDispenses != 2 {
		t.Errorf("dispense entries: %d on the issuer's ledger, %d on the pharmacies', want 3 and 2", issuerDispenses, pharmacyDispenses)
	}
}
