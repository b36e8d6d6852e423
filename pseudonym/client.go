package pseudonym

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ErrUnavailable is returned when fewer than t holders answered correctly.
var ErrUnavailable = node.E(node.Unavailable, "pseudonyms unavailable")

// ClientOptions configure a Client.
type ClientOptions struct {
	// Member reports whether a peer is a current member, and its name for
	// messages. Required.
	Member func(peer.ID) (name string, ok bool)
	// Chunk is the number of identifiers per request (default 1024, at
	// most MaxBatch); Parallel the number of chunks in flight (default 8).
	Chunk, Parallel int
	// Timeout bounds each request (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client derives pseudonyms by asking the federation's holders.
type Client struct {
	h     host.Host
	keys  *Keys
	share *Share // this centre's own share, or nil
	opts  ClientOptions
	log   *slog.Logger
}

// NewClient returns a client for the federation keys describes. share is
// this centre's own share, or nil for a centre that holds none; a holder
// evaluates its own part locally and asks t-1 others.
func NewClient(h host.Host, keys *Keys, share *Share, opts ClientOptions) (*Client, error) {
	if opts.Member == nil {
		return nil, errors.New("pseudonym client: Member is required")
	}
	if share != nil {
		if err := share.matches(keys); err != nil {
			return nil, err
		}
	}
	if opts.Chunk <= 0 || opts.Chunk > MaxBatch {
		opts.Chunk = 1024
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{h: h, keys: keys, share: share, opts: opts, log: opts.Logger.With("component", "pseudonym")}, nil
}

// Pseudonyms returns the pseudonym of every identifier, in order.
func (c *Client) Pseudonyms(ctx context.Context, ids []Identifier) ([]ledger.Pseudonym, error) {
	inputs := make([][]byte, len(ids))
	for i, id := range ids {
		inputs[i] = id.Input()
	}
	outs, err := c.evaluate(ctx, inputs)
	if err != nil {
		return nil, err
	}
	ps := make([]ledger.Pseudonym, len(outs))
	for i, o := range outs {
		ps[i] = derive(c.keys.Federation, o)
	}
	return ps, nil
}

// run is one call's shared state: where its evaluating sets start among
// the holders, and which holders answered wrongly.
type run struct {
	offset int
	mu     sync.Mutex
	failed map[peer.ID]error
}

func (r *run) fail(id peer.ID, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[id] = err
}

func (r *run) ok(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, bad := r.failed[id]
	return !bad
}

// evaluate returns the OPRF outputs of inputs, chunk by chunk, with up to
// Parallel chunks in flight.
func (c *Client) evaluate(ctx context.Context, inputs [][]byte) ([][64]byte, error) {
	outs := make([][64]byte, len(inputs))
	// Each call starts at a random holder, and its chunks go on in turn
	// from there: evaluations spread over the whole committee, not over
	// the first holders listed.
	r := &run{offset: mrand.IntN(1 << 30), failed: map[peer.ID]error{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		next     = make(chan int)
	)
	for range c.opts.Parallel {
		wg.Go(func() {
			for start := range next {
				end := min(start+c.opts.Chunk, len(inputs))
				if err := c.chunk(ctx, r, start/c.opts.Chunk, inputs[start:end], outs[start:end]); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	for start := 0; start < len(inputs) && ctx.Err() == nil; start += c.opts.Chunk {
		select {
		case next <- start:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return outs, ctx.Err()
}

// blinded is a chunk's inputs mapped to the group and blinded additively.
type blinded struct {
	points []*ristretto255.Element // H(input)
	blinds []*ristretto255.Scalar  // r
	enc    [][]byte                // H(input) + r·G, encoded
	elems  []*ristretto255.Element
}

func (s suite) blindAdd(inputs [][]byte) (blinded, error) {
	n := len(inputs)
	b := blinded{points: make([]*ristretto255.Element, n), blinds: make([]*ristretto255.Scalar, n),
		enc: make([][]byte, n), elems: make([]*ristretto255.Element, n)}
	rnd := make([]byte, 64*n)
	if _, err := rand.Read(rnd); err != nil {
		return b, err
	}
	defer clear(rnd)
	encs := make([]byte, 0, n*elementLen)
	for i, in := range inputs {
		p, err := s.inputPoint(in)
		if err != nil {
			return b, fmt.Errorf("identifier %d: %w", i, err)
		}
		r := uniformScalar(rnd[64*i : 64*(i+1)])
		e := ristretto255.NewIdentityElement().ScalarBaseMult(r)
		e.Add(e, p)
		b.points[i], b.blinds[i], b.elems[i] = p, r, e
		encs = append(encs, e.Bytes()...)
		b.enc[i] = encs[len(encs)-elementLen:]
	}
	return b, nil
}

// chunk evaluates one chunk, trying evaluating sets until one answers
// correctly.
func (c *Client) chunk(ctx context.Context, r *run, seq int, inputs [][]byte, outs [][64]byte) error {
	b, err := voprf.blindAdd(inputs)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		set, remote, err := c.pickSet(r, seq+attempt)
		if err != nil {
			return err
		}
		answers, err := c.ask(ctx, r, set, remote, b)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // a holder failed and is marked; pick another set
		}
		c.combine(set, remote, b, answers, inputs, outs)
		return nil
	}
}

// pickSet chooses the evaluating set: this centre if it holds a share,
// then the next holders in turn from the run's random offset (rotating
// with seq to spread the load) that are members and have not failed in
// this run.
func (c *Client) pickSet(r *run, seq int) (set []int, remote []Holder, err error) {
	need := c.keys.Threshold
	if c.share != nil {
		set = append(set, c.share.Index)
		need--
	}
	var candidates []Holder
	for _, h := range c.keys.Holders {
		if c.share != nil && h.Index == c.share.Index {
			continue
		}
		if _, member := c.opts.Member(h.ID); member && r.ok(h.ID) {
			candidates = append(candidates, h)
		}
	}
	if len(candidates) < need {
		return nil, nil, c.unavailable(r, need, len(candidates))
	}
	for i := range need {
		h := candidates[(r.offset+seq+i)%len(candidates)]
		remote = append(remote, h)
		set = append(set, h.Index)
	}
	slices.Sort(set)
	return set, remote, nil
}

func (c *Client) unavailable(r *run, need, have int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := []error{fmt.Errorf("%w: a pseudonym takes %d key holders; %d more must answer and %d can be asked", ErrUnavailable, c.keys.Threshold, need, have)}
	for id, err := range r.failed {
		errs = append(errs, fmt.Errorf("%s: %w", c.name(id), err))
	}
	return errors.Join(errs...)
}

func (c *Client) name(id peer.ID) string {
	if name, ok := c.opts.Member(id); ok {
		return fmt.Sprintf("%s (%s)", name, id)
	}
	return id.String()
}

// ask sends the chunk to every remote holder of set in parallel and checks
// each answer's proof; a holder whose answer fails is named, logged and
// marked failed for the rest of the run.
func (c *Client) ask(ctx context.Context, r *run, set []int, remote []Holder, b blinded) ([][]*ristretto255.Element, error) {
	answers := make([][]*ristretto255.Element, len(remote))
	errs := make([]error, len(remote))
	req := request{set: set, elements: b.enc}.encode()
	var wg sync.WaitGroup
	for i, h := range remote {
		wg.Go(func() {
			answers[i], errs[i] = c.askOne(ctx, h, set, req, b)
			if errs[i] != nil && ctx.Err() == nil {
				c.log.Warn("pseudonym holder failed; asking another", "holder", c.name(h.ID), "err", errs[i])
				r.fail(h.ID, errs[i])
			}
		})
	}
	wg.Wait()
	return answers, errors.Join(errs...)
}

func (c *Client) askOne(ctx context.Context, h Holder, set []int, req []byte, b blinded) ([]*ristretto255.Element, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	answer, err := wire.Ask(ctx, c.h, ProtocolID, h.ID, opEvaluate, req, max(maxAnswer, maxReasonLen), maxReasonLen)
	var refused *wire.Refused
	if errors.As(err, &refused) {
		return nil, &Refusal{Code: refused.Status, Reason: refused.Reason}
	}
	if err != nil {
		return nil, err
	}
	return b.check(c.keys.foldedPublic(set, h.Index), answer)
}

// check decodes a holder's answer to the chunk and checks its proof against
// the holder's folded public share pk.
func (b blinded) check(pk *ristretto255.Element, answer []byte) ([]*ristretto255.Element, error) {
	encs, proof, err := decodeAnswer(answer, len(b.elems))
	if err != nil {
		return nil, err
	}
	bt := batch{blinded: b.elems, blindedEnc: b.enc, evaluatedEnc: encs, evaluated: make([]*ristretto255.Element, len(encs))}
	for i, enc := range encs {
		if bt.evaluated[i], err = decodeElement(enc); err != nil {
			return nil, fmt.Errorf("answered an invalid element: %w", err)
		}
	}
	if !voprf.verify(pk, pk.Bytes(), bt, proof) {
		return nil, errors.New("answered wrongly: the proof does not verify against its public share")
	}
	return bt.evaluated, nil
}

// combine unblinds the chunk: the remote answers add up to
// Σ λ_i·k_i·(P + r·G) over the remote holders; with this centre's own part
// λ_s·k_s·P added and r·(Σ λ_i·K_i) subtracted, what remains is k·P.
func (c *Client) combine(set []int, remote []Holder, b blinded, answers [][]*ristretto255.Element, inputs [][]byte, outs [][64]byte) {
	remoteKey := ristretto255.NewIdentityElement()
	for _, h := range remote {
		remoteKey.Add(remoteKey, c.keys.foldedPublic(set, h.Index))
	}
	var own *ristretto255.Scalar
	if c.share != nil {
		own = c.share.folded(set)
	}
	negR := ristretto255.NewScalar()
	y := ristretto255.NewIdentityElement()
	for i := range inputs {
		negR.Negate(b.blinds[i])
		if own != nil {
			y.MultiScalarMult([]*ristretto255.Scalar{own, negR}, []*ristretto255.Element{b.points[i], remoteKey})
		} else {
			y.ScalarMult(negR, remoteKey)
		}
		for _, a := range answers {
			y.Add(y, a[i])
		}
		outs[i] = output(inputs[i], y)
		b.blinds[i].Zero()
	}
}
