package consent

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

// Event says what an access entry records.
type Event uint8

const (
	// EventAccess: a request was answered (permitted or denied).
	EventAccess Event = 1
	// EventEmergencyStart: emergency access began (or was refused).
	EventEmergencyStart Event = 2
	// EventEmergencyStop: emergency access ended.
	EventEmergencyStop Event = 3
	// EventPatientView: the patient viewed this centre's entries about
	// them (federation/patient), through the requester.
	EventPatientView Event = 4
	// EventPatientErase: the patient had this centre erase their records.
	EventPatientErase Event = 5
	// EventLookup: staff at this centre asked the directory which centres
	// hold the patient's records (who, in which role, for what purpose),
	// recorded where the question was asked.
	EventLookup Event = 6
	// EventPatientRecords: the patient had this centre send them their
	// own records (federation/patient), through the requester.
	EventPatientRecords Event = 7
)

var events = enum.New[Event]("event", []string{
	EventAccess:         "access",
	EventEmergencyStart: "emergency-start",
	EventEmergencyStop:  "emergency-stop",
	EventPatientView:    "patient-view",
	EventPatientErase:   "patient-erase",
	EventLookup:         "lookup",
	EventPatientRecords: "patient-records",
})

func (e Event) String() string { return events.String(e) }

// PatientsOwn reports whether e is one of the patient's own requests (a
// view, an erasure, their records sent), whose entry's Ref names the
// delegation a delegate made it under.
func (e Event) PatientsOwn() bool {
	return e == EventPatientView || e == EventPatientErase || e == EventPatientRecords
}

// AccessEntry is the body of a ledger access entry: who asked for a
// patient's data, for what, and on what basis it was permitted or denied.
// It holds codes and IDs only, never free text.
type AccessEntry struct {
	Event     Event
	Requester peer.ID
	Staff     ledger.StaffID
	Role      Role
	Action    Action
	Purpose   Purpose
	Permitted bool
	Basis     Basis
	Ref       ID     // the contract, token or emergency session; for the patient's own requests, the delegation a delegate made them under
	Use       uint16 // which use of a token this is, from 1; 0 otherwise
	Reason    Reason // for emergency access
	// Nonce is the request's nonce, for a query: kept so that a replay is
	// refused even after a restart.
	Nonce [16]byte
	// Released counts the records the answer released.
	Released uint32
	// Records are the ledger indexes of the records released, when the
	// caller named them (a query does; a single token use does not).
	Records []int64
}

// Access entry body, version 3: u8 version, u8 event, str requester, [16]
// staff, u8 role, u8 action, u8 purpose, u8 permitted (0 or 1), u8
// basis, [16] ref, u16 use, u8 reason, [16] nonce, u32 released, u32
// count and u64 record indexes. Version 2 ends after released; version 1,
// written before queries existed, after the reason. Both are still read
// (with no indexes; version 1 with no nonce and nothing counted as
// released), since ledgers keep their entries for good.
const (
	accessVersion   = 3
	accessVersionV2 = 2
	accessVersionV1 = 1
	// maxAccessRecords bounds the indexes one access entry lists (a
	// query's answer holds at most 4,096 records).
	maxAccessRecords = 4096
)

// NewAccess returns the ledger entry recording a about patient p.
func NewAccess(p ledger.Pseudonym, a AccessEntry) (ledger.Entry, error) {
	if err := a.check(); err != nil {
		return ledger.Entry{}, err
	}
	w := writer{B: []byte{accessVersion, byte(a.Event)}}
	w.Str(string(a.Requester))
	w.Bytes(a.Staff[:])
	w.U8(uint8(a.Role))
	w.U8(uint8(a.Action))
	w.U8(uint8(a.Purpose))
	if a.Permitted {
		w.U8(1)
	} else {
		w.U8(0)
	}
	w.U8(uint8(a.Basis))
	w.Bytes(a.Ref[:])
	w.U16(a.Use)
	w.U8(uint8(a.Reason))
	w.Bytes(a.Nonce[:])
	w.U32(a.Released)
	w.U32(uint32(len(a.Records)))
	for _, i := range a.Records {
		w.U64(uint64(i))
	}
	return ledger.Entry{Kind: ledger.KindAccess, Subject: p, Body: w.B}, nil
}

func (a AccessEntry) check() error {
	switch {
	case !events.Valid(a.Event):
		return malformed("access event %d", uint8(a.Event))
	case a.Requester == "" || len(a.Requester) > 64:
		return malformed("access without a requester")
	case a.Role != 0 && !a.Role.valid():
		return malformed("role %d", uint8(a.Role))
	case !actions.Valid(a.Action) || !purposes.Valid(a.Purpose) || !bases.Valid(a.Basis):
		return malformed("access action, purpose or basis")
	case a.Reason != 0 && !a.Reason.valid():
		return malformed("emergency reason %d", uint8(a.Reason))
	case len(a.Records) != 0 && len(a.Records) != int(a.Released), len(a.Records) > maxAccessRecords:
		return malformed("%d record indexes for %d records released", len(a.Records), a.Released)
	}
	for _, i := range a.Records {
		if i < 0 {
			return malformed("record index %d", i)
		}
	}
	return nil
}

// DecodeAccess decodes the body of an access entry; it accepts only what
// NewAccess writes.
func DecodeAccess(e ledger.Entry) (AccessEntry, error) {
	var a AccessEntry
	if e.Kind != ledger.KindAccess {
		return a, malformed("a %s entry is not an access", e.Kind)
	}
	r := newReader(e.Body)
	v := r.U8("version")
	if r.Err() == nil && v != accessVersion && v != accessVersionV2 && v != accessVersionV1 {
		return a, malformed("access entry version %d", v)
	}
	a.Event = Event(r.U8("event"))
	a.Requester = peer.ID(r.Str("requester"))
	r.Fixed(a.Staff[:], "staff")
	a.Role = Role(r.U8("role"))
	a.Action = Action(r.U8("action"))
	a.Purpose = Purpose(r.U8("purpose"))
	switch r.U8("permitted") {
	case 0:
	case 1:
		a.Permitted = true
	default:
		r.Fail("permitted flag")
	}
	a.Basis = Basis(r.U8("basis"))
	r.Fixed(a.Ref[:], "ref")
	a.Use = r.U16("use")
	a.Reason = Reason(r.U8("reason"))
	if v >= accessVersionV2 {
		r.Fixed(a.Nonce[:], "nonce")
		a.Released = r.U32("released")
	}
	if v == accessVersion {
		n := r.U32("records")
		if n > maxAccessRecords {
			return a, malformed("%d record indexes", n)
		}
		for range n {
			if r.Err() != nil {
				break
			}
			a.Records = append(a.Records, int64(r.U64("record")))
		}
	}
	r.End("access entry")
	if r.Err() != nil {
		return a, r.Err()
	}
	return a, a.check()
}
