// Package closest orders a federation's members by their Kademlia keys
// (SHA-256 of the peer ID, as go-libp2p-kbucket's) and finds the members
// closest to a key by XOR distance without hashing and sorting every
// member for each key: the directory asks it for every announcement,
// lookup and withdrawal, the consent service for every patient's
// consent set, in federations of thousands of members.
package closest

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Ring is a member list ordered by the members' Kademlia keys. It is
// read-only once made, so it can be shared.
type Ring struct {
	ids  []peer.ID
	keys [][32]byte // ascending; keys[i] is ids[i]'s
}

// Key returns the Kademlia key of a peer ID or of a DHT key's bytes, as
// kbucket.ConvertPeerID and kbucket.ConvertKey give it.
func Key(b []byte) [32]byte { return sha256.Sum256(b) }

// New orders ids.
func New(ids []peer.ID) *Ring {
	r := &Ring{ids: make([]peer.ID, len(ids)), keys: make([][32]byte, len(ids))}
	order := make([]int, len(ids))
	hashed := make([][32]byte, len(ids))
	for i, id := range ids {
		order[i], hashed[i] = i, Key([]byte(id))
	}
	sort.Slice(order, func(a, b int) bool { return bytes.Compare(hashed[order[a]][:], hashed[order[b]][:]) < 0 })
	for i, j := range order {
		r.ids[i], r.keys[i] = ids[j], hashed[j]
	}
	return r
}

// Len returns how many members the ring holds.
func (r *Ring) Len() int { return len(r.ids) }

// bit returns bit i (0 the most significant) of k.
func bit(k *[32]byte, i int) byte { return k[i/8] >> (7 - i%8) & 1 }

// Closest returns the n members closest to target, nearest first,
// leaving out skip (when not empty).
func (r *Ring) Closest(target [32]byte, n int, skip peer.ID) []peer.ID {
	out := make([]peer.ID, 0, min(n, len(r.ids)))
	r.descend(&target, 0, len(r.ids), 0, n, skip, &out)
	return out
}

// descend appends to out, nearest first, the members of r[lo:hi), whose
// keys share their first depth bits, until out holds n: the half that
// agrees with target at bit depth first, since any key in it is closer
// than any key in the other.
func (r *Ring) descend(target *[32]byte, lo, hi, depth, n int, skip peer.ID, out *[]peer.ID) {
	if lo >= hi || len(*out) >= n {
		return
	}
	if hi-lo == 1 || depth == 256 {
		for _, id := range r.ids[lo:hi] {
			if len(*out) < n && id != skip {
				*out = append(*out, id)
			}
		}
		return
	}
	split := lo + sort.Search(hi-lo, func(i int) bool { return bit(&r.keys[lo+i], depth) == 1 })
	near, far := [2]int{lo, split}, [2]int{split, hi}
	if bit(target, depth) == 1 {
		near, far = far, near
	}
	r.descend(target, near[0], near[1], depth+1, n, skip, out)
	r.descend(target, far[0], far[1], depth+1, n, skip, out)
}

// Contains reports whether id is a member of the ring.
func (r *Ring) Contains(id peer.ID) bool {
	k := Key([]byte(id))
	i, found := slices.BinarySearchFunc(r.keys, k, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return found && r.ids[i] == id
}
