package patient

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Errors of the patient protocol.
var (
	// ErrMalformed: bytes that are not a valid request or answer.
	ErrMalformed = errors.New("malformed patient message")
	// ErrSignature: a signature that does not verify.
	ErrSignature = errors.New("patient protocol signature")
	// ErrStale: a request outside the clock skew a holder allows.
	ErrStale = errors.New("patient request out of time")
)

// Op is what a patient asks for.
type Op uint8

const (
	// View: which centres hold the patient's records, and every access.
	View Op = 1
	// Erase: every holder crypto-shreds the patient's payloads and
	// withdraws from the directory.
	Erase Op = 2
)

func (o Op) String() string {
	switch o {
	case View:
		return "view"
	case Erase:
		return "erase"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// MaxSkew is how far a request's time may be from a holder's clock: a
// patient's device keeps rougher time than a centre's server.
const MaxSkew = 5 * time.Minute

const (
	requestV1        = 1
	requestSignature = "medfed/patient/v1 request"
	maxRequest       = 1 << 10
)

// Request is a patient's signed request.
type Request struct {
	Op         Op
	Federation string
	Relay      peer.ID // the centre the patient asks through
	Subject    ledger.Pseudonym
	Key        ed25519.PublicKey // the patient's key that signs it
	Nonce      [16]byte
	Time       time.Time // to the millisecond

	msg, sig []byte // as parsed: the signed message and its signature
}

// Encoding, version 1: u8 version, u8 op, str federation, str relay, [32]
// subject, [32] key, [16] nonce, u64 Unix milliseconds; then [64] the
// patient's Ed25519 signature over "medfed/patient/v1 request" || 0x00
// || the bytes before it.
func (q *Request) body() []byte {
	w := wire.Writer{B: []byte{requestV1, byte(q.Op)}}
	w.Str(q.Federation)
	w.Str(string(q.Relay))
	w.Bytes(q.Subject[:])
	w.Bytes(q.Key)
	w.Bytes(q.Nonce[:])
	w.Millis(q.Time)
	return w.B
}

func (q *Request) check() error {
	switch {
	case q.Op != View && q.Op != Erase:
		return fmt.Errorf("%w: operation %d", ErrMalformed, uint8(q.Op))
	case q.Federation == "" || len(q.Federation) > 64:
		return fmt.Errorf("%w: federation", ErrMalformed)
	case q.Relay == "" || len(q.Relay) > 64:
		return fmt.Errorf("%w: relay", ErrMalformed)
	case q.Subject.IsZero():
		return fmt.Errorf("%w: no patient", ErrMalformed)
	case len(q.Key) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: a key of %d bytes", ErrMalformed, len(q.Key))
	case q.Nonce == [16]byte{}:
		return fmt.Errorf("%w: no nonce", ErrMalformed)
	case q.Time.UnixMilli() <= 0 || q.Time.Unix() >= wire.MaxUnix:
		return fmt.Errorf("%w: time", ErrMalformed)
	}
	return nil
}

// Sign returns the request signed with the patient's key; Key is set
// from it.
func (q Request) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 private key", ErrMalformed)
	}
	q.Key = key.Public().(ed25519.PublicKey)
	if err := q.check(); err != nil {
		return nil, err
	}
	b := q.body()
	return append(b, ed25519.Sign(key, wire.Signed(requestSignature, b))...), nil
}

// ParseRequest decodes a signed request; it accepts only what Sign
// writes, and checks the signature against the key it carries. Whether
// that key speaks for the patient is for the holder to check
// (Request.Authenticate).
func ParseRequest(b []byte) (Request, error) {
	var q Request
	r, body, sig, err := wire.OpenSigned(b, maxRequest, requestV1, "request", ErrMalformed)
	if err != nil {
		return q, err
	}
	q.Op = Op(r.U8("op"))
	q.Federation = r.Str("federation")
	q.Relay = peer.ID(r.Str("relay"))
	r.Fixed(q.Subject[:], "subject")
	q.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	r.Fixed(q.Nonce[:], "nonce")
	q.Time = r.Millis("time")
	r.End("request")
	if r.Err() != nil {
		return Request{}, r.Err()
	}
	if err := q.check(); err != nil {
		return Request{}, err
	}
	q.msg, q.sig = wire.Signed(requestSignature, body), bytes.Clone(sig)
	if !ed25519.Verify(q.Key, q.msg, q.sig) {
		return Request{}, fmt.Errorf("%w: the patient's signature does not verify", ErrSignature)
	}
	return q, nil
}
