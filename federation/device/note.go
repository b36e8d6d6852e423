package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// A patient's own note is added the way a device adds a reading, but
// signed by the patient's key (a passkey in the portal): a Note names the
// centre, the patient, a nonce and the time, and carries one Observation
// the centre stores as it came, as a record whose author is the patient
// (ledger.AuthorPatient) by the ID of the key that signed it (NoteAuthor).
// The centre checks that the key speaks for the patient, as for every
// statement of theirs, and takes each note once, at most at the rate of
// a device.

// NoteContext names a patient's note in what its signature covers.
const NoteContext = "medfed/device/v1 note"

var noteMessage = wire.Message{What: "patient note", Context: NoteContext, Version: 1, Max: MaxReading + maxStatement, Passkeys: true}

// Note is a patient's signed note for their records at one centre.
type Note struct {
	Federation  string
	Centre      peer.ID // the centre that keeps it, and no other
	Subject     ledger.Pseudonym
	Key         ed25519.PublicKey // the patient's key that signs it: an Ed25519 key, or a passkey's ID
	Nonce       [16]byte
	Time        time.Time // when the patient signed it, to the millisecond
	Observation []byte    // the note, an Observation's JSON (the API reads it): 1 to MaxReading bytes

	signed wire.Opened
}

// Encoding, version 1: u8 version, str federation, str centre, [32]
// subject, [32] key, [16] nonce, u64 Unix milliseconds, blob (u32 length)
// the Observation; then (version 0x81, a passkey's) the assertion and its
// length, or [64] the patient's Ed25519 signature over NoteContext ||
// 0x00 || the bytes before it.
func (n *Note) write(w *wire.Writer) {
	w.Str(n.Federation)
	w.Str(string(n.Centre))
	w.Bytes(n.Subject[:])
	w.Bytes(n.Key)
	w.Bytes(n.Nonce[:])
	w.Millis(n.Time)
	w.Blob(n.Observation)
}

func (n *Note) read(r *wire.Reader) {
	n.Federation = r.Str("federation")
	n.Centre = peer.ID(r.Str("centre"))
	r.Fixed(n.Subject[:], "subject")
	n.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	r.Fixed(n.Nonce[:], "nonce")
	n.Time = r.Millis("time")
	n.Observation = r.Blob("observation", MaxReading)
}

func (n *Note) check() error {
	if err := checkParties(n.Federation, n.Centre, n.Subject, n.Key, n.Nonce, n.Time); err != nil {
		return wire.Malformed("patient note", "%s", err)
	}
	if len(n.Observation) == 0 || len(n.Observation) > MaxReading {
		return wire.Malformed("patient note", "an Observation of %d bytes: 1 to %d", len(n.Observation), MaxReading)
	}
	return nil
}

// Sign returns the note signed with the patient's Ed25519 key; Key is set
// from it.
func (n Note) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, wire.Malformed("patient note", "not an Ed25519 private key")
	}
	n.Key = key.Public().(ed25519.PublicKey)
	if err := n.check(); err != nil {
		return nil, err
	}
	return noteMessage.Sign(key, n.write)
}

// Draft returns the note before its signature, for a key the patient's
// browser holds (key: the Ed25519 key, or the passkey's ID): the browser
// signs wire.Signed(NoteContext, draft), a passkey its wire.Challenge,
// and SealNote makes the note.
func (n Note) Draft(key ed25519.PublicKey, passkey bool) ([]byte, error) {
	n.Key = key
	if err := n.check(); err != nil {
		return nil, err
	}
	return noteMessage.Draft(passkey, n.write), nil
}

// SealNote returns a draft (Draft) signed: by sig, an Ed25519 signature,
// or by a passkey's assertion p when it is not nil. The result is checked
// as ParseNote checks any note.
func SealNote(draft, sig []byte, p *wire.Passkey) ([]byte, error) {
	return seal(noteMessage, draft, sig, p, func(b []byte) error { _, err := ParseNote(b); return err })
}

// ParseNote decodes a signed note; it accepts only what Sign and SealNote
// write, and checks the signature against the key it carries. Whether
// that key speaks for the patient is for the centre to check.
func ParseNote(b []byte) (Note, error) {
	var n Note
	o, err := noteMessage.Open(b, n.read)
	if err != nil {
		return Note{}, err
	}
	if err := n.check(); err != nil {
		return Note{}, err
	}
	if !o.Verify(n.Key) {
		return Note{}, fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	n.signed = o
	return n, nil
}

// NoteAuthor returns the ID a note's record names its author by: derived
// from the patient's key under a context of its own, so that it is no
// device's ID, and names the key without the key itself.
func NoteAuthor(key ed25519.PublicKey) ledger.DeviceID {
	h := sha256.New()
	h.Write(wire.Signed(noteAuthorContext, key))
	return ledger.DeviceID(h.Sum(nil)[:16])
}

const noteAuthorContext = "medfed/device/v1 note author"

// AddNote checks a patient's signed note (Note.Sign, SealNote) and stores
// its Observation, described by reading, as a record the patient wrote.
// The checks go as Take's: the signature and the address, the time, the
// key (it must speak for the patient: consent's Authenticate), the
// class; then, under the key's lock, the note's nonce and the rate. A
// refused note changes nothing.
func (r *Registry) AddNote(ctx context.Context, raw []byte, reading Reading) (Taken, error) {
	n, err := ParseNote(raw)
	if err != nil {
		return Taken{}, err
	}
	if err := r.addressed(n.Federation, n.Centre, "note"); err != nil {
		return Taken{}, err
	}
	now := r.opts.Now()
	switch d := n.Time.Sub(now); {
	case d > MaxSkew:
		return Taken{}, fmt.Errorf("%w: the note is dated more than %v ahead of the centre's clock", ErrStale, MaxSkew)
	case d < -MaxSkew:
		// Its nonce is kept only as long: a note signed so late is
		// prepared and signed again.
		return Taken{}, fmt.Errorf("%w: the note was prepared more than %v ago: prepare it and sign it again", ErrStale, MaxSkew)
	}
	switch {
	case !r.classes[reading.Class]:
		return Taken{}, fmt.Errorf("%w: data class %s is not one this centre records (records.classes)", node.ErrInvalid, reading.Class)
	case reading.Occurred.After(now.Add(MaxSkew)):
		return Taken{}, fmt.Errorf("%w: the note is dated in the future", node.ErrInvalid)
	}
	if err := r.opts.Consent.Authenticate(ctx, n.Subject, n.Key, n.signed, n.Time); err != nil {
		return Taken{}, err
	}
	id := NoteAuthor(n.Key)
	rec := ledger.Record{Occurred: reading.Occurred.UTC(), DataClass: reading.Class, Author: ledger.StaffID(id), AuthorKind: ledger.AuthorPatient}
	if err := rec.CheckFields(); err != nil {
		return Taken{}, fmt.Errorf("note: %w", err)
	}
	first, err := r.keep(ctx, ledger.AuthorPatient, id, n.Nonce, n.Subject, n.Time, []ledger.Record{rec}, [][]byte{n.Observation})
	if err != nil {
		return Taken{}, err
	}
	r.log.Info("patient note added", "pseudonym", n.Subject, "entry", first)
	return Taken{Subject: n.Subject, Device: id, First: first, Count: 1}, nil
}
