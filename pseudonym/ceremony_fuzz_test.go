package pseudonym

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The key ceremonies' messages come from other centres: every decoder is
// fuzzed for canonical form, and each ceremony as a whole with one
// member's message in one round replaced by arbitrary bytes, which must
// never stop the honest members or split their key.

// fuzzHeader is the header of the fuzzed decoders: member 2 of a DKG.
func fuzzHeader(t testing.TB, kind byte) header {
	_, ids := testMembers(t, "fuzz", 3)
	return header{kind: kind, session: dkgSession("fuzz", 2, ids), sender: 2}
}

func FuzzDecodeDeal(f *testing.F) {
	keys, ids := testMembers(f, "fuzz", 3)
	d, err := NewDKG("fuzz", 2, ids, keys[1])
	if err != nil {
		f.Fatal(err)
	}
	msg, err := d.Start()
	if err != nil {
		f.Fatal(err)
	}
	h := fuzzHeader(f, kindDKGDeal)
	f.Add(msg)
	f.Add(msg[:len(msg)-1])
	f.Add(h.frame(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		dd, err := decodeDeal(b, h, 2, 3, 2*scalarLen)
		if err != nil {
			return
		}
		if !bytes.Equal(h.frame(dd.body()), b) {
			t.Fatalf("decodeDeal accepted bytes it would not produce: %x", b)
		}
		if len(dd.commit) != 2 || len(dd.sealed) != 3 {
			t.Fatalf("decodeDeal accepted %d commitments, %d shares", len(dd.commit), len(dd.sealed))
		}
	})
}

func FuzzDecodeIndices(f *testing.F) {
	h := fuzzHeader(f, kindDKGComplaints)
	f.Add(h.frame(appendIndices(nil, []int{1, 3})))
	f.Add(h.frame(appendIndices(nil, nil)))
	f.Add(h.frame(appendIndices(nil, []int{2})))
	f.Add(h.frame(appendIndices(nil, []int{3, 1})))
	f.Fuzz(func(t *testing.T, b []byte) {
		xs, err := decodeIndices(b, h, 8, 2)
		if err != nil {
			return
		}
		if !bytes.Equal(h.frame(appendIndices(nil, xs)), b) {
			t.Fatalf("decodeIndices accepted bytes it would not produce: %x", b)
		}
		for i, x := range xs {
			if x < 1 || x > 8 || x == 2 || (i > 0 && x <= xs[i-1]) {
				t.Fatalf("decodeIndices accepted %v", xs)
			}
		}
	})
}

func FuzzDecodeEntries(f *testing.F) {
	h := fuzzHeader(f, kindDKGReveals)
	two := []*ristretto255.Scalar{scalarOf(5), randomScalar()}
	f.Add(h.frame(appendEntries(nil, []entry{{1, two}, {3, two}})))
	f.Add(h.frame(appendEntries(nil, []entry{{3, two[:1]}})))
	f.Add(h.frame(appendEntries(nil, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		for width := 1; width <= 2; width++ {
			es, err := decodeEntries(b, h, width, 8, 2)
			if err != nil {
				continue
			}
			if !bytes.Equal(h.frame(appendEntries(nil, es)), b) {
				t.Fatalf("decodeEntries accepted bytes it would not produce: %x", b)
			}
			for i, e := range es {
				if e.index < 1 || e.index > 8 || e.index == 2 || (i > 0 && e.index <= es[i-1].index) || len(e.vals) != width {
					t.Fatalf("decodeEntries accepted entry %d: index %d", i, e.index)
				}
			}
		}
	})
}

func FuzzDecodeFeldman(f *testing.F) {
	h := fuzzHeader(f, kindDKGFeldman)
	f.Add(h.frame(appendElements(appendCount(nil, 3), feldman(randomPoly(3)))))
	f.Add(h.frame(appendCount(nil, 0)))
	f.Add(h.frame(appendElements(appendCount(nil, 1), feldman(randomPoly(1)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		A, err := decodeFeldman(b, h, 3)
		if err != nil {
			return
		}
		if len(A) != 0 && len(A) != 3 {
			t.Fatalf("decodeFeldman accepted %d commitments", len(A))
		}
		if !bytes.Equal(h.frame(appendElements(appendCount(nil, len(A)), A)), b) {
			t.Fatalf("decodeFeldman accepted bytes it would not produce: %x", b)
		}
	})
}

// FuzzDKGMessage replaces member 3's message in one round of a 2-of-3 DKG
// with the fuzzer's bytes: members 1 and 2 must still agree on a valid
// key.
func FuzzDKGMessage(f *testing.F) {
	keys, ids := testMembers(f, "fuzz", 3)
	seeds := map[int][]byte{}
	dkgs, errs := runDKG(f, keys, ids, 2, func(round int, from peer.ID, msg []byte) []byte {
		if from == ids[2] {
			seeds[round] = msg
		}
		return msg
	})
	if err := errors.Join(errs...); err != nil {
		f.Fatal(err)
	}
	agreed(f, 2, dkgResults(dkgs), indices(3))
	for round, msg := range seeds {
		f.Add(byte(round), msg)
		f.Add(byte(round), msg[:len(msg)/2])
	}
	f.Add(byte(1), []byte{})
	f.Fuzz(func(t *testing.T, round byte, b []byte) {
		r := int(round)%DKGRounds + 1
		dkgs, errs := runDKG(t, keys, ids, 2, func(rr int, from peer.ID, msg []byte) []byte {
			if rr == r && from == ids[2] {
				return b
			}
			return msg
		})
		for _, i := range []int{0, 1} {
			if errs[i] != nil {
				t.Fatalf("round %d: member %d: %v", r, i+1, errs[i])
			}
		}
		agreed(t, 2, dkgResults(dkgs), []int{0, 1})
	})
}

// FuzzReshareMessage replaces participant 3's message (an old holder and
// a new member) in one round of a resharing of a 2-of-3 key to the same
// three centres: participants 1 and 2 must still agree on the same key.
func FuzzReshareMessage(f *testing.F) {
	keys, ids := testMembers(f, "fuzz", 3)
	pub, sealed, err := Deal("test-fed", 2, []Recipient{{ids[0]}, {ids[1]}, {ids[2]}})
	if err != nil {
		f.Fatal(err)
	}
	old, err := NewKeys("test-fed", 2, pub)
	if err != nil {
		f.Fatal(err)
	}
	shares := map[int]*Share{}
	for _, k := range keys {
		s, err := Open(old, sealed, k)
		if err != nil {
			f.Fatal(err)
		}
		shares[s.Index] = s
	}
	run := func(t testing.TB, tm tamper) (*resharing, []error) {
		r := newResharing(t, old, keys, shares, []int{1, 2, 3}, ids, keys, 2)
		errs, _ := r.run(t, tm)
		return r, errs
	}
	seeds := map[int][]byte{}
	if _, errs := run(f, func(round int, from peer.ID, msg []byte) []byte {
		if from == ids[2] {
			seeds[round] = msg
		}
		return msg
	}); errors.Join(errs...) != nil {
		f.Fatal(errors.Join(errs...))
	}
	for round, msg := range seeds {
		f.Add(byte(round), msg)
		f.Add(byte(round), msg[:len(msg)/2])
	}
	f.Fuzz(func(t *testing.T, round byte, b []byte) {
		rr := int(round)%ReshareRounds + 1
		r, errs := run(t, func(n int, from peer.ID, msg []byte) []byte {
			if n == rr && from == ids[2] {
				return b
			}
			return msg
		})
		for _, i := range []int{0, 1} {
			if errs[i] != nil {
				t.Fatalf("round %d: participant %d: %v", rr, i+1, errs[i])
			}
		}
		fed, _ := agreed(t, 2, r.results, []int{0, 1})
		if fed.Key != old.Key || !slices.Contains(r.parties[0].Dealers().Qualified, 1) {
			t.Fatal("the key changed, or an honest dealer was refused")
		}
	})
}
