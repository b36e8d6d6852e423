package prescription_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

const fed = "test-fed"

func testKey(tb testing.TB, name string) (ed25519.PrivateKey, peer.ID) {
	tb.Helper()
	k, id, err := keyOf(name)
	if err != nil {
		tb.Fatal(err)
	}
	return k, id
}

// keyOf is testKey for a goroutine other than the test's.
func keyOf(name string) (ed25519.PrivateKey, peer.ID, error) {
	seed := sha256.Sum256([]byte(name))
	k := ed25519.NewKeyFromSeed(seed[:])
	id, err := federation.PeerIDFromKey(k)
	return k, id, err
}

var (
	from  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
)

func samplePrescription(tb testing.TB, secret prescription.Secret) prescription.Prescription {
	tb.Helper()
	_, issuer := testKey(tb, "issuer")
	return prescription.Prescription{
		Issuer: issuer, Prescriber: ledger.StaffID{0xd0, 0xc},
		Medication: prescription.Medication{System: prescription.DMD, Code: "39732311000001104", Display: "Paracetamol 500mg tablets"},
		Quantity:   32, Unit: "tablet", Repeats: 2, ValidFrom: from, ValidUntil: until,
		Dosage: "Two tablets up to four times a day; at least 4 hours between doses.", ClaimHash: secret.Hash(),
	}
}

func TestPrescriptionRoundTrip(t *testing.T) {
	p := samplePrescription(t, prescription.NewSecret())
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !prescription.IsPrescription(b) {
		t.Fatal("an encoded prescription is not one")
	}
	got, err := prescription.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Fatalf("%+v came back as %+v", p, got)
	}
}

func TestBadPrescriptionsAreRefused(t *testing.T) {
	cases := []struct {
		name   string
		change func(*prescription.Prescription)
	}{
		{"no prescriber", func(p *prescription.Prescription) { p.Prescriber = ledger.StaffID{} }},
		{"no issuer", func(p *prescription.Prescription) { p.Issuer = "" }},
		{"an unknown system", func(p *prescription.Prescription) { p.Medication.System = 9 }},
		{"a wrong check digit", func(p *prescription.Prescription) { p.Medication.Code = "39732311000001105" }},
		{"letters in the code", func(p *prescription.Prescription) { p.Medication.Code = "3973231100000110x" }},
		{"a short code", func(p *prescription.Prescription) { p.Medication.Code = "12345" }},
		{"no display", func(p *prescription.Prescription) { p.Medication.Display = "" }},
		{"a control character in the display", func(p *prescription.Prescription) { p.Medication.Display = "Para\x1b[31mcetamol" }},
		{"a direction override in the dosage", func(p *prescription.Prescription) { p.Dosage = "take \u202e two" }},
		{"no quantity", func(p *prescription.Prescription) { p.Quantity = 0 }},
		{"a unit of free text", func(p *prescription.Prescription) { p.Unit = "tablets; call me" }},
		{"too many repeats", func(p *prescription.Prescription) { p.Repeats = prescription.MaxRepeats + 1 }},
		{"a validity that ends before it starts", func(p *prescription.Prescription) { p.ValidUntil = p.ValidFrom }},
		{"valid for years", func(p *prescription.Prescription) { p.ValidUntil = p.ValidFrom.AddDate(3, 0, 0) }},
		{"a validity not to the second", func(p *prescription.Prescription) { p.ValidFrom = p.ValidFrom.Add(time.Millisecond) }},
		{"a long dosage", func(p *prescription.Prescription) { p.Dosage = strings.Repeat("x", 1001) }},
		{"no claim hash", func(p *prescription.Prescription) { p.ClaimHash = [32]byte{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePrescription(t, prescription.NewSecret())
			tc.change(&p)
			if _, err := p.Encode(); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Encode: %v, want an error of kind invalid", err)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	tok := prescription.Token{Issuer: "centre-a", Index: 42, Secret: prescription.NewSecret()}
	got, err := prescription.ParseToken("  " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("%v came back as %v, %v", tok, got, err)
	}
	s := tok.String()
	for _, bad := range []string{"", "rx2" + s[3:], strings.ToUpper(s), strings.Replace(s, ".42.", ".042.", 1), strings.Replace(s, ".42.", ".0.", 1),
		strings.Replace(s, "centre-a", "Centre-A", 1), s + "00", s[:len(s)-1], s + ".x"} {
		_, err := prescription.ParseToken(bad)
		if !errors.Is(err, node.ErrInvalid) {
			t.Errorf("ParseToken(%q): %v, want an error of kind invalid", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), s[len(s)-32:]) {
			t.Errorf("ParseToken's error repeats the secret: %v", err)
		}
	}
	if fmt.Sprint(tok.Secret) != "(secret)" || strings.Contains(fmt.Sprintf("%#v", tok.Secret), "0x") {
		t.Error("a secret printed shows its bytes")
	}
}

// issuerFixture is an issuing centre's ledger and record store, in
// memory but for the ledger, which is a real SQLite file.
type issuerFixture struct {
	t        *testing.T
	path     string
	key      ed25519.PrivateKey
	id       peer.ID
	l        *ledger.Ledger
	payloads map[[16]byte][]byte
	erased   map[[16]byte]bool
	now      time.Time
	mu       sync.Mutex
	issuer   *prescription.Issuer
}

var errErased = errors.New("erased")

func newIssuerFixture(t *testing.T) *issuerFixture {
	t.Helper()
	key, id := testKey(t, "issuer")
	f := &issuerFixture{t: t, path: filepath.Join(t.TempDir(), "ledger.db"), key: key, id: id, payloads: map[[16]byte][]byte{}, erased: map[[16]byte]bool{},
		now: from.Add(time.Hour)}
	f.open()
	if _, err := f.l.Append(context.Background(), ledger.Entry{Kind: ledger.KindCharter, Body: []byte("charter")}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *issuerFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *issuerFixture) setClock(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

// open opens the ledger and starts an issuer on it, as a centre does at
// start.
func (f *issuerFixture) open() {
	f.t.Helper()
	l, err := ledger.Open(context.Background(), f.path, ledger.Options{Origin: ledger.Origin(fed, "issuer"), Key: f.key, Now: f.clock})
	if err != nil {
		f.t.Fatal(err)
	}
	f.l = l
	f.issuer, err = prescription.NewIssuer(context.Background(), nil, prescription.IssuerOptions{
		Key: f.key, Ledger: l, Charter: func() federation.Charter { return federation.Charter{Federation: fed} }, Now: f.clock,
		Payloads: func(_ context.Context, r ledger.Record) ([]byte, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.erased[r.Payload] {
				return nil, errErased
			}
			return f.payloads[r.Payload], nil
		},
		Erased: func(err error) bool { return errors.Is(err, errErased) },
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// restart closes the ledger and opens it again: the issuer keeps nothing
// but what the ledger holds.
func (f *issuerFixture) restart() {
	f.t.Helper()
	f.issuer.Close()
	if err := f.l.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

func (f *issuerFixture) close() { f.l.Close() }

// issue records a prescription with repeats and returns its index and
// secret.
func (f *issuerFixture) issue(repeats uint8, patient string) (int64, prescription.Secret) {
	f.t.Helper()
	secret := prescription.NewSecret()
	p := samplePrescription(f.t, secret)
	p.Repeats = repeats
	payload, err := p.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	var id [16]byte
	rand.Read(id[:])
	f.mu.Lock()
	f.payloads[id] = payload
	f.mu.Unlock()
	e, err := ledger.NewRecord(ledger.Pseudonym(sha256.Sum256([]byte(patient))), ledger.Record{Occurred: from, DataClass: prescription.Class, Author: p.Prescriber, Payload: id, Commitment: [32]byte{1}})
	if err != nil {
		f.t.Fatal(err)
	}
	i, err := f.l.Append(context.Background(), e)
	if err != nil {
		f.t.Fatal(err)
	}
	return i, secret
}

// claim has pharmacy (a key's name) claim the prescription at index.
// claim claims a supply as pharmacy. It returns every failure, its own
// included, rather than failing the test: the races call it from their
// own goroutines.
func (f *issuerFixture) claim(pharmacy string, index int64, secret prescription.Secret) (prescription.Confirmation, []byte, error) {
	key, id, err := keyOf(pharmacy)
	if err != nil {
		return prescription.Confirmation{}, nil, err
	}
	c := prescription.Claim{Federation: fed, Pharmacy: id, Issuer: f.id, Pharmacist: ledger.StaffID{7}, Prescription: index, Secret: secret, Time: f.clock()}
	rand.Read(c.Nonce[:])
	raw, err := c.Sign(key)
	if err != nil {
		return prescription.Confirmation{}, nil, fmt.Errorf("signing the claim: %w", err)
	}
	answer, err := f.issuer.Claim(context.Background(), id, raw)
	if err != nil {
		return prescription.Confirmation{}, raw, err
	}
	conf, err := prescription.ParseConfirmation(answer)
	if err != nil {
		return prescription.Confirmation{}, raw, fmt.Errorf("the issuer's confirmation does not parse: %w", err)
	}
	return conf, raw, nil
}

func (f *issuerFixture) dispenses(index int64) []prescription.Dispensed {
	f.t.Helper()
	st, err := f.issuer.Status(context.Background(), index)
	if err != nil {
		f.t.Fatal(err)
	}
	return st.Dispenses
}

// Two pharmacies race for the last supply a hundred times, the issuer
// restarted half way: exactly one yes each time, the other told why, and
// the ledger holds one dispense per supply.
func TestTwoPharmaciesRaceForTheLastSupply(t *testing.T) {
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	for round := range 100 {
		if round == 50 {
			f.restart()
		}
		index, secret := f.issue(1, fmt.Sprint("patient ", round%7))
		if conf, _, err := f.claim("pharmacy-b", index, secret); err != nil || conf.Fill != 1 || conf.Supplies != 2 {
			t.Fatalf("round %d: the first supply: %+v, %v", round, conf, err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		confs := make([]prescription.Confirmation, 2)
		for i, name := range []string{"pharmacy-b", "pharmacy-c"} {
			wg.Go(func() { confs[i], _, errs[i] = f.claim(name, index, secret) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if confs[i].Fill != 2 {
					t.Fatalf("round %d: the winner got supply %d", round, confs[i].Fill)
				}
			case !errors.Is(err, prescription.ErrNoneLeft) || node.KindOf(err) != node.Conflict:
				t.Fatalf("round %d: the loser was told %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d pharmacies won the last supply", round, won)
		}
		if ds := f.dispenses(index); len(ds) != 2 || ds[0].Fill != 1 || ds[1].Fill != 2 {
			t.Fatalf("round %d: the ledger holds %+v", round, ds)
		}
	}
}

// What a claim may not do: each refused, and nothing appended.
func TestBadClaimsChangeNothing(t *testing.T) {
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	index, secret := f.issue(0, "patient")
	other, _ := f.issue(0, "patient")
	ctx := context.Background()
	pkey, pid := testKey(t, "pharmacy-b")
	good := func() prescription.Claim {
		c := prescription.Claim{Federation: fed, Pharmacy: pid, Issuer: f.id, Pharmacist: ledger.StaffID{7}, Prescription: index, Secret: secret, Time: f.clock()}
		rand.Read(c.Nonce[:])
		return c
	}
	sign := func(c prescription.Claim) []byte {
		raw, err := c.Sign(pkey)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	_, stranger := testKey(t, "pharmacy-c")
	forged := sign(good())
	forged[len(forged)-70] ^= 1 // inside the signed fields
	wrongSecret := good()
	wrongSecret.Secret[0] ^= 1
	guessed := good()
	guessed.Prescription = other
	notIssued := good()
	notIssued.Prescription = f.l.Size() + 5
	stale := good()
	stale.Time = f.clock().Add(-time.Minute)
	elsewhere := good()
	elsewhere.Issuer = stranger
	otherFed := good()
	otherFed.Federation = "another"
	cases := []struct {
		name string
		from peer.ID
		raw  []byte
		want error
	}{
		{"a forged signature", pid, forged, prescription.ErrSignature},
		{"signed by another member than the sender", stranger, sign(good()), prescription.ErrSignature},
		{"the wrong secret", pid, sign(wrongSecret), prescription.ErrNoPrescription},
		{"a guessed index", pid, sign(guessed), prescription.ErrNoPrescription},
		{"an index beyond the ledger", pid, sign(notIssued), prescription.ErrNoPrescription},
		{"out of time", pid, sign(stale), prescription.ErrStale},
		{"for another issuer", pid, sign(elsewhere), node.ErrInvalid},
		{"for another federation", pid, sign(otherFed), node.ErrInvalid},
		{"bytes that are not a claim", pid, []byte("dispense it all"), node.ErrInvalid},
	}
	size := f.l.Size()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.issuer.Claim(ctx, tc.from, tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("claim: %v, want %v", err, tc.want)
			}
			if f.l.Size() != size {
				t.Fatal("a refused claim appended to the ledger")
			}
		})
	}

	// A claim answered, then sent again (its confirmation lost on the
	// way): the same confirmation, nothing appended; also across a
	// restart. A claim refused (nothing left), sent again: a replay.
	c := good()
	raw := sign(c)
	first, err := f.issuer.Claim(ctx, pid, raw)
	if err != nil {
		t.Fatal(err)
	}
	size = f.l.Size()
	refusedRaw := sign(good())
	if _, err := f.issuer.Claim(ctx, pid, refusedRaw); !errors.Is(err, prescription.ErrNoneLeft) {
		t.Fatalf("a claim of the only supply, dispensed: %v", err)
	}
	sameAnswer := func(when string) {
		t.Helper()
		again, err := f.issuer.Claim(ctx, pid, raw)
		if err != nil {
			t.Fatalf("a claim sent again %s: %v", when, err)
		}
		a, errA := prescription.ParseConfirmation(first)
		b, errB := prescription.ParseConfirmation(again)
		if errA != nil || errB != nil || a.Dispense != b.Dispense || a.Fill != b.Fill || a.Nonce != b.Nonce || !a.Time.Equal(b.Time) {
			t.Fatalf("a claim sent again %s was confirmed as %+v, first as %+v (%v, %v)", when, b, a, errA, errB)
		}
		if f.l.Size() != size {
			t.Fatalf("a claim sent again %s appended to the ledger", when)
		}
		// A replay while the issuer remembers its nonce; after a restart,
		// which reads back the dispenses' nonces only, refused afresh.
		if _, err := f.issuer.Claim(ctx, pid, refusedRaw); !errors.Is(err, prescription.ErrReplay) && (when == "at once" || !errors.Is(err, prescription.ErrNoneLeft)) {
			t.Fatalf("a refused claim sent again %s: %v", when, err)
		}
		if _, err := f.issuer.Claim(ctx, stranger, raw); !errors.Is(err, prescription.ErrSignature) {
			t.Fatalf("another member sending the claim %s: %v", when, err)
		}
	}
	sameAnswer("at once")
	f.restart()
	sameAnswer("after a restart")
	// A claim beyond the repeats.
	if _, _, err := f.claim("pharmacy-b", index, secret); !errors.Is(err, prescription.ErrNoneLeft) {
		t.Fatalf("a claim beyond the repeats: %v", err)
	}
	if f.l.Size() != size {
		t.Fatal("a refused claim appended to the ledger")
	}
}

func TestCancelledExpiredAndErasedPrescriptionsAreNotDispensed(t *testing.T) {
	f := newIssuerFixture(t)
	defer func() { f.close() }()
	ctx := context.Background()
	prescriber := samplePrescription(t, prescription.Secret{}).Prescriber

	index, secret := f.issue(3, "patient")
	if _, _, err := f.claim("pharmacy-b", index, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := f.issuer.Cancel(ctx, index, ledger.StaffID{1}, ledger.CancelChanged); !errors.Is(err, prescription.ErrNotPrescriber) {
		t.Fatalf("a cancellation by someone else: %v", err)
	}
	at, err := f.issuer.Cancel(ctx, index, prescriber, ledger.CancelChanged)
	if err != nil {
		t.Fatal(err)
	}
	size := f.l.Size()
	if _, _, err := f.claim("pharmacy-b", index, secret); !errors.Is(err, prescription.ErrCancelled) {
		t.Fatalf("a claim of a cancelled prescription: %v", err)
	}
	if _, err := f.issuer.Cancel(ctx, index, prescriber, ledger.CancelError); !errors.Is(err, prescription.ErrCancelled) {
		t.Fatalf("cancelling again: %v", err)
	}
	if got := f.l.Size(); got != size {
		t.Fatalf("the refused claim and cancellation appended %d entries", got-size)
	}
	st, err := f.issuer.Status(ctx, index)
	if err != nil || st.Cancelled == nil || st.Cancelled.Index != at || st.State(f.clock()) != prescription.StateCancelled || st.Left() != 3 {
		t.Fatalf("status of the cancelled prescription: %+v, %v", st, err)
	}

	index, secret = f.issue(0, "patient")
	size = f.l.Size()
	f.setClock(until)
	if _, _, err := f.claim("pharmacy-b", index, secret); !errors.Is(err, prescription.ErrExpired) {
		t.Fatalf("a claim of an expired prescription: %v", err)
	}
	f.setClock(from.Add(-time.Second))
	if _, _, err := f.claim("pharmacy-b", index, secret); !errors.Is(err, prescription.ErrNotYetValid) {
		t.Fatalf("a claim before the prescription is valid: %v", err)
	}
	f.setClock(from.Add(time.Hour))
	st, err = f.issuer.Status(ctx, index)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	for id := range f.payloads {
		f.erased[id] = true
	}
	f.mu.Unlock()
	if _, _, err := f.claim("pharmacy-b", index, secret); !errors.Is(err, prescription.ErrNoPrescription) {
		t.Fatalf("a claim of an erased prescription: %v", err)
	}
	if f.l.Size() != size {
		t.Fatal("a refused claim appended to the ledger")
	}
	all, err := f.issuer.StatusesOf(ctx, st.Subject)
	if err != nil || len(all) != 2 || !all[0].Erased {
		t.Fatalf("the patient's prescriptions after erasure: %+v, %v", all, err)
	}
}

func TestClaimAndConfirmationRoundTrip(t *testing.T) {
	c, key := sampleClaim(t)
	raw, err := c.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := prescription.ParseClaim(raw)
	if err != nil || got != c {
		t.Fatalf("%+v came back as %+v, %v", c, got, err)
	}
	conf, ikey := sampleConfirmation(t)
	raw, err = conf.Sign(ikey)
	if err != nil {
		t.Fatal(err)
	}
	back, err := prescription.ParseConfirmation(raw)
	if err != nil || !bytes.Equal(back.Content, conf.Content) || back.Dispense != conf.Dispense || back.Fill != conf.Fill {
		t.Fatalf("%+v came back as %+v, %v", conf, back, err)
	}
	// Signed by the pharmacy, not the issuer it names.
	pkey, _ := testKey(t, "pharmacy-b")
	raw, err = conf.Sign(pkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prescription.ParseConfirmation(raw); !errors.Is(err, prescription.ErrSignature) {
		t.Fatalf("a confirmation signed by the wrong centre: %v", err)
	}
}

func sampleClaim(tb testing.TB) (prescription.Claim, ed25519.PrivateKey) {
	key, pid := testKey(tb, "pharmacy-b")
	_, iid := testKey(tb, "issuer")
	return prescription.Claim{Federation: fed, Pharmacy: pid, Issuer: iid, Pharmacist: ledger.StaffID{7}, Prescription: 12, Secret: prescription.Secret{1, 2},
		Nonce: [16]byte{9}, Time: time.UnixMilli(1_780_000_000_123).UTC()}, key
}

func sampleConfirmation(tb testing.TB) (prescription.Confirmation, ed25519.PrivateKey) {
	key, iid := testKey(tb, "issuer")
	_, pid := testKey(tb, "pharmacy-b")
	content, err := samplePrescription(tb, prescription.Secret{1, 2}).Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return prescription.Confirmation{Federation: fed, Issuer: iid, Pharmacy: pid, Subject: ledger.Pseudonym{5}, Prescription: 12, Fill: 2, Supplies: 3,
		Dispense: 40, Nonce: [16]byte{9}, Time: time.UnixMilli(1_780_000_000_456).UTC(), Content: content}, key
}

func FuzzParse(f *testing.F) {
	b, err := samplePrescription(f, prescription.Secret{3}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add([]byte("medfed/prescription/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := prescription.Parse(data)
		if err != nil {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Parse error %v is not of kind invalid", err)
			}
			return
		}
		enc, err := p.Encode()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("Parse accepted a non-canonical encoding: %x (%v)", data, err)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add(prescription.Token{Issuer: "centre-a", Index: 42, Secret: prescription.Secret{1}}.String())
	f.Add("rx1.a.1.00000000000000000000000000000000")
	f.Add("rx1..1.")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := prescription.ParseToken(s)
		if err != nil {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseToken error %v is not of kind invalid", err)
			}
			return
		}
		if tok.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseToken accepted %q, which writes as %q", s, tok.String())
		}
	})
}

func FuzzParseClaim(f *testing.F) {
	c, key := sampleClaim(f)
	raw, err := c.Sign(key)
	if err != nil {
		f.Fatal(err)
	}
	fuzzSigned(f, raw, func(data []byte) error {
		c, err := prescription.ParseClaim(data)
		if err == nil && c.Prescription != 12 {
			return fmt.Errorf("prescription %d, want 12", c.Prescription)
		}
		return err
	})
}

func FuzzParseConfirmation(f *testing.F) {
	c, key := sampleConfirmation(f)
	raw, err := c.Sign(key)
	if err != nil {
		f.Fatal(err)
	}
	fuzzSigned(f, raw, func(data []byte) error {
		_, err := prescription.ParseConfirmation(data)
		return err
	})
}

// fuzzSigned fuzzes parse, a parser of a message signed into raw: it
// refuses anything else as invalid or forbidden, since only the real key
// signs, and accepts raw.
func fuzzSigned(f *testing.F, raw []byte, parse func([]byte) error) {
	f.Helper()
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		err := parse(data)
		if err != nil {
			if k := node.KindOf(err); k != node.Invalid && k != node.Forbidden {
				t.Fatalf("parse error %v of kind %v", err, k)
			}
			return
		}
		if !bytes.Equal(data, raw) {
			t.Fatalf("parse accepted %x", data)
		}
	})
}
