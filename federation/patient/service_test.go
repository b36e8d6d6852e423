package patient_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
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
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

const fed = "patient-test"

// centre is one member of a test federation: a real libp2p host on
// 127.0.0.1, a real ledger file and the patient service.
type centre struct {
	name      string
	key       ed25519.PrivateKey
	id        peer.ID
	host      host.Host
	ledger    *ledger.Ledger
	svc       *patient.Service
	erases    atomic.Int32 // calls of Options.Erase
	withdraws atomic.Int32 // calls of Options.Withdraw
}

// attested authenticates the one key the test attested for its patient,
// and the one delegate it names, within the scope given: the signature
// checks of consent.Service, without its consent sync.
type attested struct {
	key      ed25519.PublicKey
	delegate ed25519.PublicKey
	scope    consent.Scope
}

// testDelegation is the delegation the test's delegate acts under.
var testDelegation = consent.ID{7}

func (a attested) Authenticate(_ context.Context, _ ledger.Pseudonym, key ed25519.PublicKey, signed wire.Opened, _ time.Time) error {
	if !a.key.Equal(key) || !signed.Verify(key) {
		return consent.ErrSignature
	}
	return nil
}

func (attested) Settled(context.Context, ledger.Pseudonym, ed25519.PublicKey) error { return nil }

func (a attested) AuthenticateDelegate(_ context.Context, _ ledger.Pseudonym, key ed25519.PublicKey, s consent.Scope, signed wire.Opened, _ time.Time) (consent.Acting, error) {
	switch {
	case a.delegate == nil || !a.delegate.Equal(key):
		return consent.Acting{}, consent.ErrNotDelegate
	case s&^a.scope != 0:
		return consent.Acting{}, fmt.Errorf("%w: the delegation does not cover %v", consent.ErrSignature, s)
	case !signed.Verify(key):
		return consent.Acting{}, consent.ErrSignature
	}
	return consent.Acting{Delegation: testDelegation, Delegate: key, Scope: a.scope}, nil
}

// startFed starts a centre for each name, every one a member, and
// connects them; listed is what the directory says holds the patient.
func startFed(t *testing.T, patientKey ed25519.PublicKey, listed func() []peer.ID, names ...string) []*centre {
	t.Helper()
	return startFedWith(t, patientKey, listed, nil, names...)
}

// startFedWith is startFed with each service's options changed by tweak.
func startFedWith(t *testing.T, patientKey ed25519.PublicKey, listed func() []peer.ID, tweak func(*patient.Options), names ...string) []*centre {
	t.Helper()
	ctx := context.Background()
	charter := federation.Charter{Federation: fed, Version: 1, Policy: federation.DefaultPolicy(len(names))}
	var cs []*centre
	for _, name := range names {
		seed := sha256.Sum256([]byte(name))
		c := &centre{name: name, key: ed25519.NewKeyFromSeed(seed[:])}
		var err error
		if c.id, err = federation.PeerIDFromKey(c.key); err != nil {
			t.Fatal(err)
		}
		charter.Members = append(charter.Members, federation.Member{Name: name, ID: c.id})
		cs = append(cs, c)
	}
	dir := t.TempDir()
	for _, c := range cs {
		l, err := ledger.Open(ctx, filepath.Join(dir, c.name+".db"), ledger.Options{Origin: ledger.Origin(fed, c.name), Key: c.key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
		sk, err := crypto.UnmarshalEd25519PrivateKey(c.key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		c.host, c.ledger = h, l
		opts := patient.Options{
			Key: c.key, Ledger: l, Consent: attested{key: patientKey},
			Erase: func(ctx context.Context, p ledger.Pseudonym) (int, error) {
				c.erases.Add(1)
				return eraseAll(ctx, l, p)
			},
			// The records store stands in as a payload made of the index.
			Payload: func(_ context.Context, index int64) ([]byte, error) {
				return fmt.Appendf(nil, "payload of %s's record %d", c.name, index), nil
			},
			Withdraw: func(context.Context, ledger.Pseudonym) error { c.withdraws.Add(1); return nil },
			Holders:  func(context.Context, ledger.Pseudonym) ([]peer.ID, error) { return listed(), nil },
			Charter:  func() federation.Charter { return charter },
			Timeout:  5 * time.Second,
		}
		if tweak != nil {
			tweak(&opts)
		}
		if c.svc, err = patient.New(ctx, h, opts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.svc.Close)
	}
	for _, a := range cs {
		for _, b := range cs {
			if a != b {
				a.host.Peerstore().AddAddrs(b.id, b.host.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	return cs
}

// eraseAll appends an erasure entry for each record of p not erased yet,
// as a centre does once it shredded the payload.
func eraseAll(ctx context.Context, l *ledger.Ledger, p ledger.Pseudonym) (int, error) {
	es, err := l.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindErasure)
	if err != nil {
		return 0, err
	}
	erased := map[int64]bool{}
	for _, e := range es {
		if e.Kind == ledger.KindErasure {
			x, err := e.Erasure()
			if err != nil {
				return 0, err
			}
			erased[x.Target] = true
		}
	}
	var add []ledger.Entry
	for _, e := range es {
		if e.Kind != ledger.KindRecord || erased[e.Index] {
			continue
		}
		r, err := e.Record()
		if err != nil {
			return 0, err
		}
		x, err := ledger.NewErasure(p, ledger.Erasure{Target: e.Index, Payload: r.Payload})
		if err != nil {
			return 0, err
		}
		add = append(add, x)
	}
	if len(add) == 0 {
		return 0, nil
	}
	_, err = l.Append(ctx, add...)
	return len(add), err
}

func appendTo(t *testing.T, c *centre, e ledger.Entry) {
	t.Helper()
	if _, err := c.ledger.Append(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// In a federation larger than the relay asks whole, it asks the holders
// the directory lists, and no other member: centre-b, listed, answers with
// its entries; centre-c, which holds a record the directory does not
// list, is not asked (its repair is what puts it back in the directory),
// nor are the members holding nothing.
func TestRelayInALargeFederationAsksTheListedHolders(t *testing.T) {
	ctx := context.Background()
	patientKey, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var listed []peer.ID
	cs := startFedWith(t, patientKey.Public().(ed25519.PublicKey), func() []peer.ID { return listed },
		func(o *patient.Options) { o.AskEvery = 4 }, "centre-a", "centre-b", "centre-c", "centre-d", "centre-e")
	a, b, c := cs[0], cs[1], cs[2]
	listed = []peer.ID{b.id}
	p := ledger.Pseudonym(sha256.Sum256([]byte("large federation patient")))
	holdRecords(t, p, b, c)
	res, err := a.svc.Relay(ctx, signedRequest(t, patientKey, patient.View, a.id, p))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 1 || res.Holders[0].Holder != b.id || res.Holders[0].Err != nil || len(res.Holders[0].Entries) == 0 {
		t.Fatalf("asked %+v; want centre-b alone, with its entries", res.Holders)
	}
}

// holdRecords appends a record of p to each centre's ledger.
func holdRecords(t *testing.T, p ledger.Pseudonym, cs ...*centre) {
	t.Helper()
	for _, x := range cs {
		rec, err := ledger.NewRecord(p, ledger.Record{Occurred: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), DataClass: "lab-result", Payload: [16]byte{1}, Commitment: [32]byte{2}})
		if err != nil {
			t.Fatal(err)
		}
		appendTo(t, x, rec)
	}
}

func signedRequest(t *testing.T, key ed25519.PrivateKey, op patient.Op, relay peer.ID, p ledger.Pseudonym) []byte {
	t.Helper()
	q := patient.Request{Op: op, Federation: fed, Relay: relay, Subject: p, Time: time.Now().UTC()}
	rand.Read(q.Nonce[:])
	raw, err := q.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The relay asks every member, not only the holders the directory lists:
// centre-c, which holds a record the directory does not list, answers
// with its entries like centre-b, which it lists; centre-a (the relay,
// holding only the patient's attestation, a consent document) and
// centre-d (holding nothing) say they hold nothing and append nothing,
// to a view or an erasure; centre-e, down, is in the result with why.
func TestRelayAsksEveryMember(t *testing.T) {
	ctx := context.Background()
	patientKey, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var listed []peer.ID
	cs := startFed(t, patientKey.Public().(ed25519.PublicKey), func() []peer.ID { return listed }, "centre-a", "centre-b", "centre-c", "centre-d", "centre-e")
	a, b, c, d, e := cs[0], cs[1], cs[2], cs[3], cs[4]
	listed = []peer.ID{b.id}
	p := ledger.Pseudonym(sha256.Sum256([]byte("relay test patient")))
	holdRecords(t, p, b, c)
	doc, err := consent.SignAttestation(a.key, consent.Attestation{Federation: fed, Subject: p, Key: patientKey.Public().(ed25519.PublicKey), Issued: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, a, ledger.Entry{Kind: ledger.KindConsent, Subject: p, Body: doc})
	if err := e.host.Close(); err != nil {
		t.Fatal(err)
	}
	sizes := func() []int64 { return []int64{a.ledger.Size(), d.ledger.Size()} }
	before := sizes()

	for _, op := range []patient.Op{patient.View, patient.Erase} {
		res, err := a.svc.Relay(ctx, signedRequest(t, patientKey, op, a.id, p))
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if len(res.Holders) != len(cs) || res.Lookup != nil {
			t.Fatalf("%s: asked %d centres, want %d: %+v", op, len(res.Holders), len(cs), res)
		}
		for _, x := range cs {
			i := slices.IndexFunc(res.Holders, func(h patient.HolderAnswer) bool { return h.Holder == x.id })
			if i < 0 {
				t.Fatalf("%s: %s was not asked", op, x.name)
			}
			h := res.Holders[i]
			switch x {
			case b, c:
				if h.Err != nil || h.Nothing || len(h.Entries) == 0 {
					t.Fatalf("%s at %s, a holder: %+v", op, x.name, h)
				}
				kinds := map[ledger.Kind]bool{}
				for _, en := range h.Entries {
					kinds[en.Kind] = true
				}
				if op == patient.View && (!kinds[ledger.KindRecord] || !kinds[ledger.KindAccess]) {
					t.Fatalf("%s's view lacks its record or the view's own access entry: %+v", x.name, h.Entries)
				}
				if op == patient.Erase && (!h.Withdrawn || len(h.Entries) != 1 || h.Entries[0].Kind != ledger.KindErasure) {
					t.Fatalf("%s's erasure: %+v", x.name, h)
				}
			case a, d:
				if h.Err != nil || !h.Nothing || len(h.Entries) != 0 || h.Withdrawn {
					t.Fatalf("%s at %s, which holds nothing: %+v", op, x.name, h)
				}
			case e:
				if h.Err == nil {
					t.Fatalf("%s: centre-e is down, yet answered: %+v", op, h)
				}
			}
		}
	}
	if got := sizes(); !slices.Equal(got, before) {
		t.Fatalf("the centres holding nothing appended to their ledgers: sizes %v, then %v", before, got)
	}
	for _, x := range []*centre{a, d} {
		if x.erases.Load() != 0 || x.withdraws.Load() != 0 {
			t.Fatalf("%s, holding nothing, erased or withdrew", x.name)
		}
	}
	for _, x := range []*centre{b, c} {
		if x.erases.Load() != 1 || x.withdraws.Load() != 1 {
			t.Fatalf("%s erased %d and withdrew %d times, want once", x.name, x.erases.Load(), x.withdraws.Load())
		}
	}

	// A forged request learns nothing, not even who holds nothing.
	other, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.svc.Answer(ctx, a.id, signedRequest(t, other, patient.View, a.id, p)); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("a view signed with another key, at a centre holding nothing: %v", err)
	}
}

// A request for the records has every holder send the patient's records
// with their payloads sealed to the key the request names: the patient
// opens them, no one else can (the relay sees only sealed bytes), and each
// holder records the access as the patient's own, with what it released.
func TestRecordsAreSealedToThePatient(t *testing.T) {
	ctx := context.Background()
	patientKey, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cs := startFed(t, patientKey.Public().(ed25519.PublicKey), func() []peer.ID { return nil }, "centre-a", "centre-b")
	a, b := cs[0], cs[1]
	p := ledger.Pseudonym(sha256.Sum256([]byte("records test patient")))
	rec, err := ledger.NewRecord(p, ledger.Record{Occurred: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), DataClass: "lab-result", Payload: [16]byte{1}, Commitment: [32]byte{2}})
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, b, rec)
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q := patient.Request{Op: patient.Records, Federation: fed, Relay: a.id, Subject: p, Time: time.Now().UTC()}
	copy(q.Seal[:], seal.PublicKey().Bytes())
	rand.Read(q.Nonce[:])
	raw, err := q.Sign(patientKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.svc.Relay(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var got *patient.HolderAnswer
	for i, h := range res.Holders {
		switch {
		case h.Err != nil:
			t.Fatalf("%s: %v", h.Holder, h.Err)
		case h.Holder == b.id:
			got = &res.Holders[i]
		case !h.Nothing:
			t.Errorf("%s holds nothing, but answered %+v", h.Holder, h)
		}
	}
	if got == nil || len(got.Entries) != 1 || len(got.Sealed) == 0 {
		t.Fatalf("centre-b's answer: %+v", got)
	}
	rs, err := patient.OpenRecords(seal.Bytes(), b.id, q.Nonce, got.Sealed)
	if err != nil || len(rs) != 1 || rs[0].Index != got.Entries[0].Index || string(rs[0].Payload) != fmt.Sprintf("payload of centre-b's record %d", rs[0].Index) {
		t.Fatalf("opened %+v, %v", rs, err)
	}
	other, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patient.OpenRecords(other.Bytes(), b.id, q.Nonce, got.Sealed); err == nil {
		t.Error("another key opened the patient's records")
	}
	if _, err := patient.OpenRecords(seal.Bytes(), a.id, q.Nonce, got.Sealed); err == nil {
		t.Error("the records opened as another holder's")
	}
	es, err := b.ledger.EntriesForKinds(ctx, p, ledger.KindAccess)
	if err != nil || len(es) != 1 {
		t.Fatalf("centre-b's access entries: %d, %v", len(es), err)
	}
	x, err := consent.DecodeAccess(es[0])
	if err != nil || x.Event != consent.EventPatientRecords || x.Released != 1 || x.Requester != a.id {
		t.Fatalf("centre-b recorded %+v, %v", x, err)
	}
}

// A delegate asks as the patient would, with their own key, within the
// delegation's scope: a view is answered and recorded with the
// delegation beside it; an erasure, beyond the scope, is refused at the
// relay, and nothing is erased.
func TestADelegateAsksWithinTheirScope(t *testing.T) {
	ctx := context.Background()
	patientKey, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	carer, _, err := consent.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var cs []*centre
	cs = startFedWith(t, nil, func() []peer.ID { return []peer.ID{cs[1].id} }, func(o *patient.Options) {
		o.Consent = attested{key: patientKey.Public().(ed25519.PublicKey), delegate: carer.Public().(ed25519.PublicKey), scope: consent.ScopeView}
	}, "centre-a", "centre-b")
	a, b := cs[0], cs[1]
	p := ledger.Pseudonym(sha256.Sum256([]byte("delegate test patient")))
	holdRecords(t, p, b)

	res, err := a.svc.Relay(ctx, signedRequest(t, carer, patient.View, a.id, p))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(res.Holders, func(h patient.HolderAnswer) bool { return h.Holder == b.id })
	if i < 0 || res.Holders[i].Err != nil || res.Holders[i].Nothing {
		t.Fatalf("the delegate's view at centre-b: %+v", res.Holders)
	}
	last, err := b.ledger.Entry(ctx, b.ledger.Size()-1)
	if err != nil {
		t.Fatal(err)
	}
	x, err := consent.DecodeAccess(last)
	if err != nil {
		t.Fatal(err)
	}
	if x.Event != consent.EventPatientView || x.Ref != testDelegation {
		t.Fatalf("centre-b recorded %s under %s, want the patient's view under the delegation %s", x.Event, x.Ref, testDelegation)
	}

	size := b.ledger.Size()
	if _, err := a.svc.Relay(ctx, signedRequest(t, carer, patient.Erase, a.id, p)); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("an erasure by a delegate for the view alone: %v, want refused", err)
	}
	if _, err := b.svc.Answer(ctx, a.id, signedRequest(t, carer, patient.Erase, a.id, p)); !errors.Is(err, consent.ErrSignature) {
		t.Fatalf("the same erasure at the holder: %v, want refused", err)
	}
	if b.erases.Load() != 0 || b.ledger.Size() != size {
		t.Fatalf("a refused erasure erased %d times, the ledger from %d to %d entries", b.erases.Load(), size, b.ledger.Size())
	}
}
