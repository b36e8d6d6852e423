package pseudonym

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The fuzz targets cover every decoder of bytes that reach a centre from
// outside: evaluation requests (from any member), answers (from holders),
// group elements, and the share files an operator hands over.

func FuzzDecodeRequest(f *testing.F) {
	el := ristretto255.NewIdentityElement().ScalarBaseMult(scalarOf(7)).Bytes()
	f.Add(request{set: []int{1, 2}, elements: [][]byte{el, el}}.encode())
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.encode(), b) {
			t.Fatalf("decodeRequest accepted bytes it would not produce: %x", b)
		}
		if len(r.elements) == 0 || len(r.elements) > MaxBatch || len(r.set) == 0 {
			t.Fatalf("decodeRequest accepted %d elements, %d set members", len(r.elements), len(r.set))
		}
	})
}

func FuzzDecodeElement(f *testing.F) {
	f.Add(ristretto255.NewIdentityElement().ScalarBaseMult(scalarOf(7)).Bytes())
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeElement(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Bytes(), b) {
			t.Fatalf("decodeElement accepted a non-canonical encoding %x", b)
		}
		if e.Equal(ristretto255.NewIdentityElement()) == 1 {
			t.Fatal("decodeElement accepted the identity")
		}
	})
}

// FuzzAnswer feeds arbitrary answers to the client's checks for a fixed
// request: any answer they accept must be the honest evaluation.
func FuzzAnswer(f *testing.F) {
	k := scalarOf(1234567)
	pk := ristretto255.NewIdentityElement().ScalarBaseMult(k)
	inputs := [][]byte{[]byte("nhs|1"), []byte("nhs|2"), []byte("nhs|3")}
	b, err := voprf.blindAdd(inputs)
	if err != nil {
		f.Fatal(err)
	}
	honest := batch{blinded: b.elems, blindedEnc: b.enc}
	var answer []byte
	for _, e := range b.elems {
		z := ristretto255.NewIdentityElement().ScalarMult(k, e)
		honest.evaluated = append(honest.evaluated, z)
		honest.evaluatedEnc = append(honest.evaluatedEnc, z.Bytes())
		answer = append(answer, z.Bytes()...)
	}
	answer = append(answer, voprf.prove(k, pk.Bytes(), honest, scalarOf(99))...)
	f.Add(answer)
	f.Add(answer[:len(answer)-1])
	f.Fuzz(func(t *testing.T, a []byte) {
		encs, proof, err := decodeAnswer(a, len(inputs))
		if err != nil {
			return
		}
		bt := batch{blinded: b.elems, blindedEnc: b.enc, evaluatedEnc: encs}
		for _, enc := range encs {
			e, err := decodeElement(enc)
			if err != nil {
				return
			}
			bt.evaluated = append(bt.evaluated, e)
		}
		if !voprf.verify(pk, pk.Bytes(), bt, proof) {
			return
		}
		for i := range encs {
			if !bytes.Equal(encs[i], honest.evaluatedEnc[i]) {
				t.Fatalf("a wrong evaluation of element %d passed the proof check", i)
			}
		}
	})
}

func FuzzParseSealed(f *testing.F) {
	keys, sealed := fuzzDealing(f)
	f.Add(EncodeSealed(keys.Federation, sealed))
	f.Add([]byte(sealedHeader + "\nfederation x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fed, s, err := ParseSealed(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeSealed(fed, s), b) {
			t.Fatalf("ParseSealed accepted a non-canonical file")
		}
	})
}

func FuzzParseShare(f *testing.F) {
	keys, _ := fuzzDealing(f)
	f.Add(EncodeShare(&Share{Federation: keys.Federation, Index: 1, k: scalarOf(5)}))
	f.Add([]byte(shareHeader + "\nfederation fuzz\nindex 1\nshare AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b, keys)
		if err != nil {
			return
		}
		if err := s.matches(keys); err != nil {
			t.Fatalf("ParseShare accepted a share that does not match: %v", err)
		}
	})
}

func fuzzDealing(f *testing.F) (*Keys, []Sealed) {
	f.Helper()
	var to []Recipient
	for i := range 3 {
		seed := sha256.Sum256([]byte{byte(i)})
		id, err := peer.IDFromPrivateKey(mustLibp2pKey(ed25519.NewKeyFromSeed(seed[:])))
		if err != nil {
			f.Fatal(err)
		}
		to = append(to, Recipient{ID: id})
	}
	pub, sealed, err := Deal("fuzz", 2, to)
	if err != nil {
		f.Fatal(err)
	}
	k, err := NewKeys("fuzz", 2, pub)
	if err != nil {
		f.Fatal(err)
	}
	return k, sealed
}
