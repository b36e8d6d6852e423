package federation_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medfed/medfed/federation"
)

// A log's witness set is Policy.Witnesses other members, the same for
// everyone who reads the charter, never the log's owner; adding a member
// changes few sets, and a charter without sets (before them) has every
// other member witness every log.
func TestWitnessSets(t *testing.T) {
	var c federation.Charter
	c.Federation, c.Version = testFederation, 1
	for i := range 200 {
		c.Members = append(c.Members, testMember(t, fmt.Sprintf("c%03d", i), 5000+i))
	}
	c.Policy = federation.DefaultPolicy(len(c.Members))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	load := map[string]int{}
	for _, m := range c.Members {
		set := c.Witnesses(m.Name)
		if len(set) != federation.DefaultWitnesses {
			t.Fatalf("%s has %d witnesses, want %d", m.Name, len(set), federation.DefaultWitnesses)
		}
		for _, w := range set {
			if w.Name == m.Name {
				t.Fatalf("%s witnesses its own log", m.Name)
			}
			if !c.InWitnessSet(m.Name, w.ID) {
				t.Fatalf("%s is in %s's set but InWitnessSet says no", w.Name, m.Name)
			}
			load[w.Name]++
		}
		if again := c.Witnesses(m.Name); !slices.EqualFunc(set, again, func(a, b federation.Member) bool { return a.ID == b.ID }) {
			t.Fatalf("%s's witness set changed between two reads", m.Name)
		}
	}
	// Each centre witnesses about w logs; rendezvous hashing spreads them.
	most := 0
	for _, n := range load {
		most = max(most, n)
	}
	if most > 4*federation.DefaultWitnesses {
		t.Errorf("a centre witnesses %d logs; want about %d", most, federation.DefaultWitnesses)
	}
	// A new member enters a set only where it ranks among the first w.
	next, err := c.WithMember(testMember(t, "c999", 6000))
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, m := range c.Members {
		before, after := c.Witnesses(m.Name), next.Witnesses(m.Name)
		if !slices.EqualFunc(before, after, func(a, b federation.Member) bool { return a.ID == b.ID }) {
			changed++
		}
	}
	if changed > len(c.Members)/5 {
		t.Errorf("adding one member changed %d of %d witness sets", changed, len(c.Members))
	}
	// Before sets: every other member.
	c.Policy.Witnesses = 0
	c.Policy.WitnessQuorum = 101
	if got := len(c.Witnesses("c000")); got != len(c.Members)-1 {
		t.Errorf("a charter without sets has %d witnesses per log, want %d", got, len(c.Members)-1)
	}
}

// Only the council approves the next version, at its quorum; the council
// changes by its own quorum, and a council member is removed only once
// the council no longer names it.
func TestCouncilApproves(t *testing.T) {
	names := []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e"}
	v1 := founding(t, names...)
	v2, err := v1.WithCouncil([]string{"centre-c", "centre-a", "centre-b"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v2.Council, []string{"centre-a", "centre-b", "centre-c"}) {
		t.Fatalf("council %v, want it sorted", v2.Council)
	}
	// Version 1 has every member on its council: any three approve.
	n2 := signBy(t, v2, nil, "centre-c", "centre-d", "centre-e")
	s2, err := federation.VerifyNext(v1, n2)
	if err != nil {
		t.Fatal(err)
	}
	if s2.OnCouncil(testID(t, "centre-d")) || !s2.OnCouncil(testID(t, "centre-a")) {
		t.Fatal("OnCouncil does not follow the council line")
	}
	v3, err := s2.WithMember(testMember(t, "centre-f", 4200))
	if err != nil {
		t.Fatal(err)
	}
	// Members off the council cannot approve, not even with the council.
	if _, err := federation.Approvals(s2.Charter, signBy(t, v3, nil, "centre-a", "centre-d")); !errors.Is(err, federation.ErrSignatures) {
		t.Fatalf("a non-council member's approval: %v", err)
	}
	if _, err := federation.VerifyNext(s2.Charter, signBy(t, v3, nil, "centre-a")); !errors.Is(err, federation.ErrSignatures) {
		t.Fatalf("one council member of three adopted a version: %v", err)
	}
	if _, err := federation.VerifyNext(s2.Charter, signBy(t, v3, nil, "centre-a", "centre-b")); !errors.Is(err, federation.ErrSignatures) {
		t.Fatalf("two council members of three, below the admission quorum of three, adopted a version: %v", err)
	}
	if _, err := federation.VerifyNext(s2.Charter, signBy(t, v3, nil, "centre-a", "centre-b", "centre-c")); err != nil {
		t.Fatalf("the council's quorum: %v", err)
	}
	if _, err := s2.WithoutMember("centre-b"); err == nil {
		t.Fatal("a council member removed while the council names it")
	}
	if _, err := s2.WithoutMember("centre-e"); err != nil {
		t.Fatalf("removing a member off the council: %v", err)
	}
}

// A data directory's charter of the form before councils and sets (no
// council line, no witnesses or consent-replicas lines) is read as it
// was: every member on the council and every other member a witness; a
// version with sets is approved by its members as any other.
func TestCharterBeforeSetsIsRead(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "charter-v2-before-sets.golden"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := federation.ParseCharter(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.Text() != string(text) {
		t.Fatal("the text changed in a round trip")
	}
	if c.Policy.Witnesses != 0 || len(c.Council) != 0 {
		t.Fatalf("witnesses %d, council %v: want none", c.Policy.Witnesses, c.Council)
	}
	for _, m := range c.Members {
		if !c.OnCouncil(m.ID) {
			t.Errorf("%s is not on the council", m.Name)
		}
		if got := len(c.Witnesses(m.Name)); got != len(c.Members)-1 {
			t.Errorf("%s has %d witnesses, want %d", m.Name, got, len(c.Members)-1)
		}
	}
	p := c.Policy
	p.Witnesses, p.ConsentReplicas = federation.DefaultWitnesses, federation.DefaultConsentReplicas
	up, err := c.WithPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.VerifyNext(c, signBy(t, up, nil, "centre-a", "centre-b")); err != nil {
		t.Fatalf("upgrading to sets: %v", err)
	}
}

// Charter.Closest gives the members nearest a key by XOR distance of
// their Kademlia keys, as a sort of every member by it would, for a list
// short enough to scan and for one remembered.
func TestClosestMembers(t *testing.T) {
	for _, n := range []int{10, 200} {
		var c federation.Charter
		for i := range n {
			c.Members = append(c.Members, testMember(t, fmt.Sprintf("c%03d", i), 5000+i))
		}
		for k := range 50 {
			key := sha256.Sum256([]byte{byte(n), byte(k)})
			want := slices.Clone(c.Members)
			distance := func(m federation.Member) []byte {
				h := sha256.Sum256([]byte(m.ID))
				for i := range h {
					h[i] ^= key[i]
				}
				return h[:]
			}
			slices.SortFunc(want, func(a, b federation.Member) int { return bytes.Compare(distance(a), distance(b)) })
			got := c.Closest(key, 5)
			if !slices.EqualFunc(got, want[:5], func(a, b federation.Member) bool { return a.ID == b.ID && a.Name == b.Name }) {
				t.Fatalf("%d members, key %d: the 5 closest are %v, want %v", n, k, got, want[:5])
			}
		}
	}
}
