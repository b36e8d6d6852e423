package patient

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the patient protocol: one signed request per stream (a
// frame of op 1), answered by a frame of status 0 and a signed Answer, or
// of status 1 and the reason of a refusal.
const ProtocolID = "/medfed/patient/1"

const opRequest byte = 1

// Ledger is what a holder needs of its ledger.
type Ledger interface {
	EntriesFor(ctx context.Context, p ledger.Pseudonym) ([]ledger.Entry, error)
	Entries(ctx context.Context, from, to int64) ([]ledger.Entry, error)
	EntriesForKinds(ctx context.Context, p ledger.Pseudonym, kinds ...ledger.Kind) ([]ledger.Entry, error)
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
	Size() int64
	LatestFinal() (ledger.SignedCheckpoint, bool)
	ProveInclusion(ctx context.Context, index, size int64) (tlog.RecordProof, error)
}

// Authenticator checks a patient's signature against the keys members
// attested, and that a key erasing has been in force for the charter's
// key notice; or a delegate's against the patient's delegations
// (consent.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, signed wire.Opened, issued time.Time) error
	Settled(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey) error
	AuthenticateDelegate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, scope consent.Scope, signed wire.Opened, issued time.Time) (consent.Acting, error)
}

// Options configure a Service.
type Options struct {
	Key     ed25519.PrivateKey // the centre's key: signs answers
	Ledger  Ledger
	Consent Authenticator
	// Erase crypto-shreds the payloads of every record of p and appends
	// their erasure entries; erasing again appends nothing.
	Erase func(ctx context.Context, p ledger.Pseudonym) (int, error)
	// Payload returns the payload of the record at index: an error of
	// records.ErrErased or node.ErrNotFound for one erased or lost, which
	// Records sends without it; any other error fails the answer.
	Payload func(ctx context.Context, index int64) ([]byte, error)
	// Withdraw takes this centre out of the directory for p.
	Withdraw func(ctx context.Context, p ledger.Pseudonym) error
	// Holders finds the centres holding p's records (the directory, read
	// at every replica of p's key).
	Holders func(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error)
	// Charter is the federation's current charter: its members may relay,
	// and a relay asks each of them besides the holders while there are
	// at most AskEvery.
	Charter func() federation.Charter
	// AskEvery is the largest federation a relay asks whole;
	// DefaultAskEvery when zero.
	AskEvery int
	// Rate bounds each relay's requests, shared with the centre's other
	// services that the charter's member-rate covers; its own when nil.
	Rate    *federation.MemberRate
	Timeout time.Duration // per holder, as relay; 10 s when zero (an erasure gets 45 s)
	// PageSize bounds the entries of one view's answer; 65,536 when zero
	// (a test sets it small). The patient asks for the rest with a cursor.
	PageSize int
	Now      func() time.Time // time.Now when nil
	Logger   *slog.Logger
}

// Service answers patients' requests as a holder and relays them as the
// centre a patient asks through.
type Service struct {
	host host.Host
	opts Options
	log  *slog.Logger

	limits *federation.MemberRate // each relay's requests, at the charter's member-rate

	nonces *wire.ReplayWindow // requests answered, until they are too old to replay
}

// New answers /medfed/patient/1 on h.
func New(ctx context.Context, h host.Host, opts Options) (*Service, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Ledger == nil || opts.Consent == nil || opts.Erase == nil || opts.Payload == nil ||
		opts.Withdraw == nil || opts.Holders == nil || opts.Charter == nil {
		return nil, errors.New("patient service: key, ledger, consent, erase, payload, withdraw, holders and charter are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{host: h, opts: opts, log: log.With("component", "patient"), nonces: wire.NewReplayWindow(2*MaxSkew, opts.Now), limits: opts.Rate}
	if s.limits == nil {
		s.limits = federation.NewMemberRate(opts.Charter)
	}
	// The requests answered within the replay window, from the ledger:
	// each was recorded there before its answer left, so a request
	// replayed across a restart is refused too.
	if err := consent.RecentNonces(ctx, opts.Ledger, opts.Now().Add(-2*MaxSkew), []consent.Event{consent.EventPatientView, consent.EventPatientErase, consent.EventPatientRecords},
		s.nonces.Saw); err != nil {
		return nil, fmt.Errorf("patient service: %w", err)
	}
	srv := &wire.Server{
		Name: "patient", Limit: maxRequest, Timeout: 60 * time.Second, Work: 50 * time.Second, MaxReason: maxProblem,
		Admit: federation.MembersOnly(opts.Charter, "patient"), Serve: s.serve, Refuse: peerRefusal, Log: s.log,
	}
	h.SetStreamHandler(ProtocolID, srv.Handle)
	return s, nil
}

// Close stops answering.
func (s *Service) Close() { s.host.RemoveStreamHandler(ProtocolID) }

// serve answers one request relayed by member from.
func (s *Service) serve(ctx context.Context, from peer.ID, op byte, req []byte) ([]byte, error) {
	if op != opRequest {
		return nil, malformed("unknown operation %d", op)
	}
	return s.Answer(ctx, from, req)
}

// peerRefusal is what a relay is told of a refusal: the protocol's own
// refusals in full, anything else as a fixed text (the detail stays in
// this centre's log).
func peerRefusal(err error) (byte, string) {
	for _, known := range []error{node.ErrInvalid, ErrSignature, ErrStale, federation.ErrRateLimited, federation.ErrNotMember, consent.ErrSignature, consent.ErrStale} {
		if errors.Is(err, known) {
			return wire.StatusRefused, err.Error()
		}
	}
	return wire.StatusRefused, "the holder could not answer (an internal error, logged there)"
}

// Answer checks a request relayed by member from and answers it as a
// holder, after recording it on the ledger (who relayed it, which
// request): the patient's view shows their own requests too. A centre
// that holds nothing about the patient (see holds) answers so, and
// records nothing: in a federation asked whole every member is asked,
// and would otherwise log every view at each, about patients most of
// them never saw.
func (s *Service) Answer(ctx context.Context, from peer.ID, raw []byte) ([]byte, error) {
	if err := s.limits.Allow(from); err != nil {
		return nil, err
	}
	q, via, err := s.check(ctx, raw, from, ErrSignature)
	if err != nil {
		return nil, err
	}
	if !s.nonces.First(from, q.Nonce) {
		return nil, fmt.Errorf("%w: a request answered before", ErrStale)
	}
	a := Answer{Op: q.Op, Holder: s.host.ID(), Subject: q.Subject, Nonce: q.Nonce}
	// Decided after the check, which may have appended the patient's
	// consent documents (holds leaves them out), and before anything of
	// this request is.
	held, err := s.holds(ctx, q.Op, q.Subject)
	if err != nil {
		return nil, err
	}
	if !held {
		a.Nothing, a.Size = true, s.opts.Ledger.Size()
		return a.Sign(s.opts.Key)
	}
	audit := consent.AccessEntry{Event: consent.EventPatientView, Requester: from, Permitted: true, Nonce: q.Nonce, Ref: via}
	if q.Op == Erase {
		// The payloads first: the entries about the patient then show it.
		n, err := s.opts.Erase(ctx, q.Subject)
		if err != nil {
			return nil, err
		}
		audit.Event, audit.Released = consent.EventPatientErase, uint32(n)
	}
	if q.Op == Records {
		// Sealed first: the access entry then says what the answer
		// sends, and a request that cannot be answered records nothing.
		n, err := s.sealRecords(ctx, q, &a)
		if err != nil {
			return nil, err
		}
		audit.Event, audit.Released = consent.EventPatientRecords, uint32(n)
	}
	le, err := consent.NewAccess(q.Subject, audit)
	if err != nil {
		return nil, err
	}
	if _, err := s.opts.Ledger.Append(ctx, le); err != nil {
		return nil, err
	}
	switch q.Op {
	case View:
		es, err := s.opts.Ledger.EntriesFor(ctx, q.Subject)
		if err != nil {
			return nil, err
		}
		from, page := q.From(s.host.ID()), cmp.Or(s.opts.PageSize, maxEntries)
		for _, e := range es {
			if e.Index < from || (e.Kind == ledger.KindConsent || e.Kind == ledger.KindRevocation) && !keyDocument(e) {
				continue // before the cursor, or the patient's own documents: consent show has them
			}
			if len(a.Entries) == page {
				a.Next = e.Index // the rest on the next page
				break
			}
			b, err := e.Encode()
			if err != nil {
				return nil, err
			}
			a.Entries = append(a.Entries, b)
		}
	case Records:
		s.log.Info("patient's records sent", "pseudonym", q.Subject, "records", audit.Released)
	case Erase:
		es, err := s.opts.Ledger.EntriesForKinds(ctx, q.Subject, ledger.KindErasure)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			b, err := e.Encode()
			if err != nil {
				return nil, err
			}
			a.Entries = append(a.Entries, b)
		}
		if err := s.opts.Withdraw(ctx, q.Subject); err != nil {
			// The payloads are gone: say so, and why the announcement
			// stays until it expires.
			a.Problem = "the directory announcement is not withdrawn everywhere: " + err.Error()
			a.Problem = a.Problem[:min(len(a.Problem), maxProblem)]
		} else {
			a.Withdrawn = true
		}
		s.log.Info("patient's records erased", "pseudonym", q.Subject, "erasures", len(a.Entries), "withdrawn", a.Withdrawn)
	}
	a.Size = s.opts.Ledger.Size()
	if err := s.prove(ctx, &a); err != nil {
		return nil, err
	}
	return a.Sign(s.opts.Key)
}

// maxProofBytes bounds the proofs of one answer: a patient's entries are
// proven as far as they fit beside the entries in a frame, and the
// patient's view shows which are.
const maxProofBytes = 2 << 20

// prove adds the holder's latest final checkpoint and the inclusion proof
// in it of each entry of a that it covers, in order, as far as
// maxProofBytes allows.
func (s *Service) prove(ctx context.Context, a *Answer) error {
	final, ok := s.opts.Ledger.LatestFinal()
	if !ok {
		return nil
	}
	a.Checkpoint = final.Note
	total := 0
	for _, b := range a.Entries {
		e, err := ledger.Decode(b)
		if err != nil {
			return err
		}
		if e.Index >= final.Size {
			break
		}
		p, err := s.opts.Ledger.ProveInclusion(ctx, e.Index, final.Size)
		if err != nil {
			return err
		}
		if total += 32 * len(p); total > maxProofBytes {
			break
		}
		a.Proofs = append(a.Proofs, p)
	}
	return nil
}

// holds reports whether this centre holds anything about patient p that
// op concerns: for View, any entry about them but the consent documents
// (the patient's own, and the attestations of their key), which a member
// keeps as one of the federation's consent majority whether it ever saw
// the patient or not; for Erase, a record to erase; for Records, a record
// to send.
func (s *Service) holds(ctx context.Context, op Op, p ledger.Pseudonym) (bool, error) {
	if op == Erase || op == Records {
		es, err := s.opts.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindAmendment)
		if err != nil {
			return false, fmt.Errorf("patient answer: %w", err)
		}
		return len(es) > 0, nil
	}
	es, err := s.opts.Ledger.EntriesFor(ctx, p)
	if err != nil {
		return false, fmt.Errorf("patient answer: %w", err)
	}
	return slices.ContainsFunc(es, func(e ledger.Entry) bool {
		return e.Kind != ledger.KindConsent && e.Kind != ledger.KindRevocation
	}), nil
}

// maxSealed bounds the entries and payloads of one Records answer,
// under the frame's 16 MiB with room for the proofs (maxProofBytes) and
// the rest: the records that do not fit follow on the next page
// (Answer.Next); a payload larger than that alone is sent as too large,
// for the patient to ask the holder for.
const maxSealed = 12 << 20

// sealRecords puts the patient's record entries from q's cursor on, a
// page of them, and their payloads sealed to the patient's key, in a,
// and returns how many records it sends. A payload erased, or lost with
// a disk, goes without its bytes; any other failure to read one (a
// payload that no longer matches its commitment on the ledger) fails the
// answer: it is never passed off as erased.
func (s *Service) sealRecords(ctx context.Context, q Request, a *Answer) (int, error) {
	es, err := s.opts.Ledger.EntriesForKinds(ctx, q.Subject, ledger.KindRecord, ledger.KindAmendment)
	if err != nil {
		return 0, err
	}
	from, page := q.From(s.host.ID()), cmp.Or(s.opts.PageSize, maxEntries)
	var sealed []SealedRecord
	total := 0
	for _, e := range es {
		if e.Index < from {
			continue
		}
		if len(sealed) == page {
			a.Next = e.Index
			break
		}
		b, err := e.Encode()
		if err != nil {
			return 0, err
		}
		r := SealedRecord{Index: e.Index}
		p, err := s.opts.Payload(ctx, e.Index)
		switch {
		case errors.Is(err, records.ErrErased) || errors.Is(err, node.ErrNotFound):
		case err != nil:
			s.log.Warn("a record the patient asked for cannot be read", "index", e.Index, "error", err)
			return 0, fmt.Errorf("record %d: %w", e.Index, err)
		case len(b)+len(p) > maxSealed:
			r.TooLarge = true
		default:
			r.Payload = p
		}
		if total += len(b) + len(r.Payload); total > maxSealed {
			a.Next = e.Index
			break
		}
		a.Entries = append(a.Entries, b)
		sealed = append(sealed, r)
	}
	a.Sealed, err = SealRecords(q.Seal, s.host.ID(), q.Nonce, sealed)
	return len(sealed), err
}

// keyDocument reports whether a consent entry is an attestation of the
// patient's key, an approval or a veto: what the patient is told of, as
// their view's notifications.
func keyDocument(e ledger.Entry) bool {
	if e.Kind != ledger.KindConsent {
		return false
	}
	d, err := consent.Parse(e.Body)
	return err == nil && (d.Kind == consent.KindAttestation || d.Kind == consent.KindApproval || d.Kind == consent.KindVeto)
}

// check parses a request relayed by from and authenticates who signed
// it: the patient, or a delegate acting within a delegation in force for
// the request's scope, whose delegation it returns (zero for the
// patient). The cheap checks come first. A request naming another relay
// fails with wrongRelay: a holder's refusal of a forwarded request
// (ErrSignature), or a relay's of a request meant for another
// (node.ErrInvalid).
func (s *Service) check(ctx context.Context, raw []byte, from peer.ID, wrongRelay error) (Request, consent.ID, error) {
	q, err := ParseRequest(raw)
	if err != nil {
		return q, consent.ID{}, err
	}
	switch {
	case q.Relay != from:
		return q, consent.ID{}, fmt.Errorf("%w: the request names another centre as its relay", wrongRelay)
	case q.Federation != s.opts.Charter().Federation:
		return q, consent.ID{}, malformed("a request for federation %q", q.Federation)
	}
	if d := s.opts.Now().Sub(q.Time); d > MaxSkew || d < -MaxSkew {
		return q, consent.ID{}, fmt.Errorf("%w: made %v from this centre's clock, at most %v", ErrStale, d.Round(time.Second), MaxSkew)
	}
	err = s.opts.Consent.Authenticate(ctx, q.Subject, q.Key, q.signed, q.Time)
	if errors.Is(err, consent.ErrSignature) {
		// Not the patient's key: perhaps a delegate's. Its refusal is
		// told when the key is one (out of scope, out of term, in
		// notice for an erasure), the patient's otherwise.
		a, derr := s.opts.Consent.AuthenticateDelegate(ctx, q.Subject, q.Key, scopes[q.Op], q.signed, q.Time)
		switch {
		case derr == nil:
			return q, a.Delegation, nil
		case !errors.Is(derr, consent.ErrNotDelegate):
			return q, consent.ID{}, derr
		}
	}
	if err != nil {
		return q, consent.ID{}, err
	}
	if q.Op == Erase {
		if err := s.opts.Consent.Settled(ctx, q.Subject, q.Key); err != nil {
			return q, consent.ID{}, err
		}
	}
	return q, consent.ID{}, nil
}

// scopes is the delegation scope each request needs of a delegate: a
// delegate erasing must have held the scope for the key notice, as a
// patient's key must have (consent.Patient.MayAct).
var scopes = map[Op]consent.Scope{View: consent.ScopeView, Records: consent.ScopeRecords, Erase: consent.ScopeErasure}
