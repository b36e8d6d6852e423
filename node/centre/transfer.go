package centre

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/ledger"
)

// Switching provider: a patient's new centre copies their records from
// every centre holding them, with provenance, and announces itself.

// TransferRequest asks this centre to copy a patient's records from every
// centre holding them: the patient is switching to it. The sources decide
// by the patient's consent for copying (action copy, purpose treatment).
type TransferRequest struct {
	Pseudonym ledger.Pseudonym
	Role      consent.Role
	Staff     ledger.StaffID // zero when not named
	Classes   []string
	Token     []byte // a patient's token, when the transfer rests on one
}

// TransferResult says what was copied from each source, in order of name.
type TransferResult struct {
	Pseudonym ledger.Pseudonym
	Sources   []TransferSource
	Lookup    error // why sources may be missing
	// Announce says why this centre is not in the directory as a holder
	// (it announces again at its next start); nil when it is, or when
	// nothing was copied.
	Announce  error
	Announced bool
}

// TransferSource is one source's part of a transfer.
type TransferSource struct {
	Name    string
	Outcome Outcome // Copied (or copied before), Denied by consent, or Failed (Err)
	Err     error
	Reason  string // consent's reason
	Access  int64  // the source's access entry for this transfer
	Copies  []TransferCopy
	Before  int // of Copies, copied by an earlier transfer
	Erased  int // released without a payload: erased at the source
	// Recorded: the source recorded the transfer on its ledger; otherwise
	// Record says why not.
	Recorded bool
	Record   error
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
			return nil, corrupt("transfer entry", e.Index, err)
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
	spec, err := querySpec(r.Pseudonym, Asker{Role: r.Role, Staff: r.Staff, Purpose: consent.Treatment}, r.Token, r.Classes)
	if err != nil {
		return TransferResult{}, err
	}
	spec.Action, spec.OthersOnly = consent.Copy, true
	n.transferMu.Lock() // one transfer at a time: each record copied once
	defer n.transferMu.Unlock()
	before, err := n.copiedBefore(ctx, r.Pseudonym)
	if err != nil {
		return TransferResult{}, err
	}
	if err := n.AuditLookup(ctx, r.Pseudonym, Asker{Role: r.Role, Staff: r.Staff, Purpose: consent.Treatment}); err != nil {
		return TransferResult{}, err
	}
	res, err := n.Query.Query(ctx, spec)
	if err != nil {
		return TransferResult{}, err
	}
	out := TransferResult{Pseudonym: r.Pseudonym, Sources: []TransferSource{}, Lookup: res.Lookup}
	copied := 0
	for _, a := range res.Holders {
		src := n.copyFrom(ctx, r.Pseudonym, a, res.Nonce, before)
		copied += len(src.Copies)
		out.Sources = append(out.Sources, src)
	}
	slices.SortFunc(out.Sources, func(a, b TransferSource) int { return strings.Compare(a.Name, b.Name) })
	if copied > 0 {
		out.Announce = n.Directory.Announce(ctx, r.Pseudonym)
		out.Announced = out.Announce == nil
	}
	return out, nil
}

// copyFrom copies what source a released, then sends it the receipt.
func (n *Node) copyFrom(ctx context.Context, p ledger.Pseudonym, a query.Answer, nonce [16]byte, before map[copyKey]int64) TransferSource {
	src := TransferSource{Name: n.memberName(a.Holder), Copies: []TransferCopy{}}
	switch {
	case a.Err != nil:
		src.Outcome, src.Err = Failed, a.Err
		return src
	case !a.Permit:
		src.Outcome, src.Reason, src.Access = Denied, a.Reason, a.Access
		return src
	}
	src.Outcome, src.Reason, src.Access = Copied, a.Reason, a.Access
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
				src.Outcome, src.Err = Failed, fmt.Errorf("copying record %d: %w", rec.Index, err)
				break
			}
		}
		src.Copies = append(src.Copies, TransferCopy{Source: rec.Index, Copy: i})
		receipt.Copies = append(receipt.Copies, query.Copied{Source: rec.Index, Copy: i})
	}
	if len(receipt.Copies) > 0 {
		src.Record = n.Query.Acknowledge(ctx, receipt)
		src.Recorded = src.Record == nil
	}
	return src
}
