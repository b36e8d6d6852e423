package pseudonym

import (
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"slices"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Resharing a key to a new committee. The holders of the current key move
// it to a new committee and threshold without anyone learning k, and
// without anyone being able to change it: the redistribution of Desmedt
// and Jajodia (1997) with Feldman-verified subshares, as in the proactive
// secret sharing of Herzberg, Jarecki, Krawczyk and Yung (1995). Old
// holder i deals its share s_i on a fresh polynomial g_i of degree t'-1
// with g_i(0) = s_i, publishing B_ik = g_ik·G and sealing g_i(j) to each
// new member j. B_i0 must be i's public share K_i, as the current Keys
// list it, or the dealer is refused: so every accepted dealing is of the
// share i really holds, and the key cannot move. The new members take the
// first t valid dealers by index, S, and
//
//	s'_j = Σ_{i∈S} λ_i·g_i(j),  K'_j = Σ_{i∈S} λ_i·Σ_k B_ik·j^k,
//
// with λ_i the Lagrange coefficients of S at 0, so Σ λ_i·g_i is a
// polynomial of degree t'-1 through k. New members may be old ones; they
// get fresh shares like the rest. Old shares do not combine with new
// ones, but t old shares still give k: the old holders erase theirs once
// the new Public is in the charter.
//
// Three broadcast rounds:
//
//  1. deal: each old holder taking part sends B_i and the sealed g_i(j).
//  2. complaints: each new member names the dealers whose subshare does
//     not open or does not match B_i.
//  3. answers: each dealer reveals the subshares it was complained about.
//     Feldman commitments make the answers publicly verifiable, so one
//     round settles every complaint: a dealer with t' complaints or more
//     (t' answers would reveal g_i, and s_i with it), or whose answer is
//     missing or does not match B_i, is refused.
//
// A missing or malformed deal is no deal; a missing complaint message
// complains about nobody; a dealer with complaints and no answer is
// refused. Every decision is taken on broadcast data, so every member
// reaches the same S and the same Public (the old holders too, which may
// then vouch for it). Fewer than t valid dealers stop the resharing with
// ErrCeremony. As for the DKG, the transport must be a broadcast.

// ReshareRounds is the number of broadcast rounds of a resharing.
const ReshareRounds = 3

const reshareLabel = "medfed oprf reshare v1"

// Reshare is one participant's state in a resharing: an old holder that
// deals its share, a member of the new committee, or both.
type Reshare struct {
	old       *Keys
	committee []peer.ID
	threshold int
	index     int // in the new committee; 0 for none
	dealer    int // this participant's old index when it deals; 0 otherwise
	session   [sessionLen]byte
	open      hpke.PrivateKey

	round int
	sent  []byte

	s     *ristretto255.Scalar   // the old share this participant deals
	g     []*ristretto255.Scalar // its polynomial
	from  map[int]*reshareDealer // by old index
	valid []int

	pub   Public
	share *Share
	err   error
}

type reshareDealer struct {
	deal        deal                 // nil commit: dealt nothing
	s           *ristretto255.Scalar // this member's subshare g_i(index), once valid
	complainers []int
	answers     []entry
	refused     bool
}

// NewReshare returns the state of the centre with key in a resharing of
// old's key to a threshold-of-len(committee) key of committee
// (committee[i] gets index i+1). share is the centre's current share, or
// nil if it holds none (or none it will deal): a centre must deal a share,
// be in the new committee, or both. Every participant must be given the
// same old Keys, committee and threshold.
func NewReshare(old *Keys, share *Share, committee []peer.ID, threshold int, key ed25519.PrivateKey) (*Reshare, error) {
	byID, err := checkCommittee(old.Federation, committee, threshold)
	if err != nil {
		return nil, fmt.Errorf("reshare: %w", err)
	}
	id, err := selfID(key)
	if err != nil {
		return nil, fmt.Errorf("reshare: %w", err)
	}
	r := &Reshare{
		old: old, committee: slices.Clone(committee), threshold: threshold, index: byID[id],
		session: reshareSession(old, threshold, committee), from: map[int]*reshareDealer{},
	}
	if share != nil {
		if err := share.matches(old); err != nil {
			return nil, fmt.Errorf("reshare: %w", err)
		}
		if h, ok := old.Holder(id); !ok || h.Index != share.Index {
			return nil, fmt.Errorf("reshare: %w: the share is not this centre's", ErrKeys)
		}
		r.dealer = share.Index
		r.s = ristretto255.NewScalar().Set(share.k)
	}
	if r.dealer == 0 && r.index == 0 {
		return nil, fmt.Errorf("reshare: %w: this centre neither deals a share nor is in the new committee", ErrKeys)
	}
	if r.index != 0 {
		if r.open, err = opener(key); err != nil {
			return nil, fmt.Errorf("reshare: %w", err)
		}
	}
	return r, nil
}

func reshareSession(old *Keys, threshold int, committee []peer.ID) [sessionLen]byte {
	s := newSession(reshareLabel, old.Federation)
	s.int(old.Threshold)
	s.bytes(old.Key[:])
	s.int(len(old.Holders))
	for _, h := range old.Holders {
		s.int(h.Index)
		s.bytes([]byte(h.ID))
		s.bytes(h.Public[:])
	}
	s.int(threshold)
	s.ids(committee)
	return s.sum()
}

// Index returns this participant's index in the new committee, 0 if it is
// not a member.
func (r *Reshare) Index() int { return r.index }

// Round returns the round whose messages Step takes next: 0 before Start,
// ReshareRounds+1 once done.
func (r *Reshare) Round() int { return r.round }

// Done reports whether the resharing has finished, successfully or not.
func (r *Reshare) Done() bool { return r.round > ReshareRounds || r.err != nil }

// Start returns this participant's round-1 message, its deal, or nil if it
// deals nothing (it still takes part in the rounds).
func (r *Reshare) Start() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.round != 0 {
		return nil, errors.New("reshare: started twice")
	}
	r.round = 1
	if r.dealer == 0 {
		return nil, nil
	}
	t, n := r.threshold, len(r.committee)
	r.g = randomPoly(t)
	r.g[0].Set(r.s)
	body := appendElements(make([]byte, 0, t*elementLen+n*(scalarLen+sealOverhead)), feldman(r.g))
	commitEnc := body[:t*elementLen]
	for j := 1; j <= n; j++ {
		v := evalPoly(r.g, j)
		plain := v.Bytes()
		ct, err := sealTo(r.committee[j-1], r.sealInfo(r.dealer, j, commitEnc), plain)
		v.Zero()
		clear(plain)
		if err != nil {
			return nil, r.fail(fmt.Errorf("reshare: sealing subshare %d: %w", j, err))
		}
		body = append(body, ct...)
	}
	r.sent = r.header(kindReshareDeal, r.dealer).frame(body)
	return r.sent, nil
}

// Step takes the messages of the current round, by sender (deals and
// answers come from the old holders, complaints from the new members;
// this participant's own is taken from its state), and returns its message
// for the next round, or nil if it has none to send. After the last round
// Result has the new key.
func (r *Reshare) Step(received map[peer.ID][]byte) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	var out []byte
	var err error
	switch r.round {
	case 1:
		out = r.complain(r.fromOld(received))
	case 2:
		out = r.answer(r.fromNew(received))
	case 3:
		err = r.finish(r.fromOld(received))
	default:
		return nil, fmt.Errorf("reshare: Step in round %d", r.round)
	}
	if err != nil {
		return nil, r.fail(err)
	}
	r.round++
	r.sent = out
	return out, nil
}

// fromOld returns the old holders' messages by old index.
func (r *Reshare) fromOld(received map[peer.ID][]byte) map[int][]byte {
	msgs := make(map[int][]byte, len(r.old.Holders))
	for _, h := range r.old.Holders {
		msgs[h.Index] = received[h.ID]
	}
	if r.dealer != 0 {
		msgs[r.dealer] = r.sent
	}
	return msgs
}

// fromNew returns the new members' messages by new index - 1.
func (r *Reshare) fromNew(received map[peer.ID][]byte) [][]byte {
	msgs := make([][]byte, len(r.committee))
	for j, id := range r.committee {
		msgs[j] = received[id]
	}
	if r.index != 0 {
		msgs[r.index-1] = r.sent
	}
	return msgs
}

// Result returns the new key's public parameters, with the same Key as
// the old, and this participant's new share (nil if it is not in the new
// committee).
func (r *Reshare) Result() (Public, *Share, error) {
	if r.err != nil {
		return Public{}, nil, r.err
	}
	if r.round <= ReshareRounds {
		return Public{}, nil, fmt.Errorf("reshare: not done (round %d of %d)", r.round, ReshareRounds)
	}
	return r.pub, r.share, nil
}

// Dealers says what became of each old holder as a dealer; complete once
// the resharing is done. The new shares are built from the first t of
// Qualified.
func (r *Reshare) Dealers() Dealers {
	var d Dealers
	for _, h := range r.old.Holders {
		if slices.Contains(r.valid, h.Index) {
			d.Qualified = append(d.Qualified, h.Index)
		} else {
			d.Disqualified = append(d.Disqualified, h.Index)
		}
	}
	return d
}

// Close zeroes this participant's secrets: the share it deals, its
// polynomial and the subshares it received; an unfinished resharing
// cannot go on. Result's share is not touched. The last round and every
// failure zero them already.
func (r *Reshare) Close() {
	if !r.Done() {
		r.err = errors.New("reshare: closed")
	}
	r.zero()
}

func (r *Reshare) zero() {
	r.open = nil
	zeroScalars(r.g)
	zeroScalars([]*ristretto255.Scalar{r.s})
	for _, dl := range r.from {
		zeroScalars([]*ristretto255.Scalar{dl.s})
		zeroEntries(dl.answers)
	}
}

func (r *Reshare) fail(err error) error {
	r.err = err
	r.zero()
	return err
}

func (r *Reshare) header(kind byte, sender int) header {
	return header{kind: kind, session: r.session, sender: sender}
}

func (r *Reshare) sealInfo(dealer, recipient int, commitEnc []byte) []byte {
	return sealInfoFor(reshareLabel, r.old.Federation, r.session, dealer, recipient, commitEnc)
}

// complain takes round 1's deals and returns this member's complaints
// (nil if it is not a new member).
func (r *Reshare) complain(msgs map[int][]byte) []byte {
	t, n := r.threshold, len(r.committee)
	var complaints []int
	for _, h := range r.old.Holders {
		i := h.Index
		dd, err := decodeDeal(msgs[i], r.header(kindReshareDeal, i), t, n, scalarLen)
		if err != nil {
			continue // dealt nothing
		}
		dl := &reshareDealer{deal: dd}
		r.from[i] = dl
		// g_i(0) must be the share i holds: the key stays k.
		if dd.commit[0].Equal(r.old.shares[i]) != 1 {
			dl.refused = true
			continue
		}
		if r.index == 0 {
			continue
		}
		if i == r.dealer {
			dl.s = evalPoly(r.g, r.index)
			continue
		}
		s, ok := openScalars(r.open, r.sealInfo(i, r.index, dd.commitEnc), dd.sealed[r.index-1], 1)
		if ok && feldmanOK(s[0], dd.commit, r.index) {
			dl.s = s[0]
			continue
		}
		zeroScalars(s)
		complaints = append(complaints, i)
	}
	if r.index == 0 {
		return nil
	}
	return r.header(kindReshareComplaints, r.index).frame(appendIndices(nil, complaints))
}

// answer records round 2's complaints and returns this dealer's answers
// (nil if it does not deal).
func (r *Reshare) answer(msgs [][]byte) []byte {
	for j := 1; j <= len(r.committee); j++ {
		is, err := decodeIndices(msgs[j-1], r.header(kindReshareComplaints, j), MaxHolders, 0)
		if err != nil {
			continue
		}
		for _, i := range is {
			if dl, ok := r.from[i]; ok && !dl.refused {
				dl.complainers = append(dl.complainers, j)
			}
		}
	}
	if r.dealer == 0 {
		return nil
	}
	var es []entry
	if dl, ok := r.from[r.dealer]; ok && len(dl.complainers) < r.threshold {
		for _, j := range dl.complainers {
			es = append(es, entry{index: j, vals: []*ristretto255.Scalar{evalPoly(r.g, j)}})
		}
	}
	out := r.header(kindReshareAnswers, r.dealer).frame(appendEntries(nil, es))
	zeroEntries(es)
	return out
}

// finish checks round 3's answers, picks S, and computes the new public
// shares and this member's new share.
func (r *Reshare) finish(msgs map[int][]byte) error {
	for _, h := range r.old.Holders {
		i := h.Index
		dl, ok := r.from[i]
		if !ok || dl.refused {
			continue
		}
		if dl.refused = !r.answered(dl, i, msgs[i]); !dl.refused {
			r.valid = append(r.valid, i)
		}
	}
	t := r.old.Threshold
	if len(r.valid) < t {
		return fmt.Errorf("reshare: %w: %d current holders dealt valid shares, want at least %d", ErrCeremony, len(r.valid), t)
	}
	set := r.valid[:t]
	lambda := lagrangeAt(set, 0)
	// B'_k = Σ_{i∈S} λ_i·B_ik: the Feldman commitments of the new
	// polynomial.
	combined := make([]*ristretto255.Element, r.threshold)
	points := make([]*ristretto255.Element, t)
	for k := range combined {
		for m, i := range set {
			points[m] = r.from[i].deal.commit[k]
		}
		combined[k] = ristretto255.NewIdentityElement().VarTimeMultiScalarMult(lambda, points)
	}
	if combined[0].Equal(r.old.key) != 1 {
		return fmt.Errorf("reshare: the dealt shares do not interpolate to the key") // cannot happen: B_i0 = K_i
	}
	pub := publicFor(r.old.key, r.committee, func(x int) *ristretto255.Element { return commitAt(combined, x) })
	var share *Share
	if r.index != 0 {
		s := ristretto255.NewScalar()
		for m, i := range set {
			if r.from[i].s == nil {
				return fmt.Errorf("reshare: no subshare from valid dealer %d", i) // cannot happen
			}
			s.Add(s, ristretto255.NewScalar().Multiply(lambda[m], r.from[i].s))
		}
		share = &Share{Federation: r.old.Federation, Index: r.index, k: s}
	}
	if err := checkResult(r.old.Federation, r.threshold, pub, share); err != nil {
		if share != nil {
			share.k.Zero()
		}
		return fmt.Errorf("reshare: %w", err)
	}
	r.pub, r.share = pub, share
	r.zero()
	return nil
}

// answered reports whether dealer i, with its complaints, stays valid
// after its answer msg; a member takes its subshare from a good answer to
// its own complaint.
func (r *Reshare) answered(dl *reshareDealer, i int, msg []byte) bool {
	c := dl.complainers
	if len(c) == 0 {
		return true
	}
	if len(c) >= r.threshold {
		return false
	}
	es, err := decodeEntries(msg, r.header(kindReshareAnswers, i), 1, len(r.committee), 0)
	if err != nil || len(es) != len(c) {
		return false
	}
	for k, e := range es {
		if e.index != c[k] || !feldmanOK(e.vals[0], dl.deal.commit, e.index) {
			return false
		}
	}
	dl.answers = es
	if e, ok := find(es, r.index); ok && r.index != 0 {
		zeroScalars([]*ristretto255.Scalar{dl.s})
		dl.s = ristretto255.NewScalar().Set(e.vals[0])
	}
	return true
}
