package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node/ledger"
)

// A checkpoint is final with the log's signature and enough members'
// cosignatures for the witness quorum; cosignatures of non-members, of
// the log itself, or repeated, do not count.
func TestOpenFinal(t *testing.T) {
	key := func(name string) ed25519.PrivateKey {
		s := sha256.Sum256([]byte(name))
		return ed25519.NewKeyFromSeed(s[:])
	}
	c := Charter{Federation: "fed", Version: 1, Policy: Policy{WitnessQuorum: 3}}
	for _, name := range []string{"centre-a", "centre-b", "centre-c", "centre-d"} {
		id, err := PeerIDFromKey(key(name))
		if err != nil {
			t.Fatal(err)
		}
		c.Members = append(c.Members, Member{Name: name, ID: id})
	}
	log := newTestLogAt(t, key("centre-a"), ledger.Origin("fed", "centre-a"))
	sc := log.grow(3, "final")
	own, err := note.Open(sc.Note, note.VerifierList(mustVerifier(t, sc.Origin, key("centre-a"))))
	if err != nil {
		t.Fatal(err)
	}
	cosigned := func(names ...string) []byte {
		var signers []note.Signer
		for _, n := range names {
			cs, err := NewCosigner(key(n), func() time.Time { return time.Unix(1_790_000_000, 0) })
			if err != nil {
				t.Fatal(err)
			}
			signers = append(signers, cs)
		}
		msg, err := note.Sign(&note.Note{Text: own.Text, Sigs: own.Sigs}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	for _, tt := range []struct {
		name  string
		msg   []byte
		final bool
	}{
		{"two cosignatures", cosigned("centre-b", "centre-c"), true},
		{"three cosignatures", cosigned("centre-b", "centre-c", "centre-d"), true},
		{"one cosignature", cosigned("centre-b"), false},
		{"a non-member's cosignature", cosigned("centre-b", "centre-x"), false},
		{"the log cosigning itself", cosigned("centre-b", "centre-a"), false},
		{"the log's signature alone", sc.Note, false},
		{"one cosignature under two spellings of its peer ID", respelled(t, cosigned("centre-b"), c.Members[1].ID), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := OpenFinal(c, c.Members[0], tt.msg)
			if tt.final && (err != nil || cp.Size != sc.Size) {
				t.Fatalf("not final: %v", err)
			}
			if !tt.final && !errors.Is(err, ErrNotFinal) {
				t.Fatalf("final: %v", err)
			}
		})
	}
	// With a witness set of two, only the set's cosignatures count.
	c.Policy.Witnesses = 2
	set := c.Witnesses("centre-a")
	var outside string
	for _, m := range c.Members[1:] {
		if m.ID != set[0].ID && m.ID != set[1].ID {
			outside = m.Name
		}
	}
	if _, err := OpenFinal(c, c.Members[0], cosigned(set[0].Name, set[1].Name)); err != nil {
		t.Fatalf("the witness set's cosignatures: %v", err)
	}
	if _, err := OpenFinal(c, c.Members[0], cosigned(set[0].Name, outside)); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("a cosignature from outside the witness set counted: %v", err)
	}
	c.Policy.Witnesses = 0
	// Another member's log name does not open it.
	if _, err := OpenFinal(c, c.Members[1], cosigned("centre-b", "centre-c")); !errors.Is(err, ErrNotFinal) {
		t.Fatalf("opened as another member's checkpoint: %v", err)
	}
}

func mustVerifier(t *testing.T, origin string, k ed25519.PrivateKey) note.Verifier {
	t.Helper()
	v, err := ledger.NewVerifier(origin, k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// respelled adds to msg a copy of id's cosignature under another spelling
// of id (a CIDv1 instead of base58).
func respelled(t *testing.T, msg []byte, id peer.ID) []byte {
	t.Helper()
	lines := strings.Split(string(msg), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "— "+id.String()+" ") {
			other := strings.Replace(l, id.String(), peer.ToCid(id).String(), 1)
			return []byte(strings.TrimSuffix(string(msg), "\n") + "\n" + other + "\n")
		}
	}
	t.Fatal("no cosignature line")
	return nil
}
