package ledger

import (
	"encoding/hex"
	"slices"
	"time"

	"github.com/medfed/medfed/node/wire"
)

// A device a patient registers at a centre contributes readings there:
// each a record whose author is the device (AuthorDevice). The ledger
// says that the patient let it, for which data classes and until when,
// and when they revoked it, so that every reading's authority is on the
// same ledger as the reading: a device entry for the patient, in force
// at the reading's append, and no revocation entry before it. Neither
// body holds the device's key, its type or anything the patient signed
// but the statement's hash (the centre keeps the statement itself).

// DeviceID names a device on ledgers: derived from its public key
// (package federation/device), so that a device has one ID at every
// centre and no serial number or name is ever written.
type DeviceID [16]byte

func (d DeviceID) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d names no device.
func (d DeviceID) IsZero() bool { return d == DeviceID{} }

// MaxDeviceClasses bounds the data classes a device may contribute.
const MaxDeviceClasses = 16

// Device is the body of a device entry: patient-signed, the device may
// add records of Classes from NotBefore until Expires.
type Device struct {
	Device    DeviceID
	Classes   []string // sorted, each once
	NotBefore time.Time
	Expires   time.Time
	Statement [32]byte // SHA-256 of the registration the patient signed
}

// DeviceRevocation is the body of a device revocation entry: from it on,
// the device adds nothing more for the patient.
type DeviceRevocation struct {
	Device       DeviceID
	Registration int64    // the index of the device entry it ends
	Statement    [32]byte // SHA-256 of the revocation the patient signed
}

// Encodings, version 1, in node/wire's fields:
//
//	device:            u8 version, [16] device, u8 count and str classes,
//	                   u64 not-before, u64 expires (Unix seconds), [32] statement
//	device revocation: u8 version, [16] device, u64 registration, [32] statement
const (
	deviceV1           = 1
	deviceRevocationV1 = 1
)

// NewDevice returns the entry recording d about patient p.
func NewDevice(p Pseudonym, d Device) (Entry, error) {
	if err := d.check(); err != nil {
		return Entry{}, err
	}
	w := wire.Writer{B: []byte{deviceV1}}
	w.Bytes(d.Device[:])
	w.U8(uint8(len(d.Classes)))
	for _, c := range d.Classes {
		w.Str(c)
	}
	w.Time(d.NotBefore)
	w.Time(d.Expires)
	w.Bytes(d.Statement[:])
	e := Entry{Kind: KindDevice, Subject: p, Body: w.B}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (d Device) check() error {
	switch {
	case d.Device.IsZero():
		return malformed("a device entry names its device")
	case len(d.Classes) == 0 || len(d.Classes) > MaxDeviceClasses:
		return malformed("a device contributes 1 to %d data classes, not %d", MaxDeviceClasses, len(d.Classes))
	case !slices.IsSorted(d.Classes) || len(slices.Compact(slices.Clone(d.Classes))) != len(d.Classes):
		return malformed("a device's data classes sorted, each once")
	case !validTime(d.NotBefore) || d.NotBefore.Equal(minTime) || d.NotBefore.Nanosecond() != 0:
		return malformed("a device's not-before time, in whole seconds after 1970")
	case !validTime(d.Expires) || !d.Expires.After(d.NotBefore) || d.Expires.Nanosecond() != 0:
		return malformed("a device's expiry, in whole seconds after its not-before")
	case d.Statement == [32]byte{}:
		return malformed("a device entry without its statement's hash")
	}
	for _, c := range d.Classes {
		if !validDataClass(c) {
			return malformed("a device's data class is not one")
		}
	}
	return nil
}

// Device decodes the body of a device entry.
func (e Entry) Device() (Device, error) {
	if e.Kind != KindDevice {
		return Device{}, malformed("a %s entry has no device", e.Kind)
	}
	return decodeDevice(e.Body)
}

func decodeDevice(b []byte) (Device, error) {
	var d Device
	r := wire.NewReader(b, "device entry")
	if v := r.U8("version"); r.Err() == nil && v != deviceV1 {
		r.Fail("version %d", v)
	}
	r.Fixed(d.Device[:], "device")
	n := int(r.U8("classes"))
	if r.Err() == nil && n > MaxDeviceClasses {
		r.Fail("%d classes", n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		d.Classes = append(d.Classes, r.Str("class"))
	}
	d.NotBefore = r.Time("not-before")
	d.Expires = r.Time("expires")
	r.Fixed(d.Statement[:], "statement")
	r.End("device")
	if r.Err() != nil {
		return Device{}, r.Err()
	}
	if err := d.check(); err != nil {
		return Device{}, err
	}
	return d, nil
}

// NewDeviceRevocation returns the entry recording r about patient p.
func NewDeviceRevocation(p Pseudonym, r DeviceRevocation) (Entry, error) {
	if err := r.check(); err != nil {
		return Entry{}, err
	}
	w := wire.Writer{B: []byte{deviceRevocationV1}}
	w.Bytes(r.Device[:])
	w.U64(uint64(r.Registration))
	w.Bytes(r.Statement[:])
	e := Entry{Kind: KindDeviceRevoke, Subject: p, Body: w.B}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (r DeviceRevocation) check() error {
	switch {
	case r.Device.IsZero():
		return malformed("a device revocation names its device")
	case r.Registration < 0 || r.Registration > maxIndex:
		return malformed("revoked registration index out of range")
	case r.Statement == [32]byte{}:
		return malformed("a device revocation without its statement's hash")
	}
	return nil
}

// DeviceRevocation decodes the body of a device revocation entry.
func (e Entry) DeviceRevocation() (DeviceRevocation, error) {
	if e.Kind != KindDeviceRevoke {
		return DeviceRevocation{}, malformed("a %s entry has no device revocation", e.Kind)
	}
	return decodeDeviceRevocation(e.Body)
}

func decodeDeviceRevocation(b []byte) (DeviceRevocation, error) {
	var x DeviceRevocation
	r := wire.NewReader(b, "device revocation entry")
	if v := r.U8("version"); r.Err() == nil && v != deviceRevocationV1 {
		r.Fail("version %d", v)
	}
	r.Fixed(x.Device[:], "device")
	x.Registration = int64(r.U64("registration"))
	r.Fixed(x.Statement[:], "statement")
	r.End("device revocation")
	if r.Err() != nil {
		return DeviceRevocation{}, r.Err()
	}
	if err := x.check(); err != nil {
		return DeviceRevocation{}, err
	}
	return x, nil
}
