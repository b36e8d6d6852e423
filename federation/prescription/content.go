package prescription

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Class is the data class of a prescription's record.
const Class = "prescription"

// System is the code system of a medication.
type System uint8

// The medication code systems; their numbers are part of the encoding.
const (
	DMD    System = 1 // NHS Dictionary of medicines and devices (dm+d)
	SNOMED System = 2 // SNOMED CT
)

var systems = enum.New[System]("medication system", []string{DMD: "dmd", SNOMED: "snomed"})

// systemURIs are the systems as FHIR names them.
var systemURIs = map[System]string{DMD: "https://dmd.nhs.uk", SNOMED: "http://snomed.info/sct"}

func (s System) String() string { return systems.String(s) }

// URI returns the system's FHIR URI.
func (s System) URI() string { return systemURIs[s] }

// ParseSystem returns the system named s: its name (dmd, snomed) or its
// FHIR URI.
func ParseSystem(s string) (System, error) {
	for sys, uri := range systemURIs {
		if s == uri {
			return sys, nil
		}
	}
	return systems.Parse("medication system", s)
}

// Medication is what is prescribed, as a code of a system. dm+d and
// SNOMED CT codes are both SNOMED CT identifiers: 6 to 18 digits, the
// last a Verhoeff check digit.
type Medication struct {
	System  System
	Code    string
	Display string // the code's name, as the prescriber's system shows it
}

// Prescription is a prescription's content: the payload of its record at
// the issuing centre, never on a ledger.
type Prescription struct {
	Issuer     peer.ID        // the issuing centre: the only one that dispenses it
	Prescriber ledger.StaffID // who prescribed it, at the issuer
	Medication Medication
	Quantity   uint32 // of Unit, each supply
	Unit       string // e.g. tablet, mL
	// Repeats is how many supplies may follow the first (FHIR's
	// numberOfRepeatsAllowed): Repeats+1 in all.
	Repeats    uint8
	ValidFrom  time.Time // the first moment a supply may be dispensed (to the second)
	ValidUntil time.Time // and the moment after the last
	Dosage     string    // the dosage instruction, as the prescriber wrote it
	ClaimHash  [32]byte  // SHA-256 of the secret in the patient's token
}

// Limits of a prescription.
const (
	MaxRepeats   = 100
	MaxValidity  = 400 * 24 * time.Hour // a year's repeat dispensing, and a month
	maxDisplay   = 200
	maxUnit      = 32
	maxDosage    = 1000
	maxCodeLen   = 18
	minCodeLen   = 6
	maxPeerIDLen = 64
)

// magic begins every prescription's payload: a record of class
// "prescription" whose payload does not begin with it (a scanned paper
// prescription an EHR sent) is a document, not a prescription this
// protocol dispenses.
var magic = []byte("medfed/prescription/v1\n")

// IsPrescription reports whether payload is meant as a prescription's
// content (it may still not parse).
func IsPrescription(payload []byte) bool { return bytes.HasPrefix(payload, magic) }

// Supplies returns how many supplies the prescription allows.
func (p Prescription) Supplies() int { return int(p.Repeats) + 1 }

// malformed is the error of a prescription that is not valid.
func malformed(format string, args ...any) error {
	return wire.Malformed("prescription", format, args...)
}

// Check checks every field, naming the first that is wrong.
func (p Prescription) Check() error {
	switch {
	case p.Issuer == "" || len(p.Issuer) > maxPeerIDLen:
		return malformed("issuer")
	case p.Prescriber.IsZero():
		return malformed("a prescription names its prescriber (a staff ID)")
	case !systems.Valid(p.Medication.System):
		return malformed("medication system %d: dmd or snomed", uint8(p.Medication.System))
	case !ValidCode(p.Medication.Code):
		return malformed("medication code: %d to %d digits, the last a Verhoeff check digit (a dm+d or SNOMED CT identifier)", minCodeLen, maxCodeLen)
	case !printable(p.Medication.Display, 1, maxDisplay):
		return malformed("medication display: 1 to %d bytes of printable text", maxDisplay)
	case p.Quantity == 0:
		return malformed("a quantity of nothing")
	case !validUnit(p.Unit):
		return malformed("unit: 1 to %d characters of letters, digits, ' ', '.', '/' or '-'", maxUnit)
	case p.Repeats > MaxRepeats:
		return malformed("%d repeats, at most %d", p.Repeats, MaxRepeats)
	case p.ValidFrom.IsZero() || p.ValidUntil.IsZero() || !p.ValidFrom.Before(p.ValidUntil):
		return malformed("a validity period that ends after it starts")
	case p.ValidFrom.Unix() <= 0 || p.ValidUntil.Unix() >= wire.MaxUnix:
		return malformed("a validity period outside 1970 to 2261")
	case p.ValidUntil.Sub(p.ValidFrom) > MaxValidity:
		return malformed("valid for more than %d days", int(MaxValidity/(24*time.Hour)))
	case p.ValidFrom.Nanosecond() != 0 || p.ValidUntil.Nanosecond() != 0:
		return malformed("a validity period to the second")
	case !printable(p.Dosage, 0, maxDosage):
		return malformed("dosage: at most %d bytes of printable text", maxDosage)
	case p.ClaimHash == [32]byte{}:
		return malformed("no claim hash")
	}
	return nil
}

// Encode returns the canonical encoding of p: the prescription's payload.
//
//	"medfed/prescription/v1\n", str issuer, [16] prescriber, u8 system,
//	str code, str display, u32 quantity, str unit, u8 repeats, u64 valid
//	from, u64 valid until (Unix seconds), u16 length and the dosage,
//	[32] claim hash
func (p Prescription) Encode() ([]byte, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	w := wire.Writer{B: bytes.Clone(magic)}
	w.Str(string(p.Issuer))
	w.Bytes(p.Prescriber[:])
	w.U8(uint8(p.Medication.System))
	w.Str(p.Medication.Code)
	w.Str(p.Medication.Display)
	w.U32(p.Quantity)
	w.Str(p.Unit)
	w.U8(p.Repeats)
	w.Time(p.ValidFrom)
	w.Time(p.ValidUntil)
	w.U16(uint16(len(p.Dosage)))
	w.Bytes([]byte(p.Dosage))
	w.Bytes(p.ClaimHash[:])
	return w.B, nil
}

// Parse decodes a prescription's payload; it accepts only what Encode
// writes.
func Parse(b []byte) (Prescription, error) {
	var p Prescription
	if !IsPrescription(b) {
		return p, malformed("not a prescription's payload")
	}
	r := wire.NewReader(b[len(magic):], "prescription")
	p.Issuer = peer.ID(r.Str("issuer"))
	r.Fixed(p.Prescriber[:], "prescriber")
	p.Medication.System = System(r.U8("system"))
	p.Medication.Code = r.Str("code")
	p.Medication.Display = r.Str("display")
	p.Quantity = r.U32("quantity")
	p.Unit = r.Str("unit")
	p.Repeats = r.U8("repeats")
	p.ValidFrom = r.Time("valid from")
	p.ValidUntil = r.Time("valid until")
	n := int(r.U16("dosage"))
	p.Dosage = string(r.Take(n, "dosage"))
	r.Fixed(p.ClaimHash[:], "claim hash")
	r.End("prescription")
	if r.Err() != nil {
		return Prescription{}, r.Err()
	}
	if err := p.Check(); err != nil {
		return Prescription{}, err
	}
	return p, nil
}

// Opens reports whether secret is the one the prescription was issued
// with.
func (p Prescription) Opens(secret Secret) bool { return secret.Hash() == p.ClaimHash }

// ValidCode reports whether s is a SNOMED CT identifier (dm+d's codes are
// ones too): 6 to 18 digits, no leading zero, the last the Verhoeff check
// digit of the others.
func ValidCode(s string) bool {
	if len(s) < minCodeLen || len(s) > maxCodeLen || s[0] == '0' {
		return false
	}
	c := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := s[i]
		if d < '0' || d > '9' {
			return false
		}
		c = verhoeffD[c][verhoeffP[(len(s)-1-i)%8][d-'0']]
	}
	return c == 0
}

// The Verhoeff tables: the dihedral group D5's multiplication and the
// position permutation.
var (
	verhoeffD = [10][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
		{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 8, 7, 0, 6}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

// printable reports whether s is lo to hi bytes of valid UTF-8 whose
// characters all print (spaces included; no control or format
// characters, no direction overrides).
func printable(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validUnit(s string) bool {
	if len(s) == 0 || len(s) > maxUnit {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ' ' || c == '.' || c == '/' || c == '-':
		default:
			return false
		}
	}
	return true
}

// Secret opens a prescription: the patient holds it (in the token), the
// issuer keeps only its hash. It never reaches a log (LogValue).
type Secret [16]byte

// Hash returns what the prescription keeps of the secret.
func (s Secret) Hash() [32]byte { return sha256.Sum256(s[:]) }

// String hides the secret: a Secret printed by mistake shows nothing.
func (s Secret) String() string { return "(secret)" }

// GoString hides it from %#v too.
func (s Secret) GoString() string { return "prescription.Secret{...}" }

// LogValue hides it from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue("(secret)") }
