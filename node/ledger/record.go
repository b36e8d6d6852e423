package ledger

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/medfed/medfed/node/enum"
)

// Record is the body of a record or amendment entry: the metadata of one
// interaction. The clinical payload itself lives off the ledger; the entry
// holds only its ID in the centre's record store and a keyed commitment to it.
type Record struct {
	Occurred  time.Time // when the interaction happened (UTC)
	DataClass string    // e.g. "lab-result", "imaging", "discharge-summary"
	// Author is who wrote it: a staff ID of the centre's; with AuthorKind
	// AuthorDevice, the ID of a device the patient registered (a
	// DeviceID's bytes); with AuthorPatient, the ID of the patient's own
	// key that signed it (federation/device.NoteAuthor).
	Author     StaffID
	AuthorKind AuthorKind
	Location   string // department or site code; may be empty
	Payload    [16]byte
	Commitment [32]byte
	// Replaces is the index of the version an amendment replaces. It is
	// encoded only in amendment entries and is zero in a record entry.
	Replaces int64
}

// Erasure is the body of an erasure entry: the record whose payload was
// crypto-shredded. The record entry itself stays, so every proof stays valid.
type Erasure struct {
	Target  int64 // index of the record or amendment entry
	Payload [16]byte
}

const (
	maxTokenLen = 64
	recordLen   = 8 + 1 + 16 + 1 + 16 + 32 // without the two strings
)

// Encoding of a record or amendment body, integers big-endian:
//
//	i64  occurred, Unix nanoseconds UTC
//	u8   data class length, then the class
//	[16] author
//	u8   location length, then the location
//	[16] payload ID
//	[32] commitment
//	u64  replaced index (amendments only)
//	u8   author kind, only when it is not AuthorStaff
//
// The author kind came later: a body without it, as every body before
// it, is a staff member's, and a staff member's body never carries it,
// so every body written before reads as it did and stays canonical.

// AuthorKind says what a record's Author names. Its numbers are part of
// the encoding.
type AuthorKind uint8

const (
	// AuthorStaff: a staff ID of the centre's (zero: its operator); not
	// encoded.
	AuthorStaff AuthorKind = 0
	// AuthorDevice: a device the patient registered at the centre, by
	// its DeviceID: a reading it contributed.
	AuthorDevice AuthorKind = 1
	// AuthorPatient: the patient themself, by the ID of the key they
	// signed with: a note they added from the portal.
	AuthorPatient AuthorKind = 2
)

var authorKinds = enum.New[AuthorKind]("author kind", []string{AuthorStaff: "staff", AuthorDevice: "device", AuthorPatient: "patient"})

func (k AuthorKind) String() string { return authorKinds.String(k) }

// Valid reports whether k is one of the author kinds.
func (k AuthorKind) Valid() bool { return authorKinds.Valid(k) }

// NewRecord returns the entry recording r about patient p.
func NewRecord(p Pseudonym, r Record) (Entry, error) {
	return newRecordEntry(KindRecord, p, r)
}

// NewAmendment returns the entry recording r as a new version of the record
// at index r.Replaces.
func NewAmendment(p Pseudonym, r Record) (Entry, error) {
	return newRecordEntry(KindAmendment, p, r)
}

func newRecordEntry(k Kind, p Pseudonym, r Record) (Entry, error) {
	if k == KindRecord && r.Replaces != 0 {
		return Entry{}, malformed("a record replaces nothing; use an amendment")
	}
	if err := r.validate(); err != nil { // before encoding: UnixNano would wrap
		return Entry{}, err
	}
	e := Entry{Kind: k, Subject: p, Body: r.appendEncoding(nil, k)}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (r Record) appendEncoding(b []byte, k Kind) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(r.Occurred.UnixNano()))
	b = append(b, byte(len(r.DataClass)))
	b = append(b, r.DataClass...)
	b = append(b, r.Author[:]...)
	b = append(b, byte(len(r.Location)))
	b = append(b, r.Location...)
	b = append(b, r.Payload[:]...)
	b = append(b, r.Commitment[:]...)
	if k == KindAmendment {
		b = binary.BigEndian.AppendUint64(b, uint64(r.Replaces))
	}
	if r.AuthorKind != AuthorStaff {
		b = append(b, byte(r.AuthorKind))
	}
	return b
}

// Record decodes the body of a record or amendment entry.
func (e Entry) Record() (Record, error) {
	if e.Kind != KindRecord && e.Kind != KindAmendment {
		return Record{}, malformed("a %s entry has no record", e.Kind)
	}
	return decodeRecord(e.Kind, e.Body)
}

func decodeRecord(k Kind, b []byte) (Record, error) {
	var r Record
	if len(b) < recordLen {
		return r, malformed("record body of %d bytes is too short", len(b))
	}
	occurred := int64(binary.BigEndian.Uint64(b))
	if occurred <= 0 || occurred >= maxTime.UnixNano() {
		return r, malformed("record time outside 1970 to 2261")
	}
	r.Occurred = time.Unix(0, occurred).UTC()
	b = b[8:]
	var err error
	if r.DataClass, b, err = readToken(b, "data class"); err != nil {
		return r, err
	}
	if len(b) < 16 {
		return r, malformed("truncated author")
	}
	copy(r.Author[:], b)
	b = b[16:]
	if r.Location, b, err = readToken(b, "location"); err != nil {
		return r, err
	}
	if len(b) < 16+32 {
		return r, malformed("truncated payload reference")
	}
	copy(r.Payload[:], b)
	copy(r.Commitment[:], b[16:])
	b = b[48:]
	if k == KindAmendment {
		if len(b) < 8 {
			return r, malformed("truncated amendment")
		}
		rep := binary.BigEndian.Uint64(b)
		if rep > maxIndex {
			return r, malformed("replaced index out of range")
		}
		r.Replaces = int64(rep)
		b = b[8:]
	}
	if len(b) == 1 {
		// Only a kind that is not staff's is written: a zero byte is
		// not canonical.
		if r.AuthorKind = AuthorKind(b[0]); r.AuthorKind == AuthorStaff {
			return r, malformed("a staff author's kind written out")
		}
		b = b[1:]
	}
	if len(b) != 0 {
		return r, malformed("%d trailing bytes after record", len(b))
	}
	if err := r.validate(); err != nil {
		return r, err
	}
	return r, nil
}

// CheckFields checks the fields a caller gives (all but the payload ID and
// commitment, which the record store assigns), so that a bad record is
// refused before anything else is done for it.
func (r Record) CheckFields() error {
	r.Payload = [16]byte{1}
	return r.validate()
}

func (r Record) validate() error {
	if !validTime(r.Occurred) || r.Occurred.Equal(minTime) {
		return malformed("record time outside 1970 to 2261")
	}
	if !validDataClass(r.DataClass) {
		return malformed("data class must be 1 to %d characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", maxTokenLen)
	}
	if !validLocation(r.Location) {
		return malformed("location must be at most %d characters of letters, digits, ' ', '.', '_', '/' or '-'", maxTokenLen)
	}
	if !r.AuthorKind.Valid() {
		return malformed("author kind %d", uint8(r.AuthorKind))
	}
	if r.AuthorKind != AuthorStaff && r.Author.IsZero() {
		return malformed("a %s's record names the %s", r.AuthorKind, r.AuthorKind)
	}
	if r.Payload == ([16]byte{}) {
		return malformed("record has no payload ID")
	}
	return nil
}

func readToken(b []byte, what string) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, malformed("truncated %s", what)
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}

// ValidDataClass reports whether s is a well-formed data class: 1 to 64
// characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit.
func ValidDataClass(s string) bool { return validDataClass(s) }

func validDataClass(s string) bool {
	if len(s) == 0 || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validLocation(s string) bool {
	if len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ' ' || c == '.' || c == '_' || c == '/' || c == '-':
		default:
			return false
		}
	}
	return true
}

// NewErasure returns the entry recording that the payload of the record at
// x.Target, about patient p, was crypto-shredded.
func NewErasure(p Pseudonym, x Erasure) (Entry, error) {
	e := Entry{Kind: KindErasure, Subject: p, Body: x.appendEncoding(nil)}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (x Erasure) appendEncoding(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(x.Target))
	return append(b, x.Payload[:]...)
}

// Erasure decodes the body of an erasure entry.
func (e Entry) Erasure() (Erasure, error) {
	if e.Kind != KindErasure {
		return Erasure{}, malformed("a %s entry has no erasure", e.Kind)
	}
	return decodeErasure(e.Body)
}

func decodeErasure(b []byte) (Erasure, error) {
	if len(b) != 8+16 {
		return Erasure{}, malformed("erasure body of %d bytes, want 24", len(b))
	}
	t := binary.BigEndian.Uint64(b)
	if t > maxIndex {
		return Erasure{}, malformed("erased index out of range")
	}
	x := Erasure{Target: int64(t)}
	copy(x.Payload[:], b[8:])
	if x.Payload == ([16]byte{}) {
		return Erasure{}, malformed("erasure has no payload ID")
	}
	return x, nil
}

// checkBody validates the body of the kinds whose layout is defined. The
// other kinds carry bodies defined by the packages that write them (charter,
// consent, access, transfer) and are checked there.
func checkBody(k Kind, body []byte) error {
	var err error
	switch k {
	case KindRecord, KindAmendment:
		_, err = decodeRecord(k, body)
	case KindErasure:
		_, err = decodeErasure(body)
	case KindEvaluation:
		_, err = Entry{Kind: k, Body: body}.Evaluation()
	case KindDispense:
		_, err = decodeDispense(body)
	case KindCancellation:
		_, err = decodeCancellation(body)
	case KindDevice:
		_, err = decodeDevice(body)
	case KindDeviceRevoke:
		_, err = decodeDeviceRevocation(body)
	default:
		if len(body) == 0 {
			err = malformed("empty %s body", k)
		}
	}
	if err != nil {
		return fmt.Errorf("%s entry: %w", k, err)
	}
	return nil
}
