package consent

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

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
)

func (e Event) String() string {
	switch e {
	case EventAccess:
		return "access"
	case EventEmergencyStart:
		return "emergency-start"
	case EventEmergencyStop:
		return "emergency-stop"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
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
	Ref       ID     // the contract, token or emergency session
	Use       uint16 // which use of a token this is, from 1; 0 otherwise
	Reason    Reason // for emergency access
}

// Access entry body, version 1: u8 version, u8 event, str requester, [16]
// staff, u8 role, u8 action, u8 purpose, u8 permitted (0 or 1), u8
// basis, [16] ref, u16 use, u8 reason.
const accessVersion = 1

// NewAccess returns the ledger entry recording a about patient p.
func NewAccess(p ledger.Pseudonym, a AccessEntry) (ledger.Entry, error) {
	if err := a.check(); err != nil {
		return ledger.Entry{}, err
	}
	w := writer{b: []byte{accessVersion, byte(a.Event)}}
	w.str(string(a.Requester))
	w.bytes(a.Staff[:])
	w.u8(uint8(a.Role))
	w.u8(uint8(a.Action))
	w.u8(uint8(a.Purpose))
	if a.Permitted {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u8(uint8(a.Basis))
	w.bytes(a.Ref[:])
	w.u16(a.Use)
	w.u8(uint8(a.Reason))
	return ledger.Entry{Kind: ledger.KindAccess, Subject: p, Body: w.b}, nil
}

func (a AccessEntry) check() error {
	switch {
	case a.Event < EventAccess || a.Event > EventEmergencyStop:
		return fmt.Errorf("%w: access event %d", ErrMalformed, uint8(a.Event))
	case a.Requester == "" || len(a.Requester) > 64:
		return fmt.Errorf("%w: access without a requester", ErrMalformed)
	case a.Role != 0 && !a.Role.valid():
		return fmt.Errorf("%w: role %d", ErrMalformed, uint8(a.Role))
	case !actions.valid(a.Action) || !purposes.valid(a.Purpose) || int(a.Basis) >= len(basisNames):
		return fmt.Errorf("%w: access action, purpose or basis", ErrMalformed)
	case a.Reason != 0 && !a.Reason.valid():
		return fmt.Errorf("%w: emergency reason %d", ErrMalformed, uint8(a.Reason))
	}
	return nil
}

// DecodeAccess decodes the body of an access entry; it accepts only what
// NewAccess writes.
func DecodeAccess(e ledger.Entry) (AccessEntry, error) {
	var a AccessEntry
	if e.Kind != ledger.KindAccess {
		return a, fmt.Errorf("%w: a %s entry is not an access", ErrMalformed, e.Kind)
	}
	r := reader{b: e.Body}
	if v := r.u8("version"); r.err == nil && v != accessVersion {
		return a, fmt.Errorf("%w: access entry version %d", ErrMalformed, v)
	}
	a.Event = Event(r.u8("event"))
	a.Requester = peer.ID(r.str("requester"))
	r.fixed(a.Staff[:], "staff")
	a.Role = Role(r.u8("role"))
	a.Action = Action(r.u8("action"))
	a.Purpose = Purpose(r.u8("purpose"))
	switch r.u8("permitted") {
	case 0:
	case 1:
		a.Permitted = true
	default:
		r.fail("permitted flag")
	}
	a.Basis = Basis(r.u8("basis"))
	r.fixed(a.Ref[:], "ref")
	a.Use = r.u16("use")
	a.Reason = Reason(r.u8("reason"))
	r.end("access entry")
	if r.err != nil {
		return a, r.err
	}
	return a, a.check()
}
