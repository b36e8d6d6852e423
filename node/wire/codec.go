package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/medfed/medfed/node"
)

// Messages and documents are built from a few fields, all big-endian:
// fixed-size byte strings, u8/u16/u32/u64 integers, times as i64 Unix
// seconds or milliseconds (zero: unset), short strings as u8 length and
// bytes, and blobs as u32 length and bytes. A Reader accepts only what a
// Writer produces, so a signature over the bytes covers their meaning and
// nothing else.

// Writer appends fields to B.
type Writer struct{ B []byte }

func (w *Writer) U8(v uint8)     { w.B = append(w.B, v) }
func (w *Writer) U16(v uint16)   { w.B = binary.BigEndian.AppendUint16(w.B, v) }
func (w *Writer) U32(v uint32)   { w.B = binary.BigEndian.AppendUint32(w.B, v) }
func (w *Writer) U64(v uint64)   { w.B = binary.BigEndian.AppendUint64(w.B, v) }
func (w *Writer) Bytes(v []byte) { w.B = append(w.B, v...) }

// Millis writes t in Unix milliseconds (Reader.Millis reads it).
func (w *Writer) Millis(t time.Time) { w.U64(uint64(t.UnixMilli())) }

// Bool writes 1 or 0.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Str writes a string with a u8 length: callers check that it is at most
// 255 bytes (the decoders' limits are all below).
func (w *Writer) Str(v string) { w.U8(uint8(len(v))); w.B = append(w.B, v...) }

// Blob writes bytes with a u32 length.
func (w *Writer) Blob(v []byte) { w.U32(uint32(len(v))); w.B = append(w.B, v...) }

// Time writes t as Unix seconds; the zero time as 0.
func (w *Writer) Time(t time.Time) {
	var s int64
	if !t.IsZero() {
		s = t.Unix()
	}
	w.U64(uint64(s))
}

// Reader consumes fields; the first failure sticks, so a decoder checks
// Err once at the end, and before using a count. Its failures are of kind
// node.Invalid and say what was being read: "malformed query request:
// truncated nonce".
type Reader struct {
	b    []byte
	err  error
	what string
}

// NewReader reads b, the encoding of what.
func NewReader(b []byte, what string) *Reader { return &Reader{b: b, what: what} }

// Err returns the first failure.
func (r *Reader) Err() error { return r.err }

// Len returns how many bytes are left.
func (r *Reader) Len() int { return len(r.b) }

// Fail records a failure unless one is recorded already.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = Malformed(r.what, format, args...)
	}
}

// Malformed returns an error of kind node.Invalid for an encoding of what
// that cannot be read or holds what it may not.
func Malformed(what, format string, args ...any) error {
	return fmt.Errorf("%w: malformed %s: %s", node.ErrInvalid, what, fmt.Sprintf(format, args...))
}

// Take returns the next n bytes (sharing the buffer), or nil on failure.
func (r *Reader) Take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.Fail("truncated %s", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *Reader) U8(what string) uint8 {
	if b := r.Take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *Reader) U16(what string) uint16 {
	if b := r.Take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *Reader) U32(what string) uint32 {
	if b := r.Take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *Reader) U64(what string) uint64 {
	if b := r.Take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Bool reads 0 or 1; anything else fails.
func (r *Reader) Bool(what string) bool {
	switch r.U8(what) {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail("%s is not 0 or 1", what)
	return false
}

// Fixed fills dst.
func (r *Reader) Fixed(dst []byte, what string) {
	if b := r.Take(len(dst), what); b != nil {
		copy(dst, b)
	}
}

// Str reads what Writer.Str wrote.
func (r *Reader) Str(what string) string {
	n := int(r.U8(what))
	return string(r.Take(n, what))
}

// Blob reads what Writer.Blob wrote, of at most limit bytes, as a copy;
// nil when it is empty, as a decoded message's unset field is.
func (r *Reader) Blob(what string, limit int) []byte {
	n := r.U32(what)
	if r.err == nil && uint64(n) > uint64(limit) {
		r.Fail("%s of %d bytes, at most %d", what, n, limit)
		return nil
	}
	if b := r.Take(int(n), what); len(b) > 0 {
		return bytes.Clone(b)
	}
	return nil
}

// MaxUnix is 2262-01-01 in Unix seconds: times beyond do not fit a
// nanosecond clock, and are refused.
var MaxUnix = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// Time reads a time written by Writer.Time: zero stays the zero time, and
// anything outside 1970 to 2261 fails.
func (r *Reader) Time(what string) time.Time {
	s := int64(r.U64(what))
	if r.err != nil || s == 0 {
		return time.Time{}
	}
	if s < 0 || s >= MaxUnix {
		r.Fail("%s out of range", what)
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Millis reads a time written by Writer.Millis: anything not after 1970
// or from 2262 on fails.
func (r *Reader) Millis(what string) time.Time {
	ms := int64(r.U64(what))
	if r.err != nil {
		return time.Time{}
	}
	if ms <= 0 || ms/1000 >= MaxUnix {
		r.Fail("%s out of range", what)
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// End fails unless every byte was read.
func (r *Reader) End(what string) {
	if r.err == nil && len(r.b) != 0 {
		r.Fail("%d trailing bytes after %s", len(r.b), what)
	}
}

// Signed is what a medfed signature covers: a context naming the message
// type and version, a zero byte, then the encoded message, so that a
// signature over one kind of message never verifies as another.
func Signed(context string, body []byte) []byte {
	m := make([]byte, 0, len(context)+1+len(body))
	m = append(m, context...)
	m = append(m, 0)
	return append(m, body...)
}

// Message is a type of signed message, the one shape every medfed
// protocol signs: a version byte and the message's fields, then an
// Ed25519 signature over Signed(Context, those bytes). A consent document
// carries its signer's public key between the two (Signer); every other
// message names its signer in its fields. A message a patient signs may
// be signed by a passkey instead (Passkeys): its version byte carries
// PasskeyVersion, and a Passkey assertion over the same bytes, then its
// length (u16), takes the signature's place.
type Message struct {
	What     string // the message, in errors: "query request"
	Context  string // names the type and version in what is signed
	Version  uint8
	Max      int  // the largest signed message, in bytes
	Signer   bool // the signer's public key follows the fields, unsigned
	Passkeys bool // a passkey may sign it
}

// Encode returns the version and the fields write writes: the message
// as it is before its signature (and signer).
func (m Message) Encode(write func(*Writer)) []byte {
	w := Writer{B: []byte{m.Version}}
	write(&w)
	return w.B
}

// signCap is the room Sign's buffer starts with, beside the context: most
// messages fit, and the rest grow from it in a few steps, not a dozen.
const signCap = 512

// Draft returns the message before its signature, for a signer that
// holds its key elsewhere (a patient's browser): Encode's bytes, with the
// passkey flag on the version when a passkey is to sign. The signer signs
// Signed(Context, draft), a passkey its Challenge; Seal or SealPasskey
// then makes the message.
func (m Message) Draft(passkey bool, write func(*Writer)) []byte {
	b := m.Encode(write)
	if passkey {
		b[0] |= PasskeyVersion
	}
	return b
}

// Sign returns the message whose fields write writes, signed with key.
func (m Message) Sign(key ed25519.PrivateKey, write func(*Writer)) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, Malformed(m.What, "not an Ed25519 private key")
	}
	// One buffer, Signed(m.Context, draft): signed whole, and past the
	// context, the draft, to which the signature is appended in place.
	w := Writer{B: make([]byte, 0, len(m.Context)+1+signCap)}
	w.B = append(append(w.B, m.Context...), 0, m.Version)
	write(&w)
	sig := ed25519.Sign(key, w.B)
	return m.seal(w.B[len(m.Context)+1:], key.Public().(ed25519.PublicKey), sig)
}

// Seal returns the message draft (Draft, Ed25519's) with its signer's key
// (when the message carries it) and signature. It checks the message's
// size, not the signature: Open's caller does.
func (m Message) Seal(draft []byte, signer ed25519.PublicKey, sig []byte) ([]byte, error) {
	if len(draft) == 0 || draft[0] != m.Version || len(sig) != ed25519.SignatureSize {
		return nil, Malformed(m.What, "not an Ed25519-signed draft and signature")
	}
	b := make([]byte, len(draft), len(draft)+ed25519.PublicKeySize+len(sig))
	copy(b, draft)
	return m.seal(b, signer, sig)
}

// seal appends the signer's key (when the message carries it) and the
// signature to b, the draft, which it may write past.
func (m Message) seal(b []byte, signer ed25519.PublicKey, sig []byte) ([]byte, error) {
	if m.Signer {
		if len(signer) != ed25519.PublicKeySize {
			return nil, Malformed(m.What, "a signer's key of %d bytes", len(signer))
		}
		b = append(b, signer...)
	}
	if n := len(b) + len(sig); n > m.Max {
		return nil, Malformed(m.What, "%d bytes, at most %d", n, m.Max)
	}
	return append(b, sig...), nil
}

// SealPasskey returns the message draft (Draft, a passkey's) with the
// passkey's ID (when the message carries its signer) and its assertion.
func (m Message) SealPasskey(draft []byte, signer []byte, p Passkey) ([]byte, error) {
	if !m.Passkeys || len(draft) == 0 || draft[0] != m.Version|PasskeyVersion {
		return nil, Malformed(m.What, "not a passkey's draft")
	}
	p.Sig = LowS(p.Sig) // an authenticator may write either s; one form is accepted
	if err := p.check(); err != nil {
		return nil, err
	}
	b := bytes.Clone(draft)
	if m.Signer {
		if len(signer) != 32 {
			return nil, Malformed(m.What, "a signer's key of %d bytes", len(signer))
		}
		b = append(b, signer...)
	}
	w := Writer{B: b}
	start := len(w.B)
	p.write(&w)
	w.U16(uint16(len(w.B) - start))
	if len(w.B) > m.Max {
		return nil, Malformed(m.What, "%d bytes, at most %d", len(w.B), m.Max)
	}
	return w.B, nil
}

// Open reads a signed message: its version, then the fields read reads,
// which must be all the message holds before its signature. It checks no
// signature (the key that must have signed depends on the fields): the
// caller verifies what it returns.
func (m Message) Open(b []byte, read func(*Reader)) (Opened, error) {
	if len(b) > m.Max || len(b) < 1 {
		return Opened{}, Malformed(m.What, "%d bytes, at most %d", len(b), m.Max)
	}
	var o Opened
	var body []byte
	if m.Passkeys && b[0] == m.Version|PasskeyVersion {
		head, proof, ok := passkeyTail(b)
		if ok && m.Signer {
			ok = len(head) >= 1+32
		}
		if !ok {
			return Opened{}, Malformed(m.What, "a passkey's assertion cut short")
		}
		p, err := readPasskey(proof, m.What)
		if err != nil {
			return Opened{}, err
		}
		body, o.Passkey = head, p
		if m.Signer {
			body = head[:len(head)-32]
			o.Signer = ed25519.PublicKey(bytes.Clone(head[len(body):]))
		}
	} else {
		tail := ed25519.SignatureSize
		if m.Signer {
			tail += ed25519.PublicKeySize
		}
		if len(b) < 1+tail {
			return Opened{}, Malformed(m.What, "%d bytes, want %d to %d", len(b), 1+tail, m.Max)
		}
		body = b[:len(b)-tail]
		o.Sig = bytes.Clone(b[len(b)-ed25519.SignatureSize:])
		if m.Signer {
			o.Signer = ed25519.PublicKey(bytes.Clone(b[len(body) : len(body)+ed25519.PublicKeySize]))
		}
	}
	r := NewReader(body, m.What)
	if v := r.U8("version"); r.Err() == nil && v != m.Version && (o.Passkey == nil || v != m.Version|PasskeyVersion) {
		r.Fail("version %d", v)
	}
	if r.Err() == nil {
		read(r)
	}
	r.End(m.What)
	if r.Err() != nil {
		return Opened{}, r.Err()
	}
	o.Signed = Signed(m.Context, body)
	return o, nil
}

// Opened is a signed message that Open read: what its signature covers,
// the signature (Ed25519's, or a passkey's assertion), and the signer's
// key when the message carries it (a passkey's ID).
type Opened struct {
	Signed  []byte
	Sig     []byte
	Passkey *Passkey
	Signer  ed25519.PublicKey
}

// Verify reports whether key made the signature: an Ed25519 public key,
// or a passkey's ID.
func (o Opened) Verify(key ed25519.PublicKey) bool {
	if o.Passkey != nil {
		return o.Passkey.Verify(key, o.Signed)
	}
	return len(key) == ed25519.PublicKeySize && ed25519.Verify(key, o.Signed, o.Sig)
}
