package federation

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// What one operation costs must not grow with the number of members: a
// charter names a council, which alone approves its next version, and
// its policy sizes the witness set of each log. Both are bounded by
// MaxCouncil and MaxSet; a charter that names neither (one written before
// they were) has every member on the council and every other member
// witnessing each log.

// checkCouncil checks the council line: sorted, distinct names of
// members.
func (c Charter) checkCouncil() error {
	if len(c.Council) > MaxCouncil {
		return fmt.Errorf("council: %d names, want 1 to %d", len(c.Council), MaxCouncil)
	}
	for i, name := range c.Council {
		if i > 0 && c.Council[i-1] >= name {
			return fmt.Errorf("council: %s: want distinct names in order", name)
		}
		if _, ok := c.MemberByName(name); !ok {
			return fmt.Errorf("council: %s is not a member", name)
		}
	}
	return nil
}

// councilSize is how many members are on the council.
func (c Charter) councilSize() int {
	if len(c.Council) == 0 {
		return len(c.Members)
	}
	return len(c.Council)
}

// OnCouncil reports whether the member with peer ID id is on the
// council.
func (c Charter) OnCouncil(id peer.ID) bool {
	m, ok := c.Member(id)
	if !ok {
		return false
	}
	if len(c.Council) == 0 {
		return true
	}
	_, on := slices.BinarySearch(c.Council, m.Name)
	return on
}

// CouncilMembers returns the members on the council, in name order.
func (c Charter) CouncilMembers() []Member {
	if len(c.Council) == 0 {
		return c.Members
	}
	out := make([]Member, 0, len(c.Council))
	for _, name := range c.Council {
		if m, ok := c.MemberByName(name); ok {
			out = append(out, m)
		}
	}
	return out
}

// WithCouncil drafts the next version with the council named (sorted
// here); no names puts every member on it. The current council approves
// it, as any other version: the council changes by its own quorum.
func (c Charter) WithCouncil(names []string) (Charter, error) {
	return c.draft("change council", func(n *Charter) error {
		n.Council = slices.Clone(names)
		slices.Sort(n.Council)
		if len(names) > 0 && len(names) < c.Policy.AdmissionQuorum {
			return fmt.Errorf("council: %d members for admission-quorum %d; lower the quorum first", len(names), c.Policy.AdmissionQuorum)
		}
		return nil
	})
}

// witnessGroup is how many signatures a checkpoint can carry that count:
// the log's own and its witness set's.
func (p Policy) witnessGroup(members int) int {
	if p.Witnesses == 0 {
		return members
	}
	return min(members, int(p.Witnesses)+1)
}

// Witnesses returns the witness set of member name's log: the
// Policy.Witnesses other members that rank first by a hash of the
// federation, the log's owner and the member (rendezvous hashing), so
// that no centre picks its own witnesses and a version that adds or
// removes a member changes few sets. A charter whose policy names no
// size has every other member witness each log.
func (c Charter) Witnesses(name string) []Member {
	w := c.Policy.witnessGroup(len(c.Members)) - 1
	rankAll := func() []int {
		ranked := make([]ranked, 0, len(c.Members))
		for i, m := range c.Members {
			if m.Name != name {
				ranked = append(ranked, rank(m, i, "medfed witness set v1", c.Federation, name))
			}
		}
		return top(ranked, w)
	}
	var set []int
	if m := memoOf(c.Members); m != nil {
		set = m.witnessSet(c.Federation, name, w, rankAll)
	} else {
		set = rankAll()
	}
	out := make([]Member, len(set))
	for i, j := range set {
		out[i] = c.Members[j]
	}
	return out
}

// InWitnessSet reports whether id is in the witness set of member name's
// log.
func (c Charter) InWitnessSet(name string, id peer.ID) bool {
	for _, m := range c.Witnesses(name) {
		if m.ID == id {
			return true
		}
	}
	return false
}

type ranked struct {
	score [32]byte
	i     int // the member's index in the list
}

// rank scores m, member i of the list, for a set named by its parts
// (rendezvous hashing).
func rank(m Member, i int, parts ...string) ranked {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	h.Write([]byte(m.ID))
	var r ranked
	h.Sum(r.score[:0])
	r.i = i
	return r
}

// top returns the indexes of the n members of rs with the lowest scores,
// lowest first.
func top(rs []ranked, n int) []int {
	slices.SortFunc(rs, func(a, b ranked) int { return bytes.Compare(a.score[:], b.score[:]) })
	rs = rs[:min(n, len(rs))]
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.i
	}
	return out
}

// ErrNotCouncil is returned when a member that is not on the council
// tries to approve a version.
var ErrNotCouncil = node.E(node.Conflict, "not on the federation's council")

// Describe says in a line what next changes of prev: members added and
// removed, the council, the policy, the pseudonym key. It is what a
// council member reads before approving a draft it did not make.
func Describe(prev, next Charter) string {
	var parts []string
	old := map[string]bool{}
	for _, m := range prev.Members {
		old[m.Name] = true
	}
	for _, m := range next.Members {
		if !old[m.Name] {
			parts = append(parts, "adds "+m.Name)
		}
		delete(old, m.Name)
	}
	for _, m := range prev.Members {
		if old[m.Name] {
			parts = append(parts, "removes "+m.Name)
		}
	}
	if !slices.Equal(prev.Council, next.Council) {
		if len(next.Council) == 0 {
			parts = append(parts, "puts every member on the council")
		} else {
			parts = append(parts, "council "+strings.Join(next.Council, ", "))
		}
	}
	if prev.Policy != next.Policy {
		parts = append(parts, "changes the policy")
	}
	switch {
	case next.OPRF.equal(prev.OPRF):
	case !prev.OPRF.Dealt():
		parts = append(parts, fmt.Sprintf("lists a pseudonym key generated %d-of-%d by its holders", next.Policy.OPRFThreshold, len(next.OPRF.Shares)))
	default:
		parts = append(parts, fmt.Sprintf("reshares the pseudonym key %d-of-%d", next.Policy.OPRFThreshold, len(next.OPRF.Shares)))
	}
	if len(parts) == 0 {
		return "changes nothing"
	}
	return strings.Join(parts, "; ")
}
