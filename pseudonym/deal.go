package pseudonym

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"filippo.io/edwards25519"
	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// Dealing a key. At founding one centre, the dealer, draws the key k and a
// random polynomial f of degree t-1 with f(0) = k, gives holder i the share
// f(i), and publishes k·G and every f(i)·G in the charter. Each share leaves
// the dealer only sealed (HPKE, RFC 9180) to its holder's centre key; k, the
// polynomial and the plaintext shares exist only in the dealer's memory
// during Deal and are overwritten before it returns. The dealer is trusted
// not to keep a copy. NewDKG (dkg.go) removes that trust, at the cost of
// every founder being online for the six rounds of the ceremony, and
// NewReshare (reshare.go) moves a dealt key to a committee's fresh shares
// with k unchanged: the way off a dealer for a federation founded with
// one. Deal stays for tests and for federations that accept the trust.

// Recipient is a holder-to-be: a founding centre.
type Recipient struct {
	ID peer.ID // Ed25519 peer ID; the key in it is what the share is sealed to
}

// Sealed is one share sealed to its holder.
type Sealed struct {
	Index      int
	Holder     peer.ID
	Ciphertext []byte
}

// Deal draws a fresh key for federation, shares it threshold-of-len(to),
// share i+1 to to[i], and returns the public parameters and the sealed
// shares. The threshold is at least 2.
func Deal(federation string, threshold int, to []Recipient) (Public, []Sealed, error) {
	n := len(to)
	if threshold < 2 || threshold > n || n > MaxHolders {
		return Public{}, nil, fmt.Errorf("%w: threshold %d of %d holders: want 2 to %d (with 1, every holder could compute pseudonyms alone)", ErrKeys, threshold, n, n)
	}
	poly := make([]*ristretto255.Scalar, threshold)
	for i := range poly {
		poly[i] = randomScalar()
	}
	defer func() {
		for _, c := range poly {
			c.Zero()
		}
	}()
	var pub Public
	copy(pub.Key[:], ristretto255.NewIdentityElement().ScalarBaseMult(poly[0]).Bytes())
	sealed := make([]Sealed, n)
	for i, r := range to {
		index := i + 1
		share := evalPoly(poly, index)
		h := Holder{Index: index, ID: r.ID}
		copy(h.Public[:], ristretto255.NewIdentityElement().ScalarBaseMult(share).Bytes())
		pub.Holders = append(pub.Holders, h)
		ct, err := seal(federation, pub.Key, h, share)
		share.Zero()
		if err != nil {
			return Public{}, nil, err
		}
		sealed[i] = Sealed{Index: index, Holder: r.ID, Ciphertext: ct}
	}
	return pub, sealed, nil
}

// evalPoly returns f(x) by Horner's rule.
func evalPoly(poly []*ristretto255.Scalar, x int) *ristretto255.Scalar {
	xs := scalarOf(uint64(x))
	acc := ristretto255.NewScalar().Set(poly[len(poly)-1])
	for i := len(poly) - 2; i >= 0; i-- {
		acc.Multiply(acc, xs)
		acc.Add(acc, poly[i])
	}
	return acc
}

// sealInfo binds a sealed share to its federation, index, public share and
// key, so a ciphertext cannot be replayed as another share.
func sealInfo(federation string, key [32]byte, h Holder) []byte {
	info := []byte("medfed oprf share v1\x00" + federation + "\x00")
	info = binary.BigEndian.AppendUint16(info, uint16(h.Index))
	info = append(info, h.Public[:]...)
	return append(info, key[:]...)
}

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

func seal(federation string, key [32]byte, h Holder, share *ristretto255.Scalar) ([]byte, error) {
	pk, err := x25519Public(h.ID)
	if err != nil {
		return nil, err
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return nil, err
	}
	plain := share.Bytes()
	defer clear(plain)
	return hpke.Seal(hpk, sealKDF, sealAEAD, sealInfo(federation, key, h), plain)
}

// x25519Public maps the Ed25519 key in an Ed25519 peer ID to its X25519
// public key (the birational map to Montgomery form).
func x25519Public(id peer.ID) (*ecdh.PublicKey, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeys, id, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s: not an Ed25519 key", ErrKeys, id)
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, err
	}
	p, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeys, id, err)
	}
	return ecdh.X25519().NewPublicKey(p.BytesMontgomery())
}

// x25519Private maps an Ed25519 private key to the X25519 key whose public
// key x25519Public gives: the clamped first half of SHA-512(seed).
func x25519Private(key ed25519.PrivateKey) (*ecdh.PrivateKey, error) {
	h := sha512.Sum512(key.Seed())
	defer clear(h[:])
	return ecdh.X25519().NewPrivateKey(h[:32])
}

// Open opens the share sealed to the centre with key, checks it against
// the public share keys list for it, and returns it.
func Open(keys *Keys, sealed []Sealed, key ed25519.PrivateKey) (*Share, error) {
	id, err := peer.IDFromPrivateKey(mustLibp2pKey(key))
	if err != nil {
		return nil, err
	}
	h, ok := keys.Holder(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds no share of %s's key", ErrKeys, id, keys.Federation)
	}
	var ct []byte
	for _, s := range sealed {
		if s.Index == h.Index && s.Holder == id {
			ct = s.Ciphertext
		}
	}
	if ct == nil {
		return nil, fmt.Errorf("%w: no sealed share %d for %s", ErrKeys, h.Index, id)
	}
	priv, err := x25519Private(key)
	if err != nil {
		return nil, err
	}
	hk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	plain, err := hpke.Open(hk, sealKDF, sealAEAD, sealInfo(keys.Federation, keys.Key, h), ct)
	if err != nil {
		return nil, fmt.Errorf("%w: share %d does not open with this centre's key", ErrKeys, h.Index)
	}
	defer clear(plain)
	k, err := decodeScalar(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: share %d: %v", ErrKeys, h.Index, err)
	}
	s := &Share{Federation: keys.Federation, Index: h.Index, k: k}
	return s, s.matches(keys)
}

func mustLibp2pKey(key ed25519.PrivateKey) crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		panic(err) // an ed25519.PrivateKey always has the right length
	}
	return k
}

// Text formats. Both are line-based and have one spelling each.

const (
	sealedHeader = "medfed oprf shares v1"
	shareHeader  = "medfed oprf share v1"
	maxSealedLen = 128 // an HPKE X25519 ciphertext of a scalar is 80 bytes
)

// EncodeSealed returns the file that carries the sealed shares of a
// dealing to the founders.
func EncodeSealed(federation string, sealed []Sealed) []byte {
	var b strings.Builder
	b.WriteString(sealedHeader + "\nfederation " + federation + "\n")
	for _, s := range sealed {
		fmt.Fprintf(&b, "share %d %s %s\n", s.Index, s.Holder, base64.StdEncoding.EncodeToString(s.Ciphertext))
	}
	return []byte(b.String())
}

// ParseSealed parses a file EncodeSealed wrote.
func ParseSealed(data []byte) (federation string, sealed []Sealed, err error) {
	lines, err := fileLines(data, sealedHeader, 2+MaxHolders)
	if err != nil {
		return "", nil, err
	}
	federation, ok := strings.CutPrefix(lines[1], "federation ")
	if !ok || federation == "" || strings.ContainsAny(federation, " ") {
		return "", nil, fmt.Errorf("%w: malformed OPRF share file: line 2: want federation <id>", node.ErrInvalid)
	}
	for n, line := range lines[2:] {
		f := strings.Split(line, " ")
		if len(f) != 4 || f[0] != "share" {
			return "", nil, fmt.Errorf("%w: malformed OPRF share file: line %d: want share <index> <peer ID> <base64>", node.ErrInvalid, n+3)
		}
		index, err := parseIndex(f[1])
		if err != nil {
			return "", nil, fmt.Errorf("%w: malformed OPRF share file: line %d: %v", node.ErrInvalid, n+3, err)
		}
		id, err := peer.Decode(f[2])
		if err != nil || len(f[2]) > 128 {
			return "", nil, fmt.Errorf("%w: malformed OPRF share file: line %d: not a peer ID", node.ErrInvalid, n+3)
		}
		ct, err := base64.StdEncoding.Strict().DecodeString(f[3])
		if err != nil || len(ct) == 0 || len(ct) > maxSealedLen {
			return "", nil, fmt.Errorf("%w: malformed OPRF share file: line %d: not a sealed share", node.ErrInvalid, n+3)
		}
		sealed = append(sealed, Sealed{Index: index, Holder: id, Ciphertext: ct})
	}
	if string(EncodeSealed(federation, sealed)) != string(data) {
		return "", nil, fmt.Errorf("%w: malformed OPRF share file: not in canonical form", node.ErrInvalid)
	}
	return federation, sealed, nil
}

// EncodeShare returns the file a holder keeps its share in (mode 0600).
func EncodeShare(s *Share) []byte {
	return fmt.Appendf(nil, "%s\nfederation %s\nindex %d\nshare %s\n", shareHeader, s.Federation, s.Index,
		base64.StdEncoding.EncodeToString(s.k.Bytes()))
}

// ParseShare parses a file EncodeShare wrote and checks the share against
// keys.
func ParseShare(data []byte, keys *Keys) (*Share, error) {
	lines, err := fileLines(data, shareHeader, 4)
	if err != nil {
		return nil, err
	}
	if len(lines) != 4 {
		return nil, fmt.Errorf("%w: malformed OPRF share file: want 4 lines", node.ErrInvalid)
	}
	fed, ok1 := strings.CutPrefix(lines[1], "federation ")
	idx, ok2 := strings.CutPrefix(lines[2], "index ")
	enc, ok3 := strings.CutPrefix(lines[3], "share ")
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("%w: malformed OPRF share file: want federation, index and share lines", node.ErrInvalid)
	}
	index, err := parseIndex(idx)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed OPRF share file: %v", node.ErrInvalid, err)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed OPRF share file: share: not base64", node.ErrInvalid)
	}
	defer clear(raw)
	k, err := decodeScalar(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed OPRF share file: share: %v", node.ErrInvalid, err)
	}
	s := &Share{Federation: fed, Index: index, k: k}
	if string(EncodeShare(s)) != string(data) {
		return nil, fmt.Errorf("%w: malformed OPRF share file: not in canonical form", node.ErrInvalid)
	}
	return s, s.matches(keys)
}

func fileLines(data []byte, header string, maxLines int) ([]string, error) {
	if len(data) > (maxLines+1)*256 || len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: malformed OPRF share file: empty, too large, or not newline-terminated", node.ErrInvalid)
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if lines[0] != header {
		return nil, fmt.Errorf("%w: malformed OPRF share file: line 1: want %q", node.ErrInvalid, header)
	}
	if len(lines) < 2 || len(lines) > maxLines {
		return nil, fmt.Errorf("%w: malformed OPRF share file: %d lines", node.ErrInvalid, len(lines))
	}
	return lines, nil
}

func parseIndex(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 1 || i > MaxHolders || strconv.Itoa(i) != s {
		return 0, fmt.Errorf("index %q: want 1 to %d", s, MaxHolders)
	}
	return i, nil
}
