package directory

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// ring is a member list ordered by the members' Kademlia keys (SHA-256 of
// the peer ID, as go-libp2p-kbucket's), so that the members closest to a
// key by XOR distance are found by a descent of the order, without
// hashing and sorting every member for each key: a federation of a
// thousand centres asks for the closest members of every announcement,
// lookup and withdrawal.
type ring struct {
	ids  []peer.ID
	keys [][32]byte // ascending; keys[i] is ids[i]'s
}

func newRing(members []peer.AddrInfo) *ring {
	r := &ring{ids: make([]peer.ID, len(members)), keys: make([][32]byte, len(members))}
	order := make([]int, len(members))
	hashed := make([][32]byte, len(members))
	for i, m := range members {
		order[i], hashed[i] = i, sha256.Sum256([]byte(m.ID))
	}
	sort.Slice(order, func(a, b int) bool { return bytes.Compare(hashed[order[a]][:], hashed[order[b]][:]) < 0 })
	for i, j := range order {
		r.ids[i], r.keys[i] = members[j].ID, hashed[j]
	}
	return r
}

// kadKey is a multihash's Kademlia key, as kbucket.ConvertKey gives it.
func kadKey(k mh.Multihash) [32]byte { return sha256.Sum256(k) }

// bit returns bit i (0 the most significant) of k.
func bit(k *[32]byte, i int) byte { return k[i/8] >> (7 - i%8) & 1 }

// closest returns the n members closest to key, nearest first, leaving
// out skip (when not empty).
func (r *ring) closest(key mh.Multihash, n int, skip peer.ID) []peer.ID {
	target := kadKey(key)
	out := make([]peer.ID, 0, min(n, len(r.ids)))
	r.descend(&target, 0, len(r.ids), 0, n, skip, &out)
	return out
}

// descend appends to out, nearest first, the members of r[lo:hi), whose
// keys share their first depth bits, until out holds n: the half that
// agrees with target at bit depth first, since any key in it is closer
// than any key in the other.
func (r *ring) descend(target *[32]byte, lo, hi, depth, n int, skip peer.ID, out *[]peer.ID) {
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
	if bit(target, depth) == 0 {
		r.descend(target, lo, split, depth+1, n, skip, out)
		r.descend(target, split, hi, depth+1, n, skip, out)
	} else {
		r.descend(target, split, hi, depth+1, n, skip, out)
		r.descend(target, lo, split, depth+1, n, skip, out)
	}
}

// contains reports whether id is a member of the ring.
func (r *ring) contains(id peer.ID) bool {
	k := sha256.Sum256([]byte(id))
	i, found := slices.BinarySearchFunc(r.keys, k, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return found && r.ids[i] == id
}
