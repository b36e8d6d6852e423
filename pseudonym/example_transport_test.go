package pseudonym_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/medfed/medfed/pseudonym"
)

// Three centres generate a key over libp2p, each on its own host: every
// one serves the ceremony protocol and runs its side under the same run
// ID, which binds what the run is about.
func ExampleCeremonies() {
	keys, ids := centres(3)
	hosts := make([]host.Host, 3)
	for i, k := range keys {
		sk, _ := crypto.UnmarshalEd25519PrivateKey(k)
		h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			panic(err)
		}
		defer h.Close()
		hosts[i] = h
	}
	for _, a := range hosts {
		for _, b := range hosts {
			if a != b {
				a.Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Hour)
			}
		}
	}
	id := pseudonym.CeremonyID(sha256.Sum256([]byte("example-fed keygen from charter version 1, attempt 1")))
	dkgs := make([]*pseudonym.DKG, 3)
	var wg sync.WaitGroup
	for i, h := range hosts {
		d, err := pseudonym.NewDKG("example-fed", 2, ids, keys[i])
		if err != nil {
			panic(err)
		}
		dkgs[i] = d
		c := pseudonym.NewCeremonies(h, nil)
		defer c.Close()
		wg.Go(func() {
			if _, err := c.Run(context.Background(), id, ids, d, pseudonym.CeremonyTimeouts{FirstRound: time.Minute}); err != nil {
				panic(err)
			}
		})
	}
	wg.Wait()
	first, _, _ := dkgs[0].Result()
	last, share, _ := dkgs[2].Result()
	fmt.Printf("%d holders; %v; same key: %v\n", len(last.Holders), share, first.Key == last.Key)
	// Output:
	// 3 holders; OPRF share 3 of example-fed; same key: true
}
