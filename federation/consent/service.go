package consent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/stats"
	"github.com/medfed/medfed/node/wire"
)

// ErrStale is returned instead of a decision when this centre cannot
// confirm that it holds the patient's latest consent: it holds no live
// lease on the patient's state from a majority, and too few members
// answered its read.
var ErrStale = node.E(node.Unavailable, "consent state not confirmed")

// Ledger is what the service needs of the centre's ledger.
type Ledger interface {
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
	Entry(ctx context.Context, index int64) (ledger.Entry, error)
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
	// Holds reports whether this centre holds records of a patient: the
	// state of those it does is kept in memory, with its leases, between
	// decisions; that of others only while it has documents. Nil: this
	// centre holds every patient's.
	Holds func(ctx context.Context, p ledger.Pseudonym) (bool, error)
	// Erase erases this centre's records of patient p recorded before
	// before (an erasure the patient signed), and withdraws its directory
	// announcement when none is left. It is called once an erasure is
	// accepted here, and again before any decision about the patient
	// until it succeeds. Nil: this centre holds no records.
	Erase func(ctx context.Context, p ledger.Pseudonym, before time.Time) error
	// LeaseFile keeps how far the leases this centre granted may reach,
	// so that after a restart it waits for those of its previous process
	// to run out before it lets a document be confirmed. Empty: a
	// restarted centre cannot know them (tests of one process only).
	LeaseFile string
	// Lease is how long this centre holds, and grants, a lease on a
	// patient's consent state; DefaultLease when zero. It bounds how long
	// a document's confirmation waits for a leaseholder that cannot be
	// reached (see the package comment).
	Lease time.Duration
	// Timeout bounds each exchange with another centre; 2 s when zero.
	Timeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the service's logs; nothing when nil.
	Logger *slog.Logger
}

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

	lease   time.Duration
	granted leases // by this centre to others
	horizon horizon

	// audit serialises emergency entries, so that the notification feed
	// grows in ledger order and a reader's cursor never skips one.
	audit sync.Mutex

	stop context.CancelFunc // ends the erasure feed's reader

	mu       sync.Mutex
	patients map[ledger.Pseudonym]*entry
	sessions map[ID]Session
	notes    []Notification
	erasures []erasureItem // the erasures on this centre's ledger, in ledger order: the feed

	counts struct {
		synced, stale     stats.Counter // reads of a patient's state from a majority: done, and too few answered
		released, refused stats.Counter // access decisions that released something, and those that released nothing
	}
}

// Stats are the consent service's counts since it started, for the
// operators' metrics.
type Stats struct {
	Synced   uint64 // reads of a patient's consent state from a majority of its set
	Stale    uint64 // reads too few members answered: the decision waits or fails
	Released uint64 // access decisions that released records
	Refused  uint64 // access decisions that released nothing
	Patients int    // patients whose state this centre keeps in memory
}

// Stats returns the service's counts.
func (s *Service) Stats() Stats {
	return Stats{Synced: s.counts.synced.Load(), Stale: s.counts.stale.Load(),
		Released: s.counts.released.Load(), Refused: s.counts.refused.Load(), Patients: s.Patients()}
}

type entry struct {
	subject ledger.Pseudonym
	refs    int         // holders of the entry (acquire, release); guarded by Service.mu
	kept    atomic.Bool // it has documents or token uses, or is a patient this centre holds, synced: never dropped
	sync    sync.Mutex  // one read of the state at a time
	mu      sync.Mutex  // guards p (replaced whole on a change), leased and term; held across a token's check, record and count
	p       *Patient
	leased  time.Time     // until when this centre holds leases from a majority on p's state (monotonic)
	term    time.Duration // the lease last taken: the shortest term granted
	erase   sync.Mutex    // one erasure at a time; guards erased
	erased  time.Time     // the erasure done here: records before it are erased
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
// emergency access (Event set), or of a change to who speaks for the
// patient: an attestation of a key, a delegation, an approval, a veto
// (Document set, Attestation naming the attestation or delegation; for a
// delegation, its own hash). Index is the ledger entry's index: the
// feed's cursor.
type Notification struct {
	Index       int64
	Time        time.Time
	Subject     ledger.Pseudonym
	Event       Event
	Document    Kind
	Attestation [32]byte
	Session     ID
	Requester   peer.ID // the centre that asked, attested or approved
	Staff       ledger.StaffID
	Role        Role
	Reason      Reason
	Permitted   bool
}

func (o Options) validate() error {
	var missing []string
	if len(o.Key) != ed25519.PrivateKeySize {
		missing = append(missing, "Key (an Ed25519 private key)")
	}
	if o.Ledger == nil {
		missing = append(missing, "Ledger")
	}
	if o.Charter == nil {
		missing = append(missing, "Charter")
	}
	if o.Holders == nil {
		missing = append(missing, "Holders")
	}
	if o.Lease < 0 || o.Lease > MaxLease {
		return fmt.Errorf("consent options: a lease of %v (0 to %v)", o.Lease, MaxLease)
	}
	if len(missing) > 0 {
		return fmt.Errorf("consent options: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// New returns the consent service of the centre on h. Load the ledger's
// consent, revocation and access entries with Load, which then starts
// serving /medfed/consent/1: a centre answers others' syncs only with its
// whole state.
func New(h host.Host, opts Options) (*Service, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Service{
		host:     h,
		opts:     opts,
		log:      opts.Logger,
		timeout:  opts.Timeout,
		now:      opts.Now,
		patients: map[ledger.Pseudonym]*entry{},
		sessions: map[ID]Session{},
		lease:    opts.Lease,
		granted:  leases{by: map[ledger.Pseudonym]map[peer.ID]time.Time{}, count: map[peer.ID]int{}},
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
	if s.lease <= 0 {
		s.lease = DefaultLease
	}
	if err := s.horizon.load(opts.LeaseFile); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops serving the consent protocol.
func (s *Service) Close() {
	s.host.RemoveStreamHandler(ProtocolID)
	if s.stop != nil {
		s.stop()
	}
}

func (s *Service) federation() string { return s.opts.Charter().Federation }

func (s *Service) policy() Policy {
	p := s.opts.Charter().Policy
	base := OptIn
	if p.ConsentDefault == federation.ConsentOptOut {
		base = OptOut
	}
	return Policy{Default: base, Emergency: p.EmergencyAccess == federation.EmergencyAllowed, TokenMaxLifetime: p.TokenMaxLifetime}
}

// acquire returns patient p's entry, made when there is none, held until
// release: an entry that never gets a document or a token use, and is
// not of a patient this centre holds, is dropped at its last release, so
// that documents refused, and questions about patients this centre holds
// nothing of, leave no state behind.
func (s *Service) acquire(p ledger.Pseudonym) *entry {
	notice := s.opts.Charter().Policy.KeyNoticePeriod()
	s.mu.Lock()
	e := s.patients[p]
	if e == nil {
		e = &entry{subject: p, p: NewPatientWith(p, notice, s.now)}
		s.patients[p] = e
	}
	e.refs++
	s.mu.Unlock()
	e.mu.Lock()
	if e.p.notice != notice { // the charter changed its key notice
		e.p = e.p.withNotice(notice)
	}
	e.mu.Unlock()
	return e
}

// hold takes one more hold of an entry acquire returned.
func (s *Service) hold(e *entry) {
	s.mu.Lock()
	e.refs++
	s.mu.Unlock()
}

// release lets go of an entry acquire returned.
func (s *Service) release(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	if e.refs == 0 && !e.kept.Load() && s.patients[e.subject] == e {
		delete(s.patients, e.subject)
	}
}

// Patients returns how many patients' consent this centre keeps in
// memory: those it holds documents or token uses of, and those whose
// records it holds.
func (s *Service) Patients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.patients)
}

// Load rebuilds the state from the ledger's consent, revocation and
// access entries, in ledger order, then serves the consent protocol.
func (s *Service) Load(entries []ledger.Entry) error {
	if err := s.Replay(entries); err != nil {
		return err
	}
	return s.serveAll()
}

// Replay brings the state up to more of the ledger's consent, revocation
// and access entries, in ledger order, after those loaded: what a ledger
// recovered from its witnesses' mirrors appended (entries of other kinds
// are skipped).
func (s *Service) Replay(entries []ledger.Entry) error {
	for _, le := range entries {
		switch le.Kind {
		case ledger.KindConsent, ledger.KindRevocation:
			d, err := Parse(le.Body)
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
			e := s.acquire(d.Subject())
			e.mu.Lock()
			_, err = e.p.Add(d)
			e.mu.Unlock()
			e.kept.Store(true)
			s.release(e)
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
			s.keyEvent(le.Index, le.Time, d)
			if d.Kind == KindErasure {
				s.feedErasure(le.Index, d)
			}
		case ledger.KindAccess:
			a, err := DecodeAccess(le)
			if err != nil {
				return fmt.Errorf("consent: ledger entry %d: %w", le.Index, err)
			}
			s.replay(le, a)
		}
	}
	// An erasure on the ledger may not have been carried out before a
	// crash: carry it out again (erasing twice changes nothing).
	s.mu.Lock()
	all := make([]*entry, 0, len(s.patients))
	for _, e := range s.patients {
		all = append(all, e)
	}
	s.mu.Unlock()
	for _, e := range all {
		e.mu.Lock()
		erased := !e.p.ErasedBefore().IsZero()
		e.mu.Unlock()
		if erased {
			s.eraseSoon(e)
		}
	}
	return nil
}

// serveAll serves the consent protocol and starts reading the erasure
// feed.
func (s *Service) serveAll() error {
	srv := &wire.Server{
		Name: "consent", Limit: maxListLen, Timeout: handleLimit, Work: handleLimit, MaxReason: maxReason,
		Admit: federation.MembersOnly(s.opts.Charter, "consent"), Serve: s.serve, Log: s.log,
	}
	s.host.SetStreamHandler(ProtocolID, srv.Handle)
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.pullErasures(ctx, 2*s.lease)
	return nil
}

// replay brings token uses and emergency sessions up to an access entry.
func (s *Service) replay(le ledger.Entry, a AccessEntry) {
	switch {
	case a.Event == EventAccess && a.Basis == BasisToken && a.Permitted:
		e := s.acquire(le.Subject)
		e.mu.Lock()
		e.p.Used(a.Ref)
		e.mu.Unlock()
		e.kept.Store(true)
		s.release(e)
	case a.Event == EventEmergencyStart || a.Event == EventEmergencyStop:
		s.emergencyEvent(le.Index, le.Time, le.Subject, a)
	}
}

func (s *Service) emergencyEvent(index int64, at time.Time, p ledger.Pseudonym, a AccessEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case a.Event == EventEmergencyStart && a.Permitted:
		s.sessions[a.Ref] = Session{ID: a.Ref, Subject: p, Requester: a.Requester, Staff: a.Staff, Role: a.Role, Reason: a.Reason, Started: at, Expires: at.Add(s.opts.Charter().Policy.EmergencyLimit())}
	case a.Event == EventEmergencyStop:
		delete(s.sessions, a.Ref)
	}
	s.notes = append(s.notes, Notification{Index: index, Time: at, Subject: p, Event: a.Event, Session: a.Ref, Requester: a.Requester, Staff: a.Staff, Role: a.Role, Reason: a.Reason, Permitted: a.Permitted})
}

// accept checks documents about patient e and appends the new ones to
// the ledger, then to the state. A document for another federation or
// from the future refuses the whole batch. Otherwise documents that do
// not count are skipped: an attestation by a non-member (a centre since
// removed speaks for no one), an attestation older than the patient's
// newest unless a document in hand is signed by its key (so a member
// cannot fill ledgers with backdated attestations), a patient's document
// signed by a key never attested. Which documents count is Patient's to
// decide, so every centre keeps the same set. The document whose hash is
// primary (a submission, or what a push is for) must be accepted, and as
// a submission must also take effect (a contract older than the one in
// force, or signed by a key no longer valid, is refused).
func (s *Service) accept(ctx context.Context, e *entry, docs []Document, primary *[32]byte) (added int, err error) {
	fed := s.federation()
	// Attestations first, oldest first: each is weighed against those
	// before it; then delegations, signed by those keys (or made by
	// registrars); the patient's and delegates' documents against all of
	// them.
	rank := func(k Kind) int {
		switch k {
		case KindAttestation:
			return 0
		case KindDelegation:
			return 1
		}
		return 2 + int(k)
	}
	slices.SortStableFunc(docs, func(a, b Document) int {
		if c := cmp.Compare(rank(a.Kind), rank(b.Kind)); c != 0 {
			return c
		}
		return a.Issued().Compare(b.Issued())
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	// Check on a copy: nothing changes unless everything is appended.
	trial := e.p.clone()
	signers := map[string]bool{}
	for _, d := range append(docs, trial.docs...) {
		if d.Kind != KindAttestation && d.Via().IsZero() {
			signers[string(d.Signer)] = true
		}
	}
	var (
		entries []ledger.Entry
		fresh   []Document
	)
	for _, d := range docs {
		if d.Federation() != fed {
			return 0, malformed("a %s for federation %q", d.Kind, d.Federation())
		}
		if d.Issued().After(s.now().Add(maxSkew)) {
			return 0, malformed("a %s issued in the future (%s)", d.Kind, d.Issued().Format(time.RFC3339))
		}
		// why a document does not count: skipped, or, the primary one,
		// refused.
		var why error
		switch d.Kind {
		case KindApproval, KindVeto:
			switch {
			case d.Kind == KindApproval && !s.memberKey(d.Signer):
				why = fmt.Errorf("%w: an approval not signed by a member centre", ErrSignature)
			case d.Kind == KindVeto && !trial.attested(d.Signer):
				why = fmt.Errorf("%w: a veto not signed by a key a member attested for the patient", ErrSignature)
			case !trial.seen[d.attestationNamed()]:
				why = fmt.Errorf("%w: the %s names an attestation this centre does not hold", ErrConflict, d.Kind)
			}
		case KindAttestation:
			newest := trial.newest()
			switch {
			case !s.memberKey(d.Signer):
				why = fmt.Errorf("%w: an attestation not signed by a member centre", ErrSignature)
			case newest != nil && !d.Attestation.Issued.After(newest.Issued) && !signers[string(d.Attestation.Key)]:
				why = fmt.Errorf("%w: malformed consent document: an attestation older than the patient's current one", node.ErrInvalid)
			}
		case KindDelegation:
			why = s.delegationSigner(trial, d)
		case KindRevocation:
			why = actSigner(trial, d)
			if !d.Revocation.Staff.IsZero() {
				why = s.registrarRevocation(trial, d)
			}
		case KindContract, KindErasure:
			why = actSigner(trial, d)
		default:
			return 0, malformed("a %s is given to its grantee, not submitted", d.Kind)
		}
		if why != nil {
			if primary != nil && d.Hash() == *primary {
				return 0, why
			}
			continue
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
	if primary != nil && len(docs) == 1 {
		if err := takesEffect(trial, docs[0]); err != nil {
			return 0, err
		}
	}
	// The key documents go in the notification feed in ledger order.
	s.audit.Lock()
	defer s.audit.Unlock()
	last, err := s.opts.Ledger.Append(ctx, entries...)
	if err != nil {
		return 0, fmt.Errorf("consent: %w", err)
	}
	e.p = trial
	e.kept.Store(true)
	for i, d := range fresh {
		s.log.Info("consent document accepted", "kind", d.Kind.String(), "pseudonym", e.subject)
		index := last - int64(len(fresh)-1-i)
		s.keyEvent(index, s.now().UTC(), d)
		if d.Kind == KindErasure {
			s.feedErasure(index, d)
		}
	}
	if slices.ContainsFunc(fresh, func(d Document) bool { return d.Kind == KindErasure }) {
		s.eraseSoon(e)
	}
	return len(fresh), nil
}

// eraseSoon carries out patient e's erasure in the background.
func (s *Service) eraseSoon(e *entry) {
	s.hold(e)
	go func() {
		defer s.release(e)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.carryOutErasure(ctx, e); err != nil {
			s.log.Error("erasure not carried out: it is tried again before the next decision about the patient", "pseudonym", e.subject, "err", err)
		}
	}()
}

// carryOutErasure erases this centre's records of patient e recorded
// before the newest erasure that counts, unless done already.
func (s *Service) carryOutErasure(ctx context.Context, e *entry) error {
	e.mu.Lock()
	before := e.p.ErasedBefore()
	e.mu.Unlock()
	if before.IsZero() || s.opts.Erase == nil {
		return nil
	}
	e.erase.Lock()
	defer e.erase.Unlock()
	if !before.After(e.erased) {
		return nil
	}
	if err := s.opts.Erase(ctx, e.subject, before); err != nil {
		return fmt.Errorf("consent: erasing as the patient asked: %w", err)
	}
	e.erased = before
	return nil
}

// keyEvent puts an attestation, a registrar's delegation or ending of
// one, an approval or a veto in the notification feed: the patient hears
// of every change to who speaks for them, and staff of what awaits their
// approval.
func (s *Service) keyEvent(index int64, at time.Time, d Document) {
	n := Notification{Index: index, Time: at, Subject: d.Subject(), Document: d.Kind}
	switch d.Kind {
	case KindAttestation:
		n.Attestation, n.Staff, n.Requester = d.Hash(), d.Attestation.Staff, s.memberID(d.Signer)
	case KindApproval:
		n.Attestation, n.Staff, n.Requester = d.Approval.Attestation, d.Approval.Staff, s.memberID(d.Signer)
	case KindVeto:
		n.Attestation = d.Veto.Attestation
	case KindDelegation:
		n.Attestation, n.Staff, n.Requester = d.Hash(), d.Delegation.Staff, s.memberID(d.Signer)
	case KindRevocation:
		if d.Revocation.Staff.IsZero() {
			return
		}
		n.Attestation, n.Staff, n.Requester = d.Hash(), d.Revocation.Staff, s.memberID(d.Signer)
	default:
		return
	}
	s.mu.Lock()
	s.notes = append(s.notes, n)
	s.mu.Unlock()
}

// memberID returns the peer ID of the member whose key is k, or "".
func (s *Service) memberID(k ed25519.PublicKey) peer.ID {
	for _, m := range s.opts.Charter().Members {
		if pub, err := m.PublicKey(); err == nil && pub.Equal(k) {
			return m.ID
		}
	}
	return ""
}

// takesEffect refuses a submitted document that would change nothing: a
// contract that is not the one in force once added (older, or signed by a
// superseded key), a revocation by a key that no longer counts, a
// delegate's document outside its delegation (see delegateTakesEffect).
func takesEffect(p *Patient, d Document) error {
	if !d.Via().IsZero() {
		if err := delegateTakesEffect(p, d); err != nil {
			return err
		}
	}
	switch d.Kind {
	case KindDelegation:
		return delegationTakesEffect(p, d)
	case KindContract:
		if c := p.Standing().Contract; c == nil || c.ID != d.Contract.ID || c.Version != d.Contract.Version {
			return fmt.Errorf("%w: the contract would not be in force: a newer one is, or the patient's key was superseded before it was issued", ErrConflict)
		}
	case KindRevocation:
		if !d.Revocation.Staff.IsZero() {
			return nil // a registrar's: it counts from its approval
		}
		if ok, _ := p.signedValid(d); !ok {
			return fmt.Errorf("%w: the revocation is signed by a key superseded before it was issued", ErrConflict)
		}
	case KindErasure:
		if !p.erasureCounts(d) {
			return fmt.Errorf("%w: an erasure needs a key that had been in force for the key notice (%v) when it was signed", ErrConflict, p.notice)
		}
	case KindApproval, KindVeto:
		for _, k := range p.Keys() {
			if k.Attestation != d.attestationNamed() {
				continue
			}
			switch {
			case d.Kind == KindApproval && k.Status == KeyUnapproved:
				return fmt.Errorf("%w: the approval does not count: the attestation replaces no key, or the staff member who attested it gave it", ErrConflict)
			case d.Kind == KindVeto && k.Status != KeyVetoed:
				return fmt.Errorf("%w: the veto does not count: the attestation took effect already, replaces no key, or the key that signed it was not in force", ErrConflict)
			}
		}
		for _, r := range p.revocations {
			if r.Hash() != d.attestationNamed() {
				continue
			}
			switch {
			case d.Kind == KindApproval && r.Revocation.Staff.IsZero():
				return fmt.Errorf("%w: the approval does not count: the patient or a delegate signed the revocation, which needs none", ErrConflict)
			case d.Kind == KindApproval:
				if _, ok := p.approvedAt(r.Hash(), r.Signer, r.Revocation.Staff); !ok {
					return fmt.Errorf("%w: the approval does not count: the staff member who made the revocation gave it", ErrConflict)
				}
			case d.Kind == KindVeto && !r.Revocation.Staff.IsZero():
				return fmt.Errorf("%w: a registrar's ending of a delegation is not vetoed", ErrConflict)
			}
		}
		for _, g := range p.Delegations() {
			if g.Hash != d.attestationNamed() {
				continue
			}
			switch {
			case d.Kind == KindApproval && g.Staff.IsZero():
				return fmt.Errorf("%w: the approval does not count: the patient signed the delegation, which needs none", ErrConflict)
			case d.Kind == KindApproval && g.Status == DelegationUnapproved:
				return fmt.Errorf("%w: the approval does not count: the staff member who made the delegation gave it", ErrConflict)
			case d.Kind == KindVeto && g.Status != DelegationVetoed:
				return fmt.Errorf("%w: the veto does not count: the delegation took effect already, the patient signed it, or the key that signed the veto was not in force", ErrConflict)
			}
		}
	}
	return nil
}

func (s *Service) memberKey(k ed25519.PublicKey) bool { return s.memberID(k) != "" }

// Delivery says where a document went.
type Delivery struct {
	// Holders are the centres the directory lists for the patient.
	Holders []peer.ID
	// Delivered are the centres that accepted it: holders (this centre
	// included when it is one) and the others that make a majority.
	Delivered []peer.ID
	// Failed are those that did not, each with its reason.
	Failed []Failure
	// Lookup is set when the directory lookup did not complete: holders
	// may be missing from the list.
	Lookup error
	// Confirmed: a majority of the federation, this centre included, has
	// it, so every centre that reads the patient's state finds it, and
	// every centre holding a lease on that state has it or its lease ran
	// out: it is in force everywhere. When false, submit it again once
	// more members are reachable (submitting twice changes nothing).
	Confirmed bool
	// Waited is how long confirmation waited for the leases of holders
	// that could not be told to run out: zero when every leaseholder was
	// reached.
	Waited time.Duration
}

// Failure is a centre that could not be reached or refused.
type Failure struct {
	Centre peer.ID
	Err    error
}

// Submit accepts a signed contract, revocation, erasure, delegation,
// approval, veto or attestation at this centre (the patient's, or a
// delegate's naming its delegation), appends it to the ledger, and
// delivers it with the attestations and delegations it rests on: to
// every centre holding the patient's records, and to as many others as
// make a majority of the federation (see the package comment). It returns once each has answered or timed out; the document
// is then in effect at every centre in Delivered.
func (s *Service) Submit(ctx context.Context, raw []byte) (Delivery, error) {
	d, err := Parse(raw)
	if err != nil {
		return Delivery{}, err
	}
	e := s.acquire(d.Subject())
	defer s.release(e)
	// The patient's keys are only known once the members are asked; a
	// revocation by a key known here goes out at once (it only restricts).
	e.mu.Lock()
	known := d.Kind == KindRevocation && e.p.attested(d.Signer)
	e.mu.Unlock()
	if d.Kind != KindAttestation && !known {
		if err := s.fresh(ctx, e); err != nil {
			return Delivery{}, err
		}
	}
	h := d.Hash()
	if _, err := s.accept(ctx, e, []Document{d}, &h); err != nil {
		return Delivery{}, err
	}
	return s.deliver(ctx, e, d), nil
}

// Attest signs an attestation, by staff (zero: the centre's operator),
// that key is patient p's, and submits it. compromised marks the keys it
// supersedes as no longer the patient's. When the patient has a key in
// force already, the attestation takes effect only once a second staff
// member approves it and the notice period passes without a veto.
func (s *Service) Attest(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, compromised bool, staff ledger.StaffID) (Delivery, error) {
	raw, err := SignAttestation(s.opts.Key, Attestation{
		Federation:  s.federation(),
		Subject:     p,
		Key:         key,
		Issued:      s.now().UTC().Truncate(time.Second),
		Compromised: compromised,
		Staff:       staff,
	})
	if err != nil {
		return Delivery{}, err
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return Delivery{}, err
	}
	return s.Submit(ctx, raw)
}

// Approve signs staff's approval of the attestation whose hash is att, a
// replacement of patient p's key, or of a delegation a registrar made for
// p, and submits it. The staff member who attested it (or made the
// delegation) cannot approve it.
func (s *Service) Approve(ctx context.Context, p ledger.Pseudonym, att [32]byte, staff ledger.StaffID) (Delivery, error) {
	if staff.IsZero() {
		return Delivery{}, malformed("an approval names the staff member who gives it")
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return Delivery{}, err
	}
	e.mu.Lock()
	var (
		found, needed bool
		signer        ed25519.PublicKey
		maker         ledger.StaffID
	)
	for _, k := range e.p.keys {
		if k.hash == att {
			found, needed, signer, maker = true, k.replace, k.signer, k.Staff
		}
	}
	for _, g := range e.p.delegs {
		if g.hash == att {
			found, needed, signer, maker = true, !g.Staff.IsZero(), g.signer, g.Staff
		}
	}
	for _, d := range e.p.revocations {
		if d.Hash() == att {
			found, needed, signer, maker = true, !d.Revocation.Staff.IsZero(), d.Signer, d.Revocation.Staff
		}
	}
	e.mu.Unlock()
	switch {
	case !found:
		return Delivery{}, fmt.Errorf("consent: %w: no attestation, delegation or registrar's revocation %x for this patient", node.ErrNotFound, att[:8])
	case !needed:
		return Delivery{}, fmt.Errorf("%w: an attestation that replaces no key, or a delegation or revocation the patient signed, needs no approval", ErrConflict)
	case signer.Equal(s.opts.Key.Public().(ed25519.PublicKey)) && maker == staff:
		return Delivery{}, fmt.Errorf("%w: the staff member who attested a key, or made or ended a delegation, cannot approve it", ErrSignature)
	}
	raw, err := SignApproval(s.opts.Key, Approval{Federation: s.federation(), Subject: p, Attestation: att, Staff: staff, Issued: s.now().UTC().Truncate(time.Second)})
	if err != nil {
		return Delivery{}, err
	}
	return s.Submit(ctx, raw)
}

// Settled checks that key has been in force for patient p for at least
// the charter's key notice: what an erasure needs, so that a key attested
// or replaced in the last days cannot destroy the patient's records.
func (s *Service) Settled(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey) error {
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return err
	}
	e.mu.Lock()
	since, ok := e.p.inForceSince(key)
	notice := e.p.notice
	e.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: not the key in force for the patient", ErrSignature)
	case s.now().Sub(since) < notice:
		return fmt.Errorf("%w: the key has been in force since %s; an erasure needs a key in force for %v", ErrConflict, since.UTC().Format(time.RFC3339), notice)
	}
	return nil
}

// replicas is patient p's consent set: the charter's ConsentReplicas
// members closest to the patient's consent key by XOR distance of their
// Kademlia keys (Charter.Closest, found without ranking every member), in
// that order; in a charter that names no size, every member, ranked by a
// hash of p and the member (rendezvous hashing). Writes and reads are
// counted within it, each at a majority of it, so that any two meet; what
// an operation costs is bounded by its size, not by the federation's.
type replicas struct {
	order  []peer.ID
	in     map[peer.ID]bool
	quorum int // a majority of the set
}

func consentSet(c federation.Charter, p ledger.Pseudonym) replicas {
	if r := int(c.Policy.ConsentReplicas); r > 0 {
		members := c.Closest(consentKey(c.Federation, p), r)
		set := replicas{in: make(map[peer.ID]bool, len(members)), quorum: len(members)/2 + 1}
		for _, m := range members {
			set.order = append(set.order, m.ID)
			set.in[m.ID] = true
		}
		return set
	}
	rank := func(id peer.ID) [32]byte { return sha256.Sum256(append(p[:], id...)) }
	type ranked struct {
		score [32]byte
		id    peer.ID
	}
	all := make([]ranked, len(c.Members))
	for i, m := range c.Members {
		all[i] = ranked{rank(m.ID), m.ID}
	}
	slices.SortFunc(all, func(a, b ranked) int { return bytes.Compare(a.score[:], b.score[:]) })
	n := len(all)
	set := replicas{in: make(map[peer.ID]bool, n), quorum: n/2 + 1}
	for _, r := range all {
		set.order = append(set.order, r.id)
		set.in[r.id] = true
	}
	return set
}

// consentKey is where patient p's consent set lies in the members'
// keyspace: a hash of the federation and p, apart from the directory's
// keys (so a patient's consent set is not the replicas of its directory
// announcements).
func consentKey(federation string, p ledger.Pseudonym) [32]byte {
	h := sha256.New()
	h.Write([]byte("medfed consent set v1\x00"))
	h.Write([]byte(federation))
	h.Write([]byte{0})
	h.Write(p[:])
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// targets returns where a document about p goes: the holders (members
// only), and the other members of p's consent set, in its order, from
// which deliver takes as many as make a majority of the set with this
// centre and the holders in it that accept it. Any majority of the set a
// centre reads from then holds at least one of them.
func (s *Service) targets(set replicas, holders []peer.ID) (hs, others []peer.ID) {
	c := s.opts.Charter()
	in := map[peer.ID]bool{s.host.ID(): true}
	for _, h := range holders {
		if _, member := c.Member(h); member && !in[h] {
			in[h] = true
			hs = append(hs, h)
		}
	}
	for _, id := range set.order {
		if !in[id] {
			others = append(others, id)
		}
	}
	return hs, others
}

// deliver pushes d, with the patient's attestations, approvals and vetoes
// (what it is weighed against), to the holders and to enough other members for a
// majority, replacing those that fail with the next in order.
func (s *Service) deliver(ctx context.Context, e *entry, d Document) Delivery {
	var out Delivery
	holders, err := s.opts.Holders(ctx, e.subject)
	out.Holders, out.Lookup = holders, err
	bundle := []Document{d}
	e.mu.Lock()
	for _, k := range e.p.keyDocuments() {
		if k.Hash() != d.Hash() {
			bundle = append(bundle, k)
		}
	}
	e.mu.Unlock()
	payload := encodeDocs(bundle)
	self := s.host.ID()
	if slices.Contains(holders, self) {
		out.Delivered = append(out.Delivered, self)
	}
	set := consentSet(s.opts.Charter(), e.subject)
	need := set.quorum
	// A centre restarted less than a lease ago may have granted, in its
	// earlier process, leases it knows nothing of: it is counted in the
	// majority only when the others fall short, and then its wait for
	// those leases is waited out (see horizon).
	type restarted struct {
		id   peer.ID
		wait time.Duration
	}
	var (
		counted     int // others that have it and count
		selfIn      = set.in[self]
		selfCounted = selfIn && s.horizon.wait() == 0
		held        []restarted // others that have it, counted only if need be
		mu          sync.Mutex
		last        time.Time // when the last lease of a leaseholder not reached runs out
	)
	acks := func() int {
		if selfCounted {
			return counted + 1
		}
		return counted
	}
	waitFor := func(wait time.Duration) {
		if until := time.Now().Add(wait); wait > 0 && until.After(last) {
			last = until
		}
	}
	// This centre's own leaseholders, while the others are pushed to.
	own := make(chan time.Duration, 1)
	go func() { wait, _ := s.notify(ctx, e.subject, "", payload); own <- wait }()
	send := func(to []peer.ID) {
		var wg sync.WaitGroup
		for _, t := range to {
			wg.Go(func() {
				wait, fresh, err := s.push(ctx, t, payload)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					s.log.Warn("consent document not delivered", "kind", d.Kind.String(), "pseudonym", e.subject, "to", t, "err", err)
					out.Failed = append(out.Failed, Failure{Centre: t, Err: err})
					return
				}
				out.Delivered = append(out.Delivered, t)
				if !set.in[t] {
					return // a holder outside the set: told, not counted
				}
				if fresh {
					held = append(held, restarted{t, wait})
					return
				}
				counted++
				waitFor(wait)
			})
		}
		wg.Wait()
	}
	hs, others := s.targets(set, holders)
	hsIn := 0
	for _, h := range hs {
		if set.in[h] {
			hsIn++
		}
	}
	first := min(len(others), max(0, need-acks()-hsIn))
	send(append(hs, others[:first]...))
	for next := first; acks() < need && next < len(others); {
		n := min(len(others)-next, need-acks())
		send(others[next : next+n])
		next += n
	}
	ownWait := <-own
	if selfCounted {
		waitFor(ownWait)
	}
	// Short of a majority without them: the restarted count too, once
	// their earlier leases have run out.
	if acks() < need && selfIn && !selfCounted {
		selfCounted = true
		waitFor(max(ownWait, s.horizon.wait()))
	}
	for _, r := range held {
		if acks() >= need {
			break
		}
		counted++
		waitFor(r.wait)
	}
	out.Confirmed = acks() >= need
	slices.Sort(out.Delivered)
	slices.SortFunc(out.Failed, func(a, b Failure) int { return cmp.Compare(a.Centre, b.Centre) })
	if !out.Confirmed || last.IsZero() {
		return out
	}
	// A leaseholder that could not be told may decide on what it holds
	// until its lease runs out: only then is the document in force
	// everywhere.
	start := time.Now()
	t := time.NewTimer(time.Until(last))
	defer t.Stop()
	select {
	case <-t.C:
		out.Waited = time.Since(start)
	case <-ctx.Done(): // not known to be in force everywhere
		out.Confirmed = false
	}
	return out
}

// push delivers a bundle to one centre, trying again twice when a stream
// fails on a live connection; a refusal, or a centre that cannot be
// dialled, is final (it reads the state again when it is back). It
// returns how long the centre said to wait for its leaseholders, and
// whether it restarted less than a lease ago (the wait then covers the
// leases of its earlier process).
func (s *Service) push(ctx context.Context, to peer.ID, payload []byte) (wait time.Duration, restarted bool, err error) {
	for attempt := range 3 {
		if attempt > 0 && s.host.Network().Connectedness(to) != network.Connected {
			return 0, false, err
		}
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			case <-ctx.Done():
				return 0, false, errors.Join(err, ctx.Err())
			}
		}
		var (
			refusal *wire.Refused
			answer  []byte
		)
		if answer, err = s.exchange(ctx, to, opPush, payload); err == nil {
			wait, restarted, err := decodeWait(answer)
			return min(wait, MaxLease), restarted, err
		}
		if errors.As(err, &refusal) {
			return 0, false, err
		}
	}
	return 0, false, err
}

// View is what a centre knows of a patient's consent.
type View struct {
	Subject     ledger.Pseudonym
	Attested    bool
	Key         ed25519.PublicKey // the current key; nil when none attested
	Standing    Standing
	Documents   []Document        // a delegate's name their delegation (Document.Via)
	Keys        []KeyState        // the attestations, with where each stands
	Delegations []DelegationState // the delegations, with where each stands
	Uses        map[ID]int        // token uses recorded here
}

// Show returns the patient's consent as this centre holds it, after
// making sure it is current.
func (s *Service) Show(ctx context.Context, p ledger.Pseudonym) (View, error) {
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return View{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	uses := make(map[ID]int, len(e.p.uses))
	for k, v := range e.p.uses {
		uses[k] = v
	}
	return View{Subject: p, Attested: e.p.Attested(), Key: e.p.CurrentKey(), Standing: e.p.Standing(), Documents: e.p.Documents(), Keys: e.p.Keys(), Delegations: e.p.Delegations(), Uses: uses}, nil
}

// Decide answers q about patient p under the patient's current consent
// and the charter's policy. It fails with ErrStale rather than decide on
// consent it cannot confirm.
func (s *Service) Decide(ctx context.Context, p ledger.Pseudonym, q Request) (Decision, error) {
	if err := q.check(); err != nil {
		return Decision{}, err
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return Decision{}, err
	}
	e.mu.Lock()
	st := e.p.Standing()
	e.mu.Unlock()
	return Decide(st, s.policy(), q), nil
}

// UseToken answers q about one record of patient p under the signed
// token raw: Authorize for a single record, whose access entry (the use,
// or the refusal) is on the ledger before a permit is returned.
func (s *Service) UseToken(ctx context.Context, p ledger.Pseudonym, raw []byte, q Request) (Decision, error) {
	if err := q.check(); err != nil {
		return Decision{}, err
	}
	if raw == nil {
		return Decision{}, malformed("no token")
	}
	auth, err := s.Authorize(ctx, p, q, []Record{{Class: q.Class, Recorded: q.Recorded, Index: -1}}, raw, [16]byte{})
	if err != nil {
		return Decision{}, err
	}
	return auth.Decisions[0], nil
}

// EmergencyStart decides an emergency access q (purpose Emergency, with a
// reason) to patient p, records it on the ledger, permitted or not, and
// notifies the patient and the privacy officer. A permitted access opens
// a session that lasts the charter's emergency duration unless stopped.
func (s *Service) EmergencyStart(ctx context.Context, p ledger.Pseudonym, q Request) (Session, Decision, error) {
	if q.Purpose != Emergency {
		return Session{}, Decision{}, malformed("emergency access has the emergency purpose")
	}
	dec, err := s.Decide(ctx, p, q)
	if err != nil {
		return Session{}, Decision{}, err
	}
	a := AccessEntry{Event: EventEmergencyStart, Requester: q.Centre, Staff: q.Staff, Role: q.Role, Action: q.Action, Purpose: Emergency, Permitted: dec.Permit, Basis: dec.Basis, Reason: q.Reason}
	if dec.Permit {
		a.Ref = NewID()
	}
	n, err := s.recordEmergency(ctx, p, a)
	if err != nil {
		return Session{}, Decision{}, err
	}
	s.log.Warn("emergency access", "pseudonym", p, "requester", q.Centre, "staff", q.Staff, "reason", q.Reason.String(), "permitted", dec.Permit, "index", n)
	if !dec.Permit {
		return Session{}, dec, nil
	}
	sess, _ := s.Session(a.Ref)
	return sess, dec, nil
}

// ErrNoSession is returned for an emergency session that is not open:
// never started, stopped, or expired (a session not stopped ends the
// charter's emergency duration after its start entry).
var ErrNoSession = node.E(node.NotFound, "no open emergency session")

// EmergencyStop ends an emergency session, recorded on the ledger.
func (s *Service) EmergencyStop(ctx context.Context, id ID) error {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	open := ok && s.now().Before(sess.Expires)
	delete(s.sessions, id) // claimed: a second stop finds nothing
	s.mu.Unlock()
	if !open {
		return fmt.Errorf("consent: %w: %s", ErrNoSession, id)
	}
	a := AccessEntry{Event: EventEmergencyStop, Requester: sess.Requester, Staff: sess.Staff, Role: sess.Role, Purpose: Emergency, Permitted: true, Basis: BasisEmergency, Ref: id, Reason: sess.Reason}
	n, err := s.recordEmergency(ctx, sess.Subject, a)
	if err != nil {
		s.mu.Lock()
		s.sessions[id] = sess // still open: the stop is not on the ledger
		s.mu.Unlock()
		return err
	}
	s.log.Info("emergency access stopped", "pseudonym", sess.Subject, "session", id.String(), "index", n)
	return nil
}

// stopSessions stops the open emergency sessions of requester's staff
// member (zero: any of its staff) for patient p, and returns how many.
func (s *Service) stopSessions(ctx context.Context, requester peer.ID, p ledger.Pseudonym, staff ledger.StaffID) (int, error) {
	s.mu.Lock()
	var ids []ID
	for id, sess := range s.sessions {
		if sess.Subject == p && sess.Requester == requester && (staff.IsZero() || sess.Staff == staff) && s.now().Before(sess.Expires) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(ids, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	n := 0
	for _, id := range ids {
		switch err := s.EmergencyStop(ctx, id); {
		case errors.Is(err, ErrNoSession): // stopped meanwhile, or expired
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}

// Stopped is what one holder said to a request to stop emergency access.
type Stopped struct {
	Holder peer.ID
	Count  int // sessions stopped there
	Err    error
}

// StopEmergency asks each holder (this centre among them, when it is one)
// to stop this centre's emergency sessions for patient p, those of staff
// (zero: of all its staff). Each stop is on that holder's ledger and in
// its notification feed.
func (s *Service) StopEmergency(ctx context.Context, p ledger.Pseudonym, staff ledger.StaffID, holders []peer.ID) []Stopped {
	out := make([]Stopped, len(holders))
	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Go(func() {
			out[i].Holder = h
			if h == s.host.ID() {
				out[i].Count, out[i].Err = s.stopSessions(ctx, h, p, staff)
				return
			}
			var w wire.Writer
			w.Bytes(p[:])
			w.Bytes(staff[:])
			b, err := s.exchange(ctx, h, opStop, w.B)
			if err != nil {
				out[i].Err = err
				return
			}
			r := wire.NewReader(b, "emergency stop answer")
			out[i].Count = int(r.U16("count"))
			r.End("emergency stop answer")
			out[i].Err = r.Err()
		})
	}
	wg.Wait()
	return out
}

// recordEmergency appends an emergency entry, then brings the sessions
// and the notification feed up to it, with the ledger's time.
func (s *Service) recordEmergency(ctx context.Context, p ledger.Pseudonym, a AccessEntry) (int64, error) {
	le, err := NewAccess(p, a)
	if err != nil {
		return 0, err
	}
	s.audit.Lock()
	defer s.audit.Unlock()
	n, err := s.opts.Ledger.Append(ctx, le)
	if err != nil {
		return 0, fmt.Errorf("consent: recording emergency access: %w", err)
	}
	stored, err := s.opts.Ledger.Entry(ctx, n)
	if err != nil {
		return 0, fmt.Errorf("consent: reading back emergency access: %w", err)
	}
	s.emergencyEvent(n, stored.Time, p, a)
	return n, nil
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

// Authenticate checks that signed, a message made at issued, is the
// patient's own: made with a key a member attested for patient p, neither
// superseded at issued nor ever compromised. It makes sure it knows the
// patient's current keys first, as Decide does, and fails with ErrStale
// when it cannot. The caller bounds issued (a patient's request is fresh
// or refused).
func (s *Service) Authenticate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, signed wire.Opened, issued time.Time) error {
	if len(key) != ed25519.PublicKeySize {
		return malformed("a patient key of %d bytes", len(key))
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return err
	}
	// A key superseded since the patient dated the request is superseded:
	// the date is the signer's to choose.
	e.mu.Lock()
	valid, compromised := e.p.keyValid(key, later(issued, s.now()))
	e.mu.Unlock()
	switch {
	case compromised:
		return fmt.Errorf("%w: the key was reported lost or stolen", ErrSignature)
	case !valid:
		return fmt.Errorf("%w: not a key that speaks for the patient (never attested, or superseded)", ErrSignature)
	case !signed.Verify(key):
		return fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
