package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

// Store keeps what membership must not forget across a restart: every
// adopted version, and which draft of each version this centre approved (a
// centre approves one draft per version, so two conflicting versions
// cannot both reach a majority quorum). Both are written before anyone is
// told.
type Store interface {
	Adopt(ctx context.Context, note []byte) error
	Approve(ctx context.Context, version uint64, draft [32]byte) error
}

// State is what a centre remembers of its federation when it starts.
type State struct {
	Chain     [][]byte            // adopted notes, version 1 first
	Approvals map[uint64][32]byte // the draft this centre approved, by version
}

// Options configure a Membership. Key, Store and Gater are required.
type Options struct {
	Key          ed25519.PrivateKey // the centre's key: signs approvals
	Store        Store
	Gater        *Gater        // kept in step with the adopted charter
	Logger       *slog.Logger  // default: discard
	SyncInterval time.Duration // how often to reconnect and compare charters; default 2s
}

// ErrNotMember is returned when a centre that the charter does not list
// tries to act as a member.
var ErrNotMember = node.E(node.Conflict, "not a member of the federation")

// Membership runs a centre's side of the charter protocol: it keeps the
// adopted chain, gathers approvals for the next version, adopts it once a
// quorum approved, and keeps the connection gater and the connections to
// the members in step with it.
type Membership struct {
	host  host.Host
	self  peer.ID
	key   ed25519.PrivateKey
	store Store
	gater *Gater
	log   *slog.Logger
	every time.Duration

	// life ends when the membership is closed: what it sends in the
	// background (broadcasts, syncs) runs under it, counted in bg.
	life context.Context
	end  context.CancelFunc
	bgMu sync.Mutex // the end of life and bg.Add, so that Close's Wait is final
	bg   sync.WaitGroup

	mu        sync.Mutex
	chain     [][]byte
	current   Signed
	adopted   chan struct{} // closed, and replaced, when a version is adopted
	approvals map[uint64][32]byte
	pending   map[[32]byte][]byte  // drafts of the next version with the approvals seen
	offered   map[[32]byte]Charter // unsigned drafts of the next version offered by members off the council

	gossip *gossip // the federation's charter topic
}

// NewMembership verifies the stored chain, sets the gater to its members
// and starts answering the charter protocol on h.
func NewMembership(h host.Host, st State, opts Options) (*Membership, error) {
	if opts.Store == nil || opts.Gater == nil || len(opts.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("membership: Key, Store and Gater are required")
	}
	if len(st.Chain) == 0 {
		return nil, errors.New("membership: no charter installed")
	}
	current, err := VerifyChain(st.Chain)
	if err != nil {
		return nil, fmt.Errorf("membership: stored charter chain: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 2 * time.Second
	}
	life, end := context.WithCancel(context.Background())
	m := &Membership{
		life:      life,
		end:       end,
		host:      h,
		self:      h.ID(),
		key:       opts.Key,
		store:     opts.Store,
		gater:     opts.Gater,
		log:       opts.Logger.With("component", "membership"),
		every:     opts.SyncInterval,
		chain:     slices.Clone(st.Chain),
		current:   current,
		approvals: map[uint64][32]byte{},
		pending:   map[[32]byte][]byte{},
		adopted:   make(chan struct{}),
		offered:   map[[32]byte]Charter{},
	}
	for v, h := range st.Approvals {
		m.approvals[v] = h
	}
	m.follow(current)
	srv := &wire.Server{
		Name: "charter", Limit: MaxCharterNote + 16, Timeout: 15 * time.Second, Work: 10 * time.Second, MaxReason: maxReasonLen,
		Serve: m.serve, Log: m.log,
	}
	h.SetStreamHandler(ProtocolID, srv.Handle)
	if err := m.startGossip(current.Federation); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// follow points the gater and the peerstore at the members of c and drops
// connections to anyone else.
func (m *Membership) follow(c Signed) {
	ids := make([]peer.ID, 0, len(c.Members))
	for _, mem := range c.Members {
		ids = append(ids, mem.ID)
		if mem.ID != m.self {
			m.host.Peerstore().AddAddrs(mem.ID, mem.Addrs, peerstore.PermanentAddrTTL)
		}
	}
	m.gater.Allow(ids...)
	for _, conn := range m.host.Network().Conns() {
		if p := conn.RemotePeer(); !m.gater.Allowed(p) {
			m.log.Info("disconnecting a centre the charter no longer lists", "peer", p)
			if err := conn.Close(); err != nil {
				m.log.Warn("closing connection", "peer", p, "err", err)
			}
		}
	}
}

// Current returns the adopted charter.
func (m *Membership) Current() Signed {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// Adopted returns a channel closed when the next version is adopted:
// for what follows the charter without asking it over and over.
func (m *Membership) Adopted() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.adopted
}

// Chain returns every adopted version's note, version 1 first.
func (m *Membership) Chain() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.chain)
}

// Progress says where a proposed version stands.
type Progress struct {
	Version   uint64
	Approvals int
	Quorum    int
	Adopted   bool
	Draft     string // the hex of the draft's hash, which ApproveDraft names
	Change    string // what the draft changes (Describe)
}

// Approve approves the join request req: this centre signs the next
// version with the requester added, and offers it to every member. The
// version is adopted once a quorum of members approved the same draft.
func (m *Membership) Approve(ctx context.Context, req []byte) (Progress, error) {
	r, err := OpenRequest(req)
	if err != nil {
		return Progress{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Federation != m.current.Federation {
		return Progress{}, fmt.Errorf("%w: the request is for federation %q", ErrChain, r.Federation)
	}
	draft, err := m.current.WithMember(r.Member)
	if err != nil {
		return Progress{}, err
	}
	return m.approveLocked(ctx, draft)
}

// SetCouncil approves the next version with the council named (no names:
// every member on it). The council in force approves it, at its quorum.
func (m *Membership) SetCouncil(ctx context.Context, names []string) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	draft, err := m.current.WithCouncil(names)
	if err != nil {
		return Progress{}, err
	}
	return m.approveLocked(ctx, draft)
}

// ApproveCharter approves draft, a next version this centre made itself
// (a pseudonym key its holders generated or reshared with it, a policy:
// Charter.WithOPRF, Charter.WithPolicy), and offers it to the council.
// The centre must be on the council.
func (m *Membership) ApproveCharter(ctx context.Context, draft Charter) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if draft.Version != m.current.Version+1 || draft.Previous != m.current.Hash() {
		return Progress{}, fmt.Errorf("%w: a draft of version %d, the adopted version is %d", ErrChain, draft.Version, m.current.Version)
	}
	return m.approveLocked(ctx, draft)
}

// Propose offers draft, a next version this centre made itself, to the
// council without approving it: how a centre off the council (a holder of
// the pseudonym key that took part in its generation) puts the result
// before those who approve it (ApproveDraft). The draft is checked as the
// next version.
func (m *Membership) Propose(ctx context.Context, draft Charter) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	text := draft.Text()
	p, err := m.offeredLocked(text)
	if err != nil {
		return Progress{}, err
	}
	council := m.current.CouncilMembers()
	m.background(func(ctx context.Context) { m.broadcast(ctx, opOffer, []byte(text), council) })
	return p, nil
}

// offeredLocked keeps text, an unsigned draft of the next version, among
// the drafts a council member may approve.
func (m *Membership) offeredLocked(text string) (Progress, error) {
	c, err := ParseNext(m.current.Charter, text)
	if err != nil {
		return Progress{}, err
	}
	if err := follows(m.current.Charter, c); err != nil {
		return Progress{}, err
	}
	if err := checkOPRFChange(m.current.Charter, c); err != nil {
		return Progress{}, fmt.Errorf("%w: version %d: %v", ErrChain, c.Version, err)
	}
	h := c.Hash()
	if len(m.offered) >= maxOffered {
		clear(m.offered) // bounded: a flood of offers forgets the older ones
	}
	m.offered[h] = c
	return m.progress(Signed{Charter: c}), nil
}

// maxOffered bounds the unsigned drafts a centre keeps.
const maxOffered = 16

// ApproveDraft approves a draft another council member offered, named by
// the hex of its hash as Status lists it: the way a council member
// approves a change it did not draft itself (a policy, a pseudonym key
// generated or reshared by its holders).
func (m *Membership) ApproveDraft(ctx context.Context, draft string) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, note := range m.pending {
		if hex.EncodeToString(h[:]) != draft {
			continue
		}
		s, err := Approvals(m.current.Charter, note)
		if err != nil {
			return Progress{}, err
		}
		return m.approveLocked(ctx, s.Charter)
	}
	for h, c := range m.offered {
		if hex.EncodeToString(h[:]) == draft {
			return m.approveLocked(ctx, c)
		}
	}
	return Progress{}, fmt.Errorf("%w: no pending draft %q of version %d", node.ErrNotFound, draft, m.current.Version+1)
}

// progress is where s, a draft of the next version, stands.
func (m *Membership) progress(s Signed) Progress {
	h := s.Hash()
	return Progress{Version: s.Version, Approvals: len(s.Signers), Quorum: m.current.Policy.AdmissionQuorum,
		Draft: hex.EncodeToString(h[:]), Change: Describe(m.current.Charter, s.Charter)}
}

// Remove approves the next version without the named centre.
func (m *Membership) Remove(ctx context.Context, name string) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	draft, err := m.current.WithoutMember(name)
	if err != nil {
		return Progress{}, err
	}
	return m.approveLocked(ctx, draft)
}

func (m *Membership) approveLocked(ctx context.Context, draft Charter) (Progress, error) {
	if _, ok := m.current.Member(m.self); !ok {
		return Progress{}, ErrNotMember
	}
	if !m.current.OnCouncil(m.self) {
		return Progress{}, fmt.Errorf("%w: version %d's council approves the next version", ErrNotCouncil, m.current.Version)
	}
	h := draft.Hash()
	if prev, ok := m.approvals[draft.Version]; ok && prev != h {
		return Progress{}, fmt.Errorf("%w: this centre already approved another draft of version %d", ErrSignatures, draft.Version)
	} else if !ok {
		if err := m.store.Approve(ctx, draft.Version, h); err != nil {
			return Progress{}, fmt.Errorf("recording approval: %w", err)
		}
		m.approvals[draft.Version] = h
	}
	note, err := Sign(draft, m.pending[h], m.key)
	if err != nil {
		return Progress{}, err
	}
	return m.offerLocked(ctx, note, true)
}

// offerLocked records a draft with its approvals, adopts it at quorum, and
// otherwise (when announce is set) offers it to the other members.
func (m *Membership) offerLocked(ctx context.Context, note []byte, announce bool) (Progress, error) {
	s, err := Approvals(m.current.Charter, note)
	if err != nil {
		return Progress{}, err
	}
	if s.Version != m.current.Version+1 {
		return Progress{}, fmt.Errorf("%w: a draft of version %d, the adopted version is %d", ErrChain, s.Version, m.current.Version)
	}
	h := s.Hash()
	if have, ok := m.pending[h]; ok {
		if note, err = Merge(have, note); err != nil {
			return Progress{}, err
		}
		if s, err = Approvals(m.current.Charter, note); err != nil {
			return Progress{}, err
		}
	}
	m.pending[h] = note
	p := m.progress(s)
	if p.Approvals >= p.Quorum {
		if err := m.adoptLocked(ctx, note, true); err != nil {
			return p, err
		}
		p.Adopted = true
		return p, nil
	}
	if announce {
		council := m.current.CouncilMembers() // read under the lock, sent without it
		m.background(func(ctx context.Context) { m.broadcast(ctx, opPropose, note, council) })
	}
	return p, nil
}

// adoptLocked makes note, the next version, the adopted one: on disk
// first, then in memory, the gater and the connections. A centre whose
// approval made the quorum (announce) then tells the members of the new
// version: the council directly, everyone by gossip. One that learned of
// the version from another centre tells no one: gossip and the sync carry
// it on, and a version announced by every member that adopts it would
// cost the federation N² messages.
func (m *Membership) adoptLocked(ctx context.Context, note []byte, announce bool) error {
	s, err := VerifyNext(m.current.Charter, note)
	if err != nil {
		return err
	}
	if err := m.store.Adopt(ctx, s.Note); err != nil {
		return fmt.Errorf("adopting charter version %d: %w", s.Version, err)
	}
	m.chain = append(m.chain, s.Note)
	m.current = s
	close(m.adopted)
	m.adopted = make(chan struct{})
	clear(m.pending)
	clear(m.offered)
	m.follow(s)
	m.log.Info("charter version adopted", "version", s.Version, "members", len(s.Members), "approvals", len(s.Signers))
	if !announce {
		return nil
	}
	council := s.CouncilMembers()
	m.background(func(ctx context.Context) {
		m.publish(ctx, s.Note)
		m.broadcast(ctx, opAdopt, s.Note, council)
	})
	return nil
}

// background runs f in the background, with a context that ends when the
// membership is closed.
func (m *Membership) background(f func(ctx context.Context)) {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	if m.life.Err() != nil {
		return // closed
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f(m.life)
	}()
}

// sendTimeout bounds a broadcast or a sync with one member.
const sendTimeout = 10 * time.Second

// Close stops what the membership sends in the background and waits for
// it; the charter protocol is served until the host closes.
func (m *Membership) Close() {
	m.bgMu.Lock()
	m.end()
	m.bgMu.Unlock()
	m.bg.Wait()
}

// broadcast sends a note to every member but this centre, in parallel.
func (m *Membership) broadcast(ctx context.Context, op byte, note []byte, to []Member) {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, mem := range to {
		if mem.ID == m.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.ask(ctx, mem.ID, op, note); err != nil {
				m.log.Debug("charter message not delivered", "to", mem.Name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// ask sends one request to p and returns the answer's payload.
func (m *Membership) ask(ctx context.Context, p peer.ID, op byte, payload []byte) ([]byte, error) {
	return Ask(ctx, m.host, p, op, payload)
}

// Ask sends one charter-protocol request on a new stream to p.
func Ask(ctx context.Context, h host.Host, p peer.ID, op byte, payload []byte) ([]byte, error) {
	return askOn(ctx, h, ProtocolID, p, op, payload)
}

// askOn sends one request of protocol proto on a new stream to p and
// returns the answer's payload; any status but OK is an error.
func askOn(ctx context.Context, h host.Host, proto protocol.ID, p peer.ID, op byte, payload []byte) ([]byte, error) {
	answer, err := wire.Ask(ctx, h, proto, p, op, payload, maxFrameLen, maxReasonLen)
	var refused *wire.Refused
	if errors.As(err, &refused) {
		return nil, fmt.Errorf("%s %w", p, err)
	}
	return answer, err
}

// Every runs f every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// FetchChain asks member p for the whole adopted chain.
func FetchChain(ctx context.Context, h host.Host, p peer.ID) ([][]byte, error) {
	b, err := Ask(ctx, h, p, opChain, encodeVersion(1))
	if err != nil {
		return nil, err
	}
	return decodeNotes(b, MaxCharterNote)
}

// serve answers one charter-protocol request.
func (m *Membership) serve(ctx context.Context, from peer.ID, op byte, payload []byte) ([]byte, error) {
	switch op {
	case opChain:
		v, err := decodeVersion(payload)
		if err != nil {
			return nil, err
		}
		chain := m.Chain()
		if v < 1 || v > uint64(len(chain))+1 {
			return nil, protocolError("no version %d", v)
		}
		return encodeNotes(chain[v-1:]), nil
	case opPropose:
		m.mu.Lock()
		defer m.mu.Unlock()
		_, err := m.offerLocked(ctx, payload, false)
		return nil, err
	case opAdopt:
		return nil, m.receiveAdopted(ctx, from, payload)
	case opOffer:
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.current.OnCouncil(m.self) {
			return nil, fmt.Errorf("%w: offer a draft to the council", ErrNotCouncil)
		}
		_, err := m.offeredLocked(string(payload))
		return nil, err
	}
	return nil, protocolError("unknown operation %d", op)
}

// receiveAdopted takes a version another member adopted. A centre that is
// further behind fetches the versions it missed from the sender.
func (m *Membership) receiveAdopted(ctx context.Context, from peer.ID, note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := PeekCharter(note)
	if err != nil {
		return err
	}
	switch {
	case c.Version <= m.current.Version:
		return nil // already adopted
	case c.Version == m.current.Version+1:
		return m.adoptLocked(ctx, note, false)
	}
	m.background(func(ctx context.Context) { m.syncFrom(ctx, from) })
	return nil
}

// syncFrom adopts, in order, every version p has that this centre lacks.
func (m *Membership) syncFrom(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	from := m.Current().Version + 1
	b, err := m.ask(ctx, p, opChain, encodeVersion(from))
	if err != nil {
		m.log.Debug("charter sync", "from", p, "err", err)
		return
	}
	notes, err := decodeNotes(b, MaxCharterNote)
	if err != nil {
		m.log.Warn("charter sync: bad answer", "from", p, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, note := range notes {
		c, err := PeekCharter(note)
		if err != nil || c.Version <= m.current.Version {
			continue
		}
		if err := m.adoptLocked(ctx, note, false); err != nil {
			m.log.Warn("charter sync: version refused", "from", p, "version", c.Version, "err", err)
			return
		}
	}
}

// PeekCharter reads the charter of a note without checking signatures,
// to learn which version it claims to be.
func PeekCharter(msg []byte) (Charter, error) {
	if len(msg) > MaxCharterNote {
		return Charter{}, fmt.Errorf("%w: malformed: note of %d bytes", node.ErrInvalid, len(msg))
	}
	// splitNote, not note.Open, which refuses a note of more than 100
	// signatures: a founding version carries one per founder.
	text, _, err := splitNote(msg, MaxCharterNote)
	if err != nil {
		return Charter{}, fmt.Errorf("%w: malformed: note: %v", node.ErrInvalid, err)
	}
	if IsDelta(text) {
		c, _, err := parseHead(text, deltaHeader)
		if err != nil {
			return Charter{}, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
		}
		return c, nil
	}
	return ParseCharter(text)
}

// Run keeps this centre's charter in step with the members', until ctx
// ends: every interval it connects to a few members and fetches the
// versions they have adopted and it has not (what gossip missed). In a
// federation of up to syncFanout other members that is every member.
func (m *Membership) Run(ctx context.Context) {
	m.tick(ctx)
	Every(ctx, m.every, func() { m.tick(ctx) })
}

// syncFanout is how many members a centre syncs its charter with each
// interval: a bound, so that the background load of a centre does not
// grow with the federation. Gossip carries every version; the sync is
// what catches up a centre that missed it, and with 3 members a round a
// version reaches every member of ten thousand within a dozen rounds.
const syncFanout = 3

// syncSample returns up to syncFanout members other than self, a fresh
// random choice each time: members this centre is connected to first,
// so that a centre of a large federation does not dial a new member
// every interval, then others.
func (m *Membership) syncSample(c Charter) []Member {
	var connected, others []Member
	for _, mem := range c.Members {
		switch {
		case mem.ID == m.self:
		case m.host.Network().Connectedness(mem.ID) == network.Connected:
			connected = append(connected, mem)
		case len(c.Members) <= 2*syncFanout+1 || rand.IntN(len(c.Members)) < 4*syncFanout:
			others = append(others, mem) // a random few of a large federation's
		}
	}
	rand.Shuffle(len(connected), func(i, j int) { connected[i], connected[j] = connected[j], connected[i] })
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	all := append(connected, others...)
	return all[:min(syncFanout, len(all))]
}

func (m *Membership) tick(ctx context.Context) {
	cur := m.Current()
	var wg sync.WaitGroup
	for _, mem := range m.syncSample(cur.Charter) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.host.Network().Connectedness(mem.ID) != network.Connected {
				dctx, cancel := context.WithTimeout(ctx, m.every)
				defer cancel()
				if err := m.host.Connect(dctx, peer.AddrInfo{ID: mem.ID, Addrs: mem.Addrs}); err != nil {
					return
				}
			}
			m.syncFrom(ctx, mem.ID)
		}()
	}
	wg.Wait()
}

// Status is a snapshot of membership for operators.
type Status struct {
	Federation string
	Version    uint64
	Self       peer.ID
	Member     bool
	Members    []MemberStatus
	Pending    []Progress
	// Council names the members that approve the next version, of which
	// Quorum must; KeyHolders, the current members holding a share of the
	// pseudonym key, of which KeyThreshold evaluate (none: no key).
	Council      []string
	Quorum       int
	KeyHolders   []string
	KeyThreshold int
}

// MemberStatus is one member as this centre sees it.
type MemberStatus struct {
	Name      string
	ID        peer.ID
	Connected bool
}

// Status returns who the members are and which are connected.
func (m *Membership) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Federation: m.current.Federation, Version: m.current.Version, Self: m.self, Quorum: m.current.Policy.AdmissionQuorum}
	_, st.Member = m.current.Member(m.self)
	for _, c := range m.current.CouncilMembers() {
		st.Council = append(st.Council, c.Name)
	}
	if m.current.OPRF.Dealt() {
		st.KeyThreshold = m.current.Policy.OPRFThreshold
		for _, s := range m.current.OPRF.Shares {
			if mem, ok := m.current.Member(s.Holder); ok {
				st.KeyHolders = append(st.KeyHolders, mem.Name)
			}
		}
	}
	for _, mem := range m.current.Members {
		st.Members = append(st.Members, MemberStatus{
			Name:      mem.Name,
			ID:        mem.ID,
			Connected: mem.ID == m.self || m.host.Network().Connectedness(mem.ID) == network.Connected,
		})
	}
	for _, note := range m.pending {
		if s, err := Approvals(m.current.Charter, note); err == nil {
			st.Pending = append(st.Pending, m.progress(s))
		}
	}
	for h, c := range m.offered {
		if _, signed := m.pending[h]; !signed {
			st.Pending = append(st.Pending, m.progress(Signed{Charter: c}))
		}
	}
	return st
}
