package query

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
	"github.com/medfed/medfed/node/stats"
	"github.com/medfed/medfed/node/wire"
)

// ErrRejected is returned for an answer that does not verify: a record
// whose entry, proof, checkpoint or payload is not what the holder's
// witnessed ledger says. The whole answer is rejected.
var ErrRejected = node.E(node.Unavailable, "answer rejected")

// ClientOptions configure a Client.
type ClientOptions struct {
	Key     ed25519.PrivateKey // the centre's key: signs requests
	Charter func() federation.Charter
	// Holders returns the centres holding a patient's records (the
	// directory); with an error, those it found.
	Holders func(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error)
	// Timeout bounds each holder's answer; 5 s when zero.
	Timeout time.Duration
	// Local answers a request when this centre is itself a holder
	// (Holder.Answer); without it, this centre's own records are not
	// asked for.
	Local func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)
	// Now dates the requests; time.Now when nil.
	Now func() time.Time
	// Tracer traces each query (see trace.go); none when nil.
	Tracer trace.TracerProvider
}

// Client asks the federation for a patient's records.
type Client struct {
	host host.Host
	opts ClientOptions
	pool *wire.Pool // the streams kept open to holders

	// finals holds each holder's last final checkpoint verified, under
	// the charter version it was verified with: a holder's checkpoint
	// changes about once a second, its cosignatures cost a dozen
	// signature checks.
	mu     sync.Mutex
	finals map[peer.ID][]verifiedFinal // the latest few, newest last

	latency [numOutcomes]*stats.Histogram // of a holder's answers, by outcome
	tracer  trace.Tracer
}

// Outcome is what came of asking one holder.
type Outcome int

// The outcomes of asking a holder.
const (
	OutcomeReleased    Outcome = iota // it released records
	OutcomeDenied                     // it answered, releasing nothing
	OutcomeRefused                    // it refused the request (a rate, its checks, a stopped centre)
	OutcomeRejected                   // its answer did not verify
	OutcomeUnreachable                // it could not be asked, or did not answer in time
	numOutcomes
)

// Outcomes are the outcomes' names, by Outcome.
var Outcomes = [numOutcomes]string{"released", "denied", "refused", "rejected", "unreachable"}

// outcomeOf classifies an answer.
func outcomeOf(a Answer) Outcome {
	var refused *wire.Refused
	switch {
	case a.Err == nil && a.Permit:
		return OutcomeReleased
	case a.Err == nil:
		return OutcomeDenied
	case errors.Is(a.Err, ErrRejected):
		return OutcomeRejected
	case errors.As(a.Err, &refused):
		return OutcomeRefused
	}
	return OutcomeUnreachable
}

// Latency returns, by Outcome, the latency in seconds of the holders'
// answers since the client started, from the request sent to the answer
// verified.
func (c *Client) Latency() [numOutcomes]stats.Snapshot {
	var out [numOutcomes]stats.Snapshot
	for i, h := range c.latency {
		out[i] = h.Snapshot()
	}
	return out
}

// keptFinals is how many verified checkpoints of each holder are kept:
// answers given concurrently may be proven in the latest or the one
// before.
const keptFinals = 4

type verifiedFinal struct {
	hash    [32]byte
	version uint64
	cp      ledger.Checkpoint
}

// openFinal verifies holder m's final checkpoint note, or recalls that it
// did.
func (c *Client) openFinal(ch federation.Charter, m federation.Member, note []byte) (ledger.Checkpoint, error) {
	h := sha256.Sum256(note)
	c.mu.Lock()
	for _, v := range c.finals[m.ID] {
		if v.hash == h && v.version == ch.Version {
			c.mu.Unlock()
			return v.cp, nil
		}
	}
	c.mu.Unlock()
	cp, err := federation.OpenFinal(ch, m, note)
	if err != nil {
		return cp, err
	}
	c.mu.Lock()
	kept := append(c.finals[m.ID], verifiedFinal{hash: h, version: ch.Version, cp: cp})
	c.finals[m.ID] = kept[max(0, len(kept)-keptFinals):]
	c.mu.Unlock()
	return cp, nil
}

// NewClient returns a client sending from h.
func NewClient(h host.Host, opts ClientOptions) (*Client, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Charter == nil || opts.Holders == nil {
		return nil, errors.New("query client: key, charter and holders are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{host: h, opts: opts, pool: wire.NewPool(h, KeptProtocolID, ProtocolID), finals: map[peer.ID][]verifiedFinal{}, tracer: tracer(opts.Tracer)}
	for i := range c.latency {
		c.latency[i] = stats.NewHistogram(stats.LatencyBounds...)
	}
	return c, nil
}

// Close closes the streams kept open to holders.
func (c *Client) Close() { c.pool.Close() }

// Spec is what a clinician asks for.
type Spec struct {
	Subject ledger.Pseudonym
	Staff   ledger.StaffID
	Role    consent.Role
	Purpose consent.Purpose
	Action  consent.Action // Access when zero
	Reason  consent.Reason // for the emergency purpose
	Classes []string       // empty: all
	Token   []byte         // a patient's token, if the query rests on one
	// OthersOnly leaves this centre out, when it holds records too (a
	// transfer copies from the others).
	OthersOnly bool
	// LocalOnly asks this centre alone, without a directory lookup: a
	// clinician reading a record of this centre's goes through the same
	// consent decision and access entry as anyone.
	LocalOnly bool
	// Only asks this one holder, without a directory lookup: a document
	// found by an earlier query is retrieved from its holder alone.
	Only peer.ID
}

// Result is a query's outcome at every holder.
type Result struct {
	Nonce   [16]byte // the request's (one request for every holder)
	Holders []Answer
	// Lookup is set when the directory lookup did not complete: holders
	// may be missing.
	Lookup error
}

// Answer is one holder's part: its records, or why there are none.
type Answer struct {
	Holder  peer.ID
	Err     error // unreachable, too slow, refused, or rejected
	Permit  bool
	Basis   consent.Basis
	Reason  string
	Access  int64 // the access entry on the holder's ledger
	Session consent.ID
	Denied  int
	Pending int
	Size    int64     // the final checkpoint the records are proven in
	Root    tlog.Hash // and its root
	Records []Record
}

// Record is a released record, proven and checked.
type Record struct {
	Index   int64
	Record  ledger.Record
	Kind    ledger.Kind
	Payload []byte // nil when the holder erased it
	Erased  bool
	Entry   []byte           // the entry as the holder's ledger holds it
	Proof   tlog.RecordProof // its inclusion in the final checkpoint
}

// Query asks every holder of spec.Subject in parallel and verifies every
// answer. A holder that is down, too slow, refuses, or answers with
// anything that does not verify is in the result with its error, never
// left out.
func (c *Client) Query(ctx context.Context, spec Spec) (res Result, err error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	ctx, links := underRequest(ctx, nonce)
	ctx, span := c.tracer.Start(ctx, "medfed.query", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("medfed.purpose", spec.Purpose.String())))
	defer func() {
		span.SetAttributes(attribute.Int("medfed.holders", len(res.Holders)))
		outcome := "asked"
		if err != nil {
			outcome = "failed"
		}
		endSpan(span, outcome, err)
	}()
	if spec.LocalOnly && c.opts.Local == nil {
		return res, errors.New("query: this centre answers no queries itself")
	}
	if spec.Action == 0 {
		spec.Action = consent.Access
	}
	// One request for every holder: each keeps its nonce, and each seals
	// to the same key under its own name (see Seal). The key is drawn and
	// the request signed while the directory lookup runs: neither depends
	// on the holders.
	type signed struct {
		key *SealingKey
		q   Request
		raw []byte
		err error
	}
	request := make(chan signed, 1)
	go func() {
		var r signed
		if r.key, r.err = NewSealingKey(); r.err != nil {
			request <- r
			return
		}
		r.q = Request{
			Federation: c.opts.Charter().Federation, Requester: c.host.ID(), Staff: spec.Staff, Role: spec.Role,
			Action: spec.Action, Purpose: spec.Purpose, Reason: spec.Reason, Classes: spec.Classes,
			Subject: spec.Subject, Time: c.opts.Now().UTC(), Key: r.key.Public(), Token: spec.Token, Nonce: nonce,
		}
		r.raw, r.err = r.q.Sign(c.opts.Key)
		request <- r
	}()
	var holders []peer.ID
	if spec.LocalOnly {
		holders = []peer.ID{c.host.ID()}
	} else if spec.Only != "" {
		holders = []peer.ID{spec.Only}
	} else {
		holders, err = c.opts.Holders(ctx, spec.Subject)
		res.Lookup = err
	}
	if spec.OthersOnly {
		holders = slices.DeleteFunc(holders, func(h peer.ID) bool { return h == c.host.ID() })
	}
	r := <-request
	if len(holders) == 0 && err != nil {
		return res, err
	}
	if r.err != nil {
		return res, r.err
	}
	q, key, raw := r.q, r.key, r.raw
	res.Nonce = q.Nonce
	res.Holders = make([]Answer, len(holders))
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Go(func() { res.Holders[i] = c.ask(ctx, h, q, key, raw) })
	}
	wg.Wait()
	return res, nil
}

// ask sends the signed request raw to one holder and verifies its answer.
func (c *Client) ask(ctx context.Context, holder peer.ID, q Request, key *SealingKey, raw []byte) (out Answer) {
	start := time.Now()
	ctx, span := c.tracer.Start(ctx, "medfed.query.ask", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("medfed.holder", memberName(c.opts.Charter(), holder))))
	defer func() {
		o := outcomeOf(out)
		c.latency[o].Observe(time.Since(start).Seconds())
		span.SetAttributes(attribute.Int("medfed.records", len(out.Records)))
		endSpan(span, Outcomes[o], out.Err)
	}()
	out = Answer{Holder: holder}
	var err error
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var answer []byte
	if holder == c.host.ID() && c.opts.Local != nil {
		// This centre holds records too: its own holder answers, with the
		// same checks, decision and access entry as for anyone.
		if answer, err = c.opts.Local(ctx, holder, raw); err != nil {
			reason := []byte(err.Error())
			err = &wire.Refused{Status: wire.StatusRefused, Reason: wire.Printable(reason[:min(len(reason), maxReason)])}
		}
	} else {
		answer, err = c.pool.Ask(ctx, holder, opQuery, raw, maxResponse, maxReason)
	}
	if err != nil {
		out.Err = err
		return out
	}
	out, err = c.Verify(holder, q, key, answer)
	if err != nil {
		out = Answer{Holder: holder, Err: err}
	}
	return out
}

// Verify checks holder's answer raw to request q, sealed to key, and
// returns what it released; an answer that does not verify in every part
// is rejected whole (ErrRejected).
func (c *Client) Verify(holder peer.ID, q Request, key *SealingKey, raw []byte) (Answer, error) {
	out := Answer{Holder: holder}
	err := c.verify(&out, q, key, raw)
	return out, err
}

// verify checks a holder's answer to q and fills out.
func (c *Client) verify(out *Answer, q Request, key *SealingKey, raw []byte) error {
	a, err := ParseResponse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	switch {
	case a.Holder != out.Holder:
		return fmt.Errorf("%w: signed by another centre", ErrRejected)
	case a.Subject != q.Subject || a.Nonce != q.Nonce:
		return fmt.Errorf("%w: an answer to another request", ErrRejected)
	case a.Permit != (len(a.Items) > 0):
		return fmt.Errorf("%w: a permit without records, or records without a permit", ErrRejected)
	}
	out.Permit, out.Basis, out.Reason = a.Permit, a.Basis, wire.Printable([]byte(a.Reason))
	out.Access, out.Session, out.Denied, out.Pending = a.Access, a.Session, int(a.Denied), int(a.Pending)
	if len(a.Items) == 0 {
		return nil
	}
	ch := c.opts.Charter()
	m, ok := ch.Member(a.Holder)
	if !ok {
		return fmt.Errorf("%w: the holder is not a member", ErrRejected)
	}
	cp, err := c.openFinal(ch, m, a.Checkpoint)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	out.Size, out.Root = cp.Size, cp.Root
	op, err := key.opener(a.Enc, a.Holder, q.Nonce)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	seen := map[int64]bool{}
	for _, it := range a.Items {
		e, err := ledger.Decode(it.Entry)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrRejected, it.Index, err)
		}
		r, err := e.Record()
		switch {
		case err != nil:
			return fmt.Errorf("%w: entry %d is not a record", ErrRejected, it.Index)
		case e.Index != it.Index || seen[e.Index]:
			return fmt.Errorf("%w: entry %d is listed as %d", ErrRejected, e.Index, it.Index)
		case e.Subject != q.Subject:
			return fmt.Errorf("%w: entry %d is about another patient", ErrRejected, e.Index)
		case len(q.Classes) > 0 && !slices.Contains(q.Classes, r.DataClass):
			return fmt.Errorf("%w: entry %d is of a class not asked for", ErrRejected, e.Index)
		}
		seen[e.Index] = true
		if err := ledger.VerifyInclusion(cp, e.Index, it.Entry, it.Proof); err != nil {
			return fmt.Errorf("%w: entry %d is not in the holder's final checkpoint: %w", ErrRejected, e.Index, err)
		}
		rec := Record{Index: e.Index, Record: r, Kind: e.Kind, Entry: it.Entry, Proof: it.Proof}
		if it.Sealed == nil {
			rec.Erased = true
		} else {
			opening, payload, err := op.open(e.Index, it.Sealed)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrRejected, err)
			}
			if len(opening) != len(records.Opening{}) || !records.Commitment(r.Commitment).Verify(records.Opening(opening), payload) {
				return fmt.Errorf("%w: the payload of entry %d does not match its commitment", ErrRejected, e.Index)
			}
			rec.Payload = bytes.Clone(payload)
		}
		out.Records = append(out.Records, rec)
	}
	return nil
}
