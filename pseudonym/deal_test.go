package pseudonym

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func dealTo(t *testing.T, n, threshold int) ([]ed25519.PrivateKey, Public, []Sealed) {
	t.Helper()
	var keys []ed25519.PrivateKey
	var to []Recipient
	for i := range n {
		seed := sha256.Sum256([]byte{'d', byte(i)})
		k := ed25519.NewKeyFromSeed(seed[:])
		id, err := peer.IDFromPrivateKey(mustLibp2pKey(k))
		if err != nil {
			t.Fatal(err)
		}
		keys, to = append(keys, k), append(to, Recipient{ID: id})
	}
	pub, sealed, err := Deal("test-fed", threshold, to)
	if err != nil {
		t.Fatal(err)
	}
	return keys, pub, sealed
}

// Each founder opens its own share and no other; the shares file and the
// share file have one spelling; a key whose public shares were tampered
// with is refused.
func TestDealAndOpen(t *testing.T) {
	centreKeys, pub, sealed := dealTo(t, 4, 3)
	keys, err := NewKeys("test-fed", 3, pub)
	if err != nil {
		t.Fatal(err)
	}
	fed, parsed, err := ParseSealed(EncodeSealed("test-fed", sealed))
	if err != nil || fed != "test-fed" || len(parsed) != 4 {
		t.Fatalf("ParseSealed: %q %d %v", fed, len(parsed), err)
	}
	for i, k := range centreKeys {
		s, err := Open(keys, parsed, k)
		if err != nil {
			t.Fatalf("founder %d: %v", i+1, err)
		}
		if s.Index != i+1 {
			t.Fatalf("founder %d opened share %d", i+1, s.Index)
		}
		again, err := ParseShare(EncodeShare(s), keys)
		if err != nil || again.k.Equal(s.k) != 1 {
			t.Fatalf("share file round trip: %v", err)
		}
	}
	// A sealed share moved to another holder's line does not open.
	swapped := append([]Sealed(nil), parsed...)
	swapped[0].Ciphertext, swapped[1].Ciphertext = parsed[1].Ciphertext, parsed[0].Ciphertext
	if _, err := Open(keys, swapped, centreKeys[0]); !errors.Is(err, ErrKeys) {
		t.Fatalf("opening another founder's sealed share: %v", err)
	}
	outsider := ed25519.NewKeyFromSeed(make([]byte, 32))
	if _, err := Open(keys, parsed, outsider); !errors.Is(err, ErrKeys) {
		t.Fatalf("a centre holding no share opened one: %v", err)
	}
	// Public shares off the polynomial, or a key that is not its value at 0.
	bad := pub
	bad.Holders = append([]Holder(nil), pub.Holders...)
	bad.Holders[3].Public = pub.Holders[2].Public
	if _, err := NewKeys("test-fed", 3, bad); !errors.Is(err, ErrKeys) {
		t.Fatalf("inconsistent public shares: %v", err)
	}
	bad = pub
	bad.Key = pub.Holders[0].Public
	if _, err := NewKeys("test-fed", 3, bad); !errors.Is(err, ErrKeys) {
		t.Fatalf("a key the shares do not interpolate to: %v", err)
	}
	// A dealer whose polynomial has too low a degree: every public share is
	// the key, so one holder alone could compute pseudonyms.
	flat := Public{Key: pub.Key}
	for _, h := range pub.Holders {
		h.Public = pub.Key
		flat.Holders = append(flat.Holders, h)
	}
	if _, err := NewKeys("test-fed", 3, flat); !errors.Is(err, ErrKeys) {
		t.Fatalf("a key of degree 0 for threshold 3: %v", err)
	}
	if _, _, err := Deal("test-fed", 1, []Recipient{{ID: parsed[0].Holder}, {ID: parsed[1].Holder}}); !errors.Is(err, ErrKeys) {
		t.Fatalf("dealing 1-of-2: %v", err)
	}
	if _, err := NewKeys("test-fed", 5, pub); !errors.Is(err, ErrKeys) {
		t.Fatalf("a threshold above the number of holders: %v", err)
	}
}
