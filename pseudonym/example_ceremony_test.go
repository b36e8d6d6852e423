package pseudonym_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/pseudonym"
)

// ceremony is what NewDKG and NewReshare return.
type ceremony interface {
	Start() ([]byte, error)
	Step(map[peer.ID][]byte) ([]byte, error)
	Done() bool
}

// exchange runs ceremonies over an in-memory broadcast: each round, every
// participant's message reaches every other. A real transport is the
// federation's.
func exchange(ids []peer.ID, cs []ceremony) error {
	out := map[peer.ID][]byte{}
	for i, c := range cs {
		msg, err := c.Start()
		if err != nil {
			return err
		}
		if msg != nil {
			out[ids[i]] = msg
		}
	}
	for !cs[0].Done() {
		in := out
		out = map[peer.ID][]byte{}
		for i, c := range cs {
			msg, err := c.Step(in)
			if err != nil {
				return err
			}
			if msg != nil {
				out[ids[i]] = msg
			}
		}
	}
	return nil
}

func centres(n int) ([]ed25519.PrivateKey, []peer.ID) {
	var keys []ed25519.PrivateKey
	var ids []peer.ID
	for range n {
		_, k, _ := ed25519.GenerateKey(nil)
		sk, _ := crypto.UnmarshalEd25519PrivateKey(k)
		id, _ := peer.IDFromPrivateKey(sk)
		keys, ids = append(keys, k), append(ids, id)
	}
	return keys, ids
}

// Three founding centres generate a 2-of-3 key that none of them ever
// holds, then reshare it to a 3-of-4 committee: the key stays the same.
func ExampleNewDKG() {
	keys, founders := centres(3)
	dkgs := make([]*pseudonym.DKG, len(keys))
	cs := make([]ceremony, len(keys))
	for i, k := range keys {
		d, err := pseudonym.NewDKG("example-fed", 2, founders, k)
		if err != nil {
			panic(err)
		}
		dkgs[i], cs[i] = d, d
	}
	if err := exchange(founders, cs); err != nil {
		panic(err)
	}
	pub, share, err := dkgs[0].Result()
	if err != nil {
		panic(err)
	}
	fed, err := pseudonym.NewKeys("example-fed", 2, pub)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d holders; %v\n", len(fed.Holders), share)

	// Founders 1 and 3 deal their shares to themselves and two newcomers.
	newKeys, newcomers := centres(2)
	committee := []peer.ID{founders[0], founders[2], newcomers[0], newcomers[1]}
	var ids []peer.ID
	cs = cs[:0]
	var reshares []*pseudonym.Reshare
	for i, key := range []ed25519.PrivateKey{keys[0], keys[2], newKeys[0], newKeys[1]} {
		var s *pseudonym.Share
		if i < 2 {
			_, s, _ = dkgs[[]int{0, 2}[i]].Result()
		}
		r, err := pseudonym.NewReshare(fed, s, committee, 3, key)
		if err != nil {
			panic(err)
		}
		ids, cs, reshares = append(ids, committee[i]), append(cs, r), append(reshares, r)
	}
	if err := exchange(ids, cs); err != nil {
		panic(err)
	}
	next, share, err := reshares[3].Result()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d holders; %v; same key: %v\n", len(next.Holders), share, next.Key == pub.Key)
	// Output:
	// 3 holders; OPRF share 1 of example-fed
	// 4 holders; OPRF share 4 of example-fed; same key: true
}
