package federation_test

import (
	"crypto/ed25519"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/federation"
)

// The fuzz targets cover the decoders of bytes that reach a centre from
// another: charter texts, charter notes and join requests. Their seeds are
// real encodings from the test chain, so the fuzzer starts past the first
// checks.

func FuzzParseCharter(f *testing.F) {
	ch := newTestChain(f)
	for _, c := range ch.versions {
		f.Add(c.Text())
	}
	f.Add(withOPRF(f, "centre-a", "centre-b", "centre-c").Text())
	v1 := ch.versions[0]
	for _, m := range malformedTexts(f) {
		if m.name != "oversized" {
			f.Add(m.spoil(v1.Text()))
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := federation.ParseCharter(text)
		if err != nil {
			return
		}
		if got := c.Text(); got != text {
			t.Fatalf("ParseCharter accepted a text that is not canonical:\n%q\nText() is\n%q", text, got)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseCharter accepted an invalid charter: %v", err)
		}
	})
}

// FuzzParseNext reads a draft of the next version as the council reads
// one a member offers it (opOffer: the text alone, unsigned): whatever it
// accepts is a valid charter whose text reads back the same.
func FuzzParseNext(f *testing.F) {
	ch := newTestChain(f)
	prev, v2 := ch.versions[0], ch.versions[1]
	f.Add(v2.Text())
	f.Add(v2.FullText())
	f.Add(ch.versions[2].Text())
	f.Add(prev.Text())
	f.Fuzz(func(t *testing.T, text string) {
		c, err := federation.ParseNext(prev, text)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseNext accepted an invalid charter: %v", err)
		}
		again, err := federation.ParseNext(prev, c.Text())
		if err != nil || again.Text() != c.Text() {
			t.Fatalf("the text ParseNext accepted does not read back: %v", err)
		}
	})
}

func FuzzVerifyNext(f *testing.F) {
	ch := newTestChain(f)
	prev, v2 := ch.versions[0], ch.versions[1]
	f.Add(ch.notes[1])
	f.Add(signBy(f, v2, nil, "centre-a", "centre-b", "centre-c"))
	f.Add(signBy(f, v2, nil, "centre-c"))
	f.Add(signBy(f, v2, ch.notes[1], "centre-d"))
	f.Add(ch.notes[0])
	f.Add(ch.notes[2])
	f.Add(rawSign(f, v2.Text(), "centre-a", "centre-b"))
	f.Add(rawSign(f, v2.FullText(), "centre-a", "centre-b", "centre-c"))
	f.Add(corruptSig(ch.notes[1]))

	// members verifies with prev's keys through note.Open, as a second
	// opinion on the package's own note parser.
	var verifiers []note.Verifier
	for _, m := range prev.Members {
		pub, err := m.PublicKey()
		if err != nil {
			f.Fatal(err)
		}
		vkey, err := note.NewEd25519VerifierKey(m.ID.String(), pub)
		if err != nil {
			f.Fatal(err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			f.Fatal(err)
		}
		verifiers = append(verifiers, v)
	}
	members := note.VerifierList(verifiers...)

	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := federation.VerifyNext(prev, msg)
		if err != nil {
			if !reflect.ValueOf(s).IsZero() {
				t.Fatalf("VerifyNext returned version %d with %v", s.Version, err)
			}
			return
		}
		if len(s.Signers) < prev.Policy.AdmissionQuorum {
			t.Fatalf("accepted %d signers, quorum is %d", len(s.Signers), prev.Policy.AdmissionQuorum)
		}
		for _, id := range s.Signers {
			if _, ok := prev.Member(id); !ok {
				t.Fatalf("accepted a signature by %s, not a member", id)
			}
		}
		if !slices.IsSorted(s.Signers) || len(slices.Compact(slices.Clone(s.Signers))) != len(s.Signers) {
			t.Fatalf("signers not sorted and unique: %v", s.Signers)
		}
		if s.Version != prev.Version+1 || s.Previous != prev.Hash() || s.Federation != prev.Federation {
			t.Fatalf("accepted version %d of %s after %x", s.Version, s.Federation, s.Previous)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid charter: %v", err)
		}
		if !strings.HasPrefix(string(msg), s.Text()+"\n") {
			t.Fatal("the note's text is not the charter's")
		}
		n, err := note.Open(msg, members)
		if err != nil {
			t.Fatalf("note.Open refuses a note VerifyNext accepted: %v", err)
		}
		if len(n.UnverifiedSigs) != 0 {
			t.Fatalf("note.Open finds signatures by non-members: %v", n.UnverifiedSigs)
		}
		if len(n.Sigs) != len(s.Signers) {
			t.Fatalf("note.Open verified %d signatures, VerifyNext %d", len(n.Sigs), len(s.Signers))
		}
	})
}

func FuzzOpenRequest(f *testing.F) {
	r := federation.JoinRequest{Federation: testFederation, Member: testMember(f, "centre-d", 4104)}
	r.Member.Addrs = append(r.Member.Addrs, mustAddr(f, "/ip6/2001:db8::4/udp/4104/quic-v1"))
	good, err := federation.SignRequest(r, testKey("centre-d"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(rawSign(f, r.Text(), "centre-a"))
	f.Add(rawSign(f, r.Text(), "centre-d", "centre-a"))
	f.Add(corruptSig(good))
	f.Add(newTestChain(f).notes[0])
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := federation.OpenRequest(msg)
		if err != nil {
			if !reflect.ValueOf(got).IsZero() {
				t.Fatalf("OpenRequest returned %+v with %v", got, err)
			}
			return
		}
		text := got.Text()
		if !strings.HasPrefix(string(msg), text+"\n") {
			t.Fatal("the note's text is not the request's")
		}
		again, err := federation.ParseJoinRequest(text)
		if err != nil || again.Text() != text {
			t.Fatalf("the request's text does not parse back: %v", err)
		}
		pub, err := got.Member.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		sig := msg[len(text)+1:]
		if _, err := note.Open(msg, note.VerifierList(requestVerifier(t, got, pub))); err != nil {
			t.Fatalf("note.Open refuses a request OpenRequest accepted: %v (%q)", err, sig)
		}
	})
}

func requestVerifier(t *testing.T, r federation.JoinRequest, pub ed25519.PublicKey) note.Verifier {
	t.Helper()
	vkey, err := note.NewEd25519VerifierKey(r.Member.ID.String(), pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
