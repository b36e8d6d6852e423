package pseudonym

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// The key ceremonies, the distributed key generation (dkg.go) and the
// resharing (reshare.go), are state machines that exchange broadcast
// messages. This file holds what they share: the message frame and the
// session every message is bound to, sealing a share to one member, the
// polynomials and their commitments, and the bodies' codecs.
//
// Every message is one frame:
//
//	u8 version (1) | u8 kind | 32-byte session | u16 sender's index | body
//
// The session is a hash of everything the ceremony is about (its kind, the
// federation, the committee and thresholds, for a resharing the current
// public key and shares), so a message of one ceremony is refused in any
// other. The bodies have one fixed layout each, all lengths implied by the
// committee or given by a u16 count and bounded by it, every list strictly
// increasing, every scalar and element canonical: a message decodes only
// if encoding what it decodes to gives its bytes back.

const (
	ceremonyVersion = 1
	sessionLen      = 32
	headerLen       = 1 + 1 + sessionLen + 2
	// sealOverhead is what HPKE adds to a plaintext: the X25519
	// encapsulated key and the ChaCha20-Poly1305 tag.
	sealOverhead     = 32 + 16
	maxFederationLen = 255
)

// Message kinds.
const (
	kindDKGDeal        byte = 0x01
	kindDKGComplaints  byte = 0x02
	kindDKGAnswers     byte = 0x03
	kindDKGFeldman     byte = 0x04
	kindDKGAccusations byte = 0x05
	kindDKGReveals     byte = 0x06

	kindReshareDeal       byte = 0x11
	kindReshareComplaints byte = 0x12
	kindReshareAnswers    byte = 0x13
)

var kindNames = map[byte]string{
	kindDKGDeal: "DKG deal", kindDKGComplaints: "DKG complaints", kindDKGAnswers: "DKG answers",
	kindDKGFeldman: "DKG Feldman commitments", kindDKGAccusations: "DKG accusations", kindDKGReveals: "DKG reveals",
	kindReshareDeal: "reshare deal", kindReshareComplaints: "reshare complaints", kindReshareAnswers: "reshare answers",
}

// ErrCeremony is returned when a DKG or a resharing cannot finish: too few
// members followed the protocol for the key to be defined and still
// secret. Nothing is decided; running the ceremony again, without the
// members that failed, may succeed.
var ErrCeremony = node.E(node.Unavailable, "OPRF key ceremony cannot finish")

// Dealers says what a finished ceremony made of its dealers, by index (the
// committee's in a DKG, the current holders' in a resharing).
type Dealers struct {
	// Qualified dealers' polynomials make up the key: the DKG's QUAL; in
	// a resharing every valid dealer, of which the first t (by index) are
	// the ones the new shares are built from.
	Qualified []int
	// Disqualified are the others: no deal (absent or malformed), a deal
	// that changes the key, too many complaints, or a bad or no answer.
	Disqualified []int
	// Reconstructed (DKG only) are qualified dealers whose Feldman
	// commitments did not match their Pedersen ones, or never came: the
	// others rebuilt their polynomials in the open, so they still count.
	Reconstructed []int
}

// header is a message frame's header as the receiver expects it.
type header struct {
	kind    byte
	session [sessionLen]byte
	sender  int
}

func (h header) frame(body []byte) []byte {
	b := make([]byte, 0, headerLen+len(body))
	b = append(b, ceremonyVersion, h.kind)
	b = append(b, h.session[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(h.sender))
	return append(b, body...)
}

// open checks that msg is a frame with this header and returns its body.
func (h header) open(msg []byte) ([]byte, error) {
	switch {
	case len(msg) == 0:
		return nil, h.errorf("no message")
	case len(msg) < headerLen:
		return nil, h.errorf("%d bytes, shorter than a header", len(msg))
	case msg[0] != ceremonyVersion:
		return nil, h.errorf("version %d", msg[0])
	case msg[1] != h.kind:
		return nil, h.errorf("a message of another kind (%d)", msg[1])
	case [sessionLen]byte(msg[2:2+sessionLen]) != h.session:
		return nil, h.errorf("a message of another ceremony")
	case int(binary.BigEndian.Uint16(msg[2+sessionLen:])) != h.sender:
		return nil, h.errorf("sent as another member's")
	}
	return msg[headerLen:], nil
}

func (h header) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s message: %s", node.ErrInvalid, kindNames[h.kind], fmt.Sprintf(format, args...))
}

// A sealed body: elements, then one fixed-size ciphertext per member.

func appendElements(b []byte, es []*ristretto255.Element) []byte {
	for _, e := range es {
		b = e.Encode(b)
	}
	return b
}

// decodeElements decodes exactly n canonical non-identity elements.
func decodeElements(b []byte, n int) ([]*ristretto255.Element, error) {
	if len(b) != n*elementLen {
		return nil, fmt.Errorf("%d bytes for %d elements", len(b), n)
	}
	es := make([]*ristretto255.Element, n)
	for i := range es {
		var err error
		if es[i], err = decodeElement(b[i*elementLen : (i+1)*elementLen]); err != nil {
			return nil, fmt.Errorf("element %d: %v", i, err)
		}
	}
	return es, nil
}

// deal is a decoded deal: the commitments, their encoding (which the
// seals are bound to) and one ciphertext per member.
type deal struct {
	commitEnc []byte
	commit    []*ristretto255.Element
	sealed    [][]byte
}

func (d deal) body() []byte {
	b := append([]byte(nil), d.commitEnc...)
	for _, s := range d.sealed {
		b = append(b, s...)
	}
	return b
}

// decodeDeal decodes a deal of t commitments and n ciphertexts of
// plainLen-byte plaintexts.
func decodeDeal(msg []byte, h header, t, n, plainLen int) (deal, error) {
	body, err := h.open(msg)
	if err != nil {
		return deal{}, err
	}
	sealLen := plainLen + sealOverhead
	if len(body) != t*elementLen+n*sealLen {
		return deal{}, h.errorf("%d bytes, want %d commitments and %d sealed shares", len(body), t, n)
	}
	d := deal{commitEnc: body[: t*elementLen : t*elementLen]}
	if d.commit, err = decodeElements(d.commitEnc, t); err != nil {
		return deal{}, h.errorf("commitment: %v", err)
	}
	rest := body[t*elementLen:]
	d.sealed = make([][]byte, n)
	for i := range d.sealed {
		d.sealed[i] = rest[i*sealLen : (i+1)*sealLen : (i+1)*sealLen]
	}
	return d, nil
}

// Lists of indices: u16 count, then the indices, strictly increasing, in
// 1..max, none self (the sender's own index where the list names members
// of its own committee, else 0).

func appendIndices(b []byte, xs []int) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(xs)))
	for _, x := range xs {
		b = binary.BigEndian.AppendUint16(b, uint16(x))
	}
	return b
}

func decodeIndices(msg []byte, h header, max, self int) ([]int, error) {
	body, m, err := h.counted(msg, max, 2, "indices")
	if err != nil {
		return nil, err
	}
	xs := make([]int, m)
	for i := range xs {
		xs[i] = int(binary.BigEndian.Uint16(body[2*i:]))
		if err := checkIndex(xs, i, max, self); err != nil {
			return nil, h.errorf("%v", err)
		}
	}
	return xs, nil
}

// counted opens a message whose body is a u16 count, then that many
// items of size bytes, at most max, and returns the items' bytes and
// their count.
func (h header) counted(msg []byte, max, size int, what string) ([]byte, int, error) {
	body, err := h.open(msg)
	if err != nil {
		return nil, 0, err
	}
	if len(body) < 2 {
		return nil, 0, h.errorf("no count")
	}
	m := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	if m > max || len(body) != m*size {
		return nil, 0, h.errorf("%d %s in %d bytes", m, what, len(body))
	}
	return body, m, nil
}

func checkIndex(xs []int, i, max, self int) error {
	switch x := xs[i]; {
	case x < 1 || x > max:
		return fmt.Errorf("index %d out of range", x)
	case x == self:
		return errors.New("the sender's own index")
	case i > 0 && x <= xs[i-1]:
		return errors.New("indices must increase")
	}
	return nil
}

// Lists of entries: u16 count, then per entry a u16 index and width
// scalars; indices as in a list of indices.

type entry struct {
	index int
	vals  []*ristretto255.Scalar
}

func appendEntries(b []byte, es []entry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for _, e := range es {
		b = binary.BigEndian.AppendUint16(b, uint16(e.index))
		for _, v := range e.vals {
			b = v.Encode(b)
		}
	}
	return b
}

func decodeEntries(msg []byte, h header, width, max, self int) ([]entry, error) {
	size := 2 + width*scalarLen
	body, m, err := h.counted(msg, max, size, "entries")
	if err != nil {
		return nil, err
	}
	es := make([]entry, m)
	xs := make([]int, m)
	for i := range es {
		e := body[i*size : (i+1)*size]
		xs[i] = int(binary.BigEndian.Uint16(e))
		if err := checkIndex(xs, i, max, self); err != nil {
			return nil, h.errorf("%v", err)
		}
		es[i] = entry{index: xs[i], vals: make([]*ristretto255.Scalar, width)}
		for k := range width {
			if es[i].vals[k], err = decodeScalar(e[2+k*scalarLen : 2+(k+1)*scalarLen]); err != nil {
				return nil, h.errorf("entry %d: %v", i, err)
			}
		}
	}
	return es, nil
}

// find returns the entry for index x.
func find(es []entry, x int) (entry, bool) {
	for _, e := range es {
		if e.index == x {
			return e, true
		}
	}
	return entry{}, false
}

func zeroEntries(es []entry) {
	for _, e := range es {
		zeroScalars(e.vals)
	}
}

// Sessions, members and seals.

// checkCommittee checks a committee and threshold and returns each
// member's index.
func checkCommittee(federation string, committee []peer.ID, threshold int) (map[peer.ID]int, error) {
	n := len(committee)
	if federation == "" || len(federation) > maxFederationLen {
		return nil, fmt.Errorf("%w: a federation name of 1 to %d bytes", ErrKeys, maxFederationLen)
	}
	if threshold < 2 || threshold > n || n > MaxHolders {
		return nil, fmt.Errorf("%w: threshold %d of %d members: want 2 <= threshold <= members <= %d", ErrKeys, threshold, n, MaxHolders)
	}
	byID := make(map[peer.ID]int, n)
	for i, id := range committee {
		if _, dup := byID[id]; dup {
			return nil, fmt.Errorf("%w: member %d is in the committee twice", ErrKeys, i+1)
		}
		if _, err := x25519Public(id); err != nil {
			return nil, fmt.Errorf("member %d: %w", i+1, err)
		}
		byID[id] = i + 1
	}
	return byID, nil
}

// selfID returns the peer ID of a centre's key.
func selfID(key ed25519.PrivateKey) (peer.ID, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("%w: not an Ed25519 private key", ErrKeys)
	}
	return peer.IDFromPrivateKey(mustLibp2pKey(key))
}

// opener returns the HPKE key that opens what is sealed to key's centre.
func opener(key ed25519.PrivateKey) (hpke.PrivateKey, error) {
	priv, err := x25519Private(key)
	if err != nil {
		return nil, err
	}
	return hpke.NewDHKEMPrivateKey(priv)
}

// sessionHash starts a session's hash with its label and federation.
type sessionHash struct{ b []byte }

func newSession(label, federation string) *sessionHash {
	s := &sessionHash{}
	s.bytes([]byte(label))
	s.bytes([]byte(federation))
	return s
}

func (s *sessionHash) int(v int)      { s.b = binary.BigEndian.AppendUint16(s.b, uint16(v)) }
func (s *sessionHash) bytes(v []byte) { s.b = appendPrefixed(s.b, v) }
func (s *sessionHash) ids(ids []peer.ID) {
	s.int(len(ids))
	for _, id := range ids {
		s.bytes([]byte(id))
	}
}
func (s *sessionHash) sum() [sessionLen]byte { return sha512.Sum512_256(s.b) }

// sealInfoFor binds a sealed share to its ceremony, dealer, recipient and
// the dealer's commitments, so it opens nowhere else.
func sealInfoFor(label, federation string, session [sessionLen]byte, dealer, recipient int, commitEnc []byte) []byte {
	info := appendPrefixed(nil, []byte(label))
	info = appendPrefixed(info, []byte(federation))
	info = append(info, session[:]...)
	info = binary.BigEndian.AppendUint16(info, uint16(dealer))
	info = binary.BigEndian.AppendUint16(info, uint16(recipient))
	h := sha512.Sum512_256(commitEnc)
	return append(info, h[:]...)
}

func sealTo(id peer.ID, info, plain []byte) ([]byte, error) {
	pk, err := x25519Public(id)
	if err != nil {
		return nil, err
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return nil, err
	}
	ct, err := hpke.Seal(hpk, sealKDF, sealAEAD, info, plain)
	if err == nil && len(ct) != len(plain)+sealOverhead {
		err = errors.New("pseudonym: unexpected HPKE ciphertext length")
	}
	return ct, err
}

// openScalars opens a sealed share of n scalars; ok is false when it does
// not open or does not hold n canonical scalars.
func openScalars(k hpke.PrivateKey, info, ct []byte, n int) ([]*ristretto255.Scalar, bool) {
	plain, err := hpke.Open(k, sealKDF, sealAEAD, info, ct)
	if err != nil {
		return nil, false
	}
	defer clear(plain)
	if len(plain) != n*scalarLen {
		return nil, false
	}
	out := make([]*ristretto255.Scalar, n)
	for i := range out {
		if out[i], err = decodeScalar(plain[i*scalarLen : (i+1)*scalarLen]); err != nil {
			zeroScalars(out[:i])
			return nil, false
		}
	}
	return out, true
}

// Polynomials and commitments.

// pedersenH is the second generator of the Pedersen commitments, derived
// from a public string so that nobody knows its discrete log to base G.
var pedersenH = func() *ristretto255.Element {
	u := sha512.Sum512([]byte("medfed/pseudonym/dkg/v1 Pedersen generator H"))
	e, err := ristretto255.NewIdentityElement().SetUniformBytes(u[:])
	if err != nil {
		panic(err) // u is 64 bytes
	}
	return e
}()

// randomPoly returns t random coefficients: a polynomial of degree t-1.
func randomPoly(t int) []*ristretto255.Scalar {
	p := make([]*ristretto255.Scalar, t)
	for i := range p {
		p[i] = randomScalar()
	}
	return p
}

func zeroScalars(s []*ristretto255.Scalar) {
	for _, v := range s {
		if v != nil {
			v.Zero()
		}
	}
}

// commitAt returns Σ_k c_k·x^k: a polynomial's commitment evaluated at x.
// Everything in it is public, so it runs in variable time.
func commitAt(c []*ristretto255.Element, x int) *ristretto255.Element {
	pow := make([]*ristretto255.Scalar, len(c))
	xs := scalarOf(uint64(x))
	for k := range pow {
		if k == 0 {
			pow[k] = scalarOf(1)
		} else {
			pow[k] = ristretto255.NewScalar().Multiply(pow[k-1], xs)
		}
	}
	return ristretto255.NewIdentityElement().VarTimeMultiScalarMult(pow, c)
}

// pedersen returns a·G + b·H in constant time.
func pedersen(a, b *ristretto255.Scalar) *ristretto255.Element {
	return ristretto255.NewIdentityElement().MultiScalarMult(
		[]*ristretto255.Scalar{a, b}, []*ristretto255.Element{ristretto255.NewGeneratorElement(), pedersenH})
}

// pedersenOK reports whether (a, b) is the share at x that the Pedersen
// commitments c commit to.
func pedersenOK(a, b *ristretto255.Scalar, c []*ristretto255.Element, x int) bool {
	return pedersen(a, b).Equal(commitAt(c, x)) == 1
}

// feldmanOK reports whether a is the share at x that the Feldman
// commitments c commit to.
func feldmanOK(a *ristretto255.Scalar, c []*ristretto255.Element, x int) bool {
	return ristretto255.NewIdentityElement().ScalarBaseMult(a).Equal(commitAt(c, x)) == 1
}

// feldman returns the Feldman commitments of a polynomial: its
// coefficients times G.
func feldman(p []*ristretto255.Scalar) []*ristretto255.Element {
	c := make([]*ristretto255.Element, len(p))
	for k, a := range p {
		c[k] = ristretto255.NewIdentityElement().ScalarBaseMult(a)
	}
	return c
}

// publicFor returns the Public of committee whose holder at index x has
// public share at(x).
func publicFor(key *ristretto255.Element, committee []peer.ID, at func(x int) *ristretto255.Element) Public {
	var pub Public
	copy(pub.Key[:], key.Bytes())
	pub.Holders = make([]Holder, len(committee))
	for i, id := range committee {
		pub.Holders[i] = Holder{Index: i + 1, ID: id}
		copy(pub.Holders[i].Public[:], at(i+1).Bytes())
	}
	return pub
}

// checkResult checks a ceremony's outcome as a user of it would: NewKeys
// takes the Public, and the share (if any) is the one it lists.
func checkResult(federation string, threshold int, pub Public, share *Share) error {
	keys, err := NewKeys(federation, threshold, pub)
	if err != nil {
		return fmt.Errorf("%w: the result is not a valid key: %v", ErrCeremony, err)
	}
	if share != nil {
		if err := share.matches(keys); err != nil {
			return fmt.Errorf("%w: this member's share does not match the result: %v", ErrCeremony, err)
		}
	}
	return nil
}

func appendCount(b []byte, m int) []byte { return binary.BigEndian.AppendUint16(b, uint16(m)) }
