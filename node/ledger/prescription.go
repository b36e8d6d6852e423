package ledger

import (
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/wire"
)

// A prescription is a record (data class "prescription") whose payload,
// off the ledger, says what was prescribed; the ledger says only what
// became of it: each supply dispensed, and its cancellation. Neither body
// holds a medication code or any other clinical content: indexes, member
// IDs, staff IDs, numbers and codes of this package's own.

// Dispense is the body of a dispense entry: one supply of a prescription
// handed to the patient by a dispensing member. The issuing centre's
// ledger is authoritative: it appends the entry before confirming the
// claim, so a supply is dispensed exactly when the entry is there. The
// dispensing member records the confirmation on its own ledger as a
// dispense entry too, naming the issuer and the issuer's entry.
type Dispense struct {
	// Issuer is the issuing centre's peer ID, as bytes; empty on the
	// issuer's own ledger.
	Issuer       []byte
	Prescription int64  // the prescription's record entry on the issuer's ledger
	Fill         uint8  // which supply: 1 the first, 2 the first repeat, and so on
	Pharmacy     []byte // the dispensing member's peer ID, as bytes
	Pharmacist   StaffID
	Nonce        [16]byte // the claim's
	// Confirmed is, on the dispensing member's ledger, the index of the
	// issuer's dispense entry; zero on the issuer's.
	Confirmed int64
}

// CancelReason says why a prescription was cancelled: a code, never text.
type CancelReason uint8

// The reasons a prescriber cancels; their numbers are part of the
// encoding.
const (
	CancelError           CancelReason = 1 // prescribed in error
	CancelChanged         CancelReason = 2 // replaced by another prescription
	CancelAdverseReaction CancelReason = 3 // the patient reacted badly
	CancelNoLongerNeeded  CancelReason = 4 // the treatment ended
	CancelPatientRequest  CancelReason = 5 // the patient asked
)

var cancelReasons = enum.New[CancelReason]("cancel reason", []string{
	CancelError:           "error",
	CancelChanged:         "changed",
	CancelAdverseReaction: "adverse-reaction",
	CancelNoLongerNeeded:  "no-longer-needed",
	CancelPatientRequest:  "patient-request",
})

func (r CancelReason) String() string { return cancelReasons.String(r) }

// Valid reports whether r is one of the reasons.
func (r CancelReason) Valid() bool { return cancelReasons.Valid(r) }

// ParseCancelReason returns the reason named s.
func ParseCancelReason(s string) (CancelReason, error) {
	return cancelReasons.Parse("cancel reason", s)
}

// Cancellation is the body of a cancellation entry: the prescriber's
// centre withdrew a prescription; no supply is dispensed after it.
type Cancellation struct {
	Prescription int64   // the prescription's record entry
	Prescriber   StaffID // who cancelled it
	Reason       CancelReason
}

// Encodings, version 1, in node/wire's fields:
//
//	dispense:     u8 version, str issuer, u64 prescription, u8 fill,
//	              str pharmacy, [16] pharmacist, [16] nonce, u64 confirmed
//	cancellation: u8 version, u64 prescription, [16] prescriber, u8 reason
const (
	dispenseV1     = 1
	cancellationV1 = 1
)

// NewDispense returns the entry recording d about patient p.
func NewDispense(p Pseudonym, d Dispense) (Entry, error) {
	if err := d.check(); err != nil {
		return Entry{}, err
	}
	w := wire.Writer{B: []byte{dispenseV1}}
	w.Str(string(d.Issuer))
	w.U64(uint64(d.Prescription))
	w.U8(d.Fill)
	w.Str(string(d.Pharmacy))
	w.Bytes(d.Pharmacist[:])
	w.Bytes(d.Nonce[:])
	w.U64(uint64(d.Confirmed))
	e := Entry{Kind: KindDispense, Subject: p, Body: w.B}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (d Dispense) check() error {
	switch {
	case len(d.Issuer) > maxRequesterLen:
		return malformed("dispense issuer of %d bytes", len(d.Issuer))
	case len(d.Pharmacy) == 0 || len(d.Pharmacy) > maxRequesterLen:
		return malformed("dispense pharmacy of %d bytes", len(d.Pharmacy))
	case d.Prescription <= 0 || d.Prescription > maxIndex:
		return malformed("dispensed prescription index out of range")
	case d.Fill == 0:
		return malformed("a dispense of supply 0")
	case d.Nonce == [16]byte{}:
		return malformed("a dispense without its claim's nonce")
	case d.Confirmed < 0 || d.Confirmed > maxIndex:
		return malformed("confirming index out of range")
	case (len(d.Issuer) == 0) != (d.Confirmed == 0):
		// The issuer's own entry confirms nothing; a dispensing member's
		// names the issuer's entry that confirmed it.
		return malformed("a dispense names its issuer and the issuer's entry, or neither")
	}
	return nil
}

// Dispense decodes the body of a dispense entry.
func (e Entry) Dispense() (Dispense, error) {
	if e.Kind != KindDispense {
		return Dispense{}, malformed("a %s entry has no dispense", e.Kind)
	}
	return decodeDispense(e.Body)
}

func decodeDispense(b []byte) (Dispense, error) {
	var d Dispense
	r := wire.NewReader(b, "dispense entry")
	if v := r.U8("version"); r.Err() == nil && v != dispenseV1 {
		r.Fail("version %d", v)
	}
	d.Issuer = []byte(r.Str("issuer"))
	d.Prescription = int64(r.U64("prescription"))
	d.Fill = r.U8("fill")
	d.Pharmacy = []byte(r.Str("pharmacy"))
	r.Fixed(d.Pharmacist[:], "pharmacist")
	r.Fixed(d.Nonce[:], "nonce")
	d.Confirmed = int64(r.U64("confirmed"))
	r.End("dispense")
	if r.Err() != nil {
		return Dispense{}, r.Err()
	}
	if len(d.Issuer) == 0 {
		d.Issuer = nil
	}
	if err := d.check(); err != nil {
		return Dispense{}, err
	}
	return d, nil
}

// NewCancellation returns the entry recording c about patient p.
func NewCancellation(p Pseudonym, c Cancellation) (Entry, error) {
	if err := c.check(); err != nil {
		return Entry{}, err
	}
	w := wire.Writer{B: []byte{cancellationV1}}
	w.U64(uint64(c.Prescription))
	w.Bytes(c.Prescriber[:])
	w.U8(uint8(c.Reason))
	e := Entry{Kind: KindCancellation, Subject: p, Body: w.B}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (c Cancellation) check() error {
	switch {
	case c.Prescription <= 0 || c.Prescription > maxIndex:
		return malformed("cancelled prescription index out of range")
	case c.Prescriber.IsZero():
		return malformed("a cancellation names its prescriber")
	case !c.Reason.Valid():
		return malformed("cancel reason %d", uint8(c.Reason))
	}
	return nil
}

// Cancellation decodes the body of a cancellation entry.
func (e Entry) Cancellation() (Cancellation, error) {
	if e.Kind != KindCancellation {
		return Cancellation{}, malformed("a %s entry has no cancellation", e.Kind)
	}
	return decodeCancellation(e.Body)
}

func decodeCancellation(b []byte) (Cancellation, error) {
	var c Cancellation
	r := wire.NewReader(b, "cancellation entry")
	if v := r.U8("version"); r.Err() == nil && v != cancellationV1 {
		r.Fail("version %d", v)
	}
	c.Prescription = int64(r.U64("prescription"))
	r.Fixed(c.Prescriber[:], "prescriber")
	c.Reason = CancelReason(r.U8("reason"))
	r.End("cancellation")
	if r.Err() != nil {
		return Cancellation{}, r.Err()
	}
	if err := c.check(); err != nil {
		return Cancellation{}, err
	}
	return c, nil
}
