package federation_test

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

// withOPRF is founding(names...) with a pseudonym key listed: one share per
// founder, in member order. The points are placeholders; their algebra is
// package pseudonym's concern.
func withOPRF(tb testing.TB, names ...string) federation.Charter {
	tb.Helper()
	c := founding(tb, names...)
	c.OPRF.Key = sha256.Sum256([]byte("key"))
	for i, m := range c.Members {
		c.OPRF.Shares = append(c.OPRF.Shares, federation.OPRFShare{Index: i + 1, Holder: m.ID, Public: sha256.Sum256([]byte(m.Name))})
	}
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// A charter with a pseudonym key has one text, which parses back to it.
func TestCharterOPRFRoundTrip(t *testing.T) {
	c := withOPRF(t, "centre-a", "centre-b", "centre-c")
	text := c.Text()
	if !strings.Contains(text, "\noprf-key ") || strings.Count(text, "\noprf-share ") != 3 {
		t.Fatalf("text lacks the key lines:\n%s", text)
	}
	back, err := federation.ParseCharter(text)
	if err != nil {
		t.Fatal(err)
	}
	if back.Text() != text || len(back.OPRF.Shares) != 3 || back.OPRF.Key != c.OPRF.Key {
		t.Fatalf("round trip changed the charter:\n%s", back.Text())
	}
	next, err := back.WithMember(testMember(t, "centre-d", 4104))
	if err != nil {
		t.Fatal(err)
	}
	if len(next.OPRF.Shares) != 3 {
		t.Fatalf("a new member changed the shares: %d", len(next.OPRF.Shares))
	}
	if _, ok := next.OPRF.Holder(testID(t, "centre-d")); ok {
		t.Fatal("a centre that joined later holds a share")
	}
}

func TestCharterOPRFMalformed(t *testing.T) {
	c := withOPRF(t, "centre-a", "centre-b", "centre-c")
	text := c.Text()
	shareLine := func(i int) string {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "oprf-share ") {
				if i == 0 {
					return l
				}
				i--
			}
		}
		t.Fatal("no such share line")
		return ""
	}
	for _, tc := range []struct{ name, text string }{
		{"key without shares", strings.Replace(text, shareLine(0)+"\n"+shareLine(1)+"\n"+shareLine(2)+"\n", "", 1)},
		{"fewer shares than the threshold", strings.Replace(text, shareLine(1)+"\n"+shareLine(2)+"\n", "", 1)},
		{"indices out of order", strings.Replace(strings.Replace(text, "oprf-share 1 ", "oprf-share 9 ", 1), "oprf-share 2 ", "oprf-share 1 ", 1)},
		{"index 0", strings.Replace(text, "oprf-share 1 ", "oprf-share 0 ", 1)},
		{"holder twice", strings.Replace(text, shareLine(1), strings.Replace(shareLine(0), "oprf-share 1 ", "oprf-share 2 ", 1), 1)},
		{"short public share", strings.Replace(text, shareLine(0), shareLine(0)[:len(shareLine(0))-8]+"AAAA", 1)},
		{"holder is not a founder", strings.Replace(text, c.OPRF.Shares[2].Holder.String()+" ", testID(t, "centre-z").String()+" ", 1)},
		{"share line after the members", strings.Replace(text, shareLine(2)+"\n", "", 1) + shareLine(2) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.text == text {
				t.Fatal("the case changes nothing")
			}
			if _, err := federation.ParseCharter(tc.text); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseCharter: %v, want node.ErrInvalid", err)
			}
		})
	}
}

// Once a key is dealt its threshold is fixed, and enough holders must stay.
func TestCharterOPRFKeepsThreshold(t *testing.T) {
	c := withOPRF(t, "centre-a", "centre-b", "centre-c")
	p := c.Policy
	p.OPRFThreshold = 3
	if _, err := c.WithPolicy(p); !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), "resharing") {
		t.Fatalf("WithPolicy changing the OPRF threshold: %v", err)
	}
	v2, err := c.WithMember(testMember(t, "centre-d", 4104))
	if err != nil {
		t.Fatal(err)
	}
	v3, err := v2.WithoutMember("centre-a")
	if err != nil {
		t.Fatalf("removing one of three holders with threshold 2: %v", err)
	}
	if _, err := v3.WithoutMember("centre-b"); !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), "holding shares") {
		t.Fatalf("removing a second holder, leaving one of threshold 2: %v", err)
	}
}

// A later version may not replace or drop the key, or change its
// threshold without resharing it, even with a quorum's signatures: every
// pseudonym rests on the key. Resharing it (the same key, other shares,
// maybe another threshold) is a version like any other.
func TestCharterOPRFIsFixedAfterFounding(t *testing.T) {
	v1 := withOPRF(t, "centre-a", "centre-b", "centre-c")
	v2, err := v1.WithMember(testMember(t, "centre-d", 4104))
	if err != nil {
		t.Fatal(err)
	}
	signed := func(c federation.Charter) []byte {
		return rawSign(t, c.Text(), "centre-a", "centre-b", "centre-c")
	}
	if _, err := federation.VerifyNext(v1, signed(v2)); err != nil {
		t.Fatalf("an honest next version: %v", err)
	}
	redealt := v2
	redealt.OPRF.Shares = append([]federation.OPRFShare(nil), v2.OPRF.Shares[:2]...)
	redealt.OPRF.Shares[1].Public[0] ^= 1
	if err := redealt.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := federation.VerifyNext(v1, signed(redealt)); err != nil {
		t.Fatalf("a version with the key reshared: %v", err)
	}
	replaced := redealt
	replaced.OPRF.Key[0] ^= 1
	if _, err := federation.VerifyNext(v1, signed(replaced)); !errors.Is(err, federation.ErrChain) {
		t.Fatalf("a version with another key: %v, want ErrChain", err)
	}
	dropped := v2
	dropped.OPRF = federation.OPRFKey{}
	dropped.Policy.OPRFThreshold = 2
	if _, err := federation.VerifyNext(v1, signed(dropped)); !errors.Is(err, federation.ErrChain) {
		t.Fatalf("a version without the key: %v, want ErrChain", err)
	}
	if _, err := v2.WithOPRF(replaced.OPRF, 2); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("WithOPRF replacing the key: %v", err)
	}
	if _, err := v2.WithOPRF(redealt.OPRF, 2); err != nil {
		t.Fatalf("WithOPRF resharing the key: %v", err)
	}
	lower := v2
	lower.Policy.OPRFThreshold = 3
	if _, err := federation.VerifyNext(v1, signed(lower)); !errors.Is(err, federation.ErrChain) {
		t.Fatalf("a version with another threshold: %v, want ErrChain", err)
	}
	one := founding(t, "centre-a", "centre-b")
	one.Policy.OPRFThreshold = 1
	one.OPRF = withOPRF(t, "centre-a", "centre-b").OPRF
	if err := one.Validate(); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a key dealt 1-of-2: %v, want node.ErrInvalid", err)
	}
}
