package federation_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

// bigFounding is version 1 of a federation of n members with a council
// of the first seven, signed by every founder.
func bigFounding(tb testing.TB, n int) (federation.Charter, []byte) {
	tb.Helper()
	c := federation.Charter{Federation: testFederation, Version: 1}
	for i := range n {
		c.Members = append(c.Members, testMember(tb, fmt.Sprintf("c%05d", i), 5000+i%50000))
	}
	c.Policy = federation.DefaultPolicy(n)
	c.Policy.AdmissionQuorum = 4
	for i := range 7 {
		c.Council = append(c.Council, fmt.Sprintf("c%05d", i))
	}
	names := make([]string, len(c.Members))
	for i, m := range c.Members {
		names[i] = m.Name
	}
	return c, rawSign(tb, c.Text(), names...)
}

// A version after the first is a delta: its note's size does not grow
// with the members, and the chain verifies to the whole member list.
func TestChainOfDeltas(t *testing.T) {
	v1, n1 := bigFounding(t, 1000)
	notes := [][]byte{n1}
	cur := v1
	for i := range 20 {
		next, err := cur.WithMember(testMember(t, fmt.Sprintf("n%03d", i), 7000+i))
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			if next, err = cur.WithoutMember(fmt.Sprintf("c%05d", 100+i)); err != nil {
				t.Fatal(err)
			}
		}
		note := signBy(t, next, nil, "c00000", "c00001", "c00002", "c00003")
		if len(note) > 2048 {
			t.Fatalf("version %d's note is %d bytes for %d members", next.Version, len(note), len(next.Members))
		}
		notes = append(notes, note)
		cur = next
	}
	last, err := federation.VerifyChain(notes)
	if err != nil {
		t.Fatal(err)
	}
	if last.Version != 21 || len(last.Members) != len(cur.Members) || last.Hash() != cur.Hash() {
		t.Fatalf("chain ends at version %d with %d members, want 21 with %d", last.Version, len(last.Members), len(cur.Members))
	}
	// The full form of the last version reads alone and lists everyone.
	full, err := federation.ParseCharter(last.FullText())
	if err != nil || len(full.Members) != len(cur.Members) {
		t.Fatalf("the full text: %d members, %v", len(full.Members), err)
	}
	// The chain written and read back as one file.
	back, err := federation.ParseChain(federation.EncodeChain(notes))
	if err != nil || len(back) != len(notes) {
		t.Fatalf("ParseChain: %d notes, %v", len(back), err)
	}
}

// A delta that does not apply to the version before it is refused and
// changes nothing: a removal of a non-member, an addition of a member, a
// count that does not add up, changes out of order, a name both added and
// removed.
func TestDeltaRefused(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	v2, err := v1.WithMember(testMember(t, "centre-d", 4104))
	if err != nil {
		t.Fatal(err)
	}
	text := v2.Text()
	d := testMember(t, "centre-d", 4104)
	line := func(m federation.Member) string {
		return fmt.Sprintf("%s %s %s", m.Name, m.ID, m.Addrs[0])
	}
	for _, tt := range []struct{ name, text string }{
		{"a removal of a non-member", text + "remove centre-z\n"},
		{"an addition of a member", strings.Replace(text, "add "+line(d), "add "+line(testMember(t, "centre-a", 4101)), 1)},
		{"a count that does not add up", strings.Replace(text, "members 4\n", "members 5\n", 1)},
		{"a name added and removed", text + "remove centre-d\n"},
		{"removals out of order", strings.Replace(text, "members 4\n", "members 2\n", 1) + "remove centre-b\nremove centre-a\n"},
		{"a removal before an addition", strings.Replace(strings.Replace(text, "add "+line(d)+"\n", "", 1), "members 4\n", "members 4\nremove centre-a\nadd "+line(d)+"\n", 1)},
		{"no count", strings.Replace(text, "members 4\n", "", 1)},
		{"a delta as version 1", strings.Replace(strings.Replace(text, "version 2\n", "version 1\n", 1), "previous "+strings.Fields(strings.Split(text, "\n")[3])[1], "previous -", 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := federation.ParseNext(v1, tt.text); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseNext: %v, want node.ErrInvalid", err)
			}
			note := rawSign(t, tt.text, "centre-a", "centre-b")
			if _, err := federation.VerifyNext(v1, note); err == nil {
				t.Fatal("VerifyNext accepted it")
			}
		})
	}
	// A delta alone, without the version before it, is not a charter.
	if _, err := federation.ParseCharter(text); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("ParseCharter of a delta: %v", err)
	}
}

// Verifying a chain costs the changes made, not the members times the
// versions: the same 50 admissions after a founding, as deltas and in the
// full form (each version listing every member, as before deltas).
func BenchmarkVerifyChain(b *testing.B) {
	for _, n := range []int{100, 1000} {
		v1, n1 := bigFounding(b, n)
		deltas, fulls := [][]byte{n1}, [][]byte{n1}
		cur, prevFull := v1, v1.Text()
		for i := range 50 {
			next, err := cur.WithMember(testMember(b, fmt.Sprintf("n%03d", i), 7000+i))
			if err != nil {
				b.Fatal(err)
			}
			deltas = append(deltas, signBy(b, next, nil, "c00000", "c00001", "c00002", "c00003"))
			full := next
			full.Previous = sha256.Sum256([]byte(prevFull))
			prevFull = full.FullText()
			fulls = append(fulls, rawSign(b, prevFull, "c00000", "c00001", "c00002", "c00003"))
			cur = next
		}
		for _, form := range []struct {
			name  string
			notes [][]byte
		}{{"deltas", deltas}, {"full", fulls}} {
			b.Run(fmt.Sprintf("%s/members=%d", form.name, n), func(b *testing.B) {
				bytes := 0
				for _, n := range form.notes[1:] {
					bytes += len(n)
				}
				first, err := federation.VerifyFounding(form.notes[0])
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() { // the 50 versions after the founding
					prev := first.Charter
					for _, n := range form.notes[1:] {
						s, err := federation.VerifyNext(prev, n)
						if err != nil {
							b.Fatal(err)
						}
						prev = s.Charter
					}
				}
				b.ReportMetric(float64(bytes)/50, "bytes/version")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50, "ns/version")
			})
		}
	}
}
