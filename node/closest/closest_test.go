package closest

import (
	"crypto/rand"
	"slices"
	"testing"

	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestClosestMatchesKademlia checks the ring's order against kbucket's
// sort by XOR distance, for member lists of every size up to 64.
func TestClosestMatchesKademlia(t *testing.T) {
	var ids []peer.ID
	for n := range 65 {
		r := New(ids)
		for i, id := range ids {
			if !r.Contains(id) {
				t.Fatalf("%d members: the ring does not contain member %d", n, i)
			}
		}
		for range 20 {
			var key [32]byte
			rand.Read(key[:])
			want := kb.SortClosestPeers(slices.Clone(ids), kb.ID(key[:]))
			for _, k := range []int{1, 3, 5, 6, 20} {
				if got := r.Closest(key, k, ""); !slices.Equal(got, want[:min(k, n)]) {
					t.Fatalf("%d members, %d closest: %v, want %v", n, k, got, want[:min(k, n)])
				}
				if n > 0 {
					skip := ids[n/2]
					rest := slices.DeleteFunc(slices.Clone(want), func(id peer.ID) bool { return id == skip })
					if got := r.Closest(key, k, skip); !slices.Equal(got, rest[:min(k, len(rest))]) {
						t.Fatalf("%d members, %d closest but one: %v, want %v", n, k, got, rest[:min(k, len(rest))])
					}
				}
			}
		}
		if r.Contains(peer.ID("not a member")) {
			t.Fatal("the ring contains a stranger")
		}
		_, pk, err := crypto.GenerateEd25519Key(nil) // a nil reader is crypto/rand's
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pk)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
}

// BenchmarkClosest finds the 5 members of 1,000 closest to a key, beside
// kbucket's sort of every member.
func BenchmarkClosest(b *testing.B) {
	ids := make([]peer.ID, 1000)
	for i := range ids {
		_, pk, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			b.Fatal(err)
		}
		if ids[i], err = peer.IDFromPublicKey(pk); err != nil {
			b.Fatal(err)
		}
	}
	var key [32]byte
	rand.Read(key[:])
	b.Run("ring", func(b *testing.B) {
		r := New(ids)
		for b.Loop() {
			r.Closest(key, 5, "")
		}
	})
	b.Run("sort", func(b *testing.B) {
		for b.Loop() {
			kb.SortClosestPeers(slices.Clone(ids), kb.ID(key[:]))
		}
	})
}
