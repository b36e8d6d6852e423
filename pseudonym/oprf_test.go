package pseudonym

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
	"github.com/gtank/ristretto255"
)

// vectorSuite is one mode's test vectors from RFC 9497, Appendix A.1
// (ristretto255-SHA512), as published with the RFC.
type vectorSuite struct {
	Mode    byte   `json:"mode"`
	SkSm    string `json:"skSm"`
	PkSm    string `json:"pkSm"`
	Vectors []struct {
		Batch             int
		Blind             string
		BlindedElement    string
		EvaluationElement string
		Input             string
		Output            string
		Proof             struct {
			Proof string `json:"proof"`
			R     string `json:"r"`
		}
	} `json:"vectors"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unhexList(t *testing.T, s string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		out = append(out, unhex(t, p))
	}
	return out
}

func mustScalar(t *testing.T, b []byte) *ristretto255.Scalar {
	t.Helper()
	s, err := decodeScalar(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustElement(t *testing.T, b []byte) *ristretto255.Element {
	t.Helper()
	e, err := decodeElement(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// RFC 9497's test vectors for ristretto255-SHA512 pass in both the OPRF
// and the VOPRF mode: blinding, evaluation, output and, in VOPRF mode, the
// batch proof byte for byte.
func TestRFC9497Vectors(t *testing.T) {
	data, err := os.ReadFile("testdata/rfc9497-ristretto255.json")
	if err != nil {
		t.Fatal(err)
	}
	var suites []vectorSuite
	if err := json.Unmarshal(data, &suites); err != nil {
		t.Fatal(err)
	}
	if len(suites) != 2 {
		t.Fatalf("%d suites in the vectors, want the OPRF and VOPRF modes", len(suites))
	}
	for _, vs := range suites {
		s := newSuite(vs.Mode)
		k := mustScalar(t, unhex(t, vs.SkSm))
		pk := ristretto255.NewIdentityElement().ScalarBaseMult(k)
		if vs.PkSm != "" && !bytes.Equal(pk.Bytes(), unhex(t, vs.PkSm)) {
			t.Errorf("mode %d: public key %x, want %s", vs.Mode, pk.Bytes(), vs.PkSm)
		}
		for n, v := range vs.Vectors {
			t.Run(fmt.Sprintf("mode%d/vector%d", vs.Mode, n+1), func(t *testing.T) {
				inputs, blinds := unhexList(t, v.Input), unhexList(t, v.Blind)
				wantBlinded, wantEval, wantOut := unhexList(t, v.BlindedElement), unhexList(t, v.EvaluationElement), unhexList(t, v.Output)
				var b batch
				for i, in := range inputs {
					r := mustScalar(t, blinds[i])
					be, err := s.blindMul(in, r)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(be.Bytes(), wantBlinded[i]) {
						t.Fatalf("blinded element %d: %x, want %x", i, be.Bytes(), wantBlinded[i])
					}
					ev := ristretto255.NewIdentityElement().ScalarMult(k, be)
					if !bytes.Equal(ev.Bytes(), wantEval[i]) {
						t.Fatalf("evaluation %d: %x, want %x", i, ev.Bytes(), wantEval[i])
					}
					out := finalizeMul(in, r, ev)
					if !bytes.Equal(out[:], wantOut[i]) {
						t.Fatalf("output %d: %x, want %x", i, out, wantOut[i])
					}
					direct, err := s.evaluateDirect(k, in)
					if err != nil || direct != out {
						t.Fatalf("direct evaluation %d differs from the blinded one: %v", i, err)
					}
					b.blinded, b.evaluated = append(b.blinded, be), append(b.evaluated, ev)
					b.blindedEnc, b.evaluatedEnc = append(b.blindedEnc, be.Bytes()), append(b.evaluatedEnc, ev.Bytes())
				}
				if vs.Mode != modeVOPRF {
					return
				}
				proof := s.prove(k, pk.Bytes(), b, mustScalar(t, unhex(t, v.Proof.R)))
				if !bytes.Equal(proof, unhex(t, v.Proof.Proof)) {
					t.Fatalf("proof %x, want %s", proof, v.Proof.Proof)
				}
				if !s.verify(pk, pk.Bytes(), b, proof) {
					t.Fatal("the RFC's proof does not verify")
				}
				proof[3] ^= 1
				if s.verify(pk, pk.Bytes(), b, proof) {
					t.Fatal("a tampered proof verifies")
				}
			})
		}
	}
}

// circl's RFC 9497 implementation is the reference: for the same key, its
// full evaluation equals ours, its proofs verify with our verifier, and
// ours with its client, for batches large enough to take the Pippenger
// path.
func TestAgainstCircl(t *testing.T) {
	suite := oprf.SuiteRistretto255
	k := randomScalar()
	var ck oprf.PrivateKey
	if err := ck.UnmarshalBinary(suite, k.Bytes()); err != nil {
		t.Fatal(err)
	}
	server := oprf.NewVerifiableServer(suite, &ck)
	client := oprf.NewVerifiableClient(suite, ck.Public())
	pk := ristretto255.NewIdentityElement().ScalarBaseMult(k)

	inputs := make([][]byte, 100)
	for i := range inputs {
		inputs[i] = fmt.Appendf(nil, "https://fhir.nhs.uk/Id/nhs-number|%010d", i)
		want, err := server.FullEvaluate(inputs[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := voprf.evaluateDirect(k, inputs[i])
		if err != nil || !bytes.Equal(got[:], want) {
			t.Fatalf("input %d: our output differs from circl's (%v)", i, err)
		}
	}

	// circl's client and proof, our verifier.
	fin, req, err := client.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := server.Evaluate(req)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := ev.Proof.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var b batch
	for i := range inputs {
		be, err := req.Elements[i].MarshalBinaryCompress()
		if err != nil {
			t.Fatal(err)
		}
		ee, err := ev.Elements[i].MarshalBinaryCompress()
		if err != nil {
			t.Fatal(err)
		}
		b.blinded, b.evaluated = append(b.blinded, mustElement(t, be)), append(b.evaluated, mustElement(t, ee))
		b.blindedEnc, b.evaluatedEnc = append(b.blindedEnc, be), append(b.evaluatedEnc, ee)
	}
	if !voprf.verify(pk, pk.Bytes(), b, proof) {
		t.Fatal("circl's proof does not verify with ours")
	}

	// Our proof, circl's client.
	ours := voprf.prove(k, pk.Bytes(), b, randomScalar())
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(group.Ristretto255, ours); err != nil {
		t.Fatal(err)
	}
	outs, err := client.Finalize(fin, &oprf.Evaluation{Elements: ev.Elements, Proof: p})
	if err != nil {
		t.Fatalf("circl refuses our proof: %v", err)
	}
	for i, o := range outs {
		want, _ := voprf.evaluateDirect(k, inputs[i])
		if !bytes.Equal(o, want[:]) {
			t.Fatalf("output %d differs", i)
		}
	}
	// A wrong evaluation with a proof for the right ones is caught.
	b.evaluated[7] = ristretto255.NewIdentityElement().Add(b.evaluated[7], ristretto255.NewGeneratorElement())
	b.evaluatedEnc[7] = b.evaluated[7].Bytes()
	if voprf.verify(pk, pk.Bytes(), b, ours) {
		t.Fatal("a batch with one wrong element verifies")
	}
}

// The bucket method agrees with the library's multi-scalar multiplication
// around the size where it takes over.
func TestPippenger(t *testing.T) {
	for _, n := range []int{1, 2, 63, 64, 65, 300, 2048} {
		scalars := make([]*ristretto255.Scalar, n)
		points := make([]*ristretto255.Element, n)
		for i := range points {
			scalars[i] = randomScalar()
			points[i] = ristretto255.NewIdentityElement().ScalarBaseMult(randomScalar())
		}
		if n == 300 {
			scalars[5] = ristretto255.NewScalar().Negate(scalarOf(1)) // the largest scalar
			scalars[6] = ristretto255.NewScalar()                     // zero
		}
		want := ristretto255.NewIdentityElement().VarTimeMultiScalarMult(scalars, points)
		if got := pippenger(scalars, points); got.Equal(want) != 1 {
			t.Errorf("n=%d: pippenger differs from Straus", n)
		}
	}
}

func BenchmarkMSM(b *testing.B) {
	for _, n := range []int{32, 64, 128, 1024} {
		scalars := make([]*ristretto255.Scalar, n)
		points := make([]*ristretto255.Element, n)
		for i := range points {
			scalars[i] = randomScalar()
			var u [64]byte
			if _, err := rand.Read(u[:]); err != nil {
				b.Fatal(err)
			}
			points[i] = voprf.hashToGroup(u[:])
		}
		b.Run(fmt.Sprintf("straus/%d", n), func(b *testing.B) {
			for b.Loop() {
				ristretto255.NewIdentityElement().VarTimeMultiScalarMult(scalars, points)
			}
		})
		b.Run(fmt.Sprintf("pippenger/%d", n), func(b *testing.B) {
			for b.Loop() {
				pippenger(scalars, points)
			}
		})
	}
}

// blindMul is RFC 9497's Blind with a given blind: r·H(input).
func (s suite) blindMul(input []byte, r *ristretto255.Scalar) (*ristretto255.Element, error) {
	p, err := s.inputPoint(input)
	if err != nil {
		return nil, err
	}
	return ristretto255.NewIdentityElement().ScalarMult(r, p), nil
}

// finalizeMul is RFC 9497's Finalize for a multiplicative blind.
func finalizeMul(input []byte, r *ristretto255.Scalar, evaluated *ristretto255.Element) [sha512.Size]byte {
	inv := ristretto255.NewScalar().Invert(r)
	return output(input, ristretto255.NewIdentityElement().ScalarMult(inv, evaluated))
}

// evaluateDirect returns the OPRF output of input under key k without
// blinding: what one party holding the whole key computes (RFC 9497's
// FullEvaluate). medfed never holds the whole key; it is the tests'
// reference.
func (s suite) evaluateDirect(k *ristretto255.Scalar, input []byte) ([sha512.Size]byte, error) {
	p, err := s.inputPoint(input)
	if err != nil {
		return [sha512.Size]byte{}, err
	}
	return output(input, ristretto255.NewIdentityElement().ScalarMult(k, p)), nil
}
