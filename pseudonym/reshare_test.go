package pseudonym

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// resharing is a resharing under test: the participants (old holders,
// then new members not among them), their IDs, and each one's state.
type resharing struct {
	ids      []peer.ID
	parties  []*Reshare
	newIndex map[int]int // participant -> index in the new committee
}

// newResharing sets up a resharing of old to committee (newKeys[i] is
// committee[i]'s key) with threshold: every old holder in dealers deals
// its share (1-based old indices), every new member takes part.
func newResharing(t testing.TB, old *Keys, oldKeys []ed25519.PrivateKey, shares map[int]*Share, dealers []int,
	committee []peer.ID, newKeys []ed25519.PrivateKey, threshold int) *resharing {
	t.Helper()
	r := &resharing{newIndex: map[int]int{}}
	add := func(id peer.ID, key ed25519.PrivateKey, share *Share) {
		p, err := NewReshare(old, share, committee, threshold, key)
		if err != nil {
			t.Fatal(err)
		}
		r.newIndex[len(r.parties)] = p.Index()
		r.ids, r.parties = append(r.ids, id), append(r.parties, p)
	}
	for _, h := range old.Holders {
		if slices.Contains(dealers, h.Index) || slices.Contains(committee, h.ID) {
			var s *Share
			if slices.Contains(dealers, h.Index) {
				s = shares[h.Index]
			}
			add(h.ID, oldKeys[h.Index-1], s)
		}
	}
	for j, id := range committee {
		if _, ok := old.Holder(id); !ok {
			add(id, newKeys[j], nil)
		}
	}
	return r
}

func (r *resharing) run(t testing.TB, tm tamper) ([]error, map[peer.ID]int) {
	t.Helper()
	parties := make([]party, len(r.parties))
	for i, p := range r.parties {
		parties[i] = p
	}
	return runCeremony(t, r.ids, parties, ReshareRounds, tm)
}

func (r *resharing) results(i int) (Public, *Share, error) { return r.parties[i].Result() }

func (r *resharing) all() []int { return indices(len(r.parties)) }

// dkgKey runs a DKG of n members, threshold t, and returns their keys,
// IDs, the checked key and the shares by index.
func dkgKey(t testing.TB, tag string, n, threshold int) ([]ed25519.PrivateKey, []peer.ID, *Keys, map[int]*Share) {
	t.Helper()
	keys, members := testMembers(t, tag, n)
	dkgs, errs := runDKG(t, keys, members, threshold, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	fed, shares := agreed(t, threshold, dkgResults(dkgs), indices(n))
	return keys, members, fed, shares
}

// A DKG'd 3-of-5 key reshared to a 4-of-6 committee of two old members
// and four new keeps its key and its pseudonyms; the new shares are fresh,
// and an old holder left out cannot combine its old share with new ones.
func TestReshare(t *testing.T) {
	oldKeys, oldMembers, old, oldShares := dkgKey(t, "dkg", 5, 3)
	newOnly, newIDs := testMembers(t, "new", 4)
	committee := []peer.ID{newIDs[0], oldMembers[1], newIDs[1], newIDs[2], oldMembers[3], newIDs[3]}
	committeeKeys := []ed25519.PrivateKey{newOnly[0], oldKeys[1], newOnly[1], newOnly[2], oldKeys[3], newOnly[3]}
	r := newResharing(t, old, oldKeys, oldShares, []int{1, 2, 3, 4, 5}, committee, committeeKeys, 4)
	errs, _ := r.run(t, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Every participant, old holders leaving included, agrees.
	fed, shares := agreed(t, 4, r.results, r.all())
	if fed.Key != old.Key {
		t.Fatal("the resharing changed the key")
	}
	if len(shares) != 6 || fed.Threshold != 4 {
		t.Fatalf("%d new shares of a %d-of-%d key, want 4 of 6", len(shares), fed.Threshold, len(fed.Holders))
	}
	for i, p := range r.parties {
		if _, s, _ := p.Result(); (s == nil) != (r.newIndex[i] == 0) {
			t.Fatalf("participant %d: share %v, new index %d", i, s, r.newIndex[i])
		}
	}
	if d := r.parties[0].Dealers(); !slices.Equal(d.Qualified, []int{1, 2, 3, 4, 5}) || d.Disqualified != nil {
		t.Fatalf("dealers %+v, want all five valid", d)
	}
	// Old members 2 and 4 are new members 2 and 5, with fresh shares.
	if shares[2].k.Equal(oldShares[2].k) == 1 || shares[5].k.Equal(oldShares[4].k) == 1 {
		t.Fatal("an old member kept its old share")
	}

	ids := testIdentifiers(t, 20)
	want := reference(t, old, pick(oldShares, 1, 3, 5), ids)
	for _, set := range [][]int{{1, 2, 3, 4}, {3, 4, 5, 6}, {1, 2, 5, 6}, {1, 2, 3, 4, 5, 6}} {
		if got := reference(t, fed, pick(shares, set...), ids); !slices.Equal(got, want) {
			t.Fatalf("new shares %v compute other pseudonyms than the old key", set)
		}
	}
	// Below the new threshold, nothing.
	if got := reference(t, fed, pick(shares, 1, 2, 3), ids); slices.Equal(got[:1], want[:1]) {
		t.Fatal("t'-1 new shares compute the pseudonyms")
	}
	// Old holder 5 is not in the new committee; its old share with three
	// new ones (at 1, 2, 3, and its own 5) gives nothing either.
	leaver := &Share{Federation: fed.Federation, Index: 5, k: oldShares[5].k}
	mixed := append(pick(shares, 1, 2, 3), leaver)
	if got := reference(t, fed, mixed, ids); slices.Equal(got[:1], want[:1]) {
		t.Fatal("a removed holder's old share with t'-1 new shares computes the pseudonyms")
	}
	k := ristretto255.NewScalar()
	for _, s := range mixed {
		k.Add(k, s.folded([]int{1, 2, 3, 5}))
	}
	if ristretto255.NewIdentityElement().ScalarBaseMult(k).Equal(fed.key) == 1 {
		t.Fatal("a removed holder's old share with t'-1 new shares gives the key")
	}

	// Resharing again to the same committee refreshes every share and
	// keeps the key: proactive security.
	again := newResharing(t, fed, committeeKeys, shares, []int{1, 3, 4, 6}, committee, committeeKeys, 4)
	if err := errors.Join(first(again.run(t, nil))...); err != nil {
		t.Fatal(err)
	}
	refreshed, fresh := agreed(t, 4, again.results, again.all())
	if refreshed.Key != old.Key || fresh[1].k.Equal(shares[1].k) == 1 {
		t.Fatal("the refresh changed the key or kept a share")
	}
	if got := reference(t, refreshed, pick(fresh, 2, 3, 5, 6), ids); !slices.Equal(got, want) {
		t.Fatal("refreshed shares compute other pseudonyms")
	}
}

func first[A, B any](a A, _ B) A { return a }

// A key dealt the old way, by a trusted dealer, moves to a committee by
// resharing: the way an existing federation migrates off its dealer. Two
// of the four holders (the threshold) suffice to deal.
func TestReshareDealtKey(t *testing.T) {
	oldKeys, pub, sealed := dealTo(t, 4, 2)
	old, err := NewKeys("test-fed", 2, pub)
	if err != nil {
		t.Fatal(err)
	}
	oldShares := map[int]*Share{}
	for _, k := range oldKeys {
		s, err := Open(old, sealed, k)
		if err != nil {
			t.Fatal(err)
		}
		oldShares[s.Index] = s
	}
	newKeys, newIDs := testMembers(t, "migrate", 3)
	committee := []peer.ID{pub.Holders[0].ID, newIDs[0], pub.Holders[2].ID, newIDs[1], newIDs[2]}
	committeeKeys := []ed25519.PrivateKey{oldKeys[0], newKeys[0], oldKeys[2], newKeys[1], newKeys[2]}
	r := newResharing(t, old, oldKeys, oldShares, []int{2, 4}, committee, committeeKeys, 3)
	if err := errors.Join(first(r.run(t, nil))...); err != nil {
		t.Fatal(err)
	}
	fed, shares := agreed(t, 3, r.results, r.all())
	if fed.Key != old.Key {
		t.Fatal("the migration changed the key")
	}
	ids := testIdentifiers(t, 20)
	want := reference(t, old, pick(oldShares, 1, 4), ids)
	for _, set := range [][]int{{1, 2, 3}, {3, 4, 5}, {1, 3, 5}} {
		if got := reference(t, fed, pick(shares, set...), ids); !slices.Equal(got, want) {
			t.Fatalf("new shares %v compute other pseudonyms than the dealt key", set)
		}
	}
}

// resealReshare returns dealer p's deal msg with member to's subshare
// replaced by v, sealed as an honest dealer would.
func resealReshare(t testing.TB, p *Reshare, msg []byte, to int, v *ristretto255.Scalar) []byte {
	t.Helper()
	h := p.header(kindReshareDeal, p.dealer)
	dd, err := decodeDeal(msg, h, p.threshold, len(p.committee), scalarLen)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sealTo(p.committee[to-1], p.sealInfo(p.dealer, to, dd.commitEnc), v.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	dd.sealed = slices.Clone(dd.sealed)
	dd.sealed[to-1] = ct
	return h.frame(dd.body())
}

// The faults of a resharing, each by one old holder: a dealing of another
// secret than its share is refused, so nobody can change the key; a bad
// subshare is complained about and, answered well, forgiven; answered
// badly or not at all, its dealer is refused. The others always finish
// with the same key.
func TestReshareFaults(t *testing.T) {
	oldKeys, oldMembers, old, oldShares := dkgKey(t, "dkg", 5, 3)
	newKeys, newIDs := testMembers(t, "new", 3)
	committee := append([]peer.ID{oldMembers[0]}, newIDs...)
	committeeKeys := append([]ed25519.PrivateKey{oldKeys[0]}, newKeys...)
	ids := testIdentifiers(t, 5)
	want := reference(t, old, pick(oldShares, 1, 2, 3), ids)
	const faulty = 2 // old index, participant 1
	badSubshare := func(t *testing.T, p *Reshare, msg []byte) []byte {
		v := evalPoly(p.g, 3)
		return resealReshare(t, p, msg, 3, v.Add(v, scalarOf(1)))
	}
	for _, tc := range []struct {
		name   string
		setup  func(p *Reshare)
		tamper func(t *testing.T, p *Reshare, round int, msg []byte) []byte
		valid  bool
	}{
		{
			name:  "another secret than its share",
			setup: func(p *Reshare) { p.s = randomScalar() },
		},
		{
			name: "bad subshare, good answer", valid: true,
			tamper: func(t *testing.T, p *Reshare, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badSubshare(t, p, msg)
				case 3:
					es, err := decodeEntries(msg, p.header(kindReshareAnswers, faulty), 1, 4, 0)
					if err != nil || len(es) != 1 || es[0].index != 3 {
						t.Fatalf("answer %v: %v, want one to member 3", es, err)
					}
				}
				return msg
			},
		},
		{
			name: "bad subshare, bad answer",
			tamper: func(t *testing.T, p *Reshare, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badSubshare(t, p, msg)
				case 3:
					h := p.header(kindReshareAnswers, faulty)
					es, err := decodeEntries(msg, h, 1, 4, 0)
					if err != nil || len(es) != 1 {
						t.Fatalf("answer: %v", err)
					}
					es[0].vals[0].Add(es[0].vals[0], scalarOf(1))
					return h.frame(appendEntries(nil, es))
				}
				return msg
			},
		},
		{
			name: "bad subshare, no answer",
			tamper: func(t *testing.T, p *Reshare, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badSubshare(t, p, msg)
				case 3:
					return nil
				}
				return msg
			},
		},
		{
			name: "garbage",
			tamper: func(t *testing.T, p *Reshare, round int, msg []byte) []byte {
				return append(msg[:len(msg):len(msg)], 1)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResharing(t, old, oldKeys, oldShares, []int{1, 2, 3, 4, 5}, committee, committeeKeys, 3)
			p := r.parties[faulty-1]
			if tc.setup != nil {
				tc.setup(p)
			}
			tm := func(round int, from peer.ID, msg []byte) []byte {
				if from != oldMembers[faulty-1] || tc.tamper == nil {
					return msg
				}
				return tc.tamper(t, p, round, msg)
			}
			errs, _ := r.run(t, tm)
			var others []int
			for i := range r.parties {
				if i != faulty-1 || tc.valid {
					if errs[i] != nil {
						t.Fatalf("participant %d: %v", i+1, errs[i])
					}
					others = append(others, i)
				}
			}
			fed, shares := agreed(t, 3, r.results, others)
			if fed.Key != old.Key {
				t.Fatal("the key changed")
			}
			d := r.parties[0].Dealers()
			if slices.Contains(d.Qualified, faulty) != tc.valid {
				t.Fatalf("dealers %+v: dealer %d valid, want %v", d, faulty, tc.valid)
			}
			if got := reference(t, fed, pick(shares, 1, 2, 4), ids); !slices.Equal(got, want) {
				t.Fatal("the new shares compute other pseudonyms")
			}
		})
	}
}

// With fewer valid dealers than the old threshold, every participant
// stops with ErrCeremony and no key.
func TestReshareTooFewDealers(t *testing.T) {
	oldKeys, oldMembers, old, oldShares := dkgKey(t, "dkg", 5, 3)
	newKeys, newIDs := testMembers(t, "new", 3)
	committee := append([]peer.ID{oldMembers[0]}, newIDs...)
	committeeKeys := append([]ed25519.PrivateKey{oldKeys[0]}, newKeys...)
	for _, tc := range []struct {
		name    string
		dealers []int
		faulty  peer.ID // which deals another secret than its share
		tamper  tamper
	}{
		{"two deal", []int{1, 4}, "", nil},
		{"three deal, one another secret", []int{1, 3, 4}, oldMembers[2], func(round int, from peer.ID, msg []byte) []byte {
			if round == 1 && from == oldMembers[2] {
				msg = slices.Clone(msg)
				copy(msg[headerLen:], old.Holders[0].Public[:]) // B_0 is holder 1's share
			}
			return msg
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResharing(t, old, oldKeys, oldShares, tc.dealers, committee, committeeKeys, 3)
			errs, _ := r.run(t, tc.tamper)
			for i, err := range errs {
				if r.ids[i] == tc.faulty {
					continue
				}
				if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "dealt valid shares, want at least 3") {
					t.Fatalf("participant %d: %v, want ErrCeremony", i+1, err)
				}
				if _, s, err := r.parties[i].Result(); s != nil || err == nil {
					t.Fatalf("participant %d has a result", i+1)
				}
			}
		})
	}
}

// A resharing refuses what it cannot run: a share that is not the centre's,
// a centre with no part in it, a committee it cannot share to.
func TestReshareRefuses(t *testing.T) {
	oldKeys, _, old, oldShares := dkgKey(t, "dkg", 4, 2)
	newKeys, newIDs := testMembers(t, "new", 3)
	for _, tc := range []struct {
		name      string
		share     *Share
		committee []peer.ID
		threshold int
		key       ed25519.PrivateKey
	}{
		{"another holder's share", oldShares[2], newIDs, 2, oldKeys[0]},
		{"a share off the key", &Share{Federation: "test-fed", Index: 1, k: randomScalar()}, newIDs, 2, oldKeys[0]},
		{"no share, not a member", nil, newIDs, 2, oldKeys[0]},
		{"threshold 1", oldShares[1], newIDs, 1, oldKeys[0]},
		{"a member twice", nil, []peer.ID{newIDs[0], newIDs[1], newIDs[0]}, 2, newKeys[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewReshare(old, tc.share, tc.committee, tc.threshold, tc.key); !errors.Is(err, ErrKeys) {
				t.Fatalf("NewReshare: %v, want ErrKeys", err)
			}
		})
	}
}

// BenchmarkReshare reshares a DKG'd t-of-n key to a disjoint t-of-n
// committee with every old holder dealing, every participant in turn on
// this machine: ns/op is the whole ceremony's computation, B/participant
// what each of the 2n participants broadcasts over the three rounds.
func BenchmarkReshare(b *testing.B) {
	for _, tc := range []struct{ n, t int }{{7, 4}, {16, 9}} {
		b.Run(fmt.Sprintf("n%d-t%d", tc.n, tc.t), func(b *testing.B) {
			oldKeys, _, old, oldShares := dkgKey(b, "bench", tc.n, tc.t)
			newKeys, newIDs := testMembers(b, "bench-new", tc.n)
			var total, parties int
			for b.Loop() {
				r := newResharing(b, old, oldKeys, oldShares, indices1(tc.n), newIDs, newKeys, tc.t)
				errs, sent := r.run(b, nil)
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				total, parties = 0, len(r.parties)
				for _, s := range sent {
					total += s
				}
			}
			b.ReportMetric(float64(total)/float64(parties), "B/participant")
		})
	}
}

func indices1(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}
