package federation

import (
	"strconv"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/closest"
	"github.com/medfed/medfed/node/ledger"
)

// What is derived from a charter's member list (the members by peer ID,
// their order by Kademlia key, each log's witness set) is worked out once
// a list and kept, so that what a centre does per request (admit a peer,
// check a cosigner, find a patient's consent set) costs the same in a
// federation of ten thousand members as in one of ten. A list is known by
// its backing array and length: an adopted version's list is never
// changed in place (a draft copies it), so a list read once reads the same
// after. Lists shorter than memoFrom are scanned instead: that is as fast,
// and tests change small lists in place.

const (
	// memoFrom is the shortest member list remembered.
	memoFrom = 16
	// maxMemos bounds the lists remembered at once: every list a process
	// holds (a simulation of a thousand centres holds a thousand), and
	// drafts. Past it, all are forgotten and worked out again.
	maxMemos = 1 << 12
)

type listKey struct {
	first *Member
	n     int
}

// memo is what is derived from one member list.
type memo struct {
	byID map[peer.ID]int
	ring *closest.Ring

	mu        sync.Mutex
	witnesses map[string][]int // by federation, owner and set size: indexes into the list
	origins   map[string]int   // by log origin (ledger.Origin), for originsOf
	originsOf string           // the federation origins is for
}

var memos = struct {
	sync.Mutex
	m map[listKey]*memo
}{m: map[listKey]*memo{}}

// memoOf returns the memo of ms, or nil for a short list.
func memoOf(ms []Member) *memo {
	if len(ms) < memoFrom {
		return nil
	}
	k := listKey{&ms[0], len(ms)}
	memos.Lock()
	defer memos.Unlock()
	if m, ok := memos.m[k]; ok {
		return m
	}
	if len(memos.m) >= maxMemos {
		clear(memos.m)
	}
	m := &memo{byID: make(map[peer.ID]int, len(ms)), witnesses: map[string][]int{}}
	ids := make([]peer.ID, len(ms))
	for i, x := range ms {
		m.byID[x.ID], ids[i] = i, x.ID
	}
	m.ring = closest.New(ids)
	memos.m[k] = m
	return m
}

// witnessSet returns the indexes of the witness set of owner's log, w
// members, worked out by compute the first time.
func (m *memo) witnessSet(federation, owner string, w int, compute func() []int) []int {
	key := federation + "\x00" + owner + "\x00" + strconv.Itoa(w)
	m.mu.Lock()
	set, ok := m.witnesses[key]
	m.mu.Unlock()
	if ok {
		return set
	}
	set = compute()
	m.mu.Lock()
	m.witnesses[key] = set
	m.mu.Unlock()
	return set
}

// memberByOrigin returns the member whose log has origin o
// (ledger.Origin of the federation and its name).
func (c Charter) memberByOrigin(o string) (Member, bool) {
	if m := memoOf(c.Members); m != nil {
		m.mu.Lock()
		if m.origins == nil || m.originsOf != c.Federation {
			m.origins, m.originsOf = make(map[string]int, len(c.Members)), c.Federation
			for i, x := range c.Members {
				m.origins[ledger.Origin(c.Federation, x.Name)] = i
			}
		}
		i, ok := m.origins[o]
		m.mu.Unlock()
		if !ok {
			return Member{}, false
		}
		return c.Members[i], true
	}
	for _, x := range c.Members {
		if ledger.Origin(c.Federation, x.Name) == o {
			return x, true
		}
	}
	return Member{}, false
}

// Closest returns the n members closest to key by XOR distance of their
// Kademlia keys (SHA-256 of the peer ID), nearest first: a set of members
// for something named by key (a patient's consent set) that every centre
// works out alike, and that a version adding or removing a member changes
// little.
func (c Charter) Closest(key [32]byte, n int) []Member {
	if m := memoOf(c.Members); m != nil {
		ids := m.ring.Closest(key, n, "")
		out := make([]Member, len(ids))
		for i, id := range ids {
			out[i] = c.Members[m.byID[id]]
		}
		return out
	}
	ids := make([]peer.ID, len(c.Members))
	for i, x := range c.Members {
		ids[i] = x.ID
	}
	out := make([]Member, 0, n)
	for _, id := range closest.New(ids).Closest(key, n, "") {
		x, _ := c.Member(id)
		out = append(out, x)
	}
	return out
}
