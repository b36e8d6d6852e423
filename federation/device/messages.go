package device

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Errors of the device statements and batches, besides bytes or fields
// that are not valid (node.Invalid, "malformed device registration").
var (
	// ErrSignature: a signature that does not verify, or a key that does
	// not speak for the patient.
	ErrSignature = node.E(node.Forbidden, "device signature")
	// ErrStale: a statement or batch outside the clock skew the centre
	// allows.
	ErrStale = node.E(node.Invalid, "device message out of time")
)

// Type says what a device is: a code, never a name or a serial number.
type Type uint8

// The device types; their numbers are part of the encoding.
const (
	GlucoseMeter         Type = 1
	HeartRateMonitor     Type = 2
	BloodPressureMonitor Type = 3
	PulseOximeter        Type = 4
	Scale                Type = 5
	PatientApp           Type = 6 // an app of the patient's, on their phone
)

var types = enum.New[Type]("device type", []string{
	GlucoseMeter:         "glucose-meter",
	HeartRateMonitor:     "heart-rate-monitor",
	BloodPressureMonitor: "blood-pressure-monitor",
	PulseOximeter:        "pulse-oximeter",
	Scale:                "scale",
	PatientApp:           "patient-app",
})

func (t Type) String() string { return types.String(t) }

// Valid reports whether t is one of the types.
func (t Type) Valid() bool { return types.Valid(t) }

// ParseType returns the type named s.
func ParseType(s string) (Type, error) { return types.Parse("device type", s) }

// Types returns the types' names, in the order of their numbers.
func Types() []string {
	var out []string
	for t := Type(1); t.Valid(); t++ {
		out = append(out, t.String())
	}
	return out
}

// ID returns the ID a device with public key key has on every ledger:
// the first 16 bytes of SHA-256 over a context and the key. It names the
// device without its key, its serial number or anything of its owner's.
func ID(key ed25519.PublicKey) ledger.DeviceID {
	h := sha256.New()
	h.Write(wire.Signed(idContext, key))
	return ledger.DeviceID(h.Sum(nil)[:16])
}

const idContext = "medfed/device/v1 id"

// Limits.
const (
	// MaxSkew is how far a statement's or a batch's time may be from the
	// centre's clock: a device keeps rougher time than a server.
	MaxSkew = 5 * time.Minute
	// MaxLifetime bounds a registration, from its not-before to its
	// expiry: the patient registers the device again after it.
	MaxLifetime = 2 * 366 * 24 * time.Hour
	// MaxReadings bounds the readings of one batch.
	MaxReadings = 100
	// MaxReading bounds one reading (an Observation's JSON).
	MaxReading = 8 << 10
	// MaxBatch bounds a signed batch.
	MaxBatch = 1 << 20

	maxStatement = 4 << 10 // a registration or revocation, a passkey's assertion included
)

// The contexts the signatures cover: one for each message, so that no
// signature over one verifies as another.
const (
	RegistrationContext = "medfed/device/v1 registration"
	RevocationContext   = "medfed/device/v1 revocation"
	BatchContext        = "medfed/device/v1 batch"
)

var (
	registrationMessage = wire.Message{What: "device registration", Context: RegistrationContext, Version: 1, Max: maxStatement, Passkeys: true}
	revocationMessage   = wire.Message{What: "device revocation", Context: RevocationContext, Version: 1, Max: maxStatement, Passkeys: true}
	batchMessage        = wire.Message{What: "device batch", Context: BatchContext, Version: 1, Max: MaxBatch}
)

// Registration is a patient's signed statement that a device may add
// records about them at one centre: of which data classes, from when
// until when.
type Registration struct {
	Federation string
	Centre     peer.ID // the centre it counts at, and nowhere else
	Subject    ledger.Pseudonym
	Key        ed25519.PublicKey // the patient's key that signs it: an Ed25519 key, or a passkey's ID (wire.PasskeyID)
	Device     ed25519.PublicKey // the device's own key, which signs its batches
	Type       Type
	Classes    []string  // sorted, each once
	NotBefore  time.Time // whole seconds
	Expires    time.Time // whole seconds
	Nonce      [16]byte
	Time       time.Time // when the patient signed it, to the millisecond

	raw    []byte
	signed wire.Opened
}

// Encoding, version 1: u8 version, str federation, str centre, [32]
// subject, [32] key, [32] device, u8 type, u8 count and str classes, u64
// not-before, u64 expires (Unix seconds), [16] nonce, u64 Unix
// milliseconds; then (version 0x81, a passkey's: see wire.PasskeyVersion)
// the assertion and its length, or [64] the patient's Ed25519 signature
// over RegistrationContext || 0x00 || the bytes before it.
func (g *Registration) write(w *wire.Writer) {
	w.Str(g.Federation)
	w.Str(string(g.Centre))
	w.Bytes(g.Subject[:])
	w.Bytes(g.Key)
	w.Bytes(g.Device)
	w.U8(uint8(g.Type))
	w.U8(uint8(len(g.Classes)))
	for _, c := range g.Classes {
		w.Str(c)
	}
	w.Time(g.NotBefore)
	w.Time(g.Expires)
	w.Bytes(g.Nonce[:])
	w.Millis(g.Time)
}

func (g *Registration) read(r *wire.Reader) {
	g.Federation = r.Str("federation")
	g.Centre = peer.ID(r.Str("centre"))
	r.Fixed(g.Subject[:], "subject")
	g.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	g.Device = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "device")))
	g.Type = Type(r.U8("type"))
	n := int(r.U8("classes"))
	if r.Err() == nil && n > ledger.MaxDeviceClasses {
		r.Fail("%d classes", n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		g.Classes = append(g.Classes, r.Str("class"))
	}
	g.NotBefore = r.Time("not-before")
	g.Expires = r.Time("expires")
	r.Fixed(g.Nonce[:], "nonce")
	g.Time = r.Millis("time")
}

func (g *Registration) check() error {
	bad := func(format string, args ...any) error { return wire.Malformed("device registration", format, args...) }
	if err := checkParties(g.Federation, g.Centre, g.Subject, g.Key, g.Nonce, g.Time); err != nil {
		return bad("%s", err)
	}
	switch {
	case len(g.Device) != ed25519.PublicKeySize:
		return bad("a device key of %d bytes", len(g.Device))
	case bytes.Equal(g.Device, g.Key):
		return bad("the patient's own key is not a device's")
	case !g.Type.Valid():
		return bad("device type %d", uint8(g.Type))
	case len(g.Classes) == 0 || len(g.Classes) > ledger.MaxDeviceClasses:
		return bad("a device contributes 1 to %d data classes, not %d", ledger.MaxDeviceClasses, len(g.Classes))
	case !slices.IsSorted(g.Classes) || len(slices.Compact(slices.Clone(g.Classes))) != len(g.Classes):
		return bad("data classes sorted, each once")
	case g.NotBefore.IsZero() || g.Expires.IsZero() || !g.Expires.After(g.NotBefore):
		return bad("a not-before time and a later expiry")
	case g.Expires.Sub(g.NotBefore) > MaxLifetime:
		return bad("a registration of more than %v", MaxLifetime)
	case g.NotBefore.Nanosecond() != 0 || g.Expires.Nanosecond() != 0:
		return bad("times in whole seconds")
	}
	for _, c := range g.Classes {
		if !ledger.ValidDataClass(c) {
			return bad("a data class that is not one")
		}
	}
	return nil
}

// checkParties checks the fields a patient's statements share.
func checkParties(federation string, centre peer.ID, subject ledger.Pseudonym, key ed25519.PublicKey, nonce [16]byte, t time.Time) error {
	switch {
	case federation == "" || len(federation) > 64:
		return fmt.Errorf("federation")
	case centre == "" || len(centre) > 64:
		return fmt.Errorf("centre")
	case subject.IsZero():
		return fmt.Errorf("no patient")
	case len(key) != ed25519.PublicKeySize:
		return fmt.Errorf("a patient key of %d bytes", len(key))
	case nonce == [16]byte{}:
		return fmt.Errorf("no nonce")
	case t.UnixMilli() <= 0 || t.Unix() >= wire.MaxUnix:
		return fmt.Errorf("time")
	}
	return nil
}

// ID returns the registered device's ID.
func (g Registration) ID() ledger.DeviceID { return ID(g.Device) }

// Hash returns the SHA-256 of the signed registration, as the ledger's
// device entry names it; zero for one not parsed or signed.
func (g Registration) Hash() [32]byte {
	if g.raw == nil {
		return [32]byte{}
	}
	return sha256.Sum256(g.raw)
}

// Signed returns what the patient signed, for the centre to check that
// the key speaks for the patient (consent's Authenticate).
func (g Registration) Signed() wire.Opened { return g.signed }

// Sign returns the registration signed with the patient's key; Key is set
// from it.
func (g Registration) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, wire.Malformed("device registration", "not an Ed25519 private key")
	}
	g.Key = key.Public().(ed25519.PublicKey)
	if err := g.check(); err != nil {
		return nil, err
	}
	return registrationMessage.Sign(key, g.write)
}

// Draft returns the registration before its signature, for a key the
// patient's browser holds, as Note.Draft does; SealRegistration makes
// the registration.
func (g Registration) Draft(key ed25519.PublicKey, passkey bool) ([]byte, error) {
	g.Key = key
	if err := g.check(); err != nil {
		return nil, err
	}
	return registrationMessage.Draft(passkey, g.write), nil
}

// SealRegistration returns a draft (Registration.Draft) signed, as
// SealNote does.
func SealRegistration(draft, sig []byte, p *wire.Passkey) ([]byte, error) {
	return seal(registrationMessage, draft, sig, p, func(b []byte) error { _, err := ParseRegistration(b); return err })
}

// ParseRegistration decodes a signed registration; it accepts only what
// Sign writes, and checks the signature against the key it carries.
// Whether that key speaks for the patient is for the centre to check.
func ParseRegistration(b []byte) (Registration, error) {
	var g Registration
	o, err := registrationMessage.Open(b, g.read)
	if err != nil {
		return Registration{}, err
	}
	if err := g.check(); err != nil {
		return Registration{}, err
	}
	if !o.Verify(g.Key) {
		return Registration{}, fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	g.signed, g.raw = o, bytes.Clone(b)
	return g, nil
}

// Revocation is a patient's signed statement that a device adds nothing
// more about them at a centre: every registration of the device that the
// patient signed before it ends.
type Revocation struct {
	Federation string
	Centre     peer.ID
	Subject    ledger.Pseudonym
	Key        ed25519.PublicKey // the patient's key that signs it
	Device     ed25519.PublicKey // the device's key
	Nonce      [16]byte
	Time       time.Time // when the patient signed it, to the millisecond

	raw    []byte
	signed wire.Opened
}

// Encoding, version 1: u8 version, str federation, str centre, [32]
// subject, [32] key, [32] device, [16] nonce, u64 Unix milliseconds; then
// the signature as a registration's, over RevocationContext.
func (v *Revocation) write(w *wire.Writer) {
	w.Str(v.Federation)
	w.Str(string(v.Centre))
	w.Bytes(v.Subject[:])
	w.Bytes(v.Key)
	w.Bytes(v.Device)
	w.Bytes(v.Nonce[:])
	w.Millis(v.Time)
}

func (v *Revocation) read(r *wire.Reader) {
	v.Federation = r.Str("federation")
	v.Centre = peer.ID(r.Str("centre"))
	r.Fixed(v.Subject[:], "subject")
	v.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	v.Device = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "device")))
	r.Fixed(v.Nonce[:], "nonce")
	v.Time = r.Millis("time")
}

func (v *Revocation) check() error {
	if err := checkParties(v.Federation, v.Centre, v.Subject, v.Key, v.Nonce, v.Time); err != nil {
		return wire.Malformed("device revocation", "%s", err)
	}
	if len(v.Device) != ed25519.PublicKeySize {
		return wire.Malformed("device revocation", "a device key of %d bytes", len(v.Device))
	}
	return nil
}

// ID returns the revoked device's ID.
func (v Revocation) ID() ledger.DeviceID { return ID(v.Device) }

// Hash returns the SHA-256 of the signed revocation.
func (v Revocation) Hash() [32]byte {
	if v.raw == nil {
		return [32]byte{}
	}
	return sha256.Sum256(v.raw)
}

// Signed returns what the patient signed.
func (v Revocation) Signed() wire.Opened { return v.signed }

// Sign returns the revocation signed with the patient's key; Key is set
// from it.
func (v Revocation) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, wire.Malformed("device revocation", "not an Ed25519 private key")
	}
	v.Key = key.Public().(ed25519.PublicKey)
	if err := v.check(); err != nil {
		return nil, err
	}
	return revocationMessage.Sign(key, v.write)
}

// Draft returns the revocation before its signature, as
// Registration.Draft does.
func (v Revocation) Draft(key ed25519.PublicKey, passkey bool) ([]byte, error) {
	v.Key = key
	if err := v.check(); err != nil {
		return nil, err
	}
	return revocationMessage.Draft(passkey, v.write), nil
}

// SealRevocation returns a draft (Revocation.Draft) signed, as SealNote
// does.
func SealRevocation(draft, sig []byte, p *wire.Passkey) ([]byte, error) {
	return seal(revocationMessage, draft, sig, p, func(b []byte) error { _, err := ParseRevocation(b); return err })
}

// seal returns a draft of m signed by sig, an Ed25519 signature, or by a
// passkey's assertion p when it is not nil, and checked by parse.
func seal(m wire.Message, draft, sig []byte, p *wire.Passkey, parse func([]byte) error) ([]byte, error) {
	var b []byte
	var err error
	if p != nil {
		b, err = m.SealPasskey(draft, nil, *p)
	} else {
		b, err = m.Seal(draft, nil, sig)
	}
	if err != nil {
		return nil, err
	}
	if err := parse(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseRevocation decodes a signed revocation, as ParseRegistration.
func ParseRevocation(b []byte) (Revocation, error) {
	var v Revocation
	o, err := revocationMessage.Open(b, v.read)
	if err != nil {
		return Revocation{}, err
	}
	if err := v.check(); err != nil {
		return Revocation{}, err
	}
	if !o.Verify(v.Key) {
		return Revocation{}, fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	v.signed, v.raw = o, bytes.Clone(b)
	return v, nil
}

// Batch is what a device posts: readings about its patient, signed with
// its own key. Each reading is an opaque byte string here (an
// Observation's JSON, which the API reads), stored as it came.
type Batch struct {
	Federation string
	Centre     peer.ID
	Subject    ledger.Pseudonym
	Device     ed25519.PublicKey
	Nonce      [16]byte
	Time       time.Time // when the device signed it, to the millisecond
	Readings   [][]byte  // 1 to MaxReadings, each of 1 to MaxReading bytes
}

// Encoding, version 1: u8 version, str federation, str centre, [32]
// subject, [32] device, [16] nonce, u64 Unix milliseconds, u8 count and
// each reading as a blob (u32 length); then [64] the device's Ed25519
// signature over BatchContext || 0x00 || the bytes before it.
func (b *Batch) write(w *wire.Writer) {
	w.Str(b.Federation)
	w.Str(string(b.Centre))
	w.Bytes(b.Subject[:])
	w.Bytes(b.Device)
	w.Bytes(b.Nonce[:])
	w.Millis(b.Time)
	w.U8(uint8(len(b.Readings)))
	for _, r := range b.Readings {
		w.Blob(r)
	}
}

func (b *Batch) read(r *wire.Reader) {
	b.Federation = r.Str("federation")
	b.Centre = peer.ID(r.Str("centre"))
	r.Fixed(b.Subject[:], "subject")
	b.Device = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "device")))
	r.Fixed(b.Nonce[:], "nonce")
	b.Time = r.Millis("time")
	n := int(r.U8("readings"))
	if r.Err() == nil && n > MaxReadings {
		r.Fail("%d readings, at most %d", n, MaxReadings)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		b.Readings = append(b.Readings, r.Blob("reading", MaxReading))
	}
}

func (b *Batch) check() error {
	bad := func(format string, args ...any) error { return wire.Malformed("device batch", format, args...) }
	if err := checkParties(b.Federation, b.Centre, b.Subject, b.Device, b.Nonce, b.Time); err != nil {
		return bad("%s", err)
	}
	if len(b.Readings) == 0 || len(b.Readings) > MaxReadings {
		return bad("1 to %d readings, not %d", MaxReadings, len(b.Readings))
	}
	for i, r := range b.Readings {
		if len(r) == 0 || len(r) > MaxReading {
			return bad("reading %d of %d bytes: 1 to %d", i+1, len(r), MaxReading)
		}
	}
	return nil
}

// ID returns the posting device's ID.
func (b Batch) ID() ledger.DeviceID { return ID(b.Device) }

// Sign returns the batch signed with the device's key; Device is set
// from it.
func (b Batch) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, wire.Malformed("device batch", "not an Ed25519 private key")
	}
	b.Device = key.Public().(ed25519.PublicKey)
	if err := b.check(); err != nil {
		return nil, err
	}
	return batchMessage.Sign(key, b.write)
}

// ParseBatch decodes a signed batch; it accepts only what Sign writes,
// and checks the signature against the device key it carries. Whether
// the device is registered is for the centre to check.
func ParseBatch(raw []byte) (Batch, error) {
	var b Batch
	o, err := batchMessage.Open(raw, b.read)
	if err != nil {
		return Batch{}, err
	}
	if err := b.check(); err != nil {
		return Batch{}, err
	}
	if !o.Verify(b.Device) {
		return Batch{}, fmt.Errorf("%w: the device's signature does not verify", ErrSignature)
	}
	return b, nil
}
