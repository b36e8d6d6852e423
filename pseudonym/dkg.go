package pseudonym

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Generating a key with no dealer. The committee runs the distributed key
// generation of Gennaro, Jarecki, Krawczyk and Rabin ("Secure distributed
// key generation for discrete-log based cryptosystems", J. Cryptology
// 2007): every member deals a random secret to all, and the key is the sum
// of the secrets of the dealers that dealt correctly, so nobody, not even
// a coalition of t-1, ever holds or can bias k. Member i's share is the
// sum of what those dealers gave it. The first phase uses Pedersen
// commitments, which reveal nothing about the secrets, so that a faulty
// member cannot pick its own secret after seeing the others' (what makes
// Pedersen's simpler DKG biasable); only once the qualified set QUAL is
// fixed do its dealers reveal Feldman commitments a_jk·G, from which the
// key and every public share follow.
//
// Six broadcast rounds; member i of n, dealer j, threshold t:
//
//  1. deal: j draws a_j, b_j of degree t-1 and sends C_jk = a_jk·G + b_jk·H
//     and (a_j(i), b_j(i)) sealed to each i.
//  2. complaints: i opens its shares and names every dealer whose share
//     does not open or does not match C_j.
//  3. answers: j reveals the shares it was complained about. A dealer
//     with t or more complaints, or whose answer is missing or does not
//     match C_j, is disqualified; QUAL is the rest.
//  4. Feldman: each j in QUAL sends A_jk = a_jk·G.
//  5. accusations: i names every j in QUAL whose A_j its share does not
//     match, with its share (a_j(i), b_j(i)) as the proof, which everyone
//     checks against C_j (a false accusation is ignored).
//  6. reveals: for every exposed j, the others reveal their shares of a_j,
//     and a_j is rebuilt in the open from t that match C_j, so j's secret
//     still counts and the key stays defined.
//
// A message that is missing or does not decode counts as the sender's
// saying nothing: in round 1 the sender deals nothing and is left out of
// QUAL (it still receives a share); in 2 and 5 it complains about and
// accuses nobody; in 3 a dealer with complaints is disqualified; in 4 a
// dealer in QUAL is exposed; in 6 it helps rebuild nothing. Every
// decision is taken on broadcast data only, so every member that follows
// the protocol reaches the same QUAL and the same key.
//
// What the protocol needs from the transport is a broadcast: the same
// bytes from a sender reach every member or none, and the sender's own
// message counts as delivered (the federation's ledger, or signed messages
// that members echo, give that). A sender that could show members
// different messages could split them, so the members confirm they agree
// before the key is used: each signs the charter that lists the Public.
// Messages are bound to the federation, threshold and committee (and each
// seal to its dealer, recipient and commitments), not to one run: the
// transport keeps two runs with the same committee apart.
//
// With at most t-1 faulty members and n >= 2t-1 the DKG always finishes
// with a key no faulty coalition knows or chose. With more faulty members
// it may stop with ErrCeremony: it refuses to finish with fewer than t
// qualified dealers, or with every one of them exposed, since the key
// might then be known. Every member, qualified or not, ends with a share
// and is listed in the Public; a member absent throughout is listed too
// (its share is defined, and lost), and a resharing to a committee without
// it repairs that.

// DKGRounds is the number of broadcast rounds of a DKG.
const DKGRounds = 6

const dkgLabel = "medfed oprf dkg v1"

// DKG is one member's state in a distributed key generation.
type DKG struct {
	federation string
	threshold  int
	committee  []peer.ID
	index      int
	session    [sessionLen]byte
	open       hpke.PrivateKey

	round int    // the round whose messages Step takes next; 0 before Start
	sent  []byte // this member's message of that round

	a, b    []*ristretto255.Scalar // this member's polynomials
	from    []*dkgDealer           // by dealer index - 1
	qual    []int
	exposed []int

	pub   Public
	share *Share
	err   error
}

// dkgDealer is what a member knows of one dealer.
type dkgDealer struct {
	deal         deal                    // nil commit: it dealt nothing valid
	a, b         *ristretto255.Scalar    // this member's share from it, once valid
	complainers  []int                   // members who complained in round 2
	answers      []entry                 // the shares it revealed in round 3
	disqualified bool                    // left out of QUAL in round 3
	feldman      []*ristretto255.Element // A_jk, from round 4
	exposed      bool                    // its Feldman commitments are wrong or missing
}

// NewDKG returns the state of the member with key in a DKG of a
// threshold-of-len(committee) key for federation. committee[i] gets index
// i+1; every member must be given the same committee in the same order.
func NewDKG(federation string, threshold int, committee []peer.ID, key ed25519.PrivateKey) (*DKG, error) {
	byID, err := checkCommittee(federation, committee, threshold)
	if err != nil {
		return nil, fmt.Errorf("dkg: %w", err)
	}
	id, err := selfID(key)
	if err != nil {
		return nil, fmt.Errorf("dkg: %w", err)
	}
	index, ok := byID[id]
	if !ok {
		return nil, fmt.Errorf("dkg: %w: this centre is not in the committee", ErrKeys)
	}
	open, err := opener(key)
	if err != nil {
		return nil, fmt.Errorf("dkg: %w", err)
	}
	return &DKG{
		federation: federation, threshold: threshold, committee: slices.Clone(committee),
		index: index, session: dkgSession(federation, threshold, committee), open: open,
		from: make([]*dkgDealer, len(committee)),
	}, nil
}

func dkgSession(federation string, threshold int, committee []peer.ID) [sessionLen]byte {
	s := newSession(dkgLabel, federation)
	s.int(threshold)
	s.ids(committee)
	return s.sum()
}

// Index returns this member's index in the committee.
func (d *DKG) Index() int { return d.index }

// Round returns the round whose messages Step takes next: 0 before
// Start, DKGRounds+1 once done.
func (d *DKG) Round() int { return d.round }

// Done reports whether the DKG has finished, successfully or not.
func (d *DKG) Done() bool { return d.round > DKGRounds || d.err != nil }

// Start draws this member's polynomials and returns its round-1 message,
// to broadcast.
func (d *DKG) Start() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.round != 0 {
		return nil, errors.New("dkg: started twice")
	}
	t, n := d.threshold, len(d.committee)
	d.a, d.b = randomPoly(t), randomPoly(t)
	commit := make([]*ristretto255.Element, t)
	for k := range commit {
		commit[k] = pedersen(d.a[k], d.b[k])
	}
	body := appendElements(make([]byte, 0, t*elementLen+n*(2*scalarLen+sealOverhead)), commit)
	commitEnc := body[:t*elementLen]
	plain := make([]byte, 0, 2*scalarLen)
	for i := 1; i <= n; i++ {
		ai, bi := evalPoly(d.a, i), evalPoly(d.b, i)
		plain = bi.Encode(ai.Encode(plain[:0]))
		ct, err := sealTo(d.committee[i-1], d.sealInfo(d.index, i, commitEnc), plain)
		ai.Zero()
		bi.Zero()
		clear(plain)
		if err != nil {
			return nil, d.fail(fmt.Errorf("dkg: sealing share %d: %w", i, err))
		}
		body = append(body, ct...)
	}
	d.round = 1
	d.sent = d.header(kindDKGDeal, d.index).frame(body)
	return d.sent, nil
}

// Step takes the messages of the current round, by sender (this member's
// own, and anything under its ID, is taken from its own state; a member
// missing from received sent nothing), and returns this member's message
// for the next round, to broadcast. After the last round it returns nil
// and Result has the key.
func (d *DKG) Step(received map[peer.ID][]byte) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.round < 1 || d.round > DKGRounds {
		return nil, fmt.Errorf("dkg: Step in round %d", d.round)
	}
	msgs := make([][]byte, len(d.committee))
	for i, id := range d.committee {
		msgs[i] = received[id]
	}
	msgs[d.index-1] = d.sent
	var out []byte
	var err error
	switch d.round {
	case 1:
		out = d.complain(msgs)
	case 2:
		out = d.answer(msgs)
	case 3:
		out, err = d.qualify(msgs)
	case 4:
		out = d.accuse(msgs)
	case 5:
		out, err = d.reveal(msgs)
	case 6:
		err = d.finish(msgs)
	}
	if err != nil {
		return nil, d.fail(err)
	}
	d.round++
	d.sent = out
	return out, nil
}

// Result returns the key's public parameters, the same for every member
// that followed the protocol, and this member's share.
func (d *DKG) Result() (Public, *Share, error) {
	if d.err != nil {
		return Public{}, nil, d.err
	}
	if d.round <= DKGRounds {
		return Public{}, nil, fmt.Errorf("dkg: not done (round %d of %d)", d.round, DKGRounds)
	}
	return d.pub, d.share, nil
}

// Dealers says what became of each dealer; complete once the DKG is done.
func (d *DKG) Dealers() Dealers {
	var r Dealers
	for j, dl := range d.from {
		switch {
		case dl == nil || dl.deal.commit == nil || dl.disqualified:
			r.Disqualified = append(r.Disqualified, j+1)
		case dl.exposed:
			r.Qualified = append(r.Qualified, j+1)
			r.Reconstructed = append(r.Reconstructed, j+1)
		default:
			r.Qualified = append(r.Qualified, j+1)
		}
	}
	return r
}

// Close zeroes this member's secrets: its polynomials and the shares it
// received; an unfinished DKG cannot go on. Result's share is not
// touched. The last round and every failure zero them already.
func (d *DKG) Close() {
	if !d.Done() {
		d.err = errors.New("dkg: closed")
	}
	d.zero()
}

func (d *DKG) zero() {
	d.open = nil
	zeroScalars(d.a)
	zeroScalars(d.b)
	for _, dl := range d.from {
		if dl == nil {
			continue
		}
		zeroScalars([]*ristretto255.Scalar{dl.a, dl.b})
		zeroEntries(dl.answers)
	}
}

func (d *DKG) fail(err error) error {
	d.err = err
	d.zero()
	return err
}

func (d *DKG) header(kind byte, sender int) header {
	return header{kind: kind, session: d.session, sender: sender}
}

func (d *DKG) sealInfo(dealer, recipient int, commitEnc []byte) []byte {
	return sealInfoFor(dkgLabel, d.federation, d.session, dealer, recipient, commitEnc)
}

func (d *DKG) inQual(j int) bool {
	_, ok := slices.BinarySearch(d.qual, j)
	return ok
}

// complain opens this member's share from every dealer (round 1's
// messages) and returns its complaints.
func (d *DKG) complain(msgs [][]byte) []byte {
	t, n := d.threshold, len(d.committee)
	var complaints []int
	for j := 1; j <= n; j++ {
		dl := &dkgDealer{}
		d.from[j-1] = dl
		dd, err := decodeDeal(msgs[j-1], d.header(kindDKGDeal, j), t, n, 2*scalarLen)
		if err != nil {
			continue // dealt nothing: out of QUAL, for everyone
		}
		dl.deal = dd
		if j == d.index {
			dl.a, dl.b = evalPoly(d.a, j), evalPoly(d.b, j)
			continue
		}
		s, ok := openScalars(d.open, d.sealInfo(j, d.index, dd.commitEnc), dd.sealed[d.index-1], 2)
		if ok && pedersenOK(s[0], s[1], dd.commit, d.index) {
			dl.a, dl.b = s[0], s[1]
			continue
		}
		zeroScalars(s)
		complaints = append(complaints, j)
	}
	return d.header(kindDKGComplaints, d.index).frame(appendIndices(nil, complaints))
}

// answer records round 2's complaints and reveals the shares this member
// was complained about.
func (d *DKG) answer(msgs [][]byte) []byte {
	n := len(d.committee)
	for i := 1; i <= n; i++ {
		js, err := decodeIndices(msgs[i-1], d.header(kindDKGComplaints, i), n, i)
		if err != nil {
			continue // complains about nobody
		}
		for _, j := range js {
			if dl := d.from[j-1]; dl.deal.commit != nil {
				dl.complainers = append(dl.complainers, i)
			}
		}
	}
	var es []entry
	// With t complaints or more this dealer is out whatever it answers,
	// and t answers would reveal its secret: it answers nothing.
	if c := d.from[d.index-1].complainers; len(c) < d.threshold {
		for _, i := range c {
			es = append(es, entry{index: i, vals: []*ristretto255.Scalar{evalPoly(d.a, i), evalPoly(d.b, i)}})
		}
	}
	out := d.header(kindDKGAnswers, d.index).frame(appendEntries(nil, es))
	zeroEntries(es)
	return out
}

// qualify checks round 3's answers, fixes QUAL, and returns this member's
// Feldman commitments if it is in QUAL.
func (d *DKG) qualify(msgs [][]byte) ([]byte, error) {
	t, n := d.threshold, len(d.committee)
	for j := 1; j <= n; j++ {
		dl := d.from[j-1]
		if dl.deal.commit == nil {
			continue
		}
		dl.disqualified = !d.answered(dl, j, msgs[j-1])
		if !dl.disqualified {
			d.qual = append(d.qual, j)
		}
	}
	if len(d.qual) < t {
		// Fewer than t could all be faulty: the key might be theirs.
		return nil, fmt.Errorf("dkg: %w: %d qualified dealers, want at least %d", ErrCeremony, len(d.qual), t)
	}
	for _, j := range d.qual {
		if d.from[j-1].a == nil {
			return nil, fmt.Errorf("dkg: no share from qualified dealer %d", j) // cannot happen
		}
	}
	var body []byte
	if d.inQual(d.index) {
		body = appendElements(appendCount(nil, t), feldman(d.a))
	} else {
		body = appendCount(nil, 0)
	}
	return d.header(kindDKGFeldman, d.index).frame(body), nil
}

// answered reports whether dealer j, with its complaints, stays in QUAL
// after its answer msg; it takes this member's share from a good answer
// to its own complaint.
func (d *DKG) answered(dl *dkgDealer, j int, msg []byte) bool {
	c := dl.complainers
	if len(c) == 0 {
		return true
	}
	if len(c) >= d.threshold {
		return false
	}
	es, err := decodeEntries(msg, d.header(kindDKGAnswers, j), 2, len(d.committee), j)
	if err != nil || len(es) != len(c) {
		return false
	}
	for k, e := range es {
		if e.index != c[k] || !pedersenOK(e.vals[0], e.vals[1], dl.deal.commit, e.index) {
			return false
		}
	}
	dl.answers = es
	if e, ok := find(es, d.index); ok {
		zeroScalars([]*ristretto255.Scalar{dl.a, dl.b})
		dl.a = ristretto255.NewScalar().Set(e.vals[0])
		dl.b = ristretto255.NewScalar().Set(e.vals[1])
	}
	return true
}

// accuse takes round 4's Feldman commitments and returns this member's
// accusations: the qualified dealers whose commitments its share does not
// match, each with the share as proof.
func (d *DKG) accuse(msgs [][]byte) []byte {
	t := d.threshold
	for _, j := range d.qual {
		dl := d.from[j-1]
		A, err := decodeFeldman(msgs[j-1], d.header(kindDKGFeldman, j), t)
		if err != nil || len(A) != t {
			dl.exposed = true // sent no commitments
			continue
		}
		dl.feldman = A
		// The answers of round 3 are public: check them here, for all.
		for _, e := range dl.answers {
			if !feldmanOK(e.vals[0], dl.feldman, e.index) {
				dl.exposed = true
			}
		}
	}
	var es []entry
	for _, j := range d.qual {
		dl := d.from[j-1]
		if j == d.index || dl.exposed || feldmanOK(dl.a, dl.feldman, d.index) {
			continue
		}
		es = append(es, entry{index: j, vals: []*ristretto255.Scalar{dl.a, dl.b}})
	}
	return d.header(kindDKGAccusations, d.index).frame(appendEntries(nil, es))
}

// decodeFeldman decodes a round-4 message: u16 count (0, or t from a
// dealer in QUAL), then the commitments.
func decodeFeldman(msg []byte, h header, t int) ([]*ristretto255.Element, error) {
	body, err := h.open(msg)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 {
		return nil, h.errorf("no count")
	}
	m := int(binary.BigEndian.Uint16(body))
	if m != 0 && m != t {
		return nil, h.errorf("%d commitments, want 0 or %d", m, t)
	}
	es, err := decodeElements(body[2:], m)
	if err != nil {
		return nil, h.errorf("%v", err)
	}
	return es, nil
}

// reveal checks round 5's accusations and returns this member's shares of
// every exposed dealer's polynomial.
func (d *DKG) reveal(msgs [][]byte) ([]byte, error) {
	n := len(d.committee)
	for i := 1; i <= n; i++ {
		es, err := decodeEntries(msgs[i-1], d.header(kindDKGAccusations, i), 2, n, i)
		if err != nil {
			continue
		}
		for _, e := range es {
			dl := d.from[e.index-1]
			if !d.inQual(e.index) || dl.exposed {
				continue
			}
			// The accuser's share is the one the dealer committed to, and
			// the dealer's Feldman commitments deny it.
			if pedersenOK(e.vals[0], e.vals[1], dl.deal.commit, i) && !feldmanOK(e.vals[0], dl.feldman, i) {
				dl.exposed = true
			}
		}
		zeroEntries(es)
	}
	var es []entry
	for _, j := range d.qual {
		if d.from[j-1].exposed {
			d.exposed = append(d.exposed, j)
			if j != d.index {
				es = append(es, entry{index: j, vals: []*ristretto255.Scalar{d.from[j-1].a, d.from[j-1].b}})
			}
		}
	}
	if len(d.exposed) == len(d.qual) {
		// Honest dealers are never exposed: none is left in QUAL, and the
		// key would be public.
		return nil, fmt.Errorf("dkg: %w: every qualified dealer was exposed", ErrCeremony)
	}
	return d.header(kindDKGReveals, d.index).frame(appendEntries(nil, es)), nil
}

// finish rebuilds the exposed dealers' polynomials from round 6's reveals
// and computes the key, the public shares and this member's share.
func (d *DKG) finish(msgs [][]byte) error {
	t, n := d.threshold, len(d.committee)
	// open[x] is Σ over exposed dealers of a_j(x), x = 0..n: public now.
	open := make([]*ristretto255.Scalar, n+1)
	for x := range open {
		open[x] = ristretto255.NewScalar()
	}
	if len(d.exposed) > 0 {
		reveals := make([][]entry, n)
		for i := 1; i <= n; i++ {
			reveals[i-1], _ = decodeEntries(msgs[i-1], d.header(kindDKGReveals, i), 2, n, i)
		}
		for _, j := range d.exposed {
			var xs []int
			var ys []*ristretto255.Scalar
			for i := 1; i <= n && len(xs) < t; i++ {
				e, ok := find(reveals[i-1], j)
				if ok && pedersenOK(e.vals[0], e.vals[1], d.from[j-1].deal.commit, i) {
					xs, ys = append(xs, i), append(ys, e.vals[0])
				}
			}
			if len(xs) < t {
				return fmt.Errorf("dkg: %w: %d valid shares to rebuild exposed dealer %d, want %d", ErrCeremony, len(xs), j, t)
			}
			for x := range open {
				for m, l := range lagrangeAt(xs, x) {
					open[x].Add(open[x], l.Multiply(l, ys[m]))
				}
			}
		}
	}
	// A_k summed over the dealers that were not exposed.
	sum := make([]*ristretto255.Element, t)
	for k := range sum {
		sum[k] = ristretto255.NewIdentityElement()
	}
	mine := ristretto255.NewScalar()
	for _, j := range d.qual {
		dl := d.from[j-1]
		mine.Add(mine, dl.a)
		if dl.exposed {
			continue
		}
		for k := range sum {
			sum[k].Add(sum[k], dl.feldman[k])
		}
	}
	at := func(x int) *ristretto255.Element {
		return ristretto255.NewIdentityElement().Add(commitAt(sum, x), ristretto255.NewIdentityElement().ScalarBaseMult(open[x]))
	}
	key := ristretto255.NewIdentityElement().Add(sum[0], ristretto255.NewIdentityElement().ScalarBaseMult(open[0]))
	pub := publicFor(key, d.committee, at)
	share := &Share{Federation: d.federation, Index: d.index, k: mine}
	if err := checkResult(d.federation, d.threshold, pub, share); err != nil {
		mine.Zero()
		return fmt.Errorf("dkg: %w", err)
	}
	d.pub, d.share = pub, share
	d.zero()
	return nil
}
