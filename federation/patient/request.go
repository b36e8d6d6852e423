package patient

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Errors of the patient protocol, besides bytes or fields that are not a
// valid request or answer (node.Invalid, "malformed patient message").
var (
	// ErrSignature: a signature that does not verify.
	ErrSignature = node.E(node.Forbidden, "patient protocol signature")
	// ErrStale: a request outside the clock skew a holder allows, or one
	// answered before.
	ErrStale = node.E(node.Invalid, "patient request out of time")
)

// malformed returns an error of kind node.Invalid for a patient message
// that is not valid.
func malformed(format string, args ...any) error {
	return wire.Malformed("patient message", format, args...)
}

// Op is what a patient asks for.
type Op uint8

const (
	// View: which centres hold the patient's records, and every access.
	View Op = 1
	// Erase: every holder crypto-shreds the patient's payloads and
	// withdraws from the directory.
	Erase Op = 2
	// Records: every holder sends the patient their own records, the
	// payloads sealed to a key the patient's device holds (Request.Seal),
	// and records the access as the patient's own.
	Records Op = 3
)

var ops = enum.New[Op]("op", []string{View: "view", Erase: "erase", Records: "records"})

func (o Op) String() string { return ops.String(o) }

// MaxSkew is how far a request's time may be from a holder's clock: a
// patient's device keeps rougher time than a centre's server.
const MaxSkew = 5 * time.Minute

const maxRequest = 4 << 10

// MaxCursors bounds the cursors of one request.
const MaxCursors = 32

var requestMessage = wire.Message{What: "patient request", Context: RequestContext, Version: 2, Max: maxRequest, Passkeys: true}

// Cursor asks one holder for the entries from index From on: the next
// page of a view whose answer said there were more (Answer.Next).
type Cursor struct {
	Holder peer.ID
	From   int64
}

// Request is a patient's signed request.
type Request struct {
	Op         Op
	Federation string
	Relay      peer.ID // the centre the patient asks through
	Subject    ledger.Pseudonym
	Key        ed25519.PublicKey // the patient's key that signs it: an Ed25519 key, or a passkey's ID (wire.PasskeyID)
	Nonce      [16]byte
	Time       time.Time // to the millisecond
	// Cursors page a view or the records: each holder named answers its
	// entries from its cursor on; one not named, from the first (sorted
	// by holder, at most 32).
	Cursors []Cursor
	// Seal (Records only) is the X25519 public key the holders seal the
	// payloads to (HPKE: see SealRecords).
	Seal [32]byte

	signed wire.Opened // as parsed: what the patient signed, and the signature
}

// Encoding, version 2: u8 version, u8 op, str federation, str relay, [32]
// subject, [32] key, [16] nonce, u64 Unix milliseconds, u8 count and
// cursors (str holder, u64 from); for Records, [32] the sealing key; then
// (version 0x82, a passkey's: see wire.PasskeyVersion) its assertion and
// the assertion's length, or [64] the
// patient's Ed25519 signature over "medfed/patient/v1 request" || 0x00
// || the bytes before it.
func (q *Request) write(w *wire.Writer) {
	w.U8(uint8(q.Op))
	w.Str(q.Federation)
	w.Str(string(q.Relay))
	w.Bytes(q.Subject[:])
	w.Bytes(q.Key)
	w.Bytes(q.Nonce[:])
	w.Millis(q.Time)
	w.U8(uint8(len(q.Cursors)))
	for _, c := range q.Cursors {
		w.Str(string(c.Holder))
		w.U64(uint64(c.From))
	}
	if q.Op == Records {
		w.Bytes(q.Seal[:])
	}
}

// From returns where holder's entries start in this request: its cursor,
// or 0.
func (q Request) From(holder peer.ID) int64 {
	for _, c := range q.Cursors {
		if c.Holder == holder {
			return c.From
		}
	}
	return 0
}

func (q *Request) check() error {
	switch {
	case !ops.Valid(q.Op):
		return malformed("operation %d", uint8(q.Op))
	case q.Federation == "" || len(q.Federation) > 64:
		return malformed("federation")
	case q.Relay == "" || len(q.Relay) > 64:
		return malformed("relay")
	case q.Subject.IsZero():
		return malformed("no patient")
	case len(q.Key) != ed25519.PublicKeySize:
		return malformed("a key of %d bytes", len(q.Key))
	case q.Nonce == [16]byte{}:
		return malformed("no nonce")
	case q.Time.UnixMilli() <= 0 || q.Time.Unix() >= wire.MaxUnix:
		return malformed("time")
	case len(q.Cursors) > MaxCursors:
		return malformed("%d cursors", len(q.Cursors))
	case len(q.Cursors) > 0 && q.Op == Erase:
		return malformed("cursors page a view or the records only")
	case (q.Seal != [32]byte{}) != (q.Op == Records):
		return malformed("a sealing key comes with a request for the records, and only then")
	}
	for i, c := range q.Cursors {
		switch {
		case c.Holder == "" || len(c.Holder) > 64 || c.From < 0:
			return malformed("cursor")
		case i > 0 && q.Cursors[i-1].Holder >= c.Holder:
			return malformed("cursors not sorted by holder, or one twice")
		}
	}
	return nil
}

// Sign returns the request signed with the patient's key; Key is set
// from it.
func (q Request) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, malformed("not an Ed25519 private key")
	}
	q.Key = key.Public().(ed25519.PublicKey)
	if err := q.check(); err != nil {
		return nil, err
	}
	return requestMessage.Sign(key, q.write)
}

// Draft returns the request for a key the patient's browser holds to
// sign: Key is set to key (an Ed25519 public key, or a passkey's ID).
// The browser signs wire.Signed(RequestContext, draft) with an Ed25519
// key, or asserts its wire.Challenge with a passkey; SealRequest then
// makes the request.
func (q Request) Draft(key ed25519.PublicKey, passkey bool) ([]byte, error) {
	q.Key = key
	if err := q.check(); err != nil {
		return nil, err
	}
	return requestMessage.Draft(passkey, q.write), nil
}

// RequestContext names the patient request in what its signature covers.
const RequestContext = "medfed/patient/v1 request"

// SealRequest returns a draft (Draft) signed: by sig, an Ed25519
// signature, or by a passkey's assertion p when it is not nil. The
// result is checked as ParseRequest checks any request.
func SealRequest(draft, sig []byte, p *wire.Passkey) ([]byte, error) {
	var b []byte
	var err error
	if p != nil {
		b, err = requestMessage.SealPasskey(draft, nil, *p)
	} else {
		b, err = requestMessage.Seal(draft, nil, sig)
	}
	if err != nil {
		return nil, err
	}
	if _, err := ParseRequest(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ParseRequest decodes a signed request; it accepts only what Sign
// writes, and checks the signature against the key it carries. Whether
// that key speaks for the patient is for the holder to check
// (Request.Authenticate).
func ParseRequest(b []byte) (Request, error) {
	var q Request
	o, err := requestMessage.Open(b, q.read)
	if err != nil {
		return Request{}, err
	}
	if err := q.check(); err != nil {
		return Request{}, err
	}
	// A passkey's assertion is checked against the key's ID here too:
	// Consent.Authenticate then checks the ID speaks for the patient.
	if q.signed = o; !o.Verify(q.Key) {
		return Request{}, fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	return q, nil
}

func (q *Request) read(r *wire.Reader) {
	q.Op = Op(r.U8("op"))
	q.Federation = r.Str("federation")
	q.Relay = peer.ID(r.Str("relay"))
	r.Fixed(q.Subject[:], "subject")
	q.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	r.Fixed(q.Nonce[:], "nonce")
	q.Time = r.Millis("time")
	n := int(r.U8("cursors"))
	if n > MaxCursors {
		r.Fail("%d cursors", n)
		return
	}
	for range n {
		if r.Err() != nil {
			return
		}
		q.Cursors = append(q.Cursors, Cursor{Holder: peer.ID(r.Str("cursor holder")), From: int64(r.U64("cursor"))})
	}
	if q.Op == Records {
		r.Fixed(q.Seal[:], "sealing key")
	}
}
