package pseudonym

import (
	"math/bits"

	"github.com/gtank/ristretto255"
)

// msmThreshold is the batch size from which Pippenger's bucket method beats
// the library's Straus method; measured by BenchmarkMSM.
const msmThreshold = 64

// varTimeMSM returns Σ scalars[i]·points[i] in variable time: only for
// public scalars and points, such as the composites of a DLEQ proof.
func varTimeMSM(scalars []*ristretto255.Scalar, points []*ristretto255.Element) *ristretto255.Element {
	if len(scalars) != len(points) {
		panic("pseudonym: msm of unequal lengths")
	}
	if len(points) < msmThreshold {
		return ristretto255.NewIdentityElement().VarTimeMultiScalarMult(scalars, points)
	}
	return pippenger(scalars, points)
}

// pippenger is the bucket method with signed digits of c bits: each window
// costs one addition per point plus 2^c for the bucket sums, instead of a
// full scalar multiplication per point.
func pippenger(scalars []*ristretto255.Scalar, points []*ristretto255.Element) *ristretto255.Element {
	n := len(points)
	c := max(bits.Len(uint(n))-3, 4)
	windows := (253+c-1)/c + 1 // scalars are below 2^253; one more for the last carry
	digits := make([]int32, n*windows)
	for i, s := range scalars {
		signedDigits(s.Bytes(), c, digits[i*windows:(i+1)*windows])
	}
	half := 1 << (c - 1)
	buckets := make([]ristretto255.Element, half)
	used := make([]bool, half)
	result := ristretto255.NewIdentityElement()
	var sum, acc ristretto255.Element
	for w := windows - 1; w >= 0; w-- {
		for range c {
			result.Add(result, result)
		}
		clear(used)
		for i, p := range points {
			d := digits[i*windows+w]
			switch {
			case d > 0:
				addTo(&buckets[d-1], &used[d-1], p, false)
			case d < 0:
				addTo(&buckets[-d-1], &used[-d-1], p, true)
			}
		}
		identity := ristretto255.NewIdentityElement()
		sum.Set(identity)
		acc.Set(identity)
		for j := half - 1; j >= 0; j-- {
			if used[j] {
				sum.Add(&sum, &buckets[j])
			}
			acc.Add(&acc, &sum)
		}
		result.Add(result, &acc)
	}
	return result
}

func addTo(bucket *ristretto255.Element, used *bool, p *ristretto255.Element, neg bool) {
	switch {
	case !*used && neg:
		bucket.Negate(p)
	case !*used:
		bucket.Set(p)
	case neg:
		bucket.Subtract(bucket, p)
	default:
		bucket.Add(bucket, p)
	}
	*used = true
}

// signedDigits writes the little-endian scalar s in radix 2^c with digits
// in [-2^(c-1), 2^(c-1)], least significant first.
func signedDigits(s []byte, c int, out []int32) {
	var carry int32
	half, full := int32(1)<<(c-1), int32(1)<<c
	for w := range out {
		d := int32(bitsAt(s, w*c, c)) + carry
		carry = 0
		if d >= half {
			d -= full
			carry = 1
		}
		out[w] = d
	}
}

// bitsAt returns the c bits of the little-endian number s from bit offset.
func bitsAt(s []byte, offset, c int) uint32 {
	var v uint64
	byteOff := offset / 8
	for k := 0; k < 8 && byteOff+k < len(s); k++ {
		v |= uint64(s[byteOff+k]) << (8 * k)
	}
	return uint32(v>>(offset%8)) & (1<<c - 1)
}
