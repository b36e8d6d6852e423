package federation_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
)

// The examples derive keys from fixed seeds so that their output is
// stable. A centre loads its key from its identity file.
func exampleKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("example key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func exampleMember(name, addr string) federation.Member {
	id, err := federation.PeerIDFromKey(exampleKey(name))
	if err != nil {
		log.Fatal(err)
	}
	return federation.Member{Name: name, ID: id, Addrs: []multiaddr.Multiaddr{multiaddr.StringCast(addr)}}
}

func exampleFounding() federation.Charter {
	return federation.Charter{
		Federation: "medfed-demo",
		Version:    1,
		Policy:     federation.DefaultPolicy(2),
		Members: []federation.Member{
			exampleMember("centre-a", "/ip4/127.0.0.1/tcp/4101"),
			exampleMember("centre-b", "/ip4/127.0.0.1/tcp/4102"),
		},
	}
}

func ExampleCharter_WithMember() {
	v1 := exampleFounding()

	// centre-c makes a join request offline and sends it to a member.
	req := federation.JoinRequest{
		Federation: "medfed-demo",
		Member:     exampleMember("centre-c", "/ip4/127.0.0.1/tcp/4103"),
	}
	msg, err := federation.SignRequest(req, exampleKey("centre-c"))
	if err != nil {
		log.Fatal(err)
	}

	// The member checks that the requester holds its key and drafts
	// version 2. Every member that does the same drafts the same text.
	r, err := federation.OpenRequest(msg)
	if err != nil {
		log.Fatal(err)
	}
	v2, err := v1.WithMember(r.Member)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", v2.Version, "follows", v2.Previous == v1.Hash())
	for _, m := range v2.Members {
		fmt.Println(m.Name, m.Addrs[0])
	}
	fmt.Println("admission quorum", v2.Policy.AdmissionQuorum)
	// Output:
	// version 2 follows true
	// centre-a /ip4/127.0.0.1/tcp/4101
	// centre-b /ip4/127.0.0.1/tcp/4102
	// centre-c /ip4/127.0.0.1/tcp/4103
	// admission quorum 2
}

func ExampleVerifyNext() {
	// The founders all sign version 1.
	v1 := exampleFounding()
	var founding []byte
	for _, name := range []string{"centre-a", "centre-b"} {
		var err error
		if founding, err = federation.Sign(v1, founding, exampleKey(name)); err != nil {
			log.Fatal(err)
		}
	}
	s1, err := federation.VerifyFounding(founding)
	if err != nil {
		log.Fatal(err)
	}

	// Each member signs the draft of version 2 on its own; merging their
	// notes gathers the quorum of version 1.
	v2, err := s1.WithMember(exampleMember("centre-c", "/ip4/127.0.0.1/tcp/4103"))
	if err != nil {
		log.Fatal(err)
	}
	fromA, err := federation.Sign(v2, nil, exampleKey("centre-a"))
	if err != nil {
		log.Fatal(err)
	}
	s, err := federation.Approvals(s1.Charter, fromA)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d of %d approvals\n", len(s.Signers), s1.Policy.AdmissionQuorum)
	fromB, err := federation.Sign(v2, nil, exampleKey("centre-b"))
	if err != nil {
		log.Fatal(err)
	}
	both, err := federation.Merge(fromA, fromB)
	if err != nil {
		log.Fatal(err)
	}

	s2, err := federation.VerifyNext(s1.Charter, both)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", s2.Version, "signed by", names(s1.Charter, s2.Signers))

	// The newcomer's own signature is not a vote: version 1 does not list it.
	withNewcomer, err := federation.Sign(v2, both, exampleKey("centre-c"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = federation.VerifyNext(s1.Charter, withNewcomer)
	fmt.Println(err != nil)
	// Output:
	// 1 of 2 approvals
	// version 2 signed by [centre-a centre-b]
	// true
}

// names returns the names of the members with the given IDs, sorted.
func names(c federation.Charter, ids []peer.ID) []string {
	var out []string
	for _, id := range ids {
		m, _ := c.Member(id)
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}
