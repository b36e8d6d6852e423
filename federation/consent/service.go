package consent

import (
	"cmp"
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
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
)

// ErrStale is returned instead of a decision when this centre cannot
// confirm that it holds the patient's latest consent: it lost contact
// with other members since it last synced the patient, and too few of
// them answered now.
var ErrStale = errors.New("consent state not confirmed")

// Ledger is what the service needs of the centre's ledger.
type Ledger interface {
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
}

// Options configure a Service.
type Options struct {
	// Key is the centre's key: it signs attestations. Required.
	Key ed25519.PrivateKey
	// Ledger receives every document accepted and every access. Required.
	Ledger Ledger
	// Charter returns the current charter. Required.
	Charter func() federation.Charter
	// Holders returns the centres holding a patient's records (the
	// directory); with an error, the holders it found. Required.
	Holders func(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error)
	// Holds reports whether this centre holds records of a patient. Only
	// holders receive pushed documents, so a centre that does not hold the
	// patient's records syncs before every decision rather than trust
	// what it synced before. Nil: this centre holds every patient's.
	Holds func(ctx context.Context, p ledger.Pseudonym) (bool, error)
	// Timeout bounds each exchange with another centre; 2 s when zero.
	Timeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the service's logs; nothing when nil.
	Logger *slog.Logger
}

// EmergencyDuration is how long emergency access lasts unless stopped
// sooner.
const EmergencyDuration = 4 * time.Hour

// maxSkew is how far in this centre's future a document may be issued.
const maxSkew = 5 * time.Minute

// Service keeps the consent of the patients this centre holds records of
// (and of those whose documents were submitted here), delivers documents
// to the holders, and decides requests. See the package comment for the
// freshness rule.
type Service struct {
	host    host.Host
	opts    Options
	log     *slog.Logger
	timeout time.Duration
	now     func() time.Time

	// epoch counts this centre's losses of contact with members; a
	// patient synced in an older epoch may have missed a document.
	epoch atomic.Uint64

	mu       sync.Mutex
	patients map[ledger.Pseudonym]*entry
	sessions map[ID]Session
	notes    []Notification
}

type entry struct {
	subject ledger.Pseudonym
	sync    sync.Mutex // one sync at a time
	mu      sync.Mutex // guards p (replaced whole on a change) and synced; held across a token's check, record and count
	p       *Patient
	synced  uint64
}

// Session is an emergency access in progress.
type Session struct {
	ID        ID
	Subject   ledger.Pseudonym
	Requester peer.ID
	Staff     ledger.StaffID
	Role      Role
	Reason    Reason
	Started   time.Time
	Expires   time.Time
}

// Notification tells the patient and the centre's privacy officer of an
// emergency access. Index is the access entry's ledger index: the feed's
// cursor.
type Notification struct {
	Index     int64
	Time      time.Time
	Subject   ledger.Pseudonym
	Event     Event
	Session   ID
	Requester peer.ID
	Staff     ledger.StaffID
	Role      Role
	Reason    Reason
	Permitted bool
}

// New starts the consent service on h. Call Load with the ledger's
// consent, revocation and access entries before serving requests.
func New(h host.Host, opts Options) (*Service, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Ledger == nil || opts.Charter == nil || opts.Holders == nil {
		return nil, errors.New("consent: key, ledger, charter and holders are required")
	}
	s := &Service{
		host:     h,
		opts:     opts,
		log:      opts.Logger,
		timeout:  opts.Timeout,
		now:      opts.Now,
		patients: map[ledger.Pseudonym]*entry{},
		sessions: map[ID]Session{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "consent")
	if s.timeout <= 0 {
		s.timeout = 2 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.epoch.Store(1) // nothing is synced at start
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: s.disconnected})
	h.SetStreamHandler(ProtocolID, s.handle)
	return s, nil
}

// disconnected starts a new epoch when the last connection to a member
// closes: documents pushed while it was gone may be missing here.
func (s *Service) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if _, member := s.opts.Charter().Member(p); !member || n.Connectedness(p) == network.Connected {
		return
	}
	s.epoch.Add(1)
}

// Close stops serving the consent protocol.
func (s *Service) Close() { s.host.RemoveStreamHandler(ProtocolID) }

func (s *Service) federation() string { return s.opts.Charter().Federation }

func (s *Service) policy() Policy {
	p := s.opts.Charter().Policy
	base := OptIn
	if p.ConsentDefault == federation.ConsentOptOut {
		base = OptOut
	}
	return Policy{Default: base, Emergency: p.EmergencyAccess == federation.EmergencyAllowed, TokenMaxLifetime: p.TokenMaxLifetime}
}

func (s *Service) entry(p ledger.Pseudonym) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.patients[p]
	if e == nil {
		e = &entry{subject: p, p: NewPatient(p)}
		s.patients[p] = e
	}
	return e
}

// Load rebuilds the state from the ledger's consent, revocation and
// access entries, in ledger order. Documents pushed meanwhile are merged
// (a document is kept once, whichever way it came).
func (s *Service) Load(entries []ledger.Entry) error {
	for _, le := range entries {
		switch le.Kind {
		case ledger.KindConsent, ledger.KindRevocation:
			d, err := Parse(le.Body)
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
			e := s.entry(d.Subject())
			e.mu.Lock()
			_, err = e.p.Add(d)
			e.mu.Unlock()
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
		case ledger.KindAccess:
			a, err := DecodeAccess(le)
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
			s.replay(le, a)
		}
	}
	return nil
}

// replay brings token uses and emergency sessions up to an access entry.
func (s *Service) replay(le ledger.Entry, a AccessEntry) {
	switch {
	case a.Event == EventAccess && a.Basis == BasisToken && a.Permitted:
		e := s.entry(le.Subject)
		e.mu.Lock()
		e.p.Used(a.Ref)
		e.mu.Unlock()
	case a.Event == EventEmergencyStart || a.Event == EventEmergencyStop:
		s.emergencyEvent(le.Index, le.Time, le.Subject, a)
	}
}

func (s *Service) emergencyEvent(index int64, at time.Time, p ledger.Pseudonym, a AccessEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case a.Event == EventEmergencyStart && a.Permitted:
		s.sessions[a.Ref] = Session{ID: a.Ref, Subject: p, Requester: a.Requester, Staff: a.Staff, Role: a.Role, Reason: a.Reason, Started: at, Expires: at.Add(EmergencyDuration)}
	case a.Event == EventEmergencyStop:
		delete(s.sessions, a.Ref)
	}
	s.notes = append(s.notes, Notification{Index: index, Time: at, Subject: p, Event: a.Event, Session: a.Ref, Requester: a.Requester, Staff: a.Staff, Role: a.Role, Reason: a.Reason, Permitted: a.Permitted})
}

// accept checks documents about patient e and appends the new ones to
// the ledger, then to the state; attestations first, so a patient's
// document can travel with the attestation of its key. A malformed
// document, or an attestation by a non-member, refuses the whole batch.
// A patient's document whose key does not count (not attested, or
// compromised since) is refused when strict (a submission), and skipped
// otherwise (a push or a sync carries what the other member holds).
func (s *Service) accept(ctx context.Context, e *entry, docs []Document, strict bool) (added int, err error) {
	fed := s.federation()
	slices.SortStableFunc(docs, func(a, b Document) int { return int(a.Kind) - int(b.Kind) })
	e.mu.Lock()
	defer e.mu.Unlock()
	// Check on a copy: nothing changes unless everything is appended.
	trial := e.p.clone()
	var entries []ledger.Entry
	var fresh []Document
	for _, d := range docs {
		if d.Federation() != fed {
			return 0, fmt.Errorf("%w: a %s for federation %q", ErrMalformed, d.Kind, d.Federation())
		}
		if d.Issued().After(s.now().Add(maxSkew)) {
			return 0, fmt.Errorf("%w: a %s issued in the future (%s)", ErrMalformed, d.Kind, d.Issued().Format(time.RFC3339))
		}
		switch d.Kind {
		case KindAttestation:
			if !s.memberKey(d.Signer) {
				return 0, fmt.Errorf("%w: an attestation not signed by a member centre", ErrSignature)
			}
		case KindContract, KindRevocation:
			if ok, _ := trial.keyValid(d.Signer, d.Issued()); !ok {
				if !strict {
					continue
				}
				return 0, fmt.Errorf("%w: a %s not signed by a key a member attested for the patient", ErrSignature, d.Kind)
			}
		default:
			return 0, fmt.Errorf("%w: a %s is given to its grantee, not submitted", ErrMalformed, d.Kind)
		}
		isNew, err := trial.Add(d)
		if err != nil {
			return 0, err
		}
		if !isNew {
			continue
		}
		kind := ledger.KindConsent
		if d.Kind == KindRevocation {
			kind = ledger.KindRevocation
		}
		entries = append(entries, ledger.Entry{Kind: kind, Subject: e.subject, Body: d.Raw})
		fresh = append(fresh, d)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	if _, err := s.opts.Ledger.Append(ctx, entries...); err != nil {
		return 0, fmt.Errorf("consent: %w", err)
	}
	e.p = trial
	for _, d := range fresh {
		s.log.Info("consent document accepted", "kind", d.Kind.String(), "pseudonym", e.subject)
	}
	return len(fresh), nil
}

func (s *Service) memberKey(k ed25519.PublicKey) bool {
	for _, m := range s.opts.Charter().Members {
		if pub, err := m.PublicKey(); err == nil && pub.Equal(k) {
			return true
		}
	}
	return false
}

// Delivery says where a document went.
type Delivery struct {
	// Holders are the centres the directory lists for the patient.
	Holders []peer.ID
	// Delivered are the holders that accepted it (this centre included
	// when it is one).
	Delivered []peer.ID
	// Failed are the holders that did not, each with its reason.
	Failed []Failure
	// Lookup is set when the directory lookup did not complete: holders
	// may be missing from the list.
	Lookup error
}

// Failure is a centre that could not be reached or refused.
type Failure struct {
	Centre peer.ID
	Err    error
}

// Submit accepts a signed contract, revocation or attestation at this
// centre, appends it to the ledger, and delivers it, with the
// attestations of the patient's keys, to every centre holding the
// patient's records. It returns once every holder has answered or timed
// out; the revocation is then in effect at every holder in Delivered.
func (s *Service) Submit(ctx context.Context, raw []byte) (Delivery, error) {
	d, err := Parse(raw)
	if err != nil {
		return Delivery{}, err
	}
	p := d.Subject()
	e := s.entry(p)
	if d.Kind != KindAttestation {
		// The patient's key is only known once the members are asked.
		if err := s.fresh(ctx, e); err != nil {
			return Delivery{}, err
		}
	}
	if _, err := s.accept(ctx, e, []Document{d}, true); err != nil {
		return Delivery{}, err
	}
	return s.deliver(ctx, e, d), nil
}

// Attest signs an attestation that key is patient p's, and submits it.
// compromised marks the keys it supersedes as no longer the patient's.
func (s *Service) Attest(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, compromised bool) (Delivery, error) {
	raw, err := SignAttestation(s.opts.Key, Attestation{
		Federation:  s.federation(),
		Subject:     p,
		Key:         key,
		Issued:      s.now().UTC().Truncate(time.Second),
		Compromised: compromised,
	})
	if err != nil {
		return Delivery{}, err
	}
	if err := s.fresh(ctx, s.entry(p)); err != nil {
		return Delivery{}, err
	}
	return s.Submit(ctx, raw)
}

// deliver pushes d with the patient's attestations to every holder.
func (s *Service) deliver(ctx context.Context, e *entry, d Document) Delivery {
	var out Delivery
	holders, err := s.opts.Holders(ctx, e.subject)
	out.Holders, out.Lookup = holders, err
	bundle := []Document{d}
	e.mu.Lock()
	if d.Kind != KindAttestation {
		bundle = append(bundle, e.p.attestations...)
	}
	e.mu.Unlock()
	payload := encodeDocs(bundle)
	self := s.host.ID()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, h := range holders {
		if h == self {
			out.Delivered = append(out.Delivered, h)
			continue
		}
		wg.Go(func() {
			err := s.push(ctx, h, payload)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("consent document not delivered", "kind", d.Kind.String(), "pseudonym", e.subject, "to", h, "err", err)
				out.Failed = append(out.Failed, Failure{Centre: h, Err: err})
				return
			}
			out.Delivered = append(out.Delivered, h)
		})
	}
	wg.Wait()
	slices.Sort(out.Delivered)
	slices.SortFunc(out.Failed, func(a, b Failure) int { return cmp.Compare(a.Centre, b.Centre) })
	return out
}

// push delivers a bundle to one holder, trying again twice when a stream
// fails on a live connection; a refusal, or a holder that cannot be
// dialled, is final (it syncs when it is back).
func (s *Service) push(ctx context.Context, to peer.ID, payload []byte) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 && s.host.Network().Connectedness(to) != network.Connected {
			return err
		}
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			}
		}
		var refusal *RefusedError
		if _, err = s.exchange(ctx, to, opPush, payload); err == nil || errors.As(err, &refusal) {
			return err
		}
	}
	return err
}

// fresh syncs patient e from the other members unless it was synced
// since this centre last lost contact with one: see the package comment.
func (s *Service) fresh(ctx context.Context, e *entry) error {
	epoch := s.epoch.Load()
	e.mu.Lock()
	done := e.synced == epoch
	e.mu.Unlock()
	if done {
		return nil
	}
	e.sync.Lock()
	defer e.sync.Unlock()
	e.mu.Lock()
	done = e.synced >= epoch
	e.mu.Unlock()
	if done {
		return nil
	}
	c := s.opts.Charter()
	var others []peer.ID
	for _, m := range c.Members {
		if m.ID != s.host.ID() {
			others = append(others, m.ID)
		}
	}
	// A majority of the federation, this centre included: a centre cut
	// off from most members cannot pass off what it has as current.
	need := (len(c.Members))/2 + 1 - 1
	type answer struct {
		from peer.ID
		err  error
	}
	answers := make(chan answer, len(others))
	for _, m := range others {
		go func() {
			docs, err := s.fetch(ctx, m, e.subject)
			if err == nil && len(docs) > 0 {
				_, err = s.accept(ctx, e, docs, false)
			}
			answers <- answer{m, err}
		}()
	}
	answered := 0
	var failed []error
	for range others {
		a := <-answers
		if a.err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", a.from, a.err))
			continue
		}
		answered++
	}
	if answered < need {
		return fmt.Errorf("%w for %s: %d of %d other members answered, %d needed: %w", ErrStale, e.subject, answered, len(others), need, errors.Join(failed...))
	}
	if len(failed) > 0 {
		s.log.Info("synced consent without every member", "pseudonym", e.subject, "answered", answered, "failed", len(failed))
	}
	if s.opts.Holds != nil {
		holds, err := s.opts.Holds(ctx, e.subject)
		if err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		if !holds {
			return nil // synced for this decision only: no pushes come here
		}
	}
	e.mu.Lock()
	e.synced = max(e.synced, epoch)
	e.mu.Unlock()
	return nil
}

// fetch asks member m for the documents it holds about p.
func (s *Service) fetch(ctx context.Context, m peer.ID, p ledger.Pseudonym) ([]Document, error) {
	payload, err := s.exchange(ctx, m, opSync, p[:])
	if err != nil {
		return nil, err
	}
	docs, err := decodeDocs(payload)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Subject() != p {
			return nil, fmt.Errorf("%w: sync answer about another patient", ErrMalformed)
		}
	}
	return docs, nil
}

// View is what a centre knows of a patient's consent.
type View struct {
	Subject   ledger.Pseudonym
	Attested  bool
	Key       ed25519.PublicKey // the current key; nil when none attested
	Standing  Standing
	Documents []Document
	Uses      map[ID]int // token uses recorded here
}

// Show returns the patient's consent as this centre holds it, after
// making sure it is current.
func (s *Service) Show(ctx context.Context, p ledger.Pseudonym) (View, error) {
	e := s.entry(p)
	if err := s.fresh(ctx, e); err != nil {
		return View{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	uses := make(map[ID]int, len(e.p.uses))
	for k, v := range e.p.uses {
		uses[k] = v
	}
	return View{Subject: p, Attested: e.p.Attested(), Key: e.p.CurrentKey(), Standing: e.p.Standing(), Documents: e.p.Documents(), Uses: uses}, nil
}

// Decide answers q about patient p under the patient's current consent
// and the charter's policy. It fails with ErrStale rather than decide on
// consent it cannot confirm.
func (s *Service) Decide(ctx context.Context, p ledger.Pseudonym, q Request) (Decision, error) {
	if err := q.check(); err != nil {
		return Decision{}, err
	}
	e := s.entry(p)
	if err := s.fresh(ctx, e); err != nil {
		return Decision{}, err
	}
	e.mu.Lock()
	st := e.p.Standing()
	e.mu.Unlock()
	return Decide(st, s.policy(), q), nil
}

// UseToken answers q about patient p under the signed token raw, and
// records the use (or the refusal) on the ledger before it returns a
// permit: a spent, expired, revoked or foreign token is refused.
func (s *Service) UseToken(ctx context.Context, p ledger.Pseudonym, raw []byte, q Request) (Decision, error) {
	if err := q.check(); err != nil {
		return Decision{}, err
	}
	d, err := Parse(raw)
	if err != nil {
		return Decision{}, err
	}
	if d.Kind != KindToken {
		return Decision{}, fmt.Errorf("%w: a %s is not a token", ErrMalformed, d.Kind)
	}
	e := s.entry(p)
	if err := s.fresh(ctx, e); err != nil {
		return Decision{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t, used, dec, ok := e.p.Token(d)
	if ok && t.Federation != s.federation() {
		dec, ok = Decision{Basis: BasisToken, Ref: t.ID, why: whyTokenOther}, false
	}
	if ok {
		dec = DecideToken(t, used, s.policy(), q)
	}
	a := AccessEntry{Event: EventAccess, Requester: q.Centre, Staff: q.Staff, Role: q.Role, Action: q.Action, Purpose: q.Purpose, Permitted: dec.Permit, Basis: BasisToken, Ref: d.Token.ID}
	if dec.Permit {
		a.Use = uint16(used + 1)
	}
	le, err := NewAccess(p, a)
	if err != nil {
		return Decision{}, err
	}
	if _, err := s.opts.Ledger.Append(ctx, le); err != nil {
		return Decision{}, fmt.Errorf("consent: recording a token use: %w", err)
	}
	if dec.Permit {
		e.p.Used(t.ID)
	}
	return dec, nil
}

// EmergencyStart decides an emergency access q (purpose Emergency, with a
// reason) to patient p, records it on the ledger, permitted or not, and
// notifies the patient and the privacy officer. A permitted access opens
// a session that lasts EmergencyDuration unless stopped.
func (s *Service) EmergencyStart(ctx context.Context, p ledger.Pseudonym, q Request) (Session, Decision, error) {
	if q.Purpose != Emergency {
		return Session{}, Decision{}, fmt.Errorf("%w: emergency access has the emergency purpose", ErrMalformed)
	}
	dec, err := s.Decide(ctx, p, q)
	if err != nil {
		return Session{}, Decision{}, err
	}
	a := AccessEntry{Event: EventEmergencyStart, Requester: q.Centre, Staff: q.Staff, Role: q.Role, Action: q.Action, Purpose: Emergency, Permitted: dec.Permit, Basis: dec.Basis, Reason: q.Reason}
	if dec.Permit {
		a.Ref = NewID()
	}
	n, at, err := s.audit(ctx, p, a)
	if err != nil {
		return Session{}, Decision{}, err
	}
	s.emergencyEvent(n, at, p, a)
	s.log.Warn("emergency access", "pseudonym", p, "requester", q.Centre, "staff", q.Staff, "reason", q.Reason.String(), "permitted", dec.Permit, "index", n)
	if !dec.Permit {
		return Session{}, dec, nil
	}
	sess, _ := s.Session(a.Ref)
	return sess, dec, nil
}

// EmergencyStop ends an emergency session, recorded on the ledger.
func (s *Service) EmergencyStop(ctx context.Context, id ID) error {
	sess, ok := s.Session(id)
	if !ok {
		return fmt.Errorf("consent: no open emergency session %s", id)
	}
	a := AccessEntry{Event: EventEmergencyStop, Requester: sess.Requester, Staff: sess.Staff, Role: sess.Role, Purpose: Emergency, Permitted: true, Basis: BasisEmergency, Ref: id, Reason: sess.Reason}
	n, at, err := s.audit(ctx, sess.Subject, a)
	if err != nil {
		return err
	}
	s.emergencyEvent(n, at, sess.Subject, a)
	s.log.Info("emergency access stopped", "pseudonym", sess.Subject, "session", id.String(), "index", n)
	return nil
}

func (s *Service) audit(ctx context.Context, p ledger.Pseudonym, a AccessEntry) (int64, time.Time, error) {
	le, err := NewAccess(p, a)
	if err != nil {
		return 0, time.Time{}, err
	}
	at := s.now().UTC()
	n, err := s.opts.Ledger.Append(ctx, le)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("consent: recording emergency access: %w", err)
	}
	return n, at, nil
}

// Session returns the open emergency session id, if it has not expired.
func (s *Service) Session(id ID) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok || !s.now().Before(sess.Expires) {
		return Session{}, false
	}
	return sess, true
}

// Notifications returns the emergency notifications after ledger index
// after, oldest first: a feed the API serves to the privacy officer (all)
// and to patients (their own), each keeping its own cursor.
func (s *Service) Notifications(after int64) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.notes, after+1, func(n Notification, idx int64) int { return cmp.Compare(n.Index, idx) })
	return slices.Clone(s.notes[i:])
}
