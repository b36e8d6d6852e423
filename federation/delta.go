package federation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/medfed/medfed/node"
)

// A charter's versions after the first are written as deltas: the policy,
// council and pseudonym key in full (they are small), then the number of
// members and the members the version adds and removes, never the whole
// member list. So a chain's size, and the work of verifying it, grow with
// the changes made, not with the members times the versions: a federation
// of 10,000 centres adds one with a note of a few hundred bytes. The
// version's text, and so its hash, which the next version names as
// previous, commits to the whole member list through the chain of hashes
// back to version 1. A version in the full form (every member listed, as
// all versions were before deltas) is still read, at any version; every
// version drafted now (Charter.WithMember, WithoutMember, WithPolicy,
// WithCouncil, WithOPRF) is a delta.

// deltaHeader begins the text of a version in delta form.
const deltaHeader = "medfed charter v2"

// delta is what a version in delta form changes of the members of the
// version before it.
type delta struct {
	added   []Member // sorted by name
	removed []string // sorted
}

// deltaText is the text of a version in delta form.
func (c Charter) deltaText() string {
	var b strings.Builder
	c.writeHead(&b, deltaHeader)
	b.WriteString("members " + strconv.Itoa(len(c.Members)) + "\n")
	for _, m := range c.delta.added {
		b.WriteString("add ")
		m.writeLine(&b)
		b.WriteByte('\n')
	}
	for _, name := range c.delta.removed {
		b.WriteString("remove " + name + "\n")
	}
	return b.String()
}

// IsDelta reports whether the charter's text is in delta form, which
// reads only against the version before it (ParseNext).
func IsDelta(text string) bool { return strings.HasPrefix(text, deltaHeader+"\n") }

// ParseNext parses the text of the version after prev, in either form,
// and returns it with its whole member list. It checks what ParseCharter
// checks; whether prev's council signed it is VerifyNext's part.
func ParseNext(prev Charter, text string) (Charter, error) {
	if !IsDelta(text) {
		return ParseCharter(text)
	}
	c, err := parseDelta(prev, text)
	if err != nil {
		return Charter{}, fmt.Errorf("parse charter version %d: %w: malformed: %v", prev.Version+1, node.ErrInvalid, err)
	}
	return c, nil
}

func parseDelta(prev Charter, text string) (Charter, error) {
	c, r, err := parseHead(text, deltaHeader)
	if err != nil {
		return Charter{}, err
	}
	v, err := r.field("members")
	if err != nil {
		return Charter{}, err
	}
	count, err := strconv.Atoi(v)
	if err != nil || count < 1 || count > MaxMembers {
		return Charter{}, fmt.Errorf("line %d: members: want 1 to %d", r.n, MaxMembers)
	}
	d := &delta{}
	for r.n < len(r.lines) && strings.HasPrefix(r.lines[r.n], "add ") {
		s, _ := r.field("add")
		m, err := parseMember(strings.Split(s, " "))
		if err != nil {
			return Charter{}, fmt.Errorf("line %d: add: %v", r.n, err)
		}
		if len(d.added) == maxDeltaLines {
			return Charter{}, fmt.Errorf("line %d: more than %d changes", r.n, maxDeltaLines)
		}
		d.added = append(d.added, m)
	}
	for r.n < len(r.lines) {
		name, err := r.field("remove")
		if err != nil {
			return Charter{}, err
		}
		if len(d.added)+len(d.removed) == maxDeltaLines {
			return Charter{}, fmt.Errorf("line %d: more than %d changes", r.n, maxDeltaLines)
		}
		d.removed = append(d.removed, name)
	}
	if c.Members, err = d.apply(prev.Members); err != nil {
		return Charter{}, err
	}
	if len(c.Members) != count {
		return Charter{}, fmt.Errorf("members: %d, but the changes leave %d", count, len(c.Members))
	}
	c.delta = d
	if err := c.check(); err != nil {
		return Charter{}, err
	}
	if err := sameText(c.Text(), text); err != nil {
		return Charter{}, err
	}
	return c, nil
}

// maxDeltaLines bounds the changes one version makes.
const maxDeltaLines = 1024

// apply returns the member list that d makes of members (sorted by name):
// each removed name must be a member, each added one not, and a name is
// not both.
func (d *delta) apply(members []Member) ([]Member, error) {
	for i, name := range d.removed {
		if i > 0 && d.removed[i-1] >= name {
			return nil, fmt.Errorf("remove %s: want distinct names in order", name)
		}
	}
	for i, m := range d.added {
		if i > 0 && d.added[i-1].Name >= m.Name {
			return nil, fmt.Errorf("add %s: want distinct names in order", m.Name)
		}
		if _, both := slices.BinarySearch(d.removed, m.Name); both {
			return nil, fmt.Errorf("add %s: also removed", m.Name)
		}
	}
	out := slices.Clone(members)
	find := func(name string) (int, bool) {
		return slices.BinarySearchFunc(out, name, func(m Member, name string) int { return strings.Compare(m.Name, name) })
	}
	for _, name := range d.removed {
		i, ok := find(name)
		if !ok {
			return nil, fmt.Errorf("remove %s: not a member", name)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, m := range d.added {
		i, ok := find(m.Name)
		if ok {
			return nil, fmt.Errorf("add %s: already a member", m.Name)
		}
		out = slices.Insert(out, i, m)
	}
	return out, nil
}
