package centre

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/ledger"
)

// The patient journeys: switching provider (Transfer), and the patient's
// own requests, View and Erase, relayed to every holder (PatientRelay).

func (n *Node) startPatient() error {
	var err error
	n.Patient, err = patient.New(n.Host, patient.Options{
		Key:      n.Centre.key,
		Ledger:   n.Centre.Ledger,
		Consent:  n.Consent,
		Erase:    n.Centre.EraseAll,
		Withdraw: func(ctx context.Context, p ledger.Pseudonym) error { return n.Directory.Withdraw(ctx, p) },
		Holders:  n.holders,
		Charter:  func() federation.Charter { return n.Membership.Current().Charter },
		Logger:   n.base,
	})
	return err
}

// TransferRequest asks this centre to copy a patient's records from every
// centre holding them: the patient is switching to it. The sources decide
// by the patient's consent for copying (action copy, purpose treatment).
type TransferRequest struct {
	Pseudonym string
	Role      string
	Staff     string   `json:",omitempty"` // 32 hex digits
	Classes   []string `json:",omitempty"`
	Token     string   `json:",omitempty"` // a patient's token, base64
}

// TransferResult says what was copied from each source, by name.
type TransferResult struct {
	Pseudonym string
	Sources   []TransferSource
	Lookup    string `json:",omitempty"` // why sources may be missing
	// Announced: this centre is in the directory as a holder; otherwise
	// AnnounceError says why not (it announces again at its next start).
	Announced     bool
	AnnounceError string `json:",omitempty"`
}

// TransferSource is one source's part of a transfer.
type TransferSource struct {
	Name string
	// Status: "copied" (records copied, or copied before), "denied" (by
	// consent, with the reason), "failed" (Error says why).
	Status string
	Error  string `json:",omitempty"`
	Reason string `json:",omitempty"`
	Access int64  // the source's access entry for this transfer
	Copies []TransferCopy
	Before int `json:",omitempty"` // of Copies, copied by an earlier transfer
	Erased int `json:",omitempty"` // released without a payload: erased at the source
	// Recorded: the source recorded the transfer on its ledger; otherwise
	// RecordError says why not.
	Recorded    bool
	RecordError string `json:",omitempty"`
}

// TransferCopy is one record copied: its index at the source and here.
type TransferCopy struct{ Source, Copy int64 }

type copyKey struct {
	from   peer.ID
	source int64
}

// copiedBefore returns the records of p copied here before, by source:
// the record entry just before each In transfer entry.
func (n *Node) copiedBefore(ctx context.Context, p ledger.Pseudonym) (map[copyKey]int64, error) {
	es, err := n.Centre.Ledger.EntriesForKinds(ctx, p, ledger.KindTransfer)
	if err != nil {
		return nil, err
	}
	out := map[copyKey]int64{}
	for _, e := range es {
		t, err := query.DecodeTransfer(e)
		if err != nil {
			return nil, fmt.Errorf("transfer entry %d: %w", e.Index, err)
		}
		if t.Direction == query.In {
			out[copyKey{t.Centre, t.Source}] = e.Index - 1
		}
	}
	return out, nil
}

// Transfer copies the records of a patient that consent lets this centre
// copy from every other holder, each with its provenance (the source, its
// index there, the entry and its proof against the source's final
// checkpoint) on this ledger; has each source record the transfer on its
// own; and announces this centre as a holder. Records copied before are
// not copied again, so a failed transfer can be run again.
func (n *Node) Transfer(ctx context.Context, r TransferRequest) (TransferResult, error) {
	p, err := ParsePseudonym(r.Pseudonym)
	if err != nil {
		return TransferResult{}, err
	}
	spec, err := querySpec(p, r.Role, r.Staff, consent.Treatment.String(), "", r.Token, r.Classes)
	if err != nil {
		return TransferResult{}, err
	}
	spec.Action, spec.OthersOnly = consent.Copy, true
	n.transferMu.Lock() // one transfer at a time: each record copied once
	defer n.transferMu.Unlock()
	before, err := n.copiedBefore(ctx, p)
	if err != nil {
		return TransferResult{}, err
	}
	res, err := n.Query.Query(ctx, spec)
	if err != nil {
		return TransferResult{}, err
	}
	out := TransferResult{Pseudonym: p.String(), Sources: []TransferSource{}}
	if res.Lookup != nil {
		out.Lookup = res.Lookup.Error()
	}
	copied := 0
	for _, a := range res.Holders {
		src := n.copyFrom(ctx, p, a, res.Nonce, before)
		copied += len(src.Copies)
		out.Sources = append(out.Sources, src)
	}
	slices.SortFunc(out.Sources, func(a, b TransferSource) int { return strings.Compare(a.Name, b.Name) })
	if copied > 0 {
		if err := n.Directory.Announce(ctx, p); err != nil {
			out.AnnounceError = err.Error()
		} else {
			out.Announced = true
		}
	}
	return out, nil
}

// copyFrom copies what source a released, then sends it the receipt.
func (n *Node) copyFrom(ctx context.Context, p ledger.Pseudonym, a query.Answer, nonce [16]byte, before map[copyKey]int64) TransferSource {
	src := TransferSource{Name: n.memberName(a.Holder), Copies: []TransferCopy{}}
	switch {
	case a.Err != nil:
		src.Status, src.Error = "failed", a.Err.Error()
		return src
	case !a.Permit:
		src.Status, src.Reason, src.Access = "denied", a.Reason, a.Access
		return src
	}
	src.Status, src.Reason, src.Access = "copied", a.Reason, a.Access
	receipt := query.Receipt{Holder: a.Holder, Subject: p, Nonce: nonce, Access: a.Access}
	for _, rec := range a.Records {
		if rec.Erased {
			src.Erased++
			continue
		}
		i, done := before[copyKey{a.Holder, rec.Index}]
		if done {
			src.Before++
		} else {
			prov, err := query.NewTransfer(p, query.Transfer{
				Direction: query.In, Centre: a.Holder, Source: rec.Index, Access: a.Access,
				Entry: rec.Entry, Size: a.Size, Root: a.Root, Proof: rec.Proof,
			})
			meta := rec.Record
			meta.Replaces = 0
			if prev, ok := before[copyKey{a.Holder, rec.Record.Replaces}]; ok && rec.Kind == ledger.KindAmendment {
				meta.Replaces = prev // an amendment of a record copied before
			}
			if err == nil {
				i, err = n.Centre.CopyRecord(ctx, p, meta, rec.Payload, prov)
			}
			if err != nil {
				src.Status, src.Error = "failed", fmt.Sprintf("copying record %d: %v", rec.Index, err)
				break
			}
		}
		src.Copies = append(src.Copies, TransferCopy{Source: rec.Index, Copy: i})
		receipt.Copies = append(receipt.Copies, query.Copied{Source: rec.Index, Copy: i})
	}
	if len(receipt.Copies) > 0 {
		if err := n.Query.Acknowledge(ctx, receipt); err != nil {
			src.RecordError = err.Error()
		} else {
			src.Recorded = true
		}
	}
	return src
}

// querySpec parses the fields of a query or transfer request.
func querySpec(p ledger.Pseudonym, role, staff, purpose, reason, token string, classes []string) (query.Spec, error) {
	var errs []error
	a := parseAsker(role, staff, purpose, reason, &errs)
	spec := query.Spec{Subject: p, Classes: classes, Role: a.role, Staff: a.staff, Purpose: a.purpose, Reason: a.reason}
	if token != "" {
		var err error
		if spec.Token, err = base64.StdEncoding.DecodeString(strings.TrimSpace(token)); err != nil {
			errs = append(errs, fmt.Errorf("%w: the token is not base64", consent.ErrMalformed))
		}
	}
	for _, c := range classes {
		if !ledger.ValidDataClass(c) {
			errs = append(errs, fmt.Errorf("%w: data class %q", consent.ErrMalformed, c))
		}
	}
	return spec, errors.Join(errs...)
}

// PatientResult is a patient's request's outcome at every holder, by
// name.
type PatientResult struct {
	Op        string // view or erase
	Pseudonym string
	Holders   []PatientHolder
	Lookup    string `json:",omitempty"` // why holders may be missing
}

// PatientHolder is one holder's answer: its ledger entries about the
// patient (View), or its erasures (Erase).
type PatientHolder struct {
	Name string
	// Status: "answered", or "failed" (down, too slow, refused, or its
	// answer did not verify: Error says which).
	Status     string
	Error      string `json:",omitempty"`
	LedgerSize int64  `json:",omitempty"`
	Records    []PatientRecord
	Accesses   []PatientAccess
	Transfers  []PatientTransfer    `json:",omitempty"`
	Erasures   []PatientErasure     `json:",omitempty"`
	Requests   []PatientRequestSeen `json:",omitempty"` // the patient's own views and erasures
	Withdrawn  bool                 `json:",omitempty"` // Erase: out of the directory
	Problem    string               `json:",omitempty"`
}

// PatientRecord is a record a holder keeps about the patient (never its
// payload).
type PatientRecord struct {
	Index    int64
	Kind     string
	Class    string
	Occurred time.Time
	Location string `json:",omitempty"`
	Replaces int64  `json:",omitempty"`
	Erased   bool   `json:",omitempty"`
}

// PatientAccess is one access to the patient's records: who, when, for
// what, and whether it was permitted.
type PatientAccess struct {
	Index     int64
	Time      time.Time
	Event     string // access, emergency-start or emergency-stop
	Centre    string
	Staff     string `json:",omitempty"`
	Role      string `json:",omitempty"`
	Action    string
	Purpose   string
	Permitted bool
	Basis     string
	Emergency bool
	Reason    string `json:",omitempty"` // the emergency reason
	Released  uint32 `json:",omitempty"`
}

// PatientTransfer is a record copied to or from another centre.
type PatientTransfer struct {
	Index     int64
	Time      time.Time
	Direction string // in or out
	Centre    string
	Source    int64 // the record's index at the source
	Copy      int64 // its copy's index at the destination
}

// PatientRequestSeen is one of the patient's own requests, as the holder
// recorded it: which, when, and through which centre.
type PatientRequestSeen struct {
	Index  int64
	Time   time.Time
	Event  string // patient-view or patient-erase
	Centre string // the relay
}

// PatientErasure is a record whose payload was erased.
type PatientErasure struct {
	Index  int64
	Time   time.Time
	Record int64
}

// PatientRelay relays a patient's signed request (patient.Request) to
// every holder of their records and returns the holders' answers.
func (n *Node) PatientRelay(ctx context.Context, raw []byte) (PatientResult, error) {
	res, err := n.Patient.Relay(ctx, raw)
	if err != nil {
		return PatientResult{}, err
	}
	out := PatientResult{Op: res.Op.String(), Pseudonym: res.Subject.String(), Holders: []PatientHolder{}}
	if res.Lookup != nil {
		out.Lookup = res.Lookup.Error()
	}
	for _, a := range res.Holders {
		h := PatientHolder{Name: n.memberName(a.Holder), Status: "answered", Records: []PatientRecord{}, Accesses: []PatientAccess{}}
		if a.Err == nil {
			a.Err = n.patientEntries(&h, a)
		}
		if a.Err != nil {
			h = PatientHolder{Name: h.Name, Status: "failed", Error: a.Err.Error(), Records: []PatientRecord{}, Accesses: []PatientAccess{}}
		}
		out.Holders = append(out.Holders, h)
	}
	slices.SortFunc(out.Holders, func(a, b PatientHolder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// patientEntries reads a holder's entries into h.
func (n *Node) patientEntries(h *PatientHolder, a patient.HolderAnswer) error {
	h.LedgerSize, h.Withdrawn, h.Problem = a.Size, a.Withdrawn, a.Problem
	erased := map[int64]bool{}
	for _, e := range a.Entries {
		switch e.Kind {
		case ledger.KindRecord, ledger.KindAmendment:
			r, err := e.Record()
			if err != nil {
				return err
			}
			h.Records = append(h.Records, PatientRecord{Index: e.Index, Kind: e.Kind.String(), Class: r.DataClass, Occurred: r.Occurred, Location: r.Location, Replaces: r.Replaces})
		case ledger.KindAccess:
			x, err := consent.DecodeAccess(e)
			if err != nil {
				return err
			}
			if x.Event == consent.EventPatientView || x.Event == consent.EventPatientErase {
				h.Requests = append(h.Requests, PatientRequestSeen{Index: e.Index, Time: e.Time, Event: x.Event.String(), Centre: n.memberName(x.Requester)})
				continue
			}
			pa := PatientAccess{
				Index: e.Index, Time: e.Time, Event: x.Event.String(), Centre: n.memberName(x.Requester),
				Action: x.Action.String(), Purpose: x.Purpose.String(), Permitted: x.Permitted, Basis: x.Basis.String(),
				Emergency: x.Purpose == consent.Emergency, Released: x.Released,
			}
			if x.Staff != (ledger.StaffID{}) {
				pa.Staff = x.Staff.String()
			}
			if x.Role != 0 {
				pa.Role = x.Role.String()
			}
			if x.Reason != 0 {
				pa.Reason = x.Reason.String()
			}
			h.Accesses = append(h.Accesses, pa)
		case ledger.KindErasure:
			x, err := e.Erasure()
			if err != nil {
				return err
			}
			erased[x.Target] = true
			h.Erasures = append(h.Erasures, PatientErasure{Index: e.Index, Time: e.Time, Record: x.Target})
		case ledger.KindTransfer:
			t, err := query.DecodeTransfer(e)
			if err != nil {
				return err
			}
			copyAt := t.Copy
			if t.Direction == query.In {
				copyAt = e.Index - 1
			}
			h.Transfers = append(h.Transfers, PatientTransfer{Index: e.Index, Time: e.Time, Direction: t.Direction.String(), Centre: n.memberName(t.Centre), Source: t.Source, Copy: copyAt})
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
func PatientRequest(cfg Config, op patient.Op, p string, key ed25519.PrivateKey) ([]byte, error) {
	subject, err := ParsePseudonym(p)
	if err != nil {
		return nil, err
	}
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
	q := patient.Request{Op: op, Federation: cfg.Federation.ID, Relay: relay, Subject: subject, Time: time.Now().UTC()}
	rand.Read(q.Nonce[:])
	return q.Sign(key)
}
