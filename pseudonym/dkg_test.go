package pseudonym

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// testMembers returns n centre keys and their peer IDs, distinct per tag.
func testMembers(t testing.TB, tag string, n int) ([]ed25519.PrivateKey, []peer.ID) {
	t.Helper()
	keys := make([]ed25519.PrivateKey, n)
	ids := make([]peer.ID, n)
	for i := range keys {
		seed := sha256.Sum256(fmt.Appendf(nil, "%s %d", tag, i))
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
		id, err := peer.IDFromPrivateKey(mustLibp2pKey(keys[i]))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return keys, ids
}

// party is one participant of a ceremony, a DKG or a Reshare.
type party interface {
	Start() ([]byte, error)
	Step(map[peer.ID][]byte) ([]byte, error)
}

// tamper is what a faulty participant broadcasts instead of msg in a round
// (1-based); nil is nothing. The participant's own state still holds msg,
// as a faulty member's would.
type tamper func(round int, from peer.ID, msg []byte) []byte

// runCeremony runs parties (parties[i] is ids[i]; nil is a participant
// that is absent throughout) for rounds broadcast rounds over a perfect
// broadcast, and returns each party's error and the bytes each
// broadcast.
func runCeremony(t testing.TB, ids []peer.ID, parties []party, rounds int, tm tamper) ([]error, map[peer.ID]int) {
	t.Helper()
	errs := make([]error, len(parties))
	sent := map[peer.ID]int{}
	out := map[peer.ID][]byte{}
	broadcast := func(round int, i int, msg []byte) {
		if tm != nil {
			msg = tm(round, ids[i], msg)
		}
		if msg != nil {
			out[ids[i]] = msg
			sent[ids[i]] += len(msg)
		}
	}
	for i, p := range parties {
		if p == nil {
			continue
		}
		msg, err := p.Start()
		if errs[i] = err; err == nil {
			broadcast(1, i, msg)
		}
	}
	for round := 1; round <= rounds; round++ {
		in := out
		out = map[peer.ID][]byte{}
		for i, p := range parties {
			if p == nil || errs[i] != nil {
				continue
			}
			msg, err := p.Step(in)
			if errs[i] = err; err == nil && round < rounds {
				broadcast(round+1, i, msg)
			}
		}
	}
	return errs, sent
}

// runDKG runs a DKG of the members whose keys are given (nil: absent).
func runDKG(t testing.TB, keys []ed25519.PrivateKey, ids []peer.ID, threshold int, tm tamper) ([]*DKG, []error) {
	t.Helper()
	dkgs := make([]*DKG, len(keys))
	parties := make([]party, len(keys))
	for i, k := range keys {
		if k == nil {
			continue
		}
		d, err := NewDKG("test-fed", threshold, ids, k)
		if err != nil {
			t.Fatal(err)
		}
		dkgs[i], parties[i] = d, d
	}
	errs, _ := runCeremony(t, ids, parties, DKGRounds, tm)
	return dkgs, errs
}

// agreed checks that the members at honest finished with one Public that
// NewKeys takes and shares it lists, and returns them.
func agreed(t testing.TB, threshold int, results func(i int) (Public, *Share, error), honest []int) (*Keys, map[int]*Share) {
	t.Helper()
	var first Public
	shares := map[int]*Share{}
	for n, i := range honest {
		pub, share, err := results(i)
		if err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		if n == 0 {
			first = pub
		} else if pub.Key != first.Key || !slices.Equal(pub.Holders, first.Holders) {
			t.Fatalf("members %d and %d ended with different keys", honest[0]+1, i+1)
		}
		if share != nil {
			shares[share.Index] = share
		}
	}
	keys, err := NewKeys("test-fed", threshold, first)
	if err != nil {
		t.Fatalf("NewKeys refuses the result: %v", err)
	}
	for _, s := range shares {
		if err := s.matches(keys); err != nil {
			t.Fatalf("share %d: %v", s.Index, err)
		}
	}
	return keys, shares
}

func dkgResults(dkgs []*DKG) func(int) (Public, *Share, error) {
	return func(i int) (Public, *Share, error) { return dkgs[i].Result() }
}

func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// pick returns the shares at the given indices.
func pick(shares map[int]*Share, idx ...int) []*Share {
	var out []*Share
	for _, i := range idx {
		out = append(out, shares[i])
	}
	return out
}

// Every member of a DKG ends with the same key, which NewKeys accepts;
// each share is the one the key lists; any t shares compute the same
// pseudonyms; and no secret is left in the members' state.
func TestDKG(t *testing.T) {
	ids := testIdentifiers(t, 20)
	for _, tc := range []struct {
		name    string
		n, t    int
		subsets [][]int
	}{
		{"2 of 2", 2, 2, [][]int{{1, 2}}},
		{"3 of 5", 5, 3, [][]int{{1, 2, 3}, {3, 4, 5}, {1, 3, 5}, {1, 2, 3, 4, 5}}},
		{"4 of 7", 7, 4, [][]int{{1, 2, 3, 4}, {4, 5, 6, 7}, {1, 3, 5, 7}, {2, 3, 6, 7, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, members := testMembers(t, "dkg", tc.n)
			dkgs, errs := runDKG(t, keys, members, tc.t, nil)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("member %d: %v", i+1, err)
				}
			}
			fed, shares := agreed(t, tc.t, dkgResults(dkgs), indices(tc.n))
			if len(shares) != tc.n {
				t.Fatalf("%d shares, want %d", len(shares), tc.n)
			}
			for i, h := range fed.Holders {
				if h.Index != i+1 || h.ID != members[i] {
					t.Fatalf("holder %d is %d %s, want member %d", i+1, h.Index, h.ID, i+1)
				}
			}
			want := reference(t, fed, pick(shares, tc.subsets[0]...), ids)
			for _, set := range tc.subsets[1:] {
				slices.Sort(set)
				if got := reference(t, fed, pick(shares, set...), ids); !slices.Equal(got, want) {
					t.Fatalf("shares %v compute other pseudonyms than %v", set, tc.subsets[0])
				}
			}
			d := dkgs[0].Dealers()
			if len(d.Qualified) != tc.n || d.Disqualified != nil || d.Reconstructed != nil {
				t.Fatalf("dealers %+v, want all qualified", d)
			}
			zero := ristretto255.NewScalar()
			for _, dk := range dkgs {
				for _, c := range append(dk.a, dk.b...) {
					if c.Equal(zero) != 1 {
						t.Fatalf("member %d kept its polynomial", dk.index)
					}
				}
				for j, dl := range dk.from {
					if dl.a.Equal(zero) != 1 || dl.b.Equal(zero) != 1 {
						t.Fatalf("member %d kept its share from dealer %d", dk.index, j+1)
					}
				}
			}
			if _, err := dkgs[0].Step(nil); err == nil {
				t.Fatal("a finished DKG took another round")
			}
		})
	}
}

// polyThrough returns the coefficients of the polynomial of degree
// len(xs)-1 through the points (xs[i], ys[i]).
func polyThrough(xs []int, ys []*ristretto255.Scalar) []*ristretto255.Scalar {
	coef := make([]*ristretto255.Scalar, len(xs))
	for i := range coef {
		coef[i] = ristretto255.NewScalar()
	}
	for i, xi := range xs {
		// basis = Π_{j≠i} (x - x_j)/(x_i - x_j), expanded.
		basis := []*ristretto255.Scalar{scalarOf(1)}
		den := scalarOf(1)
		for j, xj := range xs {
			if j == i {
				continue
			}
			next := make([]*ristretto255.Scalar, len(basis)+1)
			for k := range next {
				next[k] = ristretto255.NewScalar()
			}
			for k, c := range basis {
				next[k+1].Add(next[k+1], c)
				next[k].Subtract(next[k], ristretto255.NewScalar().Multiply(c, signedScalar(xj)))
			}
			basis = next
			den.Multiply(den, signedScalar(xi-xj))
		}
		f := ristretto255.NewScalar().Multiply(ys[i], ristretto255.NewScalar().Invert(den))
		for k, c := range basis {
			coef[k].Add(coef[k], ristretto255.NewScalar().Multiply(c, f))
		}
	}
	return coef
}

// Nobody knows k: t-1 shares interpolate to another key, fit a polynomial
// of degree t-1 through any key at all, and compute other pseudonyms than
// the federation's.
func TestDKGBelowThreshold(t *testing.T) {
	const n, threshold = 5, 3
	keys, members := testMembers(t, "dkg", n)
	dkgs, _ := runDKG(t, keys, members, threshold, nil)
	fed, shares := agreed(t, threshold, dkgResults(dkgs), indices(n))
	ids := testIdentifiers(t, 10)
	want := reference(t, fed, pick(shares, 1, 2, 3), ids)

	for _, set := range [][]int{{1, 2}, {2, 5}, {3, 4}} {
		few := pick(shares, set...)
		k := ristretto255.NewScalar()
		for _, s := range few {
			k.Add(k, s.folded(set))
		}
		if ristretto255.NewIdentityElement().ScalarBaseMult(k).Equal(fed.key) == 1 {
			t.Fatalf("shares %v interpolate to the key", set)
		}
		if got := reference(t, fed, few, ids); slices.Equal(got[:1], want[:1]) {
			t.Fatalf("shares %v compute the federation's pseudonyms", set)
		}
		// For any candidate key k', there is a polynomial of degree t-1
		// through (0, k') and the t-1 shares: the shares say nothing of k.
		for range 3 {
			candidate := randomScalar()
			xs := append([]int{0}, set...)
			ys := []*ristretto255.Scalar{candidate, few[0].k, few[1].k}
			p := polyThrough(xs, ys)
			if len(p) != threshold || p[threshold-1].Equal(ristretto255.NewScalar()) == 1 {
				t.Fatalf("the polynomial through k' and shares %v is not of degree %d", set, threshold-1)
			}
			for m, x := range xs {
				if evalPoly(p, x).Equal(ys[m]) != 1 {
					t.Fatalf("the polynomial through k' misses the point at %d", x)
				}
			}
		}
	}
}

// resealDKG returns dealer d's deal msg with member to's sealed share
// replaced by (a, b), sealed as an honest dealer would.
func resealDKG(t testing.TB, d *DKG, msg []byte, to int, a, b *ristretto255.Scalar) []byte {
	t.Helper()
	n := len(d.committee)
	dd, err := decodeDeal(msg, d.header(kindDKGDeal, d.index), d.threshold, n, 2*scalarLen)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sealTo(d.committee[to-1], d.sealInfo(d.index, to, dd.commitEnc), append(a.Bytes(), b.Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	dd.sealed = slices.Clone(dd.sealed)
	dd.sealed[to-1] = ct
	return d.header(kindDKGDeal, d.index).frame(dd.body())
}

// badShare returns dealer d's deal with a wrong share for each of to.
func badShare(t testing.TB, d *DKG, msg []byte, to ...int) []byte {
	for _, i := range to {
		a := evalPoly(d.a, i)
		msg = resealDKG(t, d, msg, i, a.Add(a, scalarOf(1)), evalPoly(d.b, i))
	}
	return msg
}

// The faults GJKR handles, each by one faulty member among honest ones:
// the honest members always agree on a valid key, and the faulty dealer
// ends where the protocol puts it.
func TestDKGFaults(t *testing.T) {
	const n, threshold = 5, 3
	keys, members := testMembers(t, "dkg", n)
	ids := testIdentifiers(t, 5)
	for _, tc := range []struct {
		name string
		// faulty is the 1-based index of the faulty member; absent means
		// it takes no part at all.
		faulty int
		absent bool
		tamper func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte
		// want: the faulty dealer's fate.
		qualified, reconstructed bool
		// faultyAgrees: the faulty member itself ends with the same key
		// (its fault was one the protocol repairs in the open).
		faultyAgrees bool
	}{
		{
			name: "bad share, good answer", faulty: 2, qualified: true, faultyAgrees: true,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badShare(t, dkgs[1], msg, 4)
				case 3: // member 4 complained, and the dealer answers it
					es, err := decodeEntries(msg, dkgs[1].header(kindDKGAnswers, 2), 2, n, 2)
					if err != nil || len(es) != 1 || es[0].index != 4 {
						t.Fatalf("answer %v: %v, want one to member 4", es, err)
					}
				}
				return msg
			},
		},
		{
			name: "shares sealed to members 3 and 4 swapped", faulty: 2, qualified: true, faultyAgrees: true,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				h := dkgs[1].header(kindDKGDeal, 2)
				switch round {
				case 1: // each opens under its own index only: both complain
					dd, err := decodeDeal(msg, h, threshold, n, 2*scalarLen)
					if err != nil {
						t.Fatal(err)
					}
					dd.sealed[2], dd.sealed[3] = dd.sealed[3], dd.sealed[2]
					return h.frame(dd.body())
				case 3:
					es, err := decodeEntries(msg, dkgs[1].header(kindDKGAnswers, 2), 2, n, 2)
					if err != nil || len(es) != 2 || es[0].index != 3 || es[1].index != 4 {
						t.Fatalf("answer %v: %v, want one to members 3 and 4", es, err)
					}
				}
				return msg
			},
		},
		{
			name: "bad share, bad answer", faulty: 2,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badShare(t, dkgs[1], msg, 4)
				case 3:
					h := dkgs[1].header(kindDKGAnswers, 2)
					es, err := decodeEntries(msg, h, 2, n, 2)
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
			name: "bad share, no answer", faulty: 2,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				switch round {
				case 1:
					return badShare(t, dkgs[1], msg, 4)
				case 3:
					return nil
				}
				return msg
			},
		},
		{
			name: "bad shares to t members", faulty: 2,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				if round == 1 {
					return badShare(t, dkgs[1], msg, 1, 3, 5)
				}
				return msg
			},
		},
		{
			name: "Feldman commitments off the Pedersen ones", faulty: 3, qualified: true, reconstructed: true, faultyAgrees: true,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				if round == 4 {
					h := dkgs[2].header(kindDKGFeldman, 3)
					A, err := decodeFeldman(msg, h, threshold)
					if err != nil || len(A) != threshold {
						t.Fatalf("Feldman: %v", err)
					}
					A[0].Add(A[0], ristretto255.NewGeneratorElement())
					return h.frame(appendElements(appendCount(nil, threshold), A))
				}
				return msg
			},
		},
		{
			name: "no Feldman commitments", faulty: 3, qualified: true, reconstructed: true, faultyAgrees: true,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				if round == 4 {
					return nil
				}
				return msg
			},
		},
		{
			name: "a false accusation", faulty: 4, qualified: true, faultyAgrees: true,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				if round == 5 {
					h := dkgs[3].header(kindDKGAccusations, 4)
					return h.frame(appendEntries(nil, []entry{{index: 1, vals: []*ristretto255.Scalar{randomScalar(), randomScalar()}}}))
				}
				return msg
			},
		},
		{
			name: "garbage in every round", faulty: 5,
			tamper: func(t *testing.T, dkgs []*DKG, round int, msg []byte) []byte {
				return append(msg[:len(msg):len(msg)], 0)
			},
		},
		{name: "silent from round 1", faulty: 5, absent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := slices.Clone(keys)
			if tc.absent {
				ks[tc.faulty-1] = nil
			}
			var dkgs []*DKG
			// Every dealer's secret, to check the key is their sum.
			secrets := map[peer.ID]*ristretto255.Scalar{}
			tm := func(round int, from peer.ID, msg []byte) []byte {
				if round == 1 {
					i := slices.Index(members, from)
					secrets[from] = ristretto255.NewScalar().Set(dkgs[i].a[0])
				}
				if from != members[tc.faulty-1] || tc.tamper == nil {
					return msg
				}
				return tc.tamper(t, dkgs, round, msg)
			}
			dkgs = make([]*DKG, n)
			parties := make([]party, n)
			for i, k := range ks {
				if k != nil {
					d, err := NewDKG("test-fed", threshold, members, k)
					if err != nil {
						t.Fatal(err)
					}
					dkgs[i], parties[i] = d, d
				}
			}
			errs, _ := runCeremony(t, members, parties, DKGRounds, tm)
			var honest []int
			for i := range n {
				if i+1 != tc.faulty || tc.faultyAgrees {
					honest = append(honest, i)
				}
			}
			for _, i := range honest {
				if errs[i] != nil {
					t.Fatalf("member %d: %v", i+1, errs[i])
				}
			}
			fed, shares := agreed(t, threshold, dkgResults(dkgs), honest)
			d := dkgs[0].Dealers()
			if got := slices.Contains(d.Qualified, tc.faulty); got != tc.qualified {
				t.Fatalf("dealer %d qualified: %v, want %v (%+v)", tc.faulty, got, tc.qualified, d)
			}
			var wantRebuilt []int
			if tc.reconstructed {
				wantRebuilt = []int{tc.faulty}
			}
			if !slices.Equal(d.Reconstructed, wantRebuilt) {
				t.Fatalf("dealers %+v: want %v reconstructed", d, wantRebuilt)
			}
			if len(d.Qualified)+len(d.Disqualified) != n || len(d.Disqualified) > 1 {
				t.Fatalf("dealers %+v: want only the faulty one out", d)
			}
			// The key is the sum of the qualified dealers' secrets, the
			// faulty one's included when it stayed (rebuilt in the open
			// when exposed).
			sum := ristretto255.NewScalar()
			for _, j := range d.Qualified {
				sum.Add(sum, secrets[members[j-1]])
			}
			if ristretto255.NewIdentityElement().ScalarBaseMult(sum).Equal(fed.key) != 1 {
				t.Fatal("the key is not the sum of the qualified dealers' secrets")
			}
			// Any t honest shares compute the same pseudonyms.
			var idx []int
			for _, i := range honest {
				if shares[i+1] != nil {
					idx = append(idx, i+1)
				}
			}
			want := reference(t, fed, pick(shares, idx[:threshold]...), ids)
			if got := reference(t, fed, pick(shares, idx[len(idx)-threshold:]...), ids); !slices.Equal(got, want) {
				t.Fatal("two sets of honest shares compute different pseudonyms")
			}
		})
	}
}

// A DKG refuses a committee it cannot run, and messages of any other
// ceremony, round or sender.
func TestDKGRefuses(t *testing.T) {
	keys, members := testMembers(t, "dkg", 4)
	for _, tc := range []struct {
		name      string
		fed       string
		threshold int
		committee []peer.ID
		key       ed25519.PrivateKey
	}{
		{"threshold 1", "f", 1, members, keys[0]},
		{"threshold above n", "f", 5, members, keys[0]},
		{"a member twice", "f", 2, []peer.ID{members[0], members[1], members[0]}, keys[0]},
		{"not a member", "f", 2, members[1:], keys[0]},
		{"no federation", "", 2, members, keys[0]},
		{"not a key", "f", 2, members, keys[0][:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewDKG(tc.fed, tc.threshold, tc.committee, tc.key); !errors.Is(err, ErrKeys) {
				t.Fatalf("NewDKG: %v, want ErrKeys", err)
			}
		})
	}
	d, err := NewDKG("test-fed", 3, members, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(nil); err == nil {
		t.Fatal("Step before Start")
	}
	msg, err := d.Start()
	if err != nil {
		t.Fatal(err)
	}
	other := *d
	other.session = dkgSession("other-fed", 3, members)
	for name, h := range map[string]header{
		"another ceremony": other.header(kindDKGDeal, 1),
		"another round":    d.header(kindDKGComplaints, 1),
		"another sender":   d.header(kindDKGDeal, 2),
	} {
		if _, err := decodeDeal(msg, h, 3, 4, 2*scalarLen); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := decodeDeal(msg, d.header(kindDKGDeal, 1), 3, 4, 2*scalarLen); err != nil {
		t.Fatalf("the deal itself: %v", err)
	}
}

// The key a DKG generates serves pseudonyms over the real protocol,
// unchanged: evaluators hold DKG shares, a client derives pseudonyms, and
// they are the ones the shares reconstruct.
func TestDKGKeyServesPseudonyms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, threshold = 4, 3
	keys, members := testMembers(t, "dkg-hosts", n)
	dkgs, _ := runDKG(t, keys, members, threshold, nil)
	fed, shares := agreed(t, threshold, dkgResults(dkgs), indices(n))
	centres := make([]*testCentre, n)
	for i, k := range keys {
		sk, err := crypto.UnmarshalEd25519PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		centres[i] = &testCentre{name: fmt.Sprintf("centre-%c", 'a'+i), key: k, host: h, audit: &countingAudit{}, share: shares[i+1]}
	}
	names := map[peer.ID]string{}
	for _, c := range centres {
		names[c.host.ID()] = c.name
		for _, o := range centres {
			if o != c {
				c.host.Peerstore().AddAddrs(o.host.ID(), o.host.Addrs(), time.Hour)
			}
		}
	}
	member := func(id peer.ID) (string, bool) { name, ok := names[id]; return name, ok }
	for _, c := range centres {
		var err error
		c.eval, err = NewEvaluator(c.host, fed, c.share, EvaluatorOptions{Member: member, Audit: c.audit, Limit: 1 << 20, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.eval.Close)
	}
	ids := testIdentifiers(t, 50)
	want := reference(t, fed, pick(shares, 2, 3, 4), ids)
	got, err := centres[0].client(t, fed, centres).Pseudonyms(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("the client derives other pseudonyms than the DKG's shares reconstruct")
	}
}

// BenchmarkDKG runs whole DKGs, every member in turn on this machine:
// ns/op is the whole ceremony's computation, B/member what each member
// broadcasts over its six rounds.
func BenchmarkDKG(b *testing.B) {
	for _, tc := range []struct{ n, t int }{{7, 4}, {16, 9}} {
		b.Run(fmt.Sprintf("n%d-t%d", tc.n, tc.t), func(b *testing.B) {
			keys, members := testMembers(b, "bench", tc.n)
			var total int
			for b.Loop() {
				parties := make([]party, tc.n)
				for i, k := range keys {
					d, err := NewDKG("bench-fed", tc.t, members, k)
					if err != nil {
						b.Fatal(err)
					}
					parties[i] = d
				}
				errs, sent := runCeremony(b, members, parties, DKGRounds, nil)
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				total = 0
				for _, s := range sent {
					total += s
				}
			}
			b.ReportMetric(float64(total)/float64(tc.n), "B/member")
		})
	}
}
