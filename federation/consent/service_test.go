package consent_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// member is one centre of a test federation: a real libp2p host on
// 127.0.0.1 and a real ledger file.
type member struct {
	name   string
	host   host.Host
	ledger *ledger.Ledger
	disk   *failing     // the ledger the service appends to: it fails while disk.fail is set
	erased atomic.Int64 // the last erasure the service carried out here: records before it (Unix ms)
	svc    *consent.Service
	dir    string
}

type testFed struct {
	t       *testing.T
	lease   time.Duration
	mu      sync.Mutex // guards charter's changes while the services read it
	charter federation.Charter
	members []*member
	holders []peer.ID    // what the directory lists
	held    []peer.ID    // who holds the patient's records, when not the holders listed
	asked   atomic.Int64 // how many times a service asked whether its centre holds the patient
	ahead   atomic.Int64 // how far the services' wall clock runs ahead of the machine's (ns): jump
}

// now is the wall clock the services read.
func (f *testFed) now() time.Time { return time.Now().Add(time.Duration(f.ahead.Load())) }

// current is the charter the services read.
func (f *testFed) current() federation.Charter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.charter
}

// tune changes the charter's policy under the running services.
func (f *testFed) tune(change func(*federation.Policy)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.charter.Policy)
}

// jump moves every service's wall clock d ahead; leases, on the monotonic
// clock, do not move.
func (f *testFed) jump(d time.Duration) { f.ahead.Add(int64(d)) }

// testLease is the test federations' lease term: short, so that a
// confirmation waiting out a lease, and a lease running out, take little
// time.
const testLease = time.Second

// newTestFed starts centres named centre-a, centre-b, …; the patient's
// records are held at those listed in holders (by index).
func newTestFed(t *testing.T, n int, holders ...int) *testFed {
	t.Helper()
	return newTestFedLease(t, testLease, n, holders...)
}

// newTestFedLease is newTestFed with centres holding leases of lease.
func newTestFedLease(t *testing.T, lease time.Duration, n int, holders ...int) *testFed {
	t.Helper()
	f := &testFed{t: t, lease: lease, charter: federation.Charter{Federation: fed, Version: 1, Policy: federation.DefaultPolicy(n)}}
	dirs := t.TempDir()
	for i := range n {
		name := "centre-" + string(rune('a'+i))
		f.charter.Members = append(f.charter.Members, federation.Member{Name: name, ID: centre(t, name)})
		f.members = append(f.members, &member{name: name, dir: filepath.Join(dirs, name)})
	}
	for _, i := range holders {
		f.holders = append(f.holders, f.members[i].id(t))
	}
	for _, m := range f.members {
		f.start(m)
	}
	f.connect()
	return f
}

func (m *member) id(t testing.TB) peer.ID { return centre(t, m.name) }

// start opens m's ledger, host and consent service, loading the state from
// the ledger as a restarted node does.
func (f *testFed) start(m *member) {
	t := f.t
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, m.dir+".db", ledger.Options{Origin: ledger.Origin(fed, m.name), Key: key(m.name)})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(key(m.name))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	m.host, m.ledger, m.disk = h, l, &failing{Ledger: l}
	m.svc, err = consent.New(h, consent.Options{
		Key:       key(m.name),
		Ledger:    m.disk,
		Lease:     f.lease,
		LeaseFile: m.dir + ".leases",
		Charter:   f.current,
		Now:       f.now,
		Holders:   func(context.Context, ledger.Pseudonym) ([]peer.ID, error) { return f.holders, nil },
		Holds: func(context.Context, ledger.Pseudonym) (bool, error) {
			f.asked.Add(1)
			if f.held != nil {
				return slices.Contains(f.held, h.ID()), nil
			}
			return slices.Contains(f.holders, h.ID()), nil
		},
		Erase: func(_ context.Context, _ ledger.Pseudonym, before time.Time) error {
			m.erased.Store(before.UnixMilli())
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var entries []ledger.Entry
	for _, k := range []ledger.Kind{ledger.KindConsent, ledger.KindRevocation, ledger.KindAccess} {
		es, err := l.EntriesOfKind(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, es...)
	}
	slices.SortFunc(entries, func(a, b ledger.Entry) int { return int(a.Index - b.Index) })
	if err := m.svc.Load(entries); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.stop(m) })
}

func (f *testFed) stop(m *member) {
	if m.host == nil {
		return
	}
	m.svc.Close()
	if err := m.host.Close(); err != nil {
		f.t.Error(err)
	}
	if err := m.ledger.Close(); err != nil {
		f.t.Error(err)
	}
	m.host = nil
}

// connect tells every running member the others' addresses and connects
// them.
func (f *testFed) connect() {
	f.t.Helper()
	for _, a := range f.members {
		for _, b := range f.members {
			if a == b || a.host == nil || b.host == nil {
				continue
			}
			a.host.Peerstore().AddAddrs(b.host.ID(), b.host.Addrs(), peerstore.PermanentAddrTTL)
			if err := a.host.Connect(context.Background(), peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

// link tells m and o each other's address and connects them.
func (f *testFed) link(m, o *member) {
	f.t.Helper()
	m.host.Peerstore().AddAddrs(o.host.ID(), o.host.Addrs(), peerstore.PermanentAddrTTL)
	o.host.Peerstore().AddAddrs(m.host.ID(), m.host.Addrs(), peerstore.PermanentAddrTTL)
	if err := m.host.Connect(context.Background(), peer.AddrInfo{ID: o.host.ID(), Addrs: o.host.Addrs()}); err != nil {
		f.t.Fatal(err)
	}
}

// cut cuts m off from the other members, or from those given: no
// connection, and neither knows the other's address.
func (f *testFed) cut(m *member, from ...*member) {
	f.t.Helper()
	if from == nil {
		from = f.members
	}
	for _, o := range from {
		if o == m || o.host == nil {
			continue
		}
		o.host.Peerstore().ClearAddrs(m.host.ID())
		m.host.Peerstore().ClearAddrs(o.host.ID())
		if err := o.host.Network().ClosePeer(m.host.ID()); err != nil {
			f.t.Fatal(err)
		}
		if err := m.host.Network().ClosePeer(o.host.ID()); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *testFed) sign(raw []byte, err error) []byte {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

// attest has m attest the patient's key.
func (f *testFed) attest(m *member) {
	f.t.Helper()
	if _, err := m.svc.Attest(context.Background(), patient, key("patient").Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		f.t.Fatal(err)
	}
}

// grantAt has m attest the patient's key and submits an opt-in contract
// with ID id issued at now.
func (f *testFed) grantAt(m *member, id consent.ID, now time.Time) {
	f.t.Helper()
	ctx := context.Background()
	f.attest(m)
	if _, err := m.svc.Submit(ctx, f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: id, Federation: fed, Subject: patient, Issued: now, Base: consent.OptIn,
	}))); err != nil {
		f.t.Fatal(err)
	}
}

func ids(t testing.TB, ms ...*member) []peer.ID {
	var out []peer.ID
	for _, m := range ms {
		out = append(out, m.id(t))
	}
	slices.Sort(out)
	return out
}

func treatment(t testing.TB, at time.Time) consent.Request {
	return consent.Request{
		Centre: centre(t, "centre-a"), Role: consent.Clinician, Staff: staff, Action: consent.Access,
		Purpose: consent.Treatment, Class: "lab-result", Recorded: at.Add(-day), Time: at,
	}
}

// TestRevocationReachesEveryHolder: a contract and its revocation issued
// at centre-a take effect at the holders centre-b and centre-c as soon as
// Submit returns; centre-d, down during the revocation, refuses to decide
// until it has synced, and then denies too.
func TestRevocationReachesEveryHolder(t *testing.T) {
	f := newTestFed(t, 4, 1, 2, 3)
	a, b, c, d := f.members[0], f.members[1], f.members[2], f.members[3]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)

	del, err := a.svc.Attest(ctx, patient, key("patient").Public().(ed25519.PublicKey), false, ledger.StaffID{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := del.Delivered, ids(t, b, c, d); !slices.Equal(got, want) {
		t.Fatalf("attestation delivered to %v, want %v (failed: %v)", got, want, del.Failed)
	}
	grant := f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: consent.ID{1}, Version: 1, Federation: fed, Subject: patient, Issued: now, Base: consent.OptIn,
	}))
	if del, err = a.svc.Submit(ctx, grant); err != nil || len(del.Delivered) != 3 {
		t.Fatalf("grant: %+v, %v", del, err)
	}
	for _, m := range []*member{b, c, d} {
		if dec, err := m.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !dec.Permit {
			t.Fatalf("%s before the revocation: %v, %v", m.name, dec, err)
		}
	}

	f.stop(d)
	revoke := f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now}))
	start := time.Now()
	del, err = a.svc.Submit(ctx, revoke)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{b, c} {
		dec, err := m.svc.Decide(ctx, patient, treatment(t, time.Now()))
		if err != nil || dec.Permit || dec.Basis != consent.BasisWithdrawn {
			t.Fatalf("%s after the revocation: %v, %v", m.name, dec, err)
		}
	}
	t.Logf("revocation in effect at both reachable holders %v after it was submitted", time.Since(start))
	if got, want := del.Delivered, ids(t, b, c); !slices.Equal(got, want) || len(del.Failed) != 1 || del.Failed[0].Centre != d.id(t) {
		t.Fatalf("revocation delivered to %v, failed %v; want %v and centre-d failed", got, del.Failed, want)
	}

	// centre-d restarts cut off from the others: it may not decide.
	f.start(d)
	_, err = d.svc.Decide(ctx, patient, treatment(t, time.Now()))
	if !errors.Is(err, consent.ErrStale) {
		t.Fatalf("centre-d decided before syncing: %v", err)
	}
	// Back in contact: it syncs, learns of the revocation and denies.
	f.connect()
	dec, err := d.svc.Decide(ctx, patient, treatment(t, time.Now()))
	if err != nil || dec.Permit || dec.Basis != consent.BasisWithdrawn {
		t.Fatalf("centre-d after syncing: %v, %v", dec, err)
	}
	revs, err := d.ledger.EntriesOfKind(ctx, ledger.KindRevocation)
	if err != nil || len(revs) != 1 {
		t.Fatalf("centre-d's ledger holds %d revocations (%v), want 1", len(revs), err)
	}
}

// TestSubmitRefusesWrongKey: a contract signed by a key no member
// attested for the patient is refused and changes nothing.
func TestSubmitRefusesWrongKey(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a := f.members[0]
	ctx := context.Background()
	f.attest(a)
	size := a.ledger.Size()
	forged := f.sign(consent.SignContract(key("mallory"), consent.Contract{
		ID: consent.ID{1}, Federation: fed, Subject: patient, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn,
	}))
	if _, err := a.svc.Submit(ctx, forged); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("forged contract: %v, want ErrSignature", err)
	}
	if a.ledger.Size() != size {
		t.Fatal("a refused contract reached the ledger")
	}
	// An attestation signed by a centre outside the charter is refused too.
	outsider := f.sign(consent.SignAttestation(key("centre-x"), consent.Attestation{
		Federation: fed, Subject: patient, Key: key("mallory").Public().(ed25519.PublicKey), Issued: time.Now().UTC().Truncate(time.Second),
	}))
	if _, err := a.svc.Submit(ctx, outsider); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("outsider's attestation: %v, want ErrSignature", err)
	}
}

// TestTokenUsesAreRecordedFirst: a single-use token permits once at a
// holder, the use is on the holder's ledger, and it stays spent across a
// restart.
func TestTokenUsesAreRecordedFirst(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	f.attest(a)
	now := time.Now().UTC().Truncate(time.Second)
	tok := f.sign(consent.SignToken(key("patient"), consent.Token{
		ID: consent.ID{4}, Federation: fed, Subject: patient, Grantee: consent.Actor{Centre: a.id(t)},
		Purposes: consent.Research, Issued: now, Expires: now.Add(time.Hour), Uses: 1,
	}))
	q := treatment(t, time.Now())
	q.Purpose, q.Role = consent.Research, consent.Researcher
	if d, err := b.svc.Decide(ctx, patient, q); err != nil || d.Permit {
		t.Fatalf("research without the token: %v, %v", d, err)
	}
	size := b.ledger.Size()
	d, err := b.svc.UseToken(ctx, patient, tok, q)
	if err != nil || !d.Permit {
		t.Fatalf("first use: %v, %v", d, err)
	}
	if b.ledger.Size() != size+1 {
		t.Fatal("the use is not on the ledger")
	}
	e, err := b.ledger.Entry(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if acc, err := consent.DecodeAccess(e); err != nil || acc.Use != 1 || acc.Ref != (consent.ID{4}) || !acc.Permitted {
		t.Fatalf("access entry %+v, %v", acc, err)
	}
	if d, err := b.svc.UseToken(ctx, patient, tok, q); err != nil || d.Permit {
		t.Fatalf("second use: %v, %v", d, err)
	}
	f.stop(b)
	f.start(b)
	f.connect()
	if d, err := b.svc.UseToken(ctx, patient, tok, q); err != nil || d.Permit {
		t.Fatalf("use after a restart: %v, %v", d, err)
	}
}

// TestEmergencyIsAuditedAndNotified: emergency access opens a session
// recorded on the ledger, notified; stopping it is too. A patient who
// opted out is refused, and the refusal is notified as well.
func TestEmergencyIsAuditedAndNotified(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	q := treatment(t, time.Now())
	q.Purpose, q.Reason = consent.Emergency, consent.Unconscious

	sess, d, err := b.svc.EmergencyStart(ctx, patient, q)
	if err != nil || !d.Permit {
		t.Fatalf("emergency start: %v, %v", d, err)
	}
	if err := b.svc.EmergencyStop(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.svc.Session(sess.ID); ok {
		t.Fatal("session open after stop")
	}
	notes := b.svc.Notifications(-1)
	if len(notes) != 2 || notes[0].Event != consent.EventEmergencyStart || notes[1].Event != consent.EventEmergencyStop || notes[0].Reason != consent.Unconscious {
		t.Fatalf("notifications %+v", notes)
	}
	if got := b.svc.Notifications(notes[0].Index); len(got) != 1 {
		t.Fatalf("feed after the first: %d notifications", len(got))
	}

	// Opted out.
	f.attest(a)
	noEmergency := f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: consent.ID{2}, Federation: fed, Subject: patient, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn,
		Provisions: []consent.Provision{{Type: consent.Deny, Purposes: consent.Emergency}},
	}))
	if _, err := a.svc.Submit(ctx, noEmergency); err != nil {
		t.Fatal(err)
	}
	if _, d, err := b.svc.EmergencyStart(ctx, patient, q); err != nil || d.Permit {
		t.Fatalf("emergency after opting out: %v, %v", d, err)
	}
	// The attestation is in the feed too: the patient hears who attested
	// a key for them.
	notes = b.svc.Notifications(-1)
	if len(notes) != 4 || notes[2].Document != consent.KindAttestation || notes[3].Event != consent.EventEmergencyStart || notes[3].Permitted {
		t.Fatalf("refused emergency not notified: %+v", notes)
	}
	// Restarted, the centre still has the feed.
	f.stop(b)
	f.start(b)
	if notes := b.svc.Notifications(-1); len(notes) != 4 {
		t.Fatalf("after a restart: %d notifications", len(notes))
	}
}

// TestRevocationOutlivesItsSubmitter: with three centres and the records
// at centre-b and centre-c, a revocation submitted at centre-b while
// centre-c is down also goes to centre-a (a majority of the federation),
// so centre-c, restarted when centre-b is down in turn, still learns of it.
func TestRevocationOutlivesItsSubmitter(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b, c := f.members[0], f.members[1], f.members[2]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.grantAt(b, consent.ID{1}, now)
	f.stop(c)
	del, err := b.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now})))
	if err != nil || !del.Confirmed || !slices.Contains(del.Delivered, a.id(t)) {
		t.Fatalf("revocation with centre-c down: %+v, %v; want it confirmed through centre-a", del, err)
	}
	f.stop(b)
	f.start(c)
	f.connect()
	d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now()))
	if err != nil || d.Permit || d.Basis != consent.BasisWithdrawn {
		t.Fatalf("centre-c after the submitter went down: %v, %v", d, err)
	}
}

// TestHolderCutOffWhileRunning: a holder that loses its connections
// while it runs misses a revocation; it refuses to decide while it cannot
// sync, and denies once it has.
func TestHolderCutOffWhileRunning(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, c := f.members[0], f.members[2]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.grantAt(a, consent.ID{1}, now)
	if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !d.Permit {
		t.Fatalf("centre-c before: %v, %v", d, err)
	}
	f.cut(c)
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignRevocation(key("patient"), consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{1}, Issued: now}))); err != nil {
		t.Fatal(err)
	}
	// The revocation was confirmed once centre-c's lease ran out: back in
	// contact, it reads the state again, and denies.
	f.connect()
	if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || d.Permit || d.Basis != consent.BasisWithdrawn {
		t.Fatalf("centre-c back in contact: %v, %v", d, err)
	}
	// Cut off again, it decides while its new lease lasts (no document
	// can be confirmed meanwhile without waiting it out), then refuses.
	f.cut(c)
	if d, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || d.Permit {
		t.Fatalf("centre-c cut off, within its lease: %v, %v", d, err)
	}
	time.Sleep(testLease)
	if _, err := c.svc.Decide(ctx, patient, treatment(t, time.Now())); !errors.Is(err, consent.ErrStale) {
		t.Fatalf("centre-c cut off decided after its lease ran out: %v", err)
	}
}

// failing is a ledger whose appends fail while fail is set.
type failing struct {
	*ledger.Ledger
	fail atomic.Bool
}

func (l *failing) Append(ctx context.Context, es ...ledger.Entry) (int64, error) {
	if l.fail.Load() {
		return 0, errors.New("disk full")
	}
	return l.Ledger.Append(ctx, es...)
}

// TestTokenUseNeedsTheLedger: when the use cannot be recorded, nothing is
// permitted, and the use is not counted.
func TestTokenUseNeedsTheLedger(t *testing.T) {
	f := newTestFed(t, 1, 0)
	m := f.members[0]
	ctx := context.Background()
	l := &failing{Ledger: m.ledger}
	svc, err := consent.New(m.host, consent.Options{
		Key: key(m.name), Ledger: l, Charter: f.current,
		Holders: func(context.Context, ledger.Pseudonym) ([]peer.ID, error) { return f.holders, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Attest(ctx, patient, key("patient").Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	tok := f.sign(consent.SignToken(key("patient"), consent.Token{
		ID: consent.ID{4}, Federation: fed, Subject: patient, Grantee: consent.Actor{Centre: centre(t, "centre-a")},
		Issued: now, Expires: now.Add(time.Hour), Uses: 1,
	}))
	l.fail.Store(true)
	if d, err := svc.UseToken(ctx, patient, tok, treatment(t, time.Now())); err == nil || d.Permit {
		t.Fatalf("use without a ledger: %v, %v", d, err)
	}
	l.fail.Store(false)
	if d, err := svc.UseToken(ctx, patient, tok, treatment(t, time.Now())); err != nil || !d.Permit {
		t.Fatalf("first recorded use: %v, %v", d, err)
	}
}

// TestBackdatedAttestationIsRefused: a member cannot slip in an
// attestation older than the patient's current one.
func TestBackdatedAttestationIsRefused(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a := f.members[0]
	ctx := context.Background()
	f.attest(a)
	size := a.ledger.Size()
	old := f.sign(consent.SignAttestation(key("centre-b"), consent.Attestation{
		Federation: fed, Subject: patient, Key: key("mallory").Public().(ed25519.PublicKey), Issued: time.Unix(86400, 0).UTC(),
	}))
	if _, err := a.svc.Submit(ctx, old); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("backdated attestation: %v", err)
	}
	if a.ledger.Size() != size {
		t.Fatal("a refused attestation reached the ledger")
	}
}

// TestAuthorize: a query's records are decided one by one and the access
// is on the ledger when Authorize returns; an emergency start the patient
// opted out of releases nothing, even records older than the opt-out's
// data period.
func TestAuthorize(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	f.attest(a)
	optedOut := consent.Period{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := a.svc.Submit(ctx, f.sign(consent.SignContract(key("patient"), consent.Contract{
		ID: consent.ID{1}, Federation: fed, Subject: patient, Issued: now, Base: consent.OptIn,
		Provisions: []consent.Provision{
			{Type: consent.Deny, Classes: []string{"mental-health"}},
			{Type: consent.Deny, Purposes: consent.Emergency, DataPeriod: optedOut},
		},
	}))); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	recs := []consent.Record{{Class: "lab-result", Recorded: old}, {Class: "mental-health", Recorded: old}}
	q := treatment(t, time.Now())
	size := b.ledger.Size()
	auth, err := b.svc.Authorize(ctx, patient, q, recs, nil, [16]byte{1})
	if err != nil || auth.Released != 1 || !auth.Decisions[0].Permit || auth.Decisions[1].Permit {
		t.Fatalf("treatment: %+v, %v", auth, err)
	}
	e, err := b.ledger.Entry(ctx, auth.Access)
	if err != nil || b.ledger.Size() != size+1 {
		t.Fatalf("access entry: %v (ledger grew by %d)", err, b.ledger.Size()-size)
	}
	if acc, err := consent.DecodeAccess(e); err != nil || acc.Released != 1 || acc.Nonce != ([16]byte{1}) || !acc.Permitted {
		t.Fatalf("access entry %+v, %v", acc, err)
	}

	q.Purpose, q.Reason = consent.Emergency, consent.Unconscious
	auth, err = b.svc.Authorize(ctx, patient, q, recs, nil, [16]byte{2})
	if err != nil || auth.Released != 0 || auth.Query.Permit || auth.Query.Basis != consent.BasisEmergency || !auth.Session.IsZero() {
		t.Fatalf("emergency after opting out: %+v, %v", auth, err)
	}
	if notes := b.svc.Notifications(-1); len(notes) != 2 || notes[0].Document != consent.KindAttestation || notes[1].Permitted {
		t.Fatalf("the refused emergency start is not notified: %+v", notes)
	}
}

// A holder learns once that it holds a patient, whose state it then keeps:
// reading the state again when a lease runs out does not ask again.
func TestHolderAsksOnceWhetherItHoldsThePatient(t *testing.T) {
	f := newTestFedLease(t, 300*time.Millisecond, 3, 1)
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	f.attest(a)
	recs := []consent.Record{{Class: "lab-result", Recorded: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)}}
	for i := range 3 {
		if _, err := b.svc.Authorize(ctx, patient, treatment(t, time.Now()), recs, nil, [16]byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond) // the lease runs out: the next decision reads the state again
	}
	if n := f.asked.Load(); n != 1 {
		t.Errorf("asked %d times whether the centre holds the patient, want once", n)
	}
}

// TestAbuseEmergencyOutlivesTheCharter: break-glass access ends on its
// own after the charter's emergency-duration; a stop for a session that
// expired, or one asked by another member than the requester, changes
// nothing.
func TestAbuseEmergencyOutlivesTheCharter(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	// Long enough for another member's stop to be asked and answered
	// within the session on a loaded machine.
	const duration = 3 * time.Second
	f.tune(func(p *federation.Policy) { p.EmergencyDuration = duration })
	a, b := f.members[0], f.members[1]
	ctx := context.Background()
	q := treatment(t, time.Now())
	q.Purpose, q.Reason = consent.Emergency, consent.Unconscious
	q.Centre = a.id(t)

	sess, d, err := b.svc.EmergencyStart(ctx, patient, q)
	if err != nil || !d.Permit {
		t.Fatalf("emergency start: %v, %v", d, err)
	}
	if !sess.Expires.Equal(sess.Started.Add(duration)) {
		t.Fatalf("the session runs %v, the charter says %v", sess.Expires.Sub(sess.Started), duration)
	}
	// centre-c cannot stop centre-a's session.
	size := b.ledger.Size()
	if got := f.members[2].svc.StopEmergency(ctx, patient, ledger.StaffID{}, []peer.ID{b.id(t)}); got[0].Err != nil || got[0].Count != 0 {
		t.Fatalf("another member's stop: %+v", got)
	}
	if _, ok := b.svc.Session(sess.ID); !ok || b.ledger.Size() != size {
		t.Fatal("another member's stop changed the session or the ledger")
	}
	time.Sleep(time.Until(sess.Expires) + 100*time.Millisecond)
	if _, ok := b.svc.Session(sess.ID); ok {
		t.Fatal("the session outlived the charter's emergency-duration")
	}
	if got := a.svc.StopEmergency(ctx, patient, ledger.StaffID{}, []peer.ID{b.id(t)}); got[0].Err != nil || got[0].Count != 0 {
		t.Fatalf("a stop after the expiry: %+v", got)
	}
	if b.ledger.Size() != size {
		t.Fatal("a stop after the expiry grew the ledger")
	}
}

// TestPasskeySignsForThePatient: a passkey attested as the patient's key
// signs a contract in a browser's way (a draft, its challenge asserted):
// every holder checks the assertion and permits; the same contract with
// a field changed after signing, or the assertion replayed on another
// document, is refused and changes nothing.
func TestPasskeySignsForThePatient(t *testing.T) {
	f := newTestFed(t, 3, 1, 2)
	a, b, c := f.members[0], f.members[1], f.members[2]
	ctx := context.Background()
	pk := passkeytest.New(t, "portal.centre-a.example")
	if _, err := a.svc.Attest(ctx, patient, pk.ID(t), false, ledger.StaffID{}); err != nil {
		t.Fatal(err)
	}
	contract := consent.Contract{ID: consent.ID{7}, Version: 1, Federation: fed, Subject: patient, Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn}
	d, err := consent.DraftContract(pk.ID(t), true, contract)
	if err != nil {
		t.Fatal(err)
	}
	assertion := pk.Assert(t, d.Challenge())
	raw, err := d.SealPasskey(assertion)
	if err != nil {
		t.Fatal(err)
	}

	// Tampered: the base policy changed after the patient signed.
	contract.Base = consent.OptOut
	other, err := consent.DraftContract(pk.ID(t), true, contract)
	if err != nil {
		t.Fatal(err)
	}
	size := a.ledger.Size()
	if forged, err := other.SealPasskey(assertion); err != nil {
		t.Fatal(err)
	} else if _, err := a.svc.Submit(ctx, forged); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a contract changed after its assertion: %v, want ErrSignature", err)
	}
	if a.ledger.Size() != size {
		t.Fatal("a refused contract reached the ledger")
	}

	del, err := a.svc.Submit(ctx, raw)
	if err != nil || len(del.Delivered) != 2 {
		t.Fatalf("the passkey's contract: %+v, %v", del, err)
	}
	for _, m := range []*member{b, c} {
		if dec, err := m.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !dec.Permit {
			t.Fatalf("%s after the passkey's contract: %v, %v", m.name, dec, err)
		}
	}
	// Another passkey, never attested, signs nothing for the patient.
	stranger := passkeytest.New(t, pk.RPID)
	rev, err := consent.DraftRevocation(stranger.ID(t), true, consent.Revocation{Federation: fed, Subject: patient, Target: consent.ID{7}, Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := rev.SealPasskey(stranger.Assert(t, rev.Challenge()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Submit(ctx, sealed); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a stranger's passkey revoked: %v, want ErrSignature", err)
	}
	if dec, err := b.svc.Decide(ctx, patient, treatment(t, time.Now())); err != nil || !dec.Permit {
		t.Fatalf("centre-b after the stranger's revocation: %v, %v", dec, err)
	}
}
