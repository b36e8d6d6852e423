package pseudonym

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// MaxHolders bounds the number of shares, like a charter's members.
const MaxHolders = 256

// ErrKeys is returned for OPRF parameters or a share that do not fit
// together: points that do not decode, public shares that do not lie on one
// polynomial of degree t-1, or a share that is not its holder's.
var ErrKeys = node.E(node.Invalid, "OPRF key parameters")

// Holder is a centre that holds a share of the federation's OPRF key.
type Holder struct {
	Index  int      // the share's x coordinate, 1 to MaxHolders
	ID     peer.ID  // the holder's peer ID
	Public [32]byte // the public share k_i·G
}

// Public is the public part of a dealt key, which the charter lists.
type Public struct {
	Key     [32]byte // k·G
	Holders []Holder // by index
}

// Keys are a federation's checked OPRF parameters: the threshold, the
// public key and every holder's public share.
type Keys struct {
	Federation string
	Threshold  int
	Public

	key    *ristretto255.Element
	shares map[int]*ristretto255.Element
	byID   map[peer.ID]Holder
}

// NewKeys checks the parameters a charter lists: every point decodes, the
// indices are distinct, there are at least threshold holders, and the
// public shares and the key lie on one polynomial of degree threshold-1,
// so that any threshold holders compute the same pseudonyms.
func NewKeys(federation string, threshold int, pub Public) (*Keys, error) {
	k := &Keys{Federation: federation, Threshold: threshold, shares: map[int]*ristretto255.Element{}, byID: map[peer.ID]Holder{}}
	k.Key = pub.Key
	k.Holders = slices.Clone(pub.Holders)
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeys, err)
	}
	return k, nil
}

func (k *Keys) check() error {
	n := len(k.Holders)
	if k.Threshold < 2 || n < k.Threshold || n > MaxHolders {
		return fmt.Errorf("threshold %d with %d holders: want 2 <= threshold <= holders <= %d", k.Threshold, n, MaxHolders)
	}
	var err error
	if k.key, err = decodeElement(k.Key[:]); err != nil {
		return fmt.Errorf("key: %v", err)
	}
	for i, h := range k.Holders {
		if h.Index < 1 || h.Index > MaxHolders {
			return fmt.Errorf("holder %d: index %d out of range", i+1, h.Index)
		}
		if i > 0 && h.Index <= k.Holders[i-1].Index {
			return fmt.Errorf("holder %d: indices must increase", i+1)
		}
		if _, dup := k.byID[h.ID]; dup {
			return fmt.Errorf("holder %d: %s holds two shares", i+1, h.ID)
		}
		if k.shares[h.Index], err = decodeElement(h.Public[:]); err != nil {
			return fmt.Errorf("holder %d: public share: %v", i+1, err)
		}
		k.byID[h.ID] = h
	}
	// Interpolate the first t public shares at every other index and at 0.
	base := make([]int, k.Threshold)
	points := make([]*ristretto255.Element, k.Threshold)
	for i := range base {
		base[i] = k.Holders[i].Index
		points[i] = k.shares[base[i]]
	}
	at := func(x int) *ristretto255.Element {
		return ristretto255.NewIdentityElement().VarTimeMultiScalarMult(lagrangeAt(base, x), points)
	}
	if at(0).Equal(k.key) != 1 {
		return errors.New("the key is not the one the public shares interpolate to")
	}
	// And no fewer than t: a dealer who drew a polynomial of lower degree
	// would let t-1 holders compute pseudonyms.
	fewer := ristretto255.NewIdentityElement().VarTimeMultiScalarMult(lagrangeAt(base[:k.Threshold-1], 0), points[:k.Threshold-1])
	if fewer.Equal(k.key) == 1 {
		return fmt.Errorf("%d public shares already determine the key: the polynomial's degree is below the threshold", k.Threshold-1)
	}
	for _, h := range k.Holders[k.Threshold:] {
		if at(h.Index).Equal(k.shares[h.Index]) != 1 {
			return fmt.Errorf("the public share of index %d does not lie on the others' polynomial", h.Index)
		}
	}
	return nil
}

// Holder returns the holder with peer ID id.
func (k *Keys) Holder(id peer.ID) (Holder, bool) {
	h, ok := k.byID[id]
	return h, ok
}

// foldedPublic returns λ_i·K_i: holder i's public share with its Lagrange
// coefficient for the evaluating set folded in.
func (k *Keys) foldedPublic(set []int, index int) *ristretto255.Element {
	return ristretto255.NewIdentityElement().ScalarMult(lagrange(set, index), k.shares[index])
}

// checkSet checks that set is an evaluating set: at least t distinct
// holders' indices, increasing.
func (k *Keys) checkSet(set []int) error {
	if len(set) < k.Threshold || len(set) > len(k.Holders) {
		return fmt.Errorf("evaluating set of %d holders, want %d to %d", len(set), k.Threshold, len(k.Holders))
	}
	for i, x := range set {
		if _, ok := k.shares[x]; !ok {
			return fmt.Errorf("index %d holds no share", x)
		}
		if i > 0 && x <= set[i-1] {
			return errors.New("evaluating set indices must increase")
		}
	}
	return nil
}

// lagrange returns the Lagrange coefficient of index i at 0 for set:
// Π_{j≠i} j/(j-i).
func lagrange(set []int, i int) *ristretto255.Scalar {
	return lagrangeOne(set, i, 0)
}

// lagrangeAt returns the coefficients of every index in set at x.
func lagrangeAt(set []int, x int) []*ristretto255.Scalar {
	out := make([]*ristretto255.Scalar, len(set))
	for n, i := range set {
		out[n] = lagrangeOne(set, i, x)
	}
	return out
}

// lagrangeOne returns Π_{j≠i} (x-j)/(i-j) over set.
func lagrangeOne(set []int, i, x int) *ristretto255.Scalar {
	num, den := scalarOf(1), scalarOf(1)
	for _, j := range set {
		if j == i {
			continue
		}
		num.Multiply(num, signedScalar(x-j))
		den.Multiply(den, signedScalar(i-j))
	}
	return num.Multiply(num, ristretto255.NewScalar().Invert(den))
}

func signedScalar(v int) *ristretto255.Scalar {
	if v < 0 {
		return ristretto255.NewScalar().Negate(scalarOf(uint64(-v)))
	}
	return scalarOf(uint64(v))
}

// Share is one holder's secret share of the federation's OPRF key.
type Share struct {
	Federation string
	Index      int
	k          *ristretto255.Scalar
}

// String names the share without its value.
func (s *Share) String() string { return fmt.Sprintf("OPRF share %d of %s", s.Index, s.Federation) }

// Format prints String for every verb, so no verb prints the scalar.
func (s *Share) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue keeps the share itself out of logs.
func (s *Share) LogValue() slog.Value { return slog.StringValue(s.String()) }

// matches reports whether s is the share keys list for index s.Index.
func (s *Share) matches(keys *Keys) error {
	pub, ok := keys.shares[s.Index]
	if !ok || s.Federation != keys.Federation {
		return fmt.Errorf("%w: the federation lists no share %d of %s", ErrKeys, s.Index, s.Federation)
	}
	if ristretto255.NewIdentityElement().ScalarBaseMult(s.k).Equal(pub) != 1 {
		return fmt.Errorf("%w: share %d is not the one whose public share the federation lists", ErrKeys, s.Index)
	}
	return nil
}

// folded returns λ_i·k_i for the evaluating set.
func (s *Share) folded(set []int) *ristretto255.Scalar {
	return ristretto255.NewScalar().Multiply(lagrange(set, s.Index), s.k)
}
