package pseudonym

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/stats"
	"github.com/medfed/medfed/node/wire"
)

// Audit records the evaluations a holder performs: one call per batch,
// before the answer leaves, with the requester and the count only.
type Audit interface {
	Evaluated(ctx context.Context, requester peer.ID, n int) error
}

// EvaluatorOptions configure an Evaluator.
type EvaluatorOptions struct {
	// Member reports whether a peer is a current member of the federation,
	// and its name for messages. Required.
	Member func(peer.ID) (name string, ok bool)
	// Audit is told of every batch before it is answered. Required.
	Audit Audit
	// Limit evaluations per requester per Window. Required.
	Limit  int
	Window time.Duration
	// Spent are the evaluations performed before this evaluator started,
	// as the ledger recorded them, oldest first; the rate limit counts them
	// before the first request is served.
	Spent []Spend
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Spend is one recorded batch of evaluations for a requester.
type Spend struct {
	Requester peer.ID
	Count     int
	At        time.Time
}

// Evaluator answers /medfed/oprf/1 with this centre's share.
type Evaluator struct {
	h     host.Host
	opts  EvaluatorOptions
	limit *limiter
	log   *slog.Logger
	// handle serves one stream of the protocol.
	handle network.StreamHandler

	mu     sync.Mutex
	keys   *Keys                // what it answers with, until Rekey
	share  *Share               //
	folded map[string]foldedKey // share folded by evaluating set

	evaluated, limited stats.Counter // elements evaluated; batches refused by the rate limit
}

// EvaluatorStats are what an evaluator did since it started, for the
// operators' metrics: counts, never the elements or who asked.
type EvaluatorStats struct {
	Evaluated uint64 // elements evaluated for other centres
	Limited   uint64 // batches refused by the rate limit
}

// Stats returns the evaluator's counts.
func (e *Evaluator) Stats() EvaluatorStats {
	return EvaluatorStats{Evaluated: e.evaluated.Load(), Limited: e.limited.Load()}
}

// foldedKey is the share with one set's Lagrange coefficient folded in,
// and its public counterpart's encoding.
type foldedKey struct {
	k     *ristretto255.Scalar
	pkEnc []byte
}

// NewEvaluator serves share on h until Close.
func NewEvaluator(h host.Host, keys *Keys, share *Share, opts EvaluatorOptions) (*Evaluator, error) {
	if opts.Member == nil || opts.Audit == nil {
		return nil, errors.New("pseudonym evaluator: Member and Audit are required")
	}
	if opts.Limit < 1 || opts.Window <= 0 {
		return nil, fmt.Errorf("pseudonym evaluator: rate limit %d per %v", opts.Limit, opts.Window)
	}
	if err := share.matches(keys); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{
		h: h, keys: keys, share: share, opts: opts,
		limit:  newLimiter(opts.Limit, opts.Window),
		log:    opts.Logger.With("component", "pseudonym"),
		folded: map[string]foldedKey{},
	}
	for _, sp := range opts.Spent {
		e.limit.spent(sp.Requester, sp.Count, sp.At)
	}
	srv := &wire.Server{
		Name: "pseudonym", Limit: maxRequest, Timeout: time.Minute, Work: time.Minute, MaxReason: maxReasonLen,
		Serve: e.serve, Refuse: refusal, Log: e.log,
	}
	e.handle = srv.Handle
	h.SetStreamHandler(ProtocolID, e.handle)
	return e, nil
}

// Close stops answering.
func (e *Evaluator) Close() { e.h.RemoveStreamHandler(ProtocolID) }

// Rekey has the evaluator answer with share, of keys, from now on: the
// federation's key reshared to a committee this centre is on. The rate
// limits carry over; a request under way finishes with the share it
// began with.
func (e *Evaluator) Rekey(keys *Keys, share *Share) error {
	if err := share.matches(keys); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys, e.share, e.folded = keys, share, map[string]foldedKey{}
	return nil
}

// current returns the keys and share the evaluator answers with.
func (e *Evaluator) current() (*Keys, *Share) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys, e.share
}

// refusal is the code and the reason an evaluator answers err with: a
// failure of its own is an internal error, in no more words.
func refusal(err error) (byte, string) {
	var r *Refusal
	if !errors.As(err, &r) {
		return refusedInternal, "internal error"
	}
	return r.Code, r.Reason
}

func refuse(code byte, format string, args ...any) error {
	return &Refusal{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// serve checks and evaluates one request. The order matters: nothing is
// counted for a request that does not parse, and the count is on the
// ledger before anything is computed.
func (e *Evaluator) serve(ctx context.Context, from peer.ID, op byte, payload []byte) ([]byte, error) {
	keys, share := e.current()
	name, ok := e.opts.Member(from)
	if !ok {
		return nil, refuse(refusedDenied, "%s is not a member of federation %s", from, keys.Federation)
	}
	if op != opEvaluate {
		return nil, refuse(refusedMalformed, "unknown operation %d", op)
	}
	req, err := decodeRequest(payload)
	if err != nil {
		return nil, refuse(refusedMalformed, "%v", err)
	}
	if err := keys.checkSet(req.set); err != nil {
		return nil, refuse(refusedMalformed, "%v", err)
	}
	if !slices.Contains(req.set, share.Index) {
		return nil, refuse(refusedNoShare, "this centre holds share %d, which is not in the evaluating set", share.Index)
	}
	// Charge before the work: decoding costs a square root per element,
	// and a malformed batch is not refunded.
	n := len(req.elements)
	now := e.opts.Now()
	ok, avail, wait := e.limit.take(from, n, now)
	if !ok {
		e.limited.Inc()
		return nil, e.limitRefusal(name, n, avail, wait)
	}
	b := batch{blindedEnc: req.elements, blinded: make([]*ristretto255.Element, n)}
	for i, enc := range req.elements {
		if b.blinded[i], err = decodeElement(enc); err != nil {
			return nil, refuse(refusedMalformed, "element %d: %v", i, err)
		}
	}
	fk := e.foldedFor(keys, share, req.set)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.opts.Audit.Evaluated(ctx, from, n); err != nil {
		e.limit.give(from, n, now)
		return nil, fmt.Errorf("recording the evaluation: %w", err)
	}
	out := fk.evaluate(b)
	e.evaluated.Add(uint64(n))
	e.log.Debug("evaluated", "for", name, "n", n)
	return out, nil
}

// evaluate answers a batch of decoded blinded elements: each one times the
// folded share, encoded, and the proof that one key made them all.
func (fk foldedKey) evaluate(b batch) []byte {
	n := len(b.blinded)
	b.evaluated = make([]*ristretto255.Element, n)
	b.evaluatedEnc = make([][]byte, n)
	out := make([]byte, 0, n*elementLen+proofLen)
	for i, p := range b.blinded {
		b.evaluated[i] = ristretto255.NewIdentityElement().ScalarMult(fk.k, p)
		out = append(out, b.evaluated[i].Bytes()...)
		b.evaluatedEnc[i] = out[len(out)-elementLen:]
	}
	return append(out, voprf.prove(fk.k, fk.pkEnc, b, randomScalar())...)
}

func (e *Evaluator) limitRefusal(name string, n, avail int, wait time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "rate limit: %s may ask this centre for %d pseudonym evaluations per %v; a batch of %d more would exceed it (%d available now",
		name, e.opts.Limit, e.opts.Window, n, max(avail, 0))
	if wait >= 0 {
		fmt.Fprintf(&b, ", enough in %v)", wait.Round(time.Second))
	} else {
		b.WriteString("; the batch is larger than the limit)")
	}
	return refuse(refusedLimit, "%s", b.String())
}

// foldedFor returns share, of keys, folded for set, which includes this
// holder; cached while share is the one the evaluator answers with.
func (e *Evaluator) foldedFor(keys *Keys, share *Share, set []int) foldedKey {
	key := fmt.Sprint(set)
	e.mu.Lock()
	defer e.mu.Unlock()
	if share != e.share { // rekeyed since the request began
		return foldedKey{k: share.folded(set), pkEnc: keys.foldedPublic(set, share.Index).Bytes()}
	}
	if fk, ok := e.folded[key]; ok {
		return fk
	}
	fk := foldedKey{k: share.folded(set), pkEnc: keys.foldedPublic(set, share.Index).Bytes()}
	if len(e.folded) > 1024 { // sets are few; bound the cache anyway
		for _, old := range e.folded {
			old.k.Zero()
		}
		clear(e.folded)
	}
	e.folded[key] = fk
	return fk
}
