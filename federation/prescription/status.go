package prescription

import (
	"fmt"
	"time"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

// Status is a prescription as its issuer's ledger has it: its content,
// each supply dispensed and its cancellation.
type Status struct {
	Index        int64 // the prescription's record entry
	Subject      ledger.Pseudonym
	Issued       time.Time // when the record entry was appended
	Prescription Prescription
	Erased       bool // its payload was crypto-shredded: the content is gone
	Dispenses    []Dispensed
	Cancelled    *Cancelled
}

// Dispensed is one supply dispensed: its entry on the issuer's ledger.
type Dispensed struct {
	Index int64
	Time  time.Time
	ledger.Dispense
}

// Cancelled is a cancellation: its entry on the issuer's ledger.
type Cancelled struct {
	Index int64
	Time  time.Time
	ledger.Cancellation
}

// State is where a prescription stands.
type State uint8

// The states of a prescription.
const (
	StateActive    State = 1 // a supply may be dispensed (or will be, once valid)
	StateCompleted State = 2 // every supply is dispensed
	StateCancelled State = 3 // cancelled by the prescriber's centre
	StateExpired   State = 4 // past its validity with supplies left
	StateErased    State = 5 // its payload was erased
)

var states = enum.New[State]("state", []string{StateActive: "active", StateCompleted: "completed", StateCancelled: "cancelled", StateExpired: "expired", StateErased: "erased"})

func (s State) String() string { return states.String(s) }

// Left returns how many supplies may still be dispensed, validity and
// cancellation aside.
func (s Status) Left() int {
	if s.Erased {
		return 0
	}
	return max(0, s.Prescription.Supplies()-len(s.Dispenses))
}

// State returns where the prescription stands at now.
func (s Status) State(now time.Time) State {
	switch {
	case s.Erased:
		return StateErased
	case s.Cancelled != nil:
		return StateCancelled
	case s.Left() == 0:
		return StateCompleted
	case !now.Before(s.Prescription.ValidUntil):
		return StateExpired
	}
	return StateActive
}

// StatusOf reads a prescription's status from its record entry rec, its
// payload (nil when erased) and the patient's dispense and cancellation
// entries on the issuer's ledger (others are skipped). It checks that the
// entry is a prescription's record.
func StatusOf(rec ledger.Entry, payload []byte, erased bool, entries []ledger.Entry) (Status, error) {
	r, err := rec.Record()
	if err != nil || rec.Kind != ledger.KindRecord || r.DataClass != Class {
		return Status{}, fmt.Errorf("entry %d: %w", rec.Index, ErrNoPrescription)
	}
	s := Status{Index: rec.Index, Subject: rec.Subject, Issued: rec.Time, Erased: erased}
	if !erased {
		if s.Prescription, err = Parse(payload); err != nil {
			return Status{}, fmt.Errorf("entry %d: %w", rec.Index, ErrNoPrescription)
		}
	}
	for _, e := range entries {
		if e.Subject != rec.Subject {
			continue
		}
		switch e.Kind {
		case ledger.KindDispense:
			d, err := e.Dispense()
			if err != nil {
				return Status{}, err
			}
			if d.Prescription == rec.Index && len(d.Issuer) == 0 {
				s.Dispenses = append(s.Dispenses, Dispensed{Index: e.Index, Time: e.Time, Dispense: d})
			}
		case ledger.KindCancellation:
			c, err := e.Cancellation()
			if err != nil {
				return Status{}, err
			}
			if c.Prescription == rec.Index && s.Cancelled == nil {
				s.Cancelled = &Cancelled{Index: e.Index, Time: e.Time, Cancellation: c}
			}
		}
	}
	return s, nil
}
