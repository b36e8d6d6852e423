package pseudonym

import (
	"fmt"
	"testing"

	"github.com/gtank/ristretto255"
)

// TestFloorComputesPseudonyms: the floor's arithmetic is the protocol's,
// so its outputs are the whole key's, k·H(x), and a wrong answer from the
// other holder fails its check rather than being counted.
func TestFloorComputesPseudonyms(t *testing.T) {
	keys, shares, err := floorKeys()
	if err != nil {
		t.Fatal(err)
	}
	set := []int{1, 2}
	asker := &Client{keys: keys, share: shares[0]}
	other := foldedKey{k: shares[1].folded(set), pkEnc: keys.foldedPublic(set, 2).Bytes()}
	inputs := make([][]byte, 5)
	for i := range inputs {
		inputs[i] = fmt.Appendf(nil, "floor test %d", i)
	}
	outs := make([][64]byte, len(inputs))
	if err := floorChunk(asker, other, keys.foldedPublic(set, 2), set, []Holder{keys.Holders[1]}, inputs, outs); err != nil {
		t.Fatal(err)
	}
	k := ristretto255.NewScalar().Add(shares[0].folded(set), shares[1].folded(set))
	for i, in := range inputs {
		p, err := voprf.inputPoint(in)
		if err != nil {
			t.Fatal(err)
		}
		if want := output(in, ristretto255.NewIdentityElement().ScalarMult(k, p)); outs[i] != want {
			t.Fatalf("input %d: the floor's output is not the whole key's", i)
		}
	}
	// The other holder answering with share 3's key: its proof fails
	// against share 2's public share.
	wrong := foldedKey{k: shares[2].folded([]int{1, 3}), pkEnc: other.pkEnc}
	if err := floorChunk(asker, wrong, keys.foldedPublic(set, 2), set, []Holder{keys.Holders[1]}, inputs, outs); err == nil {
		t.Fatal("a wrong evaluation passed the floor's check")
	}
	if _, err := Floor(10, 0); err == nil {
		t.Fatal("Floor took chunks of 0")
	}
	if rate, err := Floor(2000, 256); err != nil || rate <= 0 {
		t.Fatalf("Floor: %v, %v", rate, err)
	}
}
