package query

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the query protocol: one signed request per stream (a
// frame of op 1), answered by a frame of status 0 and a signed Response,
// or of status 1 and the reason of a refusal (a request that is not a
// valid, fresh, first-seen request of a member: nothing was decided, so
// nothing is audited). A denial by consent is an answer, not a refusal.
const ProtocolID = "/medfed/query/1"

// KeptProtocolID is ProtocolID on a stream kept open for one request
// after another, each answered before the next (wire.Pool): what a
// querying centre asks a holder on, and ProtocolID when the holder does
// not speak it. Opening a stream cost about three quarters of a query's
// exchange with a holder (node/wire's BenchmarkExchange against
// BenchmarkPoolExchange).
const KeptProtocolID = "/medfed/query/2"

const (
	opQuery   byte = 1
	opReceipt byte = 2 // a transfer's receipt (see Acknowledge): answered by status 0 and nothing
)

// MaxSkew is how far a request's time may be from the holder's clock.
const MaxSkew = 30 * time.Second

// Ledger is what a holder needs of its ledger.
type Ledger interface {
	EntriesForKinds(ctx context.Context, p ledger.Pseudonym, kinds ...ledger.Kind) ([]ledger.Entry, error)
	Entries(ctx context.Context, from, to int64) ([]ledger.Entry, error)
	Entry(ctx context.Context, index int64) (ledger.Entry, error)
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
	LatestFinal() (ledger.SignedCheckpoint, bool)
	ProveInclusion(ctx context.Context, index, size int64) (tlog.RecordProof, error)
	Size() int64
}

// Authorizer decides a query and records the access before anything is
// released (consent.Service).
type Authorizer interface {
	Authorize(ctx context.Context, p ledger.Pseudonym, q consent.Request, records []consent.Record, token []byte, nonce [16]byte) (consent.Authorization, error)
}

// Payloads returns a record's payload and the opening of its commitment;
// records.ErrErased when it was crypto-shredded.
type Payloads func(ctx context.Context, r ledger.Record) ([]byte, records.Opening, error)

// HolderOptions configure a Holder.
type HolderOptions struct {
	Key      ed25519.PrivateKey // the centre's key: signs answers
	Ledger   Ledger
	Consent  Authorizer
	Payloads Payloads
	Charter  func() federation.Charter
	// Rate bounds each member's requests, shared with the centre's other
	// services that the charter's member-rate covers; its own when nil.
	Rate   *federation.MemberRate
	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger
	// Tracer traces each answer (see trace.go); none when nil.
	Tracer trace.TracerProvider
}

// Holder answers queries about the patients whose records this centre
// holds.
type Holder struct {
	host host.Host
	opts HolderOptions
	now  func() time.Time
	log  *slog.Logger

	ackMu sync.Mutex // one receipt recorded at a time: each copy once

	limits  *federation.MemberRate
	tracer  trace.Tracer
	notHeld atomic.Int64 // queries about patients this centre holds nothing of
	held    *heldCache   // the record entries of the patients asked about lately

	pinMu  sync.Mutex
	pinned pinnedFinal // see provenIn

	nonces *wire.ReplayWindow
	server *wire.Server
}

// NewHolder answers the query protocol on h, on streams of one request
// (ProtocolID) and on kept streams (KeptProtocolID). The nonces of the
// access entries of the last 2×MaxSkew are read back from the ledger, so
// a request replayed across a restart is refused too.
func NewHolder(ctx context.Context, h host.Host, opts HolderOptions) (*Holder, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Ledger == nil || opts.Consent == nil || opts.Payloads == nil || opts.Charter == nil {
		return nil, errors.New("query holder: key, ledger, consent, payloads and charter are required")
	}
	s := &Holder{host: h, opts: opts, now: opts.Now, log: opts.Logger, limits: opts.Rate, held: newHeldCache(opts.Ledger), tracer: tracer(opts.Tracer)}
	if s.limits == nil {
		s.limits = federation.NewMemberRate(opts.Charter)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.nonces = wire.NewReplayWindow(2*MaxSkew, s.now)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "query")
	if err := s.loadNonces(ctx); err != nil {
		return nil, err
	}
	srv := &wire.Server{
		Name: "query", Limit: maxReceipt, Timeout: 30 * time.Second, Work: 20 * time.Second, MaxReason: maxReason,
		Admit: federation.MembersOnly(opts.Charter, "query"), Serve: s.serve, Refuse: peerRefusal, Log: s.log,
	}
	h.SetStreamHandler(ProtocolID, srv.Handle)
	h.SetStreamHandler(KeptProtocolID, srv.HandleKept)
	s.server = srv
	return s, nil
}

// Close stops answering, on the kept streams too.
func (s *Holder) Close() {
	s.host.RemoveStreamHandler(ProtocolID)
	s.host.RemoveStreamHandler(KeptProtocolID)
	s.server.Close()
}

// NotHeld returns how many queries this holder answered about patients
// it holds nothing of: counted, never on the ledger.
func (s *Holder) NotHeld() int64 { return s.notHeld.Load() }

// loadNonces reads the ledger back from its end for the queries' access
// entries younger than the replay window.
func (s *Holder) loadNonces(ctx context.Context) error {
	err := consent.RecentNonces(ctx, s.opts.Ledger, s.now().Add(-2*MaxSkew), []consent.Event{consent.EventAccess},
		s.nonces.Saw)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return nil
}

// serve answers one request of member from.
func (s *Holder) serve(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error) {
	switch op {
	case opQuery:
		return s.Answer(ctx, from, req)
	case opReceipt:
		return nil, s.Acknowledge(ctx, from, req)
	}
	return nil, malformed("unknown operation %d", op)
}

// peerRefusal is what a requester is told of a refusal: the protocol's own
// refusals in full, anything else (storage, internals) as a fixed text;
// the detail stays in this centre's log.
func peerRefusal(err error) (byte, string) {
	for _, known := range []error{node.ErrInvalid, ErrSignature, ErrStale, ErrReplay, federation.ErrRateLimited, federation.ErrNotMember, consent.ErrSignature, consent.ErrStale} {
		if errors.Is(err, known) {
			return wire.StatusRefused, err.Error()
		}
	}
	return wire.StatusRefused, "the holder could not answer (an internal error, logged there)"
}

// Answer checks a request from member from and answers it: the access is
// on the ledger before the answer exists.
func (s *Holder) Answer(ctx context.Context, from peer.ID, raw []byte) (answer []byte, err error) {
	if err := s.limits.Allow(from); err != nil {
		return nil, err
	}
	q, err := ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	c := s.opts.Charter()
	ctx, links := underRequest(ctx, q.Nonce)
	ctx, span := s.tracer.Start(ctx, "medfed.query.answer", trace.WithSpanKind(trace.SpanKindServer), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("medfed.requester", memberName(c, from)), attribute.String("medfed.purpose", q.Purpose.String())))
	var resp Response
	defer func() {
		outcome := "refused"
		switch {
		case err == nil && resp.Permit:
			outcome = "released"
		case err == nil:
			outcome = "denied"
		}
		span.SetAttributes(attribute.Int("medfed.released", len(resp.Items)))
		endSpan(span, outcome, err)
	}()
	switch {
	case q.Requester != from:
		return nil, fmt.Errorf("%w: a request signed by another centre than the one sending it", ErrSignature)
	case q.Federation != c.Federation:
		return nil, malformed("a request for federation %q", q.Federation)
	}
	if d := s.now().Sub(q.Time); d > MaxSkew || d < -MaxSkew {
		return nil, fmt.Errorf("%w: made %v from this centre's clock, at most %v", ErrStale, d.Round(time.Millisecond), MaxSkew)
	}
	if !s.nonces.First(from, q.Nonce) {
		return nil, ErrReplay
	}
	// Everything that can refuse the request comes before the decision:
	// after it, the access is on the ledger and the answer must follow.
	sl, err := newSealer(q.Key, s.host.ID(), q.Nonce)
	if err != nil {
		return nil, err
	}
	latest, _ := s.opts.Ledger.LatestFinal()
	held, pending, holds, err := s.records(ctx, q, latest.Size)
	if err != nil {
		return nil, err
	}
	if !holds {
		// A patient this centre holds nothing of: nothing to protect,
		// nothing to record (no member grows the ledger with questions
		// about strangers), a count and an answer that says so.
		s.notHeld.Add(1)
		resp = Response{Holder: s.host.ID(), Subject: q.Subject, Nonce: q.Nonce, Basis: consent.BasisNotHeld, Reason: "this centre holds no records of the patient"}
		return resp.Sign(s.opts.Key)
	}
	asked := make([]consent.Record, len(held))
	for i, h := range held {
		asked[i] = consent.Record{Class: h.rec.DataClass, Recorded: h.rec.Occurred, Index: h.entry.Index}
	}
	cq := q.consent()
	cq.Time = s.now()
	auth, err := s.opts.Consent.Authorize(ctx, q.Subject, cq, asked, q.Token, q.Nonce)
	if err != nil {
		return nil, err
	}
	resp = Response{Holder: s.host.ID(), Subject: q.Subject, Nonce: q.Nonce, Access: auth.Access, Session: auth.Session}
	if auth.Released > 0 {
		final := s.provenIn(c.Version, latest, held)
		if resp.Items, err = s.release(ctx, sl, held, auth.Decisions, final); err != nil {
			return nil, err
		}
		resp.Checkpoint, resp.Enc = final.Note, sl.enc
		resp.Permit = true
		resp.Denied, resp.Pending = uint32(len(held)-auth.Released), uint32(pending)
		d := auth.Decisions[slices.IndexFunc(auth.Decisions, func(d consent.Decision) bool { return d.Permit })]
		resp.Basis, resp.Reason = d.Basis, d.Reason()
	} else {
		// Nothing released: say why the query itself is denied, never
		// whether this centre holds records of a class or a time.
		resp.Basis, resp.Reason = auth.Query.Basis, auth.Query.Reason()
		if auth.Query.Permit {
			resp.Reason = "nothing this request may see at this centre"
		}
	}
	resp.Reason = resp.Reason[:min(len(resp.Reason), maxReason)]
	s.log.Info("query answered", "from", from, "pseudonym", q.Subject, "purpose", q.Purpose.String(), "released", auth.Released, "denied", resp.Denied, "pending", pending, "access", auth.Access)
	return resp.Sign(s.opts.Key)
}

// checkpointReuse is how long a holder goes on proving its answers in
// the same final checkpoint, while that covers every record they could
// release: a requester verifies a checkpoint's cosignatures once (see
// Client.openFinal), and a holder whose ledger grows with every access
// would otherwise show it a new checkpoint with nearly every answer. The
// records released and counted pending are the same in either. At one
// second, a requester asking a holder a few times a second checked a
// new checkpoint's cosignatures (eight signatures, about 0.4 ms) in one
// answer of a few, on the query's path; at ten, in one of dozens.
const checkpointReuse = 10 * time.Second

// pinnedFinal is the final checkpoint a holder proves its answers in.
type pinnedFinal struct {
	cp      ledger.SignedCheckpoint
	version uint64    // the charter version it was final under when pinned
	at      time.Time // when it was pinned (monotonic)
}

// provenIn returns the final checkpoint to prove held in: the one pinned,
// while it is young, final under the charter in force and covers every
// record held; latest otherwise, pinned in its place.
func (s *Holder) provenIn(version uint64, latest ledger.SignedCheckpoint, held []heldRecord) ledger.SignedCheckpoint {
	last := int64(-1)
	for _, h := range held {
		last = max(last, h.entry.Index)
	}
	now := time.Now()
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	p := s.pinned
	if p.version == version && last < p.cp.Size && p.cp.Size <= latest.Size && now.Sub(p.at) < checkpointReuse {
		return p.cp
	}
	s.pinned = pinnedFinal{cp: latest, version: version, at: now}
	return latest
}

// heldRecord is a record entry the request covers.
type heldRecord struct {
	entry ledger.Entry
	rec   ledger.Record
}

// records returns the current versions of the patient's records in the
// classes asked for, up to the final checkpoint, and how many are newer.
func (s *Holder) records(ctx context.Context, q Request, final int64) (out []heldRecord, pending int, holds bool, err error) {
	es, err := s.held.entries(ctx, q.Subject)
	if err != nil {
		return nil, 0, false, err
	}
	replaced, erased := map[int64]bool{}, map[int64]bool{}
	var recs []heldRecord
	for _, e := range es {
		if e.Kind == ledger.KindErasure {
			x, err := e.Erasure()
			if err != nil {
				return nil, 0, false, err
			}
			erased[x.Target] = true
			continue
		}
		if e.Kind != ledger.KindRecord && e.Kind != ledger.KindAmendment {
			continue
		}
		r, err := e.Record()
		if err != nil {
			return nil, 0, false, err
		}
		if e.Kind == ledger.KindAmendment {
			replaced[r.Replaces] = true
		}
		if len(q.Classes) == 0 || slices.Contains(q.Classes, r.DataClass) {
			recs = append(recs, heldRecord{e, r})
		}
	}
	for _, e := range es { // held while any record's payload is not erased
		holds = holds || (e.Kind != ledger.KindErasure && !erased[e.Index])
	}
	for _, h := range recs {
		switch {
		case replaced[h.entry.Index]:
		case h.entry.Index >= final:
			pending++
		default:
			out = append(out, h)
		}
	}
	return out, pending, holds, nil
}

// release proves and seals the permitted records against the final
// checkpoint.
func (s *Holder) release(ctx context.Context, sl *sealer, held []heldRecord, decisions []consent.Decision, final ledger.SignedCheckpoint) ([]Item, error) {
	var items []Item
	for i, h := range held {
		if i >= len(decisions) || !decisions[i].Permit {
			continue
		}
		enc, err := h.entry.Encode()
		if err != nil {
			return nil, err
		}
		proof, err := s.opts.Ledger.ProveInclusion(ctx, h.entry.Index, final.Size)
		if err != nil {
			return nil, err
		}
		it := Item{Index: h.entry.Index, Entry: enc, Proof: proof}
		payload, opening, err := s.opts.Payloads(ctx, h.rec)
		switch {
		case errors.Is(err, records.ErrErased):
			// The entry is proven; its payload is gone for good.
		case errors.Is(err, node.ErrNotFound):
			// Not held since a restore, which brings back the entries
			// appended after the backup from the witnesses, but not
			// their payloads: released as an erased one is, and told.
			s.log.Warn("a released record's payload is not held: lost with a disk", "index", h.entry.Index)
		case err != nil:
			return nil, err
		default:
			if it.Sealed, err = sl.seal(h.entry.Index, opening[:], payload); err != nil {
				return nil, err
			}
		}
		items = append(items, it)
	}
	return items, nil
}
