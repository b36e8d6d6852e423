package centre

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

func (n *Node) startQuery(ctx context.Context) error {
	charter := func() federation.Charter { return n.Membership.Current().Charter }
	h, err := query.NewHolder(ctx, n.Host, query.HolderOptions{
		Key:     n.Centre.key,
		Ledger:  n.Centre.Ledger,
		Consent: n.Consent,
		Payloads: func(ctx context.Context, r ledger.Record) ([]byte, records.Opening, error) {
			return n.Centre.Records.Get(ctx, records.ID(r.Payload))
		},
		Charter: charter,
		Logger:  n.base,
	})
	if err != nil {
		return err
	}
	n.holder = h
	n.Query, err = query.NewClient(n.Host, query.ClientOptions{Key: n.Centre.key, Charter: charter, Holders: n.holders, Local: h.Answer})
	return err
}

// QueryRequest is a clinician's query, as the admin socket takes it.
type QueryRequest struct {
	Pseudonym string
	Purpose   string // treatment, research or emergency
	Role      string
	Staff     string   `json:",omitempty"` // 32 hex digits
	Classes   []string `json:",omitempty"`
	Token     string   `json:",omitempty"` // a patient's token, base64
	Reason    string   `json:",omitempty"` // the emergency reason
	// Local asks this centre alone (its own records), without a lookup.
	Local bool `json:",omitempty"`
}

// QueryResult is a query's outcome, holder by holder, by name.
type QueryResult struct {
	Pseudonym string
	Holders   []QueryHolder
	Lookup    string `json:",omitempty"` // why holders may be missing
	Millis    float64
}

// QueryHolder is one holder's answer.
type QueryHolder struct {
	Name string
	// Status: "answered" (records released), "denied" (by consent, with
	// the reason), or "failed" (down, too slow, refused, or its answer did
	// not verify: Error says which).
	Status     string
	Error      string `json:",omitempty"`
	Reason     string `json:",omitempty"`
	Basis      string `json:",omitempty"`
	Access     int64  // the access entry on the holder's ledger
	Denied     int    `json:",omitempty"`
	Pending    int    `json:",omitempty"`
	Checkpoint int64  `json:",omitempty"` // the final checkpoint the records are proven in
	Records    []QueryRecord
}

// QueryRecord is one released record, proven.
type QueryRecord struct {
	Index    int64
	Kind     string
	Class    string
	Occurred time.Time
	Location string `json:",omitempty"`
	Author   string
	Replaces int64  `json:",omitempty"`
	Payload  []byte `json:",omitempty"`
	Erased   bool   `json:",omitempty"`
}

// QueryRecords asks every holder of a patient for the records consent
// lets this requester see.
func (n *Node) QueryRecords(ctx context.Context, r QueryRequest) (QueryResult, error) {
	p, err := ParsePseudonym(r.Pseudonym)
	if err != nil {
		return QueryResult{}, err
	}
	spec, err := querySpec(p, r.Role, r.Staff, r.Purpose, r.Reason, r.Token, r.Classes)
	if err != nil {
		return QueryResult{}, err
	}
	spec.LocalOnly = r.Local
	start := time.Now()
	res, err := n.Query.Query(ctx, spec)
	if err != nil {
		return QueryResult{}, err
	}
	out := QueryResult{Pseudonym: p.String(), Holders: []QueryHolder{}, Millis: float64(time.Since(start).Microseconds()) / 1000}
	if res.Lookup != nil {
		out.Lookup = res.Lookup.Error()
	}
	for _, a := range res.Holders {
		h := QueryHolder{Name: n.memberName(a.Holder), Records: []QueryRecord{}}
		switch {
		case a.Err != nil:
			h.Status, h.Error = "failed", a.Err.Error()
		case a.Permit:
			h.Status = "answered"
		default:
			h.Status = "denied"
		}
		if a.Err == nil {
			h.Reason, h.Basis, h.Access, h.Denied, h.Pending, h.Checkpoint = a.Reason, a.Basis.String(), a.Access, a.Denied, a.Pending, a.Size
		}
		for _, rec := range a.Records {
			h.Records = append(h.Records, QueryRecord{
				Index: rec.Index, Kind: rec.Kind.String(), Class: rec.Record.DataClass, Occurred: rec.Record.Occurred,
				Location: rec.Record.Location, Author: rec.Record.Author.String(), Replaces: rec.Record.Replaces,
				Payload: rec.Payload, Erased: rec.Erased,
			})
		}
		out.Holders = append(out.Holders, h)
	}
	slices.SortFunc(out.Holders, func(a, b QueryHolder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
