package centre_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// A centre's audit trail holds its questions about patients, consent
// documents, revocations, erasures and transfers, decoded, in ledger
// order, and none of its records; a reader paging through it with Next
// reads every entry once and knows from AuditHead when there is more.
func TestAuditTrail(t *testing.T) {
	root := t.TempDir()
	cfg := centreConfig(t, root, "centre-a")
	found(t, cfg)
	n := start(t, cfg)
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("audit trail test patient")))

	size, grown := n.AuditHead()
	rec, err := n.AddRecord(ctx, centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("synthetic result")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-grown:
	case <-time.After(10 * time.Second):
		t.Fatal("AuditHead's channel not closed when the ledger grew")
	}
	if now, _ := n.AuditHead(); now <= size {
		t.Fatalf("size %d after an append, %d before", now, size)
	}

	staff := ledger.StaffID{7}
	asker := centre.Asker{Role: consent.Clinician, Staff: staff, Purpose: consent.Emergency, Reason: consent.Unconscious}
	if err := n.AuditLookup(ctx, p, asker); err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("audit trail test patient key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	if _, err := n.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, staff); err != nil {
		t.Fatal(err)
	}
	c1 := consent.Contract{ID: consent.ID{1}, Version: 1, Federation: cfg.Federation.ID, Subject: p, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptOut,
		Provisions: []consent.Provision{{Type: consent.Permit, Purposes: consent.Treatment}}}
	grant, err := consent.SignContract(key, c1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.SubmitConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	revoke, err := consent.SignRevocation(key, consent.Revocation{Federation: cfg.Federation.ID, Subject: p, Target: c1.ID, Issued: c1.Issued})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.SubmitConsent(ctx, revoke); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Centre.Erase(ctx, rec.Index); err != nil {
		t.Fatal(err)
	}
	// A transfer needs a second centre; its entry is appended here as the
	// query service would append it.
	out, err := query.NewTransfer(p, query.Transfer{Direction: query.Out, Centre: n.Centre.ID(), Source: rec.Index, Access: 1, Copy: 9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Centre.Ledger.Append(ctx, out); err != nil {
		t.Fatal(err)
	}

	// Page through the whole ledger, two entries at a time.
	var trail []centre.AuditEntry
	for from := int64(0); ; {
		page, err := n.AuditTrail(ctx, from, 2)
		if err != nil {
			t.Fatal(err)
		}
		if page.Next > from+2 || page.Next < from || page.Next > page.Size {
			t.Fatalf("a page from %d ends at %d of %d", from, page.Next, page.Size)
		}
		trail = append(trail, page.Entries...)
		if page.Next == page.Size {
			break
		}
		from = page.Next
	}
	wantKinds := []ledger.Kind{ledger.KindAccess, ledger.KindConsent, ledger.KindConsent, ledger.KindRevocation, ledger.KindErasure, ledger.KindTransfer}
	if len(trail) != len(wantKinds) {
		t.Fatalf("%d audited entries, want %d: %+v", len(trail), len(wantKinds), trail)
	}
	for i, e := range trail {
		if e.Kind != wantKinds[i] || e.Pseudonym != p || e.Time.IsZero() || (i > 0 && e.Index <= trail[i-1].Index) {
			t.Fatalf("entry %d: %+v, want a %s entry about the patient, after the one before", i, e, wantKinds[i])
		}
		if e.Kind == ledger.KindRecord || e.Index == rec.Index {
			t.Fatalf("the record is in the audit trail: %+v", e)
		}
	}
	if a := trail[0].Access; a == nil || a.Event != consent.EventLookup || a.Centre != "centre-a" || a.Staff != staff || !a.Permitted ||
		a.Reason != consent.Unconscious || !trail[0].Emergency() || trail[0].Refused() {
		t.Fatalf("the lookup: %+v", trail[0].Access)
	}
	if d := trail[1].Document; d == nil || d.Kind != consent.KindAttestation || d.Signer != "centre-a" {
		t.Fatalf("the attestation: %+v", trail[1].Document)
	}
	if d := trail[2].Document; d == nil || d.Kind != consent.KindContract || d.Signer != "patient" || !d.Issued.Equal(c1.Issued) {
		t.Fatalf("the contract: %+v", trail[2].Document)
	}
	if d := trail[3].Document; d == nil || d.Kind != consent.KindRevocation || d.Signer != "patient" {
		t.Fatalf("the revocation: %+v", trail[3].Document)
	}
	if x := trail[4].Erasure; x == nil || x.Record != rec.Index {
		t.Fatalf("the erasure: %+v", trail[4].Erasure)
	}
	if x := trail[5].Transfer; x == nil || x.Direction != query.Out || x.Centre != "centre-a" || x.Source != rec.Index || x.Copy != 9 {
		t.Fatalf("the transfer: %+v", trail[5].Transfer)
	}

	// Past the end, a page is empty and keeps the cursor.
	size, _ = n.AuditHead()
	page, err := n.AuditTrail(ctx, size+5, 10)
	if err != nil || len(page.Entries) != 0 || page.Next != size+5 || page.Size != size {
		t.Fatalf("past the end: %+v, %v", page, err)
	}
	if _, err := n.AuditTrail(ctx, 0, 0); err == nil {
		t.Fatal("a page of no entries was read")
	}
}
