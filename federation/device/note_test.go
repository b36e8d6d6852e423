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

// A note drafted for a key the browser holds, signed there and sealed,
// is the note Sign makes; a draft for a passkey is refused a plain
// signature.
func TestANoteDraftedAndSealed(t *testing.T) {
	w := newWorld(t, 3600, 100)
	n := w.note("ada", 1, "drafted")
	draft, err := n.Draft(pub(key("ada")), false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := device.SealNote(draft, ed25519.Sign(key("ada"), wire.Signed(device.NoteContext, draft)), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := n.Sign(key("ada"))
	if err != nil || !bytes.Equal(raw, signed) {
		t.Fatalf("sealed %x, signed %x (%v)", raw, signed, err)
	}
	passkeyDraft, err := n.Draft(pub(key("ada")), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := device.SealNote(passkeyDraft, ed25519.Sign(key("ada"), wire.Signed(device.NoteContext, passkeyDraft)), nil); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a passkey's draft sealed with an Ed25519 signature: %v", err)
	}
	empty := n
	empty.Observation = nil
	if _, err := empty.Draft(pub(key("ada")), false); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a note without an Observation: %v", err)
	}
}
