package prescription

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the prescription protocol: one signed claim per stream
// (a frame of op 1), answered by a frame of status 0 and a signed
// Confirmation, or of a refusal status and the reason in words. A
// refusal's status is refusedBase plus the error's node.Kind, so the
// claimant knows a conflict (nothing left to dispense) from a failure.
const ProtocolID = "/medfed/prescription/1"

const opClaim byte = 1

// refusedBase is the first refusal status: refusedBase+k refuses with an
// error of kind k.
const refusedBase byte = 0x10

// settledBase is the first status of a refusal that settles the claim:
// settledBase+k refuses with an error of kind k, given once the issuer
// read the prescription and found no supply dispensed for the claim, and
// it never dispenses that claim (see Claim). A pharmacy forgets a pending
// claim refused so, and only so (Client).
const settledBase byte = 0x20

// settledError is a refusal that settles its claim (settledBase): the
// issuer's, and the pharmacy's reading of it.
type settledError struct{ error }

func (e settledError) Unwrap() error { return e.error }

// settled marks err as a refusal that settles its claim.
func settled(err error) error { return settledError{err} }

// MaxSkew is how far a claim's time may be from the issuer's clock.
const MaxSkew = 30 * time.Second

// The refusals a claim or a cancellation meets. A claim of an index that
// holds no prescription of this centre, or whose secret does not open it,
// is refused with ErrNoPrescription either way, so a member guessing
// indexes learns nothing.
var (
	ErrNoPrescription = node.E(node.NotFound, "no prescription of this centre matches the token")
	ErrCancelled      = node.E(node.Conflict, "the prescription is cancelled")
	ErrNotYetValid    = node.E(node.Conflict, "the prescription is not valid yet")
	ErrExpired        = node.E(node.Conflict, "the prescription has expired")
	ErrNoneLeft       = node.E(node.Conflict, "every supply of the prescription is dispensed")
	ErrErased         = node.E(node.Conflict, "the prescription was erased at the patient's request")
	ErrStale          = node.E(node.Invalid, "prescription claim out of time")
	ErrReplay         = node.E(node.Conflict, "prescription claim replayed")
	ErrNotPrescriber  = node.E(node.Forbidden, "only the prescriber cancels a prescription")
)

// Ledger is what the issuer needs of its ledger.
type Ledger interface {
	Entry(ctx context.Context, index int64) (ledger.Entry, error)
	Entries(ctx context.Context, from, to int64) ([]ledger.Entry, error)
	EntriesForKinds(ctx context.Context, p ledger.Pseudonym, kinds ...ledger.Kind) ([]ledger.Entry, error)
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
	Size() int64
}

// Payloads returns a record's payload, checked against its commitment;
// an error of ErrErased's meaning (ErasedError reports it) when it was
// crypto-shredded.
type Payloads func(ctx context.Context, r ledger.Record) ([]byte, error)

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	Key      ed25519.PrivateKey // the centre's key: signs confirmations
	Ledger   Ledger
	Payloads Payloads
	// Erased reports whether a Payloads error means the payload was
	// crypto-shredded.
	Erased  func(error) bool
	Charter func() federation.Charter
	// Rate bounds each member's requests, shared with the centre's other
	// services that the charter's member-rate covers; its own when nil.
	Rate   *federation.MemberRate
	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger
}

// Issuer dispenses the prescriptions this centre issued, one claim of a
// prescription at a time, and cancels them.
type Issuer struct {
	host  host.Host
	id    peer.ID
	opts  IssuerOptions
	now   func() time.Time
	log   *slog.Logger
	rate  *federation.MemberRate
	locks keyedMutex[int64]

	nonces *wire.ReplayWindow
}

// NewIssuer answers /medfed/prescription/1 on h (none when h is nil: the
// centre's own claims only). The nonces of the dispense entries of the
// last 2×MaxSkew are read back from the ledger, so a claim replayed
// across a restart is refused too.
func NewIssuer(ctx context.Context, h host.Host, opts IssuerOptions) (*Issuer, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Ledger == nil || opts.Payloads == nil || opts.Charter == nil {
		return nil, errors.New("prescription issuer: key, ledger, payloads and charter are required")
	}
	id, err := federation.PeerIDFromKey(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("prescription issuer: %w", err)
	}
	s := &Issuer{host: h, id: id, opts: opts, now: opts.Now, log: opts.Logger, rate: opts.Rate}
	if s.now == nil {
		s.now = time.Now
	}
	s.nonces = wire.NewReplayWindow(2*MaxSkew, s.now)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Erased == nil {
		s.opts.Erased = func(error) bool { return false }
	}
	s.log = s.log.With("component", "prescription")
	if s.rate == nil {
		s.rate = federation.NewMemberRate(opts.Charter)
	}
	if err := s.loadNonces(ctx); err != nil {
		return nil, err
	}
	if h != nil {
		srv := &wire.Server{
			Name: "prescription", Limit: maxClaim, Timeout: 30 * time.Second, Work: 20 * time.Second, MaxReason: maxReason,
			Admit: federation.MembersOnly(opts.Charter, "prescription"), Serve: s.serve, Refuse: refusal, Log: s.log,
		}
		h.SetStreamHandler(ProtocolID, srv.Handle)
	}
	return s, nil
}

// Close stops answering.
func (s *Issuer) Close() {
	if s.host != nil {
		s.host.RemoveStreamHandler(ProtocolID)
	}
}

// loadNonces reads the ledger back from its end for the dispense entries
// younger than the replay window.
func (s *Issuer) loadNonces(ctx context.Context) error {
	err := ledger.ScanRecent(ctx, s.opts.Ledger, s.now().Add(-2*MaxSkew), ledger.KindDispense, func(e ledger.Entry) error {
		d, err := e.Dispense()
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
		if len(d.Issuer) == 0 {
			s.nonces.Saw(peer.ID(d.Pharmacy), d.Nonce, e.Time)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prescription: reading recent dispenses: %w", err)
	}
	return nil
}

func (s *Issuer) serve(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error) {
	if op != opClaim {
		return nil, wire.Malformed("prescription request", "unknown operation %d", op)
	}
	return s.Claim(ctx, from, req)
}

// refusal is what a claimant is told of a refusal: the error's kind in
// the status, the protocol's own refusals in full, anything else (a disk,
// a bug) as a fixed text; the detail stays in this centre's log.
func refusal(err error) (byte, string) {
	k := node.KindOf(err)
	if k == node.Internal {
		return refusedBase + byte(k), "the issuing centre could not answer (an internal error, logged there)"
	}
	if errors.As(err, new(settledError)) {
		return settledBase + byte(k), err.Error()
	}
	return refusedBase + byte(k), err.Error()
}

// Claim checks a claim from member from and, when a supply is left,
// dispenses it: the dispense entry is on the ledger before the signed
// confirmation exists. A claim is answered once with a supply: the same
// claim again (its nonce), however late, is a pharmacy whose
// confirmation was lost on the way, and gets the confirmation of the
// supply it dispensed, with nothing appended; any other claim seen
// before is a replay. A refusal once the prescription is read and no
// supply found for the claim (a secret that does not open it, replayed,
// stale, cancelled, none left, out of its validity) settles the claim:
// it is never dispensed, and the pharmacy may claim anew.
func (s *Issuer) Claim(ctx context.Context, from peer.ID, raw []byte) ([]byte, error) {
	if err := s.rate.Allow(from); err != nil {
		return nil, err
	}
	c, err := ParseClaim(raw)
	if err != nil {
		return nil, err
	}
	fed := s.opts.Charter().Federation
	switch {
	case c.Pharmacy != from:
		return nil, fmt.Errorf("%w: a claim signed by another centre than the one sending it", ErrSignature)
	case c.Federation != fed:
		return nil, wire.Malformed("prescription claim", "a claim for federation %q", c.Federation)
	case c.Issuer != s.id:
		return nil, wire.Malformed("prescription claim", "a claim for another issuing centre")
	}
	unlock := s.locks.lock(c.Prescription)
	defer unlock()
	st, err := s.Status(ctx, c.Prescription)
	switch {
	case errors.Is(err, ErrNoPrescription):
		return nil, settled(ErrNoPrescription)
	case err != nil:
		return nil, err
	}
	// The secret first: whoever does not hold it learns nothing of the
	// prescription, not even that it exists (or was erased). Each of
	// these refusals settles the claim, and the same way as a claim of an
	// index without a prescription: none is ever dispensed.
	hash := c.Secret.Hash()
	if st.Erased || subtle.ConstantTimeCompare(hash[:], st.Prescription.ClaimHash[:]) != 1 {
		return nil, settled(ErrNoPrescription)
	}
	p := st.Prescription
	// The same claim again, whenever it comes: a pharmacy whose answer
	// was lost, asking again now or after a restart, gets the supply it
	// was dispensed. Under the prescription's lock, so that a try still
	// running has appended its dispense, or failed, by now; and before
	// the claim's time is checked, so that a pharmacy that gave up and
	// asks again later still learns of its supply.
	if i := slices.IndexFunc(st.Dispenses, func(d Dispensed) bool { return d.Nonce == c.Nonce && peer.ID(d.Pharmacy) == from }); i >= 0 {
		d := st.Dispenses[i]
		s.log.Info("prescription dispense confirmed again", "to", from, "pseudonym", st.Subject, "prescription", st.Index, "fill", d.Fill, "dispense", d.Index)
		return s.confirm(fed, from, st, d.Fill, d.Index, c.Nonce, d.Time)
	}
	// Every refusal from here on settles the claim: its nonce is taken
	// first (under the lock, so that of two tries of one claim the one
	// that takes the lock first is the first, and a try that comes later
	// is a replay even once a claim from the future is in time), then it
	// is stale, or cannot be dispensed.
	if !s.nonces.First(from, c.Nonce) {
		return nil, settled(ErrReplay)
	}
	if d := s.now().Sub(c.Time); d > MaxSkew || d < -MaxSkew {
		return nil, settled(fmt.Errorf("%w: made %v from this centre's clock, at most %v", ErrStale, d.Round(time.Millisecond), MaxSkew))
	}
	now := s.now()
	switch {
	case st.Cancelled != nil:
		return nil, settled(ErrCancelled)
	case st.Left() == 0:
		return nil, settled(fmt.Errorf("%w: %d of %d", ErrNoneLeft, len(st.Dispenses), p.Supplies()))
	case now.Before(p.ValidFrom):
		return nil, settled(fmt.Errorf("%w: from %s", ErrNotYetValid, p.ValidFrom.Format(time.RFC3339)))
	case !now.Before(p.ValidUntil):
		return nil, settled(fmt.Errorf("%w: on %s", ErrExpired, p.ValidUntil.Format(time.RFC3339)))
	}
	fill := uint8(len(st.Dispenses) + 1)
	e, err := ledger.NewDispense(st.Subject, ledger.Dispense{Prescription: st.Index, Fill: fill, Pharmacy: []byte(from), Pharmacist: c.Pharmacist, Nonce: c.Nonce})
	if err != nil {
		return nil, err
	}
	at, err := s.opts.Ledger.Append(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("prescription: recording the dispense: %w", err)
	}
	// Durable: the supply is dispensed whatever happens to the answer.
	s.log.Info("prescription dispensed", "to", from, "pseudonym", st.Subject, "prescription", st.Index, "fill", fill, "of", p.Supplies(), "dispense", at)
	// Confirmed at the entry's time, the same each time it is confirmed;
	// read back whatever becomes of ctx, now that it is dispensed.
	de, err := s.opts.Ledger.Entry(context.WithoutCancel(ctx), at)
	if err != nil {
		return nil, fmt.Errorf("prescription: reading the dispense back: %w", err)
	}
	return s.confirm(fed, from, st, fill, at, c.Nonce, de.Time)
}

// confirm signs the confirmation of supply fill of prescription st,
// dispensed to pharmacy by entry dispense, appended at time at, for the
// claim of nonce.
func (s *Issuer) confirm(fed string, pharmacy peer.ID, st Status, fill uint8, dispense int64, nonce [16]byte, at time.Time) ([]byte, error) {
	p := st.Prescription
	content, err := p.Encode()
	if err != nil {
		return nil, err
	}
	conf := Confirmation{Federation: fed, Issuer: s.id, Pharmacy: pharmacy, Subject: st.Subject, Prescription: st.Index, Fill: fill,
		Supplies: uint8(p.Supplies()), Dispense: dispense, Nonce: nonce, Time: at.UTC(), Content: content}
	return conf.Sign(s.opts.Key)
}

// Cancel cancels the prescription at index on behalf of its prescriber:
// no supply is dispensed after the cancellation entry, whose index it
// returns.
func (s *Issuer) Cancel(ctx context.Context, index int64, prescriber ledger.StaffID, reason ledger.CancelReason) (int64, error) {
	if !reason.Valid() {
		return 0, fmt.Errorf("%w: a cancellation's reason: %v", node.ErrInvalid, reason)
	}
	unlock := s.locks.lock(index)
	defer unlock()
	st, err := s.Status(ctx, index)
	if err != nil {
		return 0, err
	}
	switch {
	case st.Cancelled != nil:
		return 0, fmt.Errorf("%w: already, by entry %d", ErrCancelled, st.Cancelled.Index)
	case st.Erased:
		return 0, ErrErased
	case st.Prescription.Prescriber != prescriber:
		return 0, ErrNotPrescriber
	case st.Left() == 0:
		return 0, fmt.Errorf("%w: nothing is left to cancel", ErrNoneLeft)
	}
	e, err := ledger.NewCancellation(st.Subject, ledger.Cancellation{Prescription: index, Prescriber: prescriber, Reason: reason})
	if err != nil {
		return 0, err
	}
	at, err := s.opts.Ledger.Append(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("prescription: recording the cancellation: %w", err)
	}
	s.log.Info("prescription cancelled", "pseudonym", st.Subject, "prescription", index, "reason", reason.String(), "cancellation", at)
	return at, nil
}

// Status returns the prescription this centre issued at index, as its
// ledger has it now: its record entry, its payload and the patient's
// dispense and cancellation entries.
func (s *Issuer) Status(ctx context.Context, index int64) (Status, error) {
	if index <= 0 || index >= s.opts.Ledger.Size() {
		return Status{}, ErrNoPrescription
	}
	rec, err := s.opts.Ledger.Entry(ctx, index)
	if err != nil {
		return Status{}, err
	}
	r, err := rec.Record()
	if err != nil || rec.Kind != ledger.KindRecord || r.DataClass != Class {
		return Status{}, ErrNoPrescription
	}
	es, err := s.opts.Ledger.EntriesForKinds(ctx, rec.Subject, ledger.KindDispense, ledger.KindCancellation)
	if err != nil {
		return Status{}, err
	}
	return s.statusOf(ctx, rec, r, es)
}

// statusOf reads the status of the prescription of record entry rec
// (record r) from the patient's entries es.
func (s *Issuer) statusOf(ctx context.Context, rec ledger.Entry, r ledger.Record, es []ledger.Entry) (Status, error) {
	payload, err := s.opts.Payloads(ctx, r)
	erased := err != nil && s.opts.Erased(err)
	switch {
	case err == nil, erased:
	case errors.Is(err, node.ErrNotFound):
		// Lost with a disk and restored without it: nothing to dispense.
		return Status{}, ErrNoPrescription
	default:
		return Status{}, err
	}
	if !erased && !IsPrescription(payload) {
		return Status{}, ErrNoPrescription // a document of the class, not a prescription
	}
	st, err := StatusOf(rec, payload, erased, es)
	if err != nil {
		return Status{}, err
	}
	if !erased && st.Prescription.Issuer != s.id {
		// A copy that a transfer brought here: only its issuer dispenses.
		return Status{}, ErrNoPrescription
	}
	return st, nil
}

// StatusesOf returns every prescription this centre issued for patient p,
// oldest first, reading nothing but the patient's entries.
func (s *Issuer) StatusesOf(ctx context.Context, p ledger.Pseudonym) ([]Status, error) {
	es, err := s.opts.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindDispense, ledger.KindCancellation)
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, e := range es {
		if e.Kind != ledger.KindRecord {
			continue
		}
		r, err := e.Record()
		if err != nil || r.DataClass != Class {
			continue
		}
		st, err := s.statusOf(ctx, e, r, es)
		switch {
		case errors.Is(err, ErrNoPrescription):
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// keyedMutex holds one lock per key (a prescription's index at the
// issuer; a prescription, by issuer and index, at a pharmacy), while
// anyone holds or waits for it: claims of one prescription are served
// one at a time, those of different prescriptions side by side, and
// memory stays with the claims in flight.
type keyedMutex[K comparable] struct {
	mu    sync.Mutex
	locks map[K]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

// lock takes the lock of k and returns its release.
func (m *keyedMutex[K]) lock(k K) func() {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[K]*keyedLock{}
	}
	l := m.locks[k]
	if l == nil {
		l = &keyedLock{}
		m.locks[k] = l
	}
	l.users++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.locks, k)
		}
		m.mu.Unlock()
	}
}
