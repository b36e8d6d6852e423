package centre

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/pseudonym"
)

// The federation's pseudonym key is made and moved by key ceremonies that
// the members' operators start on their running nodes, never by one
// centre: keygen, the distributed key generation, where the charter lists
// no key yet (a federation is founded without one); and reshare, which
// moves the same key to a new committee and threshold (a centre joining
// the committee, a holder leaving it). Every participant runs the same
// ceremony: its ID binds the federation, the charter version and hash it
// starts from, the committee, the threshold, the participants and the
// attempt, so runs never mix. When it ends, each participant keeps the
// share it got pending (PendingShareFile), drafts the next charter
// version listing the key (Charter.WithOPRF) and, on the council,
// approves it; the participants' drafts are the same, so their approvals
// add up. Once the version is adopted every centre follows it
// (followKey): a holder's pending share becomes its share, a centre no
// longer listed deletes its share, and the pseudonym services switch to
// the new shares, with the same key, so every pseudonym stays.

// KeyCeremony is an operator's request to take part in a key ceremony.
type KeyCeremony struct {
	// Committee names the members that will hold the key; their order
	// does not matter (the charter's, by name, gives the shares'
	// indices).
	Committee []string
	// Threshold is how many holders compute a pseudonym: 2 to the
	// committee's size; 0 for a majority of it.
	Threshold int
	// Attempt tells runs from the same charter version apart: 0 or 1 for
	// the first; every participant gives the same number, and a new one
	// to run again after a run that failed.
	Attempt int
	// Timeouts bound the rounds; the first waits for every participant
	// to start (pseudonym.DefaultFirstRound unless set).
	Timeouts pseudonym.CeremonyTimeouts
}

// Bounds of a KeyCeremony's timeouts and attempt.
const (
	MaxCeremonyWait  = time.Hour
	MaxCeremonyRound = 10 * time.Minute
	MaxAttempt       = 1_000_000
)

// KeyCeremonyResult is what came of a key ceremony at this centre.
type KeyCeremonyResult struct {
	Holders   []string // the committee members the charter will list as holders, by share index
	Threshold int
	Index     int      // this centre's share, 0 if it holds none
	Left      []string // participants the ceremony went on without: absent, or caught dealing wrongly
	// Progress is the draft of the next charter version listing the key:
	// its hash (which council members give approve-draft) and its
	// approvals.
	Progress federation.Progress
	// Approved says whether this centre approved the draft: not when it
	// is off the council (the council members among the participants
	// approve it), nor when the others' approvals adopted it first.
	Approved bool
}

// ErrCeremonyRunning is returned while this node takes part in a key
// ceremony already.
var ErrCeremonyRunning = node.E(node.Conflict, "a key ceremony runs on this node already")

// GenerateKey takes part in generating the federation's pseudonym key
// with the committee (this centre among them), where the charter lists
// none: every member of the committee runs it on its node, within the
// first round's wait of each other.
func (n *Node) GenerateKey(ctx context.Context, req KeyCeremony) (KeyCeremonyResult, error) {
	return n.keyCeremony(ctx, "keygen", req)
}

// ReshareKey takes part in moving the federation's pseudonym key to the
// committee at the threshold: as a current holder, dealing its share
// (any threshold of the current holders suffice; the others are waited
// for in the first round only), as a member of the committee, receiving
// a new share, or both. The key stays the same, and so does every
// pseudonym.
func (n *Node) ReshareKey(ctx context.Context, req KeyCeremony) (KeyCeremonyResult, error) {
	return n.keyCeremony(ctx, "reshare", req)
}

// ceremony is one prepared key ceremony.
type ceremony struct {
	stepper interface {
		pseudonym.Stepper
		Result() (pseudonym.Public, *pseudonym.Share, error)
		Dealers() pseudonym.Dealers
		Close()
	}
	committee    []federation.Member
	dealers      []peer.ID // by index: the committee's (keygen) or the current holders' (reshare)
	participants []peer.ID
}

func (n *Node) keyCeremony(ctx context.Context, kind string, req KeyCeremony) (KeyCeremonyResult, error) {
	op := "key ceremony " + kind
	if err := req.check(); err != nil {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if !n.ceremonyBusy.CompareAndSwap(false, true) {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, ErrCeremonyRunning)
	}
	defer n.ceremonyBusy.Store(false)
	cur := n.Membership.Current()
	committee, err := committeeOf(cur.Charter, req.Committee)
	if err != nil {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	t := req.Threshold
	if t == 0 {
		t = len(committee)/2 + 1
	}
	if t < 2 || t > len(committee) {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w: threshold %d of a committee of %d: want 2 to %d (with 1, every holder could compute pseudonyms alone)",
			op, node.ErrInvalid, t, len(committee), len(committee))
	}
	var c ceremony
	switch kind {
	case "keygen":
		c, err = n.prepareKeygen(cur.Charter, committee, t)
	default:
		c, err = n.prepareReshare(cur.Charter, committee, t)
	}
	if err != nil {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	defer c.stepper.Close()
	id := ceremonyID(kind, cur, c.committee, t, c.participants, max(req.Attempt, 1))
	n.log.Info("key ceremony started", "ceremony", kind, "committee", len(c.committee), "threshold", t,
		"participants", len(c.participants), "charter_version", cur.Version, "attempt", max(req.Attempt, 1))
	absent, err := n.ceremonies.Run(ctx, id, c.participants, c.stepper, req.Timeouts)
	if err != nil {
		n.log.Warn("key ceremony failed", "ceremony", kind, "err", err)
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	pub, share, err := c.stepper.Result()
	if err != nil {
		return KeyCeremonyResult{}, fmt.Errorf("%s: %w", op, err)
	}
	// The charter lists the committee members that hold a share: not
	// those absent from the ceremony (theirs is lost), nor, in a key
	// generation, those caught dealing wrongly. Every participant leaves
	// out the same ones: the run checked they all stepped on the same
	// messages.
	out := KeyCeremonyResult{Threshold: t}
	left := map[peer.ID]bool{}
	for _, p := range absent {
		left[p] = true
	}
	for _, i := range c.stepper.Dealers().Disqualified {
		if kind == "keygen" {
			left[c.dealers[i-1]] = true
		} else if !left[c.dealers[i-1]] {
			out.Left = append(out.Left, n.memberName(c.dealers[i-1]))
		}
	}
	pub.Holders = slices.DeleteFunc(slices.Clone(pub.Holders), func(h pseudonym.Holder) bool { return left[h.ID] })
	for _, p := range c.participants {
		if left[p] {
			out.Left = append(out.Left, n.memberName(p))
		}
	}
	if len(pub.Holders) < t {
		return out, fmt.Errorf("%s: %w: %d of the committee ended with a share, fewer than the threshold %d: run it again with the others present",
			op, pseudonym.ErrCeremony, len(pub.Holders), t)
	}
	for _, h := range pub.Holders {
		out.Holders = append(out.Holders, n.memberName(h.ID))
	}
	if share != nil && left[n.Centre.ID()] {
		share = nil
	}
	if share != nil {
		out.Index = share.Index
	}
	out.Progress, out.Approved, err = n.proposeKey(ctx, cur, oprfKeyOf(pub), t, share)
	if err != nil {
		return out, fmt.Errorf("%s: %w", op, err)
	}
	n.log.Info("key ceremony finished", "ceremony", kind, "share", out.Index, "left_out", len(out.Left),
		"draft", out.Progress.Draft, "approvals", out.Progress.Approvals, "adopted", out.Progress.Adopted)
	return out, nil
}

func (r KeyCeremony) check() error {
	switch {
	case len(r.Committee) == 0:
		return fmt.Errorf("%w: no committee: name the members that will hold the key", node.ErrInvalid)
	case r.Attempt < 0 || r.Attempt > MaxAttempt:
		return fmt.Errorf("%w: attempt %d: want 1 to %d", node.ErrInvalid, r.Attempt, MaxAttempt)
	case r.Timeouts.FirstRound < 0 || r.Timeouts.FirstRound > MaxCeremonyWait:
		return fmt.Errorf("%w: a first round's wait of %v: want up to %v", node.ErrInvalid, r.Timeouts.FirstRound, MaxCeremonyWait)
	case r.Timeouts.Round < 0 || r.Timeouts.Round > MaxCeremonyRound:
		return fmt.Errorf("%w: a round's wait of %v: want up to %v", node.ErrInvalid, r.Timeouts.Round, MaxCeremonyRound)
	}
	return nil
}

// committeeOf returns the members named, in the charter's order.
func committeeOf(c federation.Charter, names []string) ([]federation.Member, error) {
	want := map[string]bool{}
	for _, name := range names {
		if want[name] {
			return nil, fmt.Errorf("%w: %s is named twice in the committee", node.ErrInvalid, name)
		}
		if _, ok := c.MemberByName(name); !ok {
			return nil, fmt.Errorf("%w: %q is not a member of the federation (charter version %d)", node.ErrInvalid, name, c.Version)
		}
		want[name] = true
	}
	var out []federation.Member
	for _, m := range c.Members {
		if want[m.Name] {
			out = append(out, m)
		}
	}
	if len(out) > pseudonym.MaxHolders {
		return nil, fmt.Errorf("%w: a committee of %d: at most %d", node.ErrInvalid, len(out), pseudonym.MaxHolders)
	}
	return out, nil
}

func ids(ms []federation.Member) []peer.ID {
	out := make([]peer.ID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func (n *Node) prepareKeygen(cur federation.Charter, committee []federation.Member, t int) (ceremony, error) {
	if cur.OPRF.Dealt() {
		return ceremony{}, fmt.Errorf("%w: the federation has a pseudonym key already (charter version %d): reshare it to a new committee instead", node.ErrConflict, cur.Version)
	}
	members := ids(committee)
	if !slices.Contains(members, n.Centre.ID()) {
		return ceremony{}, fmt.Errorf("%w: this centre is not in the committee: only the committee's members generate the key", node.ErrInvalid)
	}
	d, err := pseudonym.NewDKG(cur.Federation, t, members, n.Centre.key)
	if err != nil {
		return ceremony{}, err
	}
	return ceremony{stepper: d, committee: committee, dealers: members, participants: members}, nil
}

func (n *Node) prepareReshare(cur federation.Charter, committee []federation.Member, t int) (ceremony, error) {
	old, err := pseudonymKeys(cur)
	if err != nil {
		return ceremony{}, err
	}
	if old == nil {
		return ceremony{}, fmt.Errorf("%w: the federation has no pseudonym key yet: generate one with keygen", node.ErrConflict)
	}
	// The current holders that are still members deal (the others cannot
	// connect); the committee receives.
	var dealers, participants []peer.ID
	for _, h := range old.Holders {
		dealers = append(dealers, h.ID)
		if _, member := cur.Member(h.ID); member {
			participants = append(participants, h.ID)
		}
	}
	members := ids(committee)
	for _, id := range members {
		if !slices.Contains(participants, id) {
			participants = append(participants, id)
		}
	}
	if !slices.Contains(participants, n.Centre.ID()) {
		return ceremony{}, fmt.Errorf("%w: this centre neither holds a share of the key nor is in the new committee", node.ErrInvalid)
	}
	n.keyMu.Lock()
	share := n.share
	if !slices.Equal(n.keyOPRF.Shares, cur.OPRF.Shares) {
		share = nil // the services have not followed this version yet
	}
	n.keyMu.Unlock()
	if _, holder := old.Holder(n.Centre.ID()); holder && share == nil {
		n.log.Warn("this centre is a holder of the pseudonym key without its share: it deals nothing in the resharing")
	}
	r, err := pseudonym.NewReshare(old, share, members, t, n.Centre.key)
	if err != nil {
		return ceremony{}, err
	}
	return ceremony{stepper: r, committee: committee, dealers: dealers, participants: participants}, nil
}

// ceremonyID derives the ID of a key ceremony's run from everything it is
// about, so that every participant derives the same one and no other run
// shares it.
func ceremonyID(kind string, cur federation.Signed, committee []federation.Member, threshold int, participants []peer.ID, attempt int) pseudonym.CeremonyID {
	var w wire.Writer
	w.Str("medfed oprf ceremony v1")
	w.Str(kind)
	w.Str(cur.Federation)
	w.U64(cur.Version)
	h := cur.Hash()
	w.Bytes(h[:])
	w.U16(uint16(len(committee)))
	for _, m := range committee {
		w.Str(string(m.ID))
	}
	w.U16(uint16(threshold))
	sorted := slices.Clone(participants)
	slices.Sort(sorted)
	w.U16(uint16(len(sorted)))
	for _, p := range sorted {
		w.Str(string(p))
	}
	w.U32(uint32(attempt))
	return sha256.Sum256(w.B)
}

// proposeKey keeps this centre's new share pending and drafts the charter
// version after cur listing key at threshold t; a council member
// approves it. Every participant drafts the same version from the same
// result, so their approvals count towards one draft.
func (n *Node) proposeKey(ctx context.Context, cur federation.Signed, key federation.OPRFKey, t int, share *pseudonym.Share) (federation.Progress, bool, error) {
	// Under keyMu: the adoption of another version in between would make
	// the share pending for a version that can no longer come.
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	draft, err := cur.Charter.WithOPRF(key, t)
	if err != nil {
		return federation.Progress{}, false, err
	}
	h := draft.Hash()
	now := n.Membership.Current()
	if now.Hash() != cur.Hash() && now.Hash() != h {
		return federation.Progress{}, false, fmt.Errorf("%w: charter version %d was adopted during the ceremony, which started from version %d: run it again",
			federation.ErrChain, now.Version, cur.Version)
	}
	if share != nil {
		if err := n.Centre.keepPending(share); err != nil {
			return federation.Progress{}, false, fmt.Errorf("keeping the new share: %w", err)
		}
	}
	// The other participants' approvals may adopt this very draft before
	// this centre is done, or while it approves: it then follows it at
	// once, with its share.
	adoptedFirst := func() (federation.Progress, bool, error) {
		now := n.Membership.Current()
		if err := n.followKeyLocked(ctx, now.Charter, false, true); err != nil {
			return federation.Progress{}, false, err
		}
		return federation.Progress{Version: now.Version, Approvals: len(now.Signers), Quorum: cur.Policy.AdmissionQuorum,
			Adopted: true, Draft: hex.EncodeToString(h[:]), Change: federation.Describe(cur.Charter, draft)}, false, nil
	}
	if now.Hash() == h {
		return adoptedFirst()
	}
	if !now.OnCouncil(n.Centre.ID()) {
		// Off the council: offer the draft, for the council to approve by
		// its hash (medfed federation approve-draft).
		p, err := n.Membership.Propose(ctx, draft)
		if err != nil && n.Membership.Current().Hash() == h {
			return adoptedFirst()
		}
		return p, false, err
	}
	p, err := n.Membership.ApproveCharter(ctx, draft)
	if err != nil && n.Membership.Current().Hash() == h {
		return adoptedFirst()
	}
	if err == nil && p.Adopted { // this approval made the quorum: follow at once
		if err := n.followKeyLocked(ctx, n.Membership.Current().Charter, false, false); err != nil {
			return p, true, err
		}
	}
	return p, err == nil, err
}
