package device_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

func (w *world) note(patient string, nonce byte, text string) device.Note {
	return device.Note{Federation: federationID, Centre: here, Subject: pseudonym(patient), Nonce: [16]byte{nonce}, Time: w.now,
		Observation: []byte(`{"resourceType":"Observation","valueString":"` + text + `"}`)}
}

// A patient's note, signed with their key, is stored once as a record
// they wrote, by an ID of the key and never the key; a note forged,
// signed by a key that does not speak for the patient, addressed to
// another centre, out of time, of a class the centre does not record, or
// sent again, is refused and changes nothing.
func TestAPatientsNote(t *testing.T) {
	w := newWorld(t, 3600, 100)
	at := w.now.Add(-time.Hour)
	reading := device.Reading{Class: "observation", Occurred: at}
	raw, err := w.note("ada", 1, "dizzy after the new tablets").Sign(key("ada"))
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(raw)
	forged[len(forged)-70] ^= 1 // in the Observation, under the signature
	byBob, err := w.note("ada", 2, "not ada").Sign(key("bob"))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := w.note("ada", 3, "elsewhere")
	elsewhere.Centre = "centre-b's peer ID"
	toB, err := elsewhere.Sign(key("ada"))
	if err != nil {
		t.Fatal(err)
	}
	old := w.note("ada", 4, "old")
	old.Time = w.now.Add(-time.Hour)
	stale, err := old.Sign(key("ada"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		raw     []byte
		reading device.Reading
		want    error
	}{
		"forged":                       {forged, reading, device.ErrSignature},
		"signed by another's key":      {byBob, reading, device.ErrSignature},
		"for another centre":           {toB, reading, node.ErrInvalid},
		"signed an hour ago":           {stale, reading, device.ErrStale},
		"of a class not recorded":      {raw, device.Reading{Class: "genomics", Occurred: at}, node.ErrInvalid},
		"dated tomorrow":               {raw, device.Reading{Class: "observation", Occurred: w.now.Add(24 * time.Hour)}, node.ErrInvalid},
		"a device's batch, not a note": {w.sign(w.batch("ada", "meter", 1), "meter"), reading, node.ErrInvalid},
		"cut short":                    {raw[:len(raw)-1], reading, node.ErrInvalid},
	} {
		if _, err := w.registry.AddNote(w.ctx, c.raw, c.reading); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if n := w.ledger.Size(); n != 0 {
		t.Fatalf("the refused notes appended %d entries", n)
	}

	got, err := w.registry.AddNote(w.ctx, raw, reading)
	if err != nil {
		t.Fatal(err)
	}
	author := device.NoteAuthor(pub(key("ada")))
	if got.Subject != pseudonym("ada") || got.Device != author || got.Count != 1 || author == device.ID(pub(key("ada"))) {
		t.Fatalf("the note was taken as %+v", got)
	}
	e, err := w.ledger.Entry(w.ctx, got.First)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Record()
	if err != nil || r.AuthorKind != ledger.AuthorPatient || r.Author != ledger.StaffID(author) || !r.Occurred.Equal(at) || r.DataClass != "observation" {
		t.Fatalf("the note's record: %+v, %v", r, err)
	}
	if bytes.Contains(e.Body, pub(key("ada"))) {
		t.Fatal("the note's entry holds the patient's key")
	}
	n, err := device.ParseNote(raw)
	if err != nil || !bytes.Equal(w.payloads[got.First], n.Observation) {
		t.Fatalf("the note's payload is %q, not its Observation (%v)", w.payloads[got.First], err)
	}
	if _, err := w.registry.AddNote(w.ctx, raw, reading); !errors.Is(err, device.ErrReplay) {
		t.Fatalf("the same note again: %v", err)
	}
	if n := w.ledger.Size(); n != 1 {
		t.Fatalf("the ledger holds %d entries after the note and its replay, want 1", n)
	}
}

// A note, a registration and a revocation drafted for a key the browser
// holds, signed there and sealed, are what Sign makes; a draft for a
// passkey is refused a plain signature.
func TestStatementsDraftedAndSealed(t *testing.T) {
	w := newWorld(t, 3600, 100)
	n := w.note("ada", 1, "drafted")
	g := w.registration("ada", "meter", "observation")
	v := device.Revocation{Federation: federationID, Centre: here, Subject: pseudonym("ada"), Device: pub(key("meter")), Nonce: [16]byte{2}, Time: w.now}
	for _, c := range []struct {
		name    string
		context string
		draft   func(passkey bool) ([]byte, error)
		sign    func() ([]byte, error)
		seal    func(draft, sig []byte) ([]byte, error)
	}{
		{"note", device.NoteContext, func(p bool) ([]byte, error) { return n.Draft(pub(key("ada")), p) }, func() ([]byte, error) { return n.Sign(key("ada")) },
			func(d, sig []byte) ([]byte, error) { return device.SealNote(d, sig, nil) }},
		{"registration", device.RegistrationContext, func(p bool) ([]byte, error) { return g.Draft(pub(key("ada")), p) }, func() ([]byte, error) { return g.Sign(key("ada")) },
			func(d, sig []byte) ([]byte, error) { return device.SealRegistration(d, sig, nil) }},
		{"revocation", device.RevocationContext, func(p bool) ([]byte, error) { return v.Draft(pub(key("ada")), p) }, func() ([]byte, error) { return v.Sign(key("ada")) },
			func(d, sig []byte) ([]byte, error) { return device.SealRevocation(d, sig, nil) }},
	} {
		draft, err := c.draft(false)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.seal(draft, ed25519.Sign(key("ada"), wire.Signed(c.context, draft)))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := c.sign()
		if err != nil || !bytes.Equal(raw, signed) {
			t.Fatalf("%s: sealed %x, signed %x (%v)", c.name, raw, signed, err)
		}
		if _, err := c.seal(draft, ed25519.Sign(key("bob"), wire.Signed(c.context, draft))); !errors.Is(err, device.ErrSignature) {
			t.Fatalf("%s: sealed with another key's signature: %v", c.name, err)
		}
		passkeyDraft, err := c.draft(true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.seal(passkeyDraft, ed25519.Sign(key("ada"), wire.Signed(c.context, passkeyDraft))); !errors.Is(err, node.ErrInvalid) {
			t.Fatalf("%s: a passkey's draft sealed with an Ed25519 signature: %v", c.name, err)
		}
	}
	empty := n
	empty.Observation = nil
	if _, err := empty.Draft(pub(key("ada")), false); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a note without an Observation: %v", err)
	}
}
