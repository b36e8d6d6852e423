package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
)

// Kind says what an entry records.
type Kind uint8

// The entry kinds. Their numbers are part of the encoding: never reuse one.
const (
	KindRecord       Kind = 1  // an interaction: data about a patient was recorded
	KindAmendment    Kind = 2  // a new version of a record; names the index it replaces
	KindConsent      Kind = 3  // a patient-signed consent contract was accepted
	KindRevocation   Kind = 4  // a consent contract was revoked
	KindAccess       Kind = 5  // someone was given (or refused) access to a patient's data
	KindErasure      Kind = 6  // a record's payload was crypto-shredded
	KindCharter      Kind = 7  // a federation charter version was adopted
	KindTransfer     Kind = 8  // records were copied to or from another centre
	KindEvaluation   Kind = 9  // this centre evaluated pseudonyms for a centre: a count, never the elements
	KindDispense     Kind = 10 // a supply of a prescription was dispensed; never what was supplied
	KindCancellation Kind = 11 // a prescription was cancelled by its prescriber's centre
	KindDevice       Kind = 12 // a patient registered a device that contributes readings; never its key
	KindDeviceRevoke Kind = 13 // a patient revoked a device's registration
)

var kinds = enum.New[Kind]("kind", []string{
	KindRecord:       "record",
	KindAmendment:    "amendment",
	KindConsent:      "consent",
	KindRevocation:   "revocation",
	KindAccess:       "access",
	KindErasure:      "erasure",
	KindCharter:      "charter",
	KindTransfer:     "transfer",
	KindEvaluation:   "evaluation",
	KindDispense:     "dispense",
	KindCancellation: "cancellation",
	KindDevice:       "device",
	KindDeviceRevoke: "device-revocation",
})

func (k Kind) String() string { return kinds.String(k) }

func (k Kind) valid() bool { return kinds.Valid(k) }

// needsSubject reports whether entries of this kind must name a patient.
func (k Kind) needsSubject() bool {
	switch k {
	case KindRecord, KindAmendment, KindConsent, KindRevocation, KindAccess, KindErasure, KindTransfer, KindDispense, KindCancellation, KindDevice, KindDeviceRevoke:
		return true
	}
	return false
}

// Pseudonym is a patient's federation pseudonym, the only way a ledger entry
// names a patient. Package pseudonym derives it; the ledger only stores it.
type Pseudonym [32]byte

func (p Pseudonym) String() string { return hex.EncodeToString(p[:]) }

// IsZero reports whether p is the zero pseudonym (no patient).
func (p Pseudonym) IsZero() bool { return p == Pseudonym{} }

// StaffID is the stable, pseudonymous identifier a centre gives a member of
// its staff. It says who acted without saying who they are.
type StaffID [16]byte

func (s StaffID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s names no one (the centre's operator).
func (s StaffID) IsZero() bool { return s == StaffID{} }

// Entry is one ledger entry. Index and Time are assigned by the ledger when
// the entry is appended; callers leave them zero.
type Entry struct {
	Index   int64
	Time    time.Time // when the ledger appended the entry (UTC)
	Kind    Kind
	Subject Pseudonym // the patient concerned; zero for a charter entry
	Body    []byte    // the kind's own canonical encoding; see Record, Erasure
}

// Encoding version 1 of an entry, all integers big-endian:
//
//	u8   encoding version (1)
//	u8   kind
//	u64  index
//	i64  time, Unix nanoseconds UTC
//	u8   flags: bit 0 set when a subject follows; other bits zero
//	[32] subject pseudonym, when flagged
//	u32  body length, then the body
//
// The encoding is canonical: Decode accepts only bytes that Encode would
// produce, so the leaf hash of an entry is a function of its meaning.
const (
	encodingV1  = 1
	offIndex    = 2
	offTime     = 10
	offFlags    = 18
	headerLen   = 19
	flagSubject = 1
	maxEntryLen = headerLen + 32 + 4 + MaxBody
	maxIndex    = 1 << 62
)

// MaxBody is the longest body an entry may have.
const MaxBody = 64 << 10

// Times are Unix nanoseconds in an int64: 1970 to April 2262. Checking the
// year before converting keeps a far-future time from wrapping around.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func validTime(t time.Time) bool { return !t.Before(minTime) && t.Before(maxTime) }

// MaxEntrySize is the largest encoded entry the ledger accepts.
const MaxEntrySize = maxEntryLen

// malformed returns the error of Decode and of the entry body accessors
// for bytes or fields that are not a valid entry: of kind node.Invalid.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: malformed entry: %s", node.ErrInvalid, fmt.Sprintf(format, args...))
}

// Encode returns the canonical encoding of e.
func (e Entry) Encode() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return e.appendEncoding(make([]byte, 0, e.encodedLen())), nil
}

func (e Entry) encodedLen() int {
	n := headerLen + 4 + len(e.Body)
	if !e.Subject.IsZero() {
		n += 32
	}
	return n
}

func (e Entry) check() error {
	if !e.Kind.valid() {
		return malformed("unknown kind %d", uint8(e.Kind))
	}
	if e.Index < 0 || e.Index > maxIndex {
		return malformed("index out of range")
	}
	if e.Kind.needsSubject() && e.Subject.IsZero() {
		return malformed("a %s entry must name a pseudonym", e.Kind)
	}
	if !e.Kind.needsSubject() && !e.Subject.IsZero() {
		return malformed("a %s entry names no pseudonym", e.Kind)
	}
	if len(e.Body) > MaxBody {
		return malformed("body of %d bytes exceeds %d", len(e.Body), MaxBody)
	}
	if !e.Time.IsZero() && !validTime(e.Time) {
		return malformed("time outside 1970 to 2261")
	}
	return checkBody(e.Kind, e.Body)
}

func (e Entry) appendEncoding(b []byte) []byte {
	b = append(b, encodingV1, byte(e.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Index))
	var t int64
	if !e.Time.IsZero() {
		t = e.Time.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	if e.Subject.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, flagSubject)
		b = append(b, e.Subject[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Body)))
	return append(b, e.Body...)
}

// stamp writes the index and time the ledger assigns into an encoding
// produced with both zero. Their offsets are fixed, so callers can encode
// in parallel and the single committer only patches 16 bytes.
func stamp(enc []byte, index int64, t time.Time) {
	binary.BigEndian.PutUint64(enc[offIndex:], uint64(index))
	binary.BigEndian.PutUint64(enc[offTime:], uint64(t.UnixNano()))
}

// Decode parses a canonical entry encoding. It accepts nothing else: a
// trailing byte, a set reserved flag or an invalid body is an error.
func Decode(b []byte) (Entry, error) {
	if len(b) > maxEntryLen {
		return Entry{}, malformed("%d bytes exceeds the maximum entry size", len(b))
	}
	if len(b) < headerLen+4 {
		return Entry{}, malformed("%d bytes is too short", len(b))
	}
	if b[0] != encodingV1 {
		return Entry{}, malformed("unknown encoding version %d", b[0])
	}
	e := Entry{Kind: Kind(b[1])}
	idx := binary.BigEndian.Uint64(b[offIndex:])
	if idx > maxIndex {
		return Entry{}, malformed("index out of range")
	}
	e.Index = int64(idx)
	t := int64(binary.BigEndian.Uint64(b[offTime:]))
	if t < 0 || t >= maxTime.UnixNano() {
		return Entry{}, malformed("time outside 1970 to 2261")
	}
	if t != 0 {
		e.Time = time.Unix(0, t).UTC()
	}
	rest := b[headerLen:]
	switch b[offFlags] {
	case 0:
	case flagSubject:
		if len(rest) < 32+4 {
			return Entry{}, malformed("truncated pseudonym")
		}
		copy(e.Subject[:], rest)
		if e.Subject.IsZero() {
			return Entry{}, malformed("zero pseudonym")
		}
		rest = rest[32:]
	default:
		return Entry{}, malformed("reserved flags 0x%02x set", b[offFlags])
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) != uint64(len(rest)) {
		return Entry{}, malformed("body length %d, but %d bytes follow", n, len(rest))
	}
	if n > 0 {
		e.Body = bytes.Clone(rest)
	}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}
