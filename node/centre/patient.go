package centre

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
)

// The patient's own requests, View and Erase, relayed to every holder the
// directory lists at any replica of the patient's key and, in a
// federation of at most patient.DefaultAskEvery members, to every member
// besides (PatientRelay).

func (n *Node) startPatient(ctx context.Context) error {
	var err error
	n.Patient, err = patient.New(ctx, n.Host, patient.Options{
		Key:      n.Centre.key,
		Ledger:   n.Centre.Ledger,
		Consent:  n.Consent,
		Erase:    n.Centre.EraseAll,
		Payload:  n.Centre.Payload,
		Withdraw: func(ctx context.Context, p ledger.Pseudonym) error { return n.Directory.Withdraw(ctx, p) },
		Holders:  n.everyHolder,
		Rate:     n.memberRate,
		Charter:  func() federation.Charter { return n.Membership.Current().Charter },
		PageSize: n.pageSize,
		Logger:   n.base,
		Now:      clock.Now,
	})
	return err
}

// PatientResult is a patient's request's outcome at every centre it went
// to: every centre the directory lists as a holder and, in a federation
// the relay asks whole, every member.
type PatientResult struct {
	Op        patient.Op
	Pseudonym ledger.Pseudonym
	// Holders, in order of name, are the centres that answered with their
	// entries about the patient (Answered), and those that could not be
	// reached (Failed): down, too slow, refused, or an answer that did not
	// verify. They may hold records, so each is named.
	Holders []PatientHolder
	// Asked is how many centres the request went to; HoldNothing, how
	// many of them answered that they hold nothing about the patient (for
	// an erasure: no record). Those are counted, not named.
	Asked       int
	HoldNothing int
	// EveryMember: every member was asked (a federation the relay asks
	// whole); otherwise the holders the directory lists were.
	EveryMember bool
	// Lookup is why the directory lookup did not complete. In a
	// federation asked whole every member was asked all the same: a
	// holder is missing only if a member failed.
	Lookup error
	// Nonce is the request's: with each holder's ID it opens the records
	// a Records request had sealed (patient.OpenRecords).
	Nonce [16]byte
}

// PatientHolder is one holder's answer: its ledger entries about the
// patient (View), or its erasures (Erase).
type PatientHolder struct {
	Name string
	// Outcome: Answered, or Failed (down, too slow, refused, or its
	// answer did not verify: Err says which).
	Outcome    Outcome
	Err        error
	LedgerSize int64
	Records    []PatientRecord
	Accesses   []PatientAccess
	Transfers  []PatientTransfer
	Erasures   []PatientErasure
	Requests   []PatientRequestSeen // the patient's own views and erasures
	KeyEvents  []PatientKeyEvent    // attestations of their key, approvals, vetoes
	// Prescriptions' supplies and cancellations, and the devices the
	// patient registered and revoked (patientevents.go).
	Dispenses         []PatientDispense
	Cancellations     []PatientCancellation
	Devices           []PatientDevice
	DeviceRevocations []PatientDeviceRevocation
	Withdrawn         bool   // Erase: out of the directory
	Sealed            []byte // Records: the payloads, sealed to the patient's key
	// Proven: the entries of index below it are proven in the holder's
	// final checkpoint, which its witnesses cosigned; zero: none is.
	Proven int64
	// ID is the holder's peer ID, and Next, when not zero, where its
	// entries continue: the cursor of the view's next page.
	ID      peer.ID
	Next    int64
	Problem string
}

// PatientRecord is a record a holder keeps about the patient (never its
// payload).
type PatientRecord struct {
	Index  int64
	Kind   ledger.Kind
	Record ledger.Record
	Erased bool
}

// PatientAccess is one access to the patient's records: who, when, for
// what, and whether it was permitted.
type PatientAccess struct {
	Index  int64
	Time   time.Time
	Centre string // the requesting centre's name
	consent.AccessEntry
}

// PatientTransfer is a record copied to or from another centre.
type PatientTransfer struct {
	Index     int64
	Time      time.Time
	Direction query.Direction
	Centre    string
	Source    int64 // the record's index at the source
	Copy      int64 // its copy's index at the destination
}

// PatientRequestSeen is one of the patient's own requests, as the holder
// recorded it: which, when, through which centre, and whether a delegate
// made it.
type PatientRequestSeen struct {
	Index      int64
	Time       time.Time
	Event      consent.Event // patient-view, patient-erase or patient-records
	Centre     string        // the relay
	Delegation consent.ID    // the delegation a delegate made it under; zero: the patient
}

// PatientKeyEvent is a change to who speaks for the patient, as the
// holder recorded it: an attestation of a key, an approval of one that
// replaces the key in force, or the patient's veto of it.
type PatientKeyEvent struct {
	Index       int64
	Time        time.Time
	Kind        consent.Kind
	Centre      string   // the attesting or approving centre; "patient" for a veto
	Attestation [32]byte // the attestation it is (or names)
	Key         ed25519.PublicKey
	Compromised bool
	Staff       ledger.StaffID
}

// PatientErasure is a record whose payload was erased.
type PatientErasure struct {
	Index  int64
	Time   time.Time
	Record int64
}

// PatientRelay relays a patient's signed request (patient.Request) to
// every holder the directory lists (and every member, in a federation
// asked whole), and returns their answers.
func (n *Node) PatientRelay(ctx context.Context, raw []byte) (PatientResult, error) {
	res, err := n.Patient.Relay(ctx, raw)
	if err != nil {
		return PatientResult{}, err
	}
	out := PatientResult{Op: res.Op, Pseudonym: res.Subject, Holders: []PatientHolder{}, Asked: len(res.Holders), EveryMember: res.EveryMember, Lookup: res.Lookup, Nonce: res.Nonce}
	for _, a := range res.Holders {
		if a.Err == nil && a.Nothing {
			out.HoldNothing++
			continue
		}
		h := PatientHolder{Name: n.memberName(a.Holder), Outcome: Answered}
		if a.Err == nil {
			a.Err = n.patientEntries(&h, a)
		}
		if a.Err != nil {
			h = PatientHolder{Name: h.Name, ID: a.Holder, Outcome: Failed, Err: a.Err}
		}
		out.Holders = append(out.Holders, h)
	}
	slices.SortFunc(out.Holders, func(a, b PatientHolder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// patientEntries reads a holder's entries into h.
func (n *Node) patientEntries(h *PatientHolder, a patient.HolderAnswer) error {
	h.LedgerSize, h.Withdrawn, h.Problem, h.ID, h.Next, h.Sealed, h.Proven = a.Size, a.Withdrawn, a.Problem, a.Holder, a.Next, a.Sealed, a.Proven
	erased := map[int64]bool{}
	for _, e := range a.Entries {
		switch e.Kind {
		case ledger.KindRecord, ledger.KindAmendment:
			r, err := e.Record()
			if err != nil {
				return err
			}
			h.Records = append(h.Records, PatientRecord{Index: e.Index, Kind: e.Kind, Record: r})
		case ledger.KindAccess:
			x, err := consent.DecodeAccess(e)
			if err != nil {
				return err
			}
			if x.Event.PatientsOwn() {
				h.Requests = append(h.Requests, PatientRequestSeen{Index: e.Index, Time: e.Time, Event: x.Event, Centre: n.memberName(x.Requester), Delegation: x.Ref})
				continue
			}
			h.Accesses = append(h.Accesses, n.patientAccess(e, x))
		case ledger.KindConsent:
			d, err := consent.Parse(e.Body)
			if err != nil {
				return err
			}
			ev := PatientKeyEvent{Index: e.Index, Time: e.Time, Kind: d.Kind, Centre: n.signerName(d.Signer)}
			switch d.Kind {
			case consent.KindAttestation:
				ev.Attestation, ev.Key, ev.Compromised, ev.Staff = d.Hash(), d.Attestation.Key, d.Attestation.Compromised, d.Attestation.Staff
			case consent.KindApproval:
				ev.Attestation, ev.Staff = d.Approval.Attestation, d.Approval.Staff
			case consent.KindVeto:
				ev.Attestation, ev.Centre = d.Veto.Attestation, "patient"
			default:
				continue // a holder sends none of the patient's own documents
			}
			h.KeyEvents = append(h.KeyEvents, ev)
		case ledger.KindErasure:
			x, err := e.Erasure()
			if err != nil {
				return err
			}
			erased[x.Target] = true
			h.Erasures = append(h.Erasures, PatientErasure{Index: e.Index, Time: e.Time, Record: x.Target})
		case ledger.KindTransfer:
			t, err := n.patientTransfer(e)
			if err != nil {
				return err
			}
			h.Transfers = append(h.Transfers, t)
		case ledger.KindDispense:
			d, err := n.patientDispense(e, h.Name)
			if err != nil {
				return err
			}
			h.Dispenses = append(h.Dispenses, d)
		case ledger.KindCancellation:
			c, err := patientCancellation(e)
			if err != nil {
				return err
			}
			h.Cancellations = append(h.Cancellations, c)
		case ledger.KindDevice:
			d, err := patientDevice(e)
			if err != nil {
				return err
			}
			h.Devices = append(h.Devices, d)
		case ledger.KindDeviceRevoke:
			r, err := patientDeviceRevocation(e)
			if err != nil {
				return err
			}
			h.DeviceRevocations = append(h.DeviceRevocations, r)
		}
	}
	for i := range h.Records {
		h.Records[i].Erased = erased[h.Records[i].Index]
	}
	return nil
}

// PatientRequest returns a patient's request of op about pseudonym p,
// signed with the patient's key, to be relayed by the centre of cfg (its
// data directory holds the centre's key).
func PatientRequest(cfg Config, op patient.Op, p ledger.Pseudonym, key ed25519.PrivateKey) ([]byte, error) {
	return PatientPage(cfg, p, key, op, nil)
}

// PatientPage is PatientRequest with cursors: the next page of a view,
// each holder named answering from its cursor on.
func PatientPage(cfg Config, p ledger.Pseudonym, key ed25519.PrivateKey, op patient.Op, cursors []patient.Cursor) ([]byte, error) {
	pub, err := PublicKey(cfg.Data.Dir)
	if err != nil {
		return nil, err
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return nil, err
	}
	relay, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return nil, err
	}
	q := patient.Request{Op: op, Federation: cfg.Federation.ID, Relay: relay, Subject: p, Time: time.Now().UTC(), Cursors: cursors}
	rand.Read(q.Nonce[:])
	return q.Sign(key)
}

// patientTransfer is transfer entry e as the patient's view and the
// audit trail show it.
func (n *Node) patientTransfer(e ledger.Entry) (PatientTransfer, error) {
	t, err := query.DecodeTransfer(e)
	if err != nil {
		return PatientTransfer{}, err
	}
	copyAt := t.Copy
	if t.Direction == query.In {
		copyAt = e.Index - 1 // the copy's record entry is appended right before
	}
	return PatientTransfer{Index: e.Index, Time: e.Time, Direction: t.Direction, Centre: n.memberName(t.Centre), Source: t.Source, Copy: copyAt}, nil
}
