package centre

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

func (n *Node) startQuery(ctx context.Context, tp trace.TracerProvider) error {
	charter := func() federation.Charter { return n.Membership.Current().Charter }
	h, err := query.NewHolder(ctx, n.Host, query.HolderOptions{
		Key:     n.Centre.key,
		Ledger:  n.Centre.Ledger,
		Consent: n.Consent,
		Payloads: func(ctx context.Context, r ledger.Record) ([]byte, records.Opening, error) {
			return n.Centre.Records.Get(ctx, records.ID(r.Payload))
		},
		Charter: charter,
		Rate:    n.memberRate,
		Logger:  n.base,
		Now:     clock.Now,
		Tracer:  tp,
	})
	if err != nil {
		return err
	}
	n.holder = h
	n.Query, err = query.NewClient(n.Host, query.ClientOptions{Key: n.Centre.key, Charter: charter, Holders: n.holders, Local: h.Answer, Now: clock.Now, Tracer: tp})
	return err
}

// Asker is who asks and why: a staff member of this centre, in a role,
// for a purpose (with a reason when it is an emergency).
type Asker struct {
	Role    consent.Role
	Staff   ledger.StaffID // zero when not named
	Purpose consent.Purpose
	Reason  consent.Reason // the emergency reason; zero when none
}

// QueryRequest is a clinician's query for a patient's records.
type QueryRequest struct {
	Pseudonym ledger.Pseudonym
	Asker
	Classes []string // data classes; all when empty
	Token   []byte   // a patient's token, when the query rests on one
	// Local asks this centre alone (its own records), without a lookup.
	Local bool
	// Holder, a member's name, asks that holder alone, without a lookup:
	// a document an earlier query found is retrieved from its holder.
	Holder string
}

// QueryResult is a query's outcome, holder by holder, in order of name.
type QueryResult struct {
	Pseudonym ledger.Pseudonym
	Holders   []QueryHolder
	Lookup    error // why holders may be missing
	Elapsed   time.Duration
}

// QueryHolder is one holder's answer, with the holder's name.
type QueryHolder struct {
	Name    string
	Outcome Outcome // Answered (records released), Denied or Failed (Err)
	query.Answer
}

// QueriesNotHeld returns how many queries this centre answered about
// patients it holds no records of: counted, never on its ledger.
func (n *Node) QueriesNotHeld() int64 { return n.holder.NotHeld() }

// QueryRecords asks every holder of a patient for the records consent
// lets this requester see.
func (n *Node) QueryRecords(ctx context.Context, r QueryRequest) (QueryResult, error) {
	spec, err := querySpec(r.Pseudonym, r.Asker, r.Token, r.Classes)
	if err != nil {
		return QueryResult{}, err
	}
	spec.LocalOnly = r.Local
	if r.Holder != "" && !r.Local {
		if spec.Only, err = n.memberID(r.Holder); err != nil {
			return QueryResult{}, err
		}
	}
	start := time.Now()
	if !r.Local && r.Holder == "" { // the directory is asked who holds the patient: on the ledger first
		if err := n.AuditLookup(ctx, r.Pseudonym, r.Asker); err != nil {
			return QueryResult{}, err
		}
	}
	res, err := n.Query.Query(ctx, spec)
	if err != nil {
		return QueryResult{}, err
	}
	out := QueryResult{Pseudonym: r.Pseudonym, Holders: []QueryHolder{}, Lookup: res.Lookup, Elapsed: time.Since(start)}
	for _, a := range res.Holders {
		h := QueryHolder{Name: n.memberName(a.Holder), Answer: a}
		switch {
		case a.Err != nil:
			h.Outcome = Failed
		case a.Permit:
			h.Outcome = Answered
		default:
			h.Outcome = Denied
		}
		out.Holders = append(out.Holders, h)
	}
	slices.SortFunc(out.Holders, func(a, b QueryHolder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// querySpec checks the fields of a query or transfer request.
func querySpec(p ledger.Pseudonym, a Asker, token []byte, classes []string) (query.Spec, error) {
	for _, c := range classes {
		if !ledger.ValidDataClass(c) {
			return query.Spec{}, fmt.Errorf("%w: data class %q", node.ErrInvalid, c)
		}
	}
	return query.Spec{Subject: p, Classes: classes, Role: a.Role, Staff: a.Staff, Purpose: a.Purpose, Reason: a.Reason, Token: token}, nil
}
