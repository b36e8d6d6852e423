package device_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

const (
	federationID = "test-federation"
	here         = peer.ID("centre-a's peer ID")
)

func key(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func pseudonym(name string) ledger.Pseudonym {
	return ledger.Pseudonym(sha256.Sum256([]byte("device test patient " + name)))
}

// attested is consent as the registry asks it: the patient's attested key.
type attested map[ledger.Pseudonym]ed25519.PublicKey

func (a attested) Authenticate(_ context.Context, p ledger.Pseudonym, k ed25519.PublicKey, signed wire.Opened, _ time.Time) error {
	if want := a[p]; want == nil || !want.Equal(k) {
		return fmt.Errorf("%w: not a key that speaks for the patient", device.ErrSignature)
	}
	if !signed.Verify(k) {
		return fmt.Errorf("%w: the patient's signature does not verify", device.ErrSignature)
	}
	return nil
}

// world is a centre's registry over a real ledger and store, its clock
// the test's.
type world struct {
	t        *testing.T
	ctx      context.Context
	now      time.Time
	ledger   *ledger.Ledger
	registry *device.Registry
	path     string
	rowKey   []byte
	payloads map[int64][]byte
}

func newWorld(t *testing.T, rate float64, burst int) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC), payloads: map[int64][]byte{}}
	dir := t.TempDir()
	var err error
	w.ledger, err = ledger.Open(w.ctx, filepath.Join(dir, "ledger.db"), ledger.Options{Origin: "medfed/test-federation/centre-a", Key: key("centre-a"), Now: func() time.Time { return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.ledger.Close() })
	w.path, w.rowKey = filepath.Join(dir, device.File), bytes.Repeat([]byte{7}, 32)
	w.registry, err = device.Open(w.ctx, device.Options{
		Federation: federationID, Centre: here, Path: w.path, RowKey: w.rowKey,
		Ledger: w.ledger, Consent: attested{pseudonym("ada"): pub(key("ada")), pseudonym("bob"): pub(key("bob"))},
		AddRecords: w.addRecords,
		Classes:    []string{"lab-result", "observation", "imaging"},
		Rate:       rate, Burst: burst,
		Now: func() time.Time { return w.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.registry.Close() })
	return w
}

// addRecords is the centre's: the payloads kept by index (a test's
// record store), the entries appended at once.
func (w *world) addRecords(ctx context.Context, p ledger.Pseudonym, recs []ledger.Record, payloads [][]byte) (int64, error) {
	var es []ledger.Entry
	for i, r := range recs {
		h := sha256.Sum256(payloads[i])
		copy(r.Payload[:], h[:16])
		r.Commitment = h
		e, err := ledger.NewRecord(p, r)
		if err != nil {
			return 0, err
		}
		es = append(es, e)
	}
	first, err := w.ledger.Append(ctx, es...)
	for i := range payloads {
		w.payloads[first+int64(i)] = payloads[i]
	}
	return first, err
}

func (w *world) registration(patient, dev string, classes ...string) device.Registration {
	return device.Registration{
		Federation: federationID, Centre: here, Subject: pseudonym(patient),
		Device: pub(key(dev)), Type: device.GlucoseMeter, Classes: classes,
		NotBefore: w.now.Add(-time.Hour).Truncate(time.Second), Expires: w.now.Add(30 * 24 * time.Hour).Truncate(time.Second),
		Nonce: [16]byte{1}, Time: w.now,
	}
}

func (w *world) register(patient, dev string, classes ...string) device.Registered {
	w.t.Helper()
	raw, err := w.registration(patient, dev, classes...).Sign(key(patient))
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := w.registry.Register(w.ctx, raw)
	if err != nil {
		w.t.Fatalf("register %s's %s: %v", patient, dev, err)
	}
	return g
}

func (w *world) revoke(patient, dev string) (device.Registered, error) {
	w.t.Helper()
	raw, err := device.Revocation{Federation: federationID, Centre: here, Subject: pseudonym(patient), Device: pub(key(dev)), Nonce: [16]byte{2}, Time: w.now}.Sign(key(patient))
	if err != nil {
		w.t.Fatal(err)
	}
	return w.registry.Revoke(w.ctx, raw)
}

var nonces byte

func (w *world) batch(patient, dev string, n int) device.Batch {
	nonces++
	b := device.Batch{Federation: federationID, Centre: here, Subject: pseudonym(patient), Nonce: [16]byte{nonces, 0xba}, Time: w.now}
	for i := range n {
		b.Readings = append(b.Readings, fmt.Appendf(nil, `{"resourceType":"Observation","reading":%d}`, i))
	}
	return b
}

func (w *world) sign(b device.Batch, dev string) []byte {
	w.t.Helper()
	raw, err := b.Sign(key(dev))
	if err != nil {
		w.t.Fatal(err)
	}
	return raw
}

func readings(n int, class string, at time.Time) []device.Reading {
	out := make([]device.Reading, n)
	for i := range out {
		out[i] = device.Reading{Class: class, Occurred: at.Add(-time.Duration(i) * time.Minute)}
	}
	return out
}

func TestStatementsSignAndParse(t *testing.T) {
	w := newWorld(t, 0, 0)
	g := w.registration("ada", "meter", "observation")
	raw, err := g.Sign(key("ada"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := device.ParseRegistration(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != device.ID(pub(key("meter"))) || back.Type != device.GlucoseMeter || back.Classes[0] != "observation" ||
		!back.Key.Equal(pub(key("ada"))) || back.Hash() != sha256.Sum256(raw) || !back.Expires.Equal(g.Expires) {
		t.Fatalf("registration came back as %+v", back)
	}
	for i := range raw {
		forged := bytes.Clone(raw)
		forged[i] ^= 1
		if _, err := device.ParseRegistration(forged); err == nil {
			t.Fatalf("a registration with byte %d changed parses", i)
		} else if kind := node.KindOf(err); kind != node.Invalid && kind != node.Forbidden {
			t.Fatalf("byte %d changed: an error of kind %v: %v", i, kind, err)
		}
	}
	if _, err := device.ParseRevocation(raw); err == nil {
		t.Fatal("a registration parses as a revocation")
	}
	b := w.batch("ada", "meter", 3)
	braw := w.sign(b, "meter")
	bb, err := device.ParseBatch(braw)
	if err != nil || len(bb.Readings) != 3 || !bytes.Equal(bb.Readings[2], b.Readings[2]) || bb.ID() != back.ID() {
		t.Fatalf("batch came back as %+v, %v", bb, err)
	}
	// A batch signed by another key than the one it names.
	forged := bytes.Clone(braw)
	copy(forged[len(forged)-64:], ed25519.Sign(key("thief"), []byte("anything")))
	if _, err := device.ParseBatch(forged); !errors.Is(err, device.ErrSignature) {
		t.Fatalf("a forged batch: %v", err)
	}
	if ty, err := device.ParseType("pulse-oximeter"); err != nil || ty != device.PulseOximeter {
		t.Fatalf("ParseType: %v %v", ty, err)
	}
	if _, err := device.ParseType("Accu-Chek serial 1234"); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a name for a type: %v", err)
	}
	for name, change := range map[string]func(*device.Registration){
		"no class":                 func(g *device.Registration) { g.Classes = nil },
		"classes unsorted":         func(g *device.Registration) { g.Classes = []string{"observation", "lab-result"} },
		"unknown type":             func(g *device.Registration) { g.Type = 99 },
		"expiry before not-before": func(g *device.Registration) { g.Expires = g.NotBefore.Add(-time.Second) },
		"too long":                 func(g *device.Registration) { g.Expires = g.NotBefore.Add(device.MaxLifetime + time.Second) },
		"the patient's own key":    func(g *device.Registration) { g.Device = pub(key("ada")) },
		"no nonce":                 func(g *device.Registration) { g.Nonce = [16]byte{} },
	} {
		g := w.registration("ada", "meter", "observation")
		change(&g)
		if _, err := g.Sign(key("ada")); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	big := w.batch("ada", "meter", 1)
	big.Readings[0] = make([]byte, device.MaxReading+1)
	if _, err := big.Sign(key("meter")); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("a reading over the limit: %v", err)
	}
	many := w.batch("ada", "meter", device.MaxReadings+1)
	if _, err := many.Sign(key("meter")); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("a batch over the limit: %v", err)
	}
}

// A registered device's batch becomes records the device wrote; every
// bad batch is refused with its reason, and the ledger and the records
// stay as they were.
func TestRegistryTakesOnlyWhatThePatientAllowed(t *testing.T) {
	w := newWorld(t, 0, 0)
	g := w.register("ada", "meter", "observation")
	if g.State(w.now) != "in force" {
		t.Fatalf("registered: %+v", g)
	}
	e, err := w.ledger.Entry(w.ctx, g.Entry)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := e.Device(); err != nil || d.Device != g.ID() || d.Statement != g.Hash() || e.Subject != pseudonym("ada") {
		t.Fatalf("the device entry: %+v, %v", d, err)
	}
	b := w.batch("ada", "meter", 3)
	raw := w.sign(b, "meter")
	taken, err := w.registry.Take(w.ctx, raw, readings(3, "observation", w.now))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e, err := w.ledger.Entry(w.ctx, taken.First+int64(i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.Record()
		if err != nil || r.AuthorKind != ledger.AuthorDevice || r.Author != ledger.StaffID(g.ID()) || r.DataClass != "observation" || e.Subject != pseudonym("ada") {
			t.Fatalf("reading %d's record: %+v, %v", i, r, err)
		}
		if !bytes.Equal(w.payloads[e.Index], b.Readings[i]) {
			t.Fatalf("reading %d stored as %q", i, w.payloads[e.Index])
		}
	}
	w.register("bob", "scale", "observation")
	w.register("ada", "oximeter", "observation")

	forged := bytes.Clone(w.sign(w.batch("ada", "meter", 1), "meter"))
	forged[len(forged)-1] ^= 1
	other := w.batch("ada", "meter", 1)
	other.Centre = "another centre"
	stale := w.batch("ada", "meter", 1)
	stale.Time = w.now.Add(-device.MaxSkew - time.Second)
	refusals := []struct {
		name     string
		raw      []byte
		readings []device.Reading
		want     error
	}{
		{"a forged signature", forged, readings(1, "observation", w.now), device.ErrSignature},
		{"a replay", raw, readings(3, "observation", w.now), device.ErrReplay},
		{"a device never registered", w.sign(w.batch("ada", "stranger", 1), "stranger"), readings(1, "observation", w.now), device.ErrNotRegistered},
		{"a device registered for another patient", w.sign(w.batch("ada", "scale", 1), "scale"), readings(1, "observation", w.now), device.ErrNotRegistered},
		{"a class not registered", w.sign(w.batch("ada", "meter", 2), "meter"), append(readings(1, "observation", w.now), device.Reading{Class: "lab-result", Occurred: w.now}), device.ErrClass},
		{"another centre's batch", w.sign(other, "meter"), readings(1, "observation", w.now), node.ErrInvalid},
		{"a stale batch", w.sign(stale, "meter"), readings(1, "observation", w.now), device.ErrStale},
		{"readings not described", w.sign(w.batch("ada", "meter", 2), "meter"), readings(1, "observation", w.now), node.ErrInvalid},
		{"a reading from before the registration", w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now.Add(-2*time.Hour)), node.ErrInvalid},
		{"a reading from the future", w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now.Add(time.Hour)), node.ErrInvalid},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			size := w.ledger.Size()
			_, err := w.registry.Take(w.ctx, tc.raw, tc.readings)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Take: %v, want %v", err, tc.want)
			}
			if w.ledger.Size() != size {
				t.Fatalf("a refused batch changed the ledger: %d entries, was %d", w.ledger.Size(), size)
			}
		})
	}

	// The term: not before its not-before, not from its expiry.
	later := w.now
	w.now = later.Add(31 * 24 * time.Hour)
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now)); !errors.Is(err, device.ErrNotInForce) {
		t.Fatalf("after the expiry: %v", err)
	}
	w.now = later

	// Revoked: refused at once, and on the ledger.
	v, err := w.revoke("ada", "meter")
	if err != nil {
		t.Fatal(err)
	}
	if v.State(w.now) != "revoked" || v.RevokedEntry == 0 {
		t.Fatalf("revoked: %+v", v)
	}
	re, err := w.ledger.Entry(w.ctx, v.RevokedEntry)
	if err != nil {
		t.Fatal(err)
	}
	if x, err := re.DeviceRevocation(); err != nil || x.Device != g.ID() || x.Registration != g.Entry {
		t.Fatalf("the revocation entry: %+v, %v", x, err)
	}
	size := w.ledger.Size()
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now)); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("a revoked device's batch: %v", err)
	}
	// Revoking again, and registering again with the statement revoked,
	// change nothing.
	if again, err := w.revoke("ada", "meter"); err != nil || again.RevokedEntry != v.RevokedEntry {
		t.Fatalf("revoked again: %+v, %v", again, err)
	}
	old, err := w.registration("ada", "meter", "observation").Sign(key("ada"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.registry.Register(w.ctx, old); !errors.Is(err, device.ErrSuperseded) {
		t.Fatalf("the revoked registration again: %v", err)
	}
	if w.ledger.Size() != size {
		t.Fatal("refusals after the revocation changed the ledger")
	}
	// A statement the patient did not sign, or signed with another
	// patient's key, registers nothing.
	notAda, err := w.registration("ada", "meter", "observation").Sign(key("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.registry.Register(w.ctx, notAda); !errors.Is(err, device.ErrSignature) {
		t.Fatalf("a registration signed by someone else: %v", err)
	}
	list, err := w.registry.List(w.ctx, pseudonym("ada"))
	if err != nil || len(list) != 2 {
		t.Fatalf("ada's devices: %d, %v", len(list), err)
	}
	if n, err := device.CheckStore(w.ctx, w.path, w.rowKey); err != nil || n != 3 {
		t.Fatalf("CheckStore: %d, %v", n, err)
	}

	// A later registration of the revoked device brings it back.
	w.now = w.now.Add(time.Minute)
	g2 := w.register("ada", "meter", "lab-result", "observation")
	if g2.Entry <= v.RevokedEntry {
		t.Fatalf("registered again at entry %d, before the revocation %d", g2.Entry, v.RevokedEntry)
	}
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 2), "meter"), []device.Reading{{Class: "lab-result", Occurred: w.now}, {Class: "observation", Occurred: w.now}}); err != nil {
		t.Fatalf("after registering again: %v", err)
	}
}

// A device posts at its rate: a batch past it is refused whole, the
// other devices unaffected.
func TestRegistryRateLimitsEachDevice(t *testing.T) {
	w := newWorld(t, 3600, 10) // one reading a second, ten at once
	w.register("ada", "meter", "observation")
	w.register("ada", "oximeter", "observation")
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 8), "meter"), readings(8, "observation", w.now)); err != nil {
		t.Fatal(err)
	}
	size := w.ledger.Size()
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 3), "meter"), readings(3, "observation", w.now)); !errors.Is(err, device.ErrRate) {
		t.Fatalf("over the rate: %v", err)
	}
	if w.ledger.Size() != size {
		t.Fatal("a batch over the rate changed the ledger")
	}
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "oximeter", 10), "oximeter"), readings(10, "observation", w.now)); err != nil {
		t.Fatalf("another device: %v", err)
	}
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 2), "meter"), readings(2, "observation", w.now)); err != nil {
		t.Fatalf("within what is left: %v", err)
	}
}

// A row of the store put back as it was before the revocation, MAC and
// all, authenticates nothing: the ledger's revocation entry follows it.
// The full check names the seal.
func TestARevocationCannotBeRolledBack(t *testing.T) {
	w := newWorld(t, 0, 0)
	w.register("ada", "meter", "observation")
	db, err := sql.Open("sqlite3", w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var before []any
	row := db.QueryRow(`SELECT id, subject, statement, entry, mac FROM registrations`)
	var id string
	var subject, statement, mac []byte
	var entry int64
	if err := row.Scan(&id, &subject, &statement, &entry, &mac); err != nil {
		t.Fatal(err)
	}
	before = append(before, id, subject, statement, entry, mac)
	if _, err := w.revoke("ada", "meter"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT OR REPLACE INTO registrations (id, subject, statement, entry, revocation, revoked_entry, mac) VALUES (?, ?, ?, ?, NULL, NULL, ?)`, before...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now)); !errors.Is(err, device.ErrRevoked) {
		t.Fatalf("a batch after the row was put back: %v", err)
	}
	var te *device.TamperError
	if _, err := device.CheckStore(w.ctx, w.path, w.rowKey); !errors.As(err, &te) || te.Table != "seal" {
		t.Fatalf("CheckStore after a row was put back: %v", err)
	}
	if _, err := db.Exec(`UPDATE registrations SET entry = entry + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := device.CheckStore(w.ctx, w.path, w.rowKey); !errors.As(err, &te) || te.Table != "registrations" {
		t.Fatalf("CheckStore after a row was changed: %v", err)
	}
	if _, err := w.registry.Take(w.ctx, w.sign(w.batch("ada", "meter", 1), "meter"), readings(1, "observation", w.now)); !errors.Is(err, device.ErrTampered) {
		t.Fatalf("a batch of a changed row: %v", err)
	}
}

// A batch whose records were not stored may be sent again.
func TestABatchNotStoredMaySendAgain(t *testing.T) {
	w := newWorld(t, 0, 0)
	w.register("ada", "meter", "observation")
	raw := w.sign(w.batch("ada", "meter", 2), "meter")
	w.ledger.Halt(errors.New("a test's disk"))
	if _, err := w.registry.Take(w.ctx, raw, readings(2, "observation", w.now)); err == nil {
		t.Fatal("stored on a halted ledger")
	}
	w.ledger.Resume()
	if _, err := w.registry.Take(w.ctx, raw, readings(2, "observation", w.now)); err != nil {
		t.Fatalf("sent again: %v", err)
	}
	if _, err := w.registry.Take(w.ctx, raw, readings(2, "observation", w.now)); !errors.Is(err, device.ErrReplay) {
		t.Fatalf("sent a third time: %v", err)
	}
}
