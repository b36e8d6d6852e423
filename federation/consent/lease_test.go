package consent_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// revoked reports whether m's ledger holds a revocation, and fails the
// test when it cannot be read.
func revoked(t *testing.T, m *member) bool {
	t.Helper()
	revs, err := m.ledger.EntriesOfKind(context.Background(), ledger.KindRevocation)
	if err != nil {
		t.Fatal(err)
	}
	return len(revs) > 0
}

// TestRevocationReachesHoldersTheDirectoryMisses: the directory lists only
// centre-b, yet centre-c, centre-d and centre-e hold the patient's records
// and have decided for them. A revocation submitted at centre-a is pushed
// to centre-b and to one more member for a majority of five; when Submit
// returns it is on the ledger of every centre that decided, before any of
// them is asked again, because each holds a lease from a majority and
// every member of the majority told its leaseholders before it answered.
func TestRevocationReachesHoldersTheDirectoryMisses(t *testing.T) {
	// Leases long enough to outlast the reads before the revocation on a
	// loaded machine.
	f := newTestFedLease(t, 10*time.Second, 5, 1) // the directory lists centre-b alone
	a, b := f.members[0], f.members[1]
	unlisted := f.members[2:]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.grantAt(a, consent.ID{1}, now)
	for _, m := range append([]*member{b}, unlisted...) {
		if d, err := m.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !d.Permit {
			t.Fatalf("%s before the revocation: %v, %v", m.name, d, err)
		}
	}

	del, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now})))
	if err != nil {
		t.Fatal(err)
	}
	if !del.Confirmed || del.Waited != 0 || len(del.Failed) != 0 {
		t.Fatalf("revocation: %+v; want confirmed without waiting, no failure", del)
	}
	pushed := 0
	for _, m := range unlisted {
		if slices.Contains(del.Delivered, m.id(t)) {
			pushed++
		}
	}
	if pushed == len(unlisted) {
		t.Fatalf("the revocation was pushed to every unlisted holder (%v): the test shows nothing", del.Delivered)
	}
	for _, m := range append([]*member{b}, unlisted...) {
		if !revoked(t, m) {
			t.Errorf("%s does not hold the confirmed revocation (pushed to %v)", m.name, del.Delivered)
		}
		if d, err := m.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || d.Permit || d.Basis != consent.BasisWithdrawn {
			t.Errorf("%s after the revocation: %v, %v", m.name, d, err)
		}
	}
}

// TestRevocationWaitsOutAHolderItCannotTell: centre-c holds the patient's
// records and a lease on their consent. A revocation submitted at
// centre-a cannot be delivered to it: once because its disk refuses the
// write (the connection is live), once because it is cut off. Either way
// Submit confirms the revocation only after centre-c's lease has run out,
// and centre-c releases nothing meanwhile or after: with its disk
// refusing it voids its lease and cannot read the state, and cut off it
// cannot reach a majority; back to health it reads the revocation.
func TestRevocationWaitsOutAHolderItCannotTell(t *testing.T) {
	for _, how := range []string{"disk full", "cut off"} {
		t.Run(how, func(t *testing.T) {
			f := newTestFed(t, 3, 1, 2)
			a, c := f.members[0], f.members[2]
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Second)
			f.grantAt(a, consent.ID{1}, now)
			leased := time.Now()
			if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !d.Permit {
				t.Fatalf("centre-c before the revocation: %v, %v", d, err)
			}
			heal := func() { c.disk.fail.Store(false) }
			if how == "cut off" {
				f.cut(c)
				heal = f.connect
			} else {
				c.disk.fail.Store(true)
			}

			del, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now})))
			if err != nil {
				t.Fatal(err)
			}
			confirmed := time.Now()
			if !del.Confirmed || del.Waited == 0 || len(del.Failed) != 1 || del.Failed[0].Centre != c.id(t) {
				t.Fatalf("revocation: %+v; want confirmed after waiting out centre-c's lease, centre-c failed", del)
			}
			if confirmed.Sub(leased) < testLease {
				t.Fatalf("confirmed %v after centre-c took its lease of %v", confirmed.Sub(leased), testLease)
			}
			if revoked(t, c) {
				t.Fatal("centre-c holds the revocation: the test shows nothing")
			}
			if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); !errors.Is(err, consent.ErrStale) {
				t.Fatalf("centre-c decided without the confirmed revocation: %v, %v", d, err)
			}
			heal()
			if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || d.Permit || d.Basis != consent.BasisWithdrawn {
				t.Fatalf("centre-c back to health: %v, %v", d, err)
			}
			t.Logf("%s: confirmed after waiting %v for centre-c's lease", how, del.Waited.Round(time.Millisecond))
		})
	}
}

// TestErasureReachesHoldersTheDirectoryMisses: the patient's erasure is
// submitted at centre-a while the directory lists centre-b alone, though
// centre-b to centre-e all hold the patient's records. Every one carries
// it out without being asked again: centre-b as it is pushed to, centre-c
// as it holds a lease, centre-d (no lease) from the erasure feed within
// the pull interval, and centre-e, down meanwhile, once back (and before
// its first decision in any case).
func TestErasureReachesHoldersTheDirectoryMisses(t *testing.T) {
	const lease = 3 * time.Second // the feed is read every two leases
	f := newTestFedLease(t, lease, 5, 1)
	// Issue times are to the second: a notice of 3 s is more than 2 s
	// after the attestation, whatever second boundary grantAt crosses.
	f.tune(func(p *federation.Policy) { p.KeyNotice = 3 * time.Second })
	a, b, c, d, e := f.members[0], f.members[1], f.members[2], f.members[3], f.members[4]
	f.held = ids(t, b, c, d, e)
	ctx := context.Background()
	f.grantAt(a, consent.ID{1}, time.Now().UTC().Truncate(time.Second))
	erasure := func() []byte {
		return f.sign(consent.SignErasure(key("patient"), consent.Erasure{Federation: fed, Subject: patient, Issued: time.Now().UTC().Truncate(time.Second)}))
	}
	// A key attested a moment ago has not been in force for the notice.
	if _, err := a.svc.Submit(ctx, erasure()); !errors.Is(err, consent.ErrConflict) {
		t.Fatalf("an erasure by a key not yet settled: %v", err)
	}
	time.Sleep(4 * time.Second)
	if dec, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !dec.Permit {
		t.Fatalf("centre-c before the erasure: %v, %v", dec, err)
	}

	f.stop(e)
	raw := erasure()
	doc, err := consent.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	del, err := a.svc.Submit(ctx, raw)
	if err != nil || !del.Confirmed {
		t.Fatalf("erasure: %+v, %v", del, err)
	}
	if slices.Contains(del.Delivered, d.id(t)) {
		t.Fatalf("centre-d was among the majority pushed to (%v): the feed is not what reaches it, and the test shows nothing", del.Delivered)
	}
	want := doc.Erasure.Issued.UnixMilli()
	waitErased := func(m *member, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); m.erased.Load() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s has not carried out the erasure within %v (pushed to %v)", m.name, within, del.Delivered)
			}
		}
	}
	waitErased(b, 5*time.Second)
	waitErased(c, 5*time.Second)
	waitErased(d, 3*lease)
	// centre-e, down meanwhile, erases once back: before it decides.
	f.start(e)
	f.connect()
	if e.erased.Load() == want {
		t.Fatal("centre-e erased before it learnt of the erasure: the test shows nothing")
	}
	if _, err := e.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil {
		t.Fatal(err)
	}
	if got := e.erased.Load(); got != want {
		t.Fatalf("centre-e decided before carrying out the erasure (erased before %d, want %d)", got, want)
	}
}

// TestRestartedMemberWaitsOutItsEarlierLeases: centre-c read the
// patient's consent from centre-b alone (centre-a is out of its reach
// throughout), so its lease is centre-b's. centre-b restarts, and its new
// process knows nothing of that lease. A revocation submitted at centre-a
// goes to centre-b (the directory lists it), which says it restarted, so
// centre-a looks for another member to count, and centre-c cannot be
// reached: centre-b is counted after all, and the revocation confirmed
// only once the leases its earlier process may have granted have run out
// (its lease file says how far they reach). centre-c, never told, then
// reads the state again and denies.
func TestRestartedMemberWaitsOutItsEarlierLeases(t *testing.T) {
	// Leases long enough to outlast centre-b's restart and the links
	// before the revocation on a loaded machine: with leases of 1 s,
	// centre-c's could run out first, and nothing would be waited for.
	f := newTestFedLease(t, 10*time.Second, 3, 1)
	a, b, c := f.members[0], f.members[1], f.members[2]
	f.held = ids(t, b, c)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.grantAt(a, consent.ID{1}, now)
	f.cut(c, a)
	if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !d.Permit {
		t.Fatalf("centre-c before the revocation: %v, %v", d, err)
	}
	f.stop(b)
	f.start(b)
	f.link(a, b)
	f.link(b, c)
	del, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now})))
	if err != nil || !del.Confirmed {
		t.Fatalf("revocation: %+v, %v", del, err)
	}
	if slices.Contains(del.Delivered, c.id(t)) || revoked(t, c) {
		t.Fatalf("the revocation reached centre-c (delivered to %v): the test shows nothing", del.Delivered)
	}
	if del.Waited == 0 {
		t.Fatalf("confirmed without waiting for the leases centre-b's earlier process granted: %+v", del)
	}
	if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || d.Permit || d.Basis != consent.BasisWithdrawn {
		t.Fatalf("centre-c after the confirmed revocation: %v, %v", d, err)
	}
}

// TestRestartedMemberIsCountedLast: when the other members make a
// majority, a member restarted less than a lease ago is not counted, and
// nothing waits for its earlier leases.
func TestRestartedMemberIsCountedLast(t *testing.T) {
	f := newTestFedLease(t, 10*time.Second, 3, 1)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.grantAt(a, consent.ID{1}, now)
	for _, m := range f.members[1:] {
		if d, err := m.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !d.Permit {
			t.Fatalf("%s: %v, %v", m.name, d, err)
		}
	}
	f.stop(b)
	f.start(b)
	f.connect()
	del, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now})))
	if err != nil || !del.Confirmed || del.Waited != 0 || len(del.Delivered) != 2 {
		t.Fatalf("revocation: %+v, %v; want confirmed by centre-a and centre-c without waiting", del, err)
	}
}
