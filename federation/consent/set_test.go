package consent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// A patient's consent documents go to the holders and to a majority of
// the patient's consent set of ConsentReplicas members, never to the rest
// of the federation; a centre outside the set reads the state from a
// majority of the set, and the other members, however many answer, do
// not stand in for it.
func TestConsentSetBoundsWritesAndReads(t *testing.T) {
	f := newTestFed(t, 9, 1)
	f.tune(func(p *federation.Policy) { p.ConsentReplicas = 3 })
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)

	// The set, as the service finds it: the 3 members whose Kademlia keys
	// are closest to SHA-256("medfed consent set v1", 0, federation, 0,
	// pseudonym).
	k := sha256.Sum256(slices.Concat([]byte("medfed consent set v1\x00"+fed+"\x00"), patient[:]))
	var set, rest []*member
	for _, m := range f.members {
		if slices.ContainsFunc(f.charter.Closest(k, 3), func(c federation.Member) bool { return c.ID == m.id(t) }) {
			set = append(set, m)
		} else {
			rest = append(rest, m)
		}
	}
	if len(set) != 3 {
		t.Fatalf("the consent set has %d members", len(set))
	}
	holder := f.members[1]
	var writer, outsider *member // neither in the set nor the holder
	for _, m := range rest {
		if m == holder {
			continue
		}
		if writer == nil {
			writer = m
		} else if outsider == nil {
			outsider = m
		}
	}

	if _, err := writer.svc.Attest(ctx, patient, key("patient").Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		t.Fatal(err)
	}
	grant := f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: consent.ID{1}, Version: 1, Federation: fed, Subject: patient, Issued: now, Base: consent.OptIn,
	}))
	del, err := writer.svc.Submit(ctx, grant)
	if err != nil || !del.Confirmed {
		t.Fatalf("grant: %+v, %v", del, err)
	}
	for _, id := range del.Delivered {
		if id != holder.id(t) && !slices.ContainsFunc(set, func(m *member) bool { return m.id(t) == id }) {
			t.Errorf("the grant went to %s, neither a holder nor in the patient's consent set", id)
		}
	}
	for _, m := range rest {
		if m == holder || m == writer {
			continue
		}
		if es, err := m.ledger.EntriesOfKind(ctx, ledger.KindConsent); err != nil || len(es) != 0 {
			t.Errorf("%s, outside the set, holds %d consent entries (%v)", m.name, len(es), err)
		}
	}
	// A centre outside the set reads the grant from the set.
	if dec, err := outsider.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !dec.Permit {
		t.Fatalf("%s, outside the set: %v, %v", outsider.name, dec, err)
	}
	// With two of the set's three down, the six other members up do not
	// make a read: a centre without a lease may not decide.
	f.stop(set[0])
	f.stop(set[1])
	var reader *member
	for _, m := range rest {
		if m != holder && m != writer && m != outsider {
			reader = m
			break
		}
	}
	if _, err := reader.svc.Decide(ctx, patient, treatment(t, time.Now())); !errors.Is(err, consent.ErrStale) {
		t.Fatalf("%s decided without a majority of the consent set: %v", reader.name, err)
	}
}
