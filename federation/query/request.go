package query

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Errors of the query protocol, besides bytes or fields that are not a
// valid request or response (node.Invalid, "malformed query message").
var (
	// ErrSignature: a signature that does not verify, or a signer who is
	// not the member it claims to be.
	ErrSignature = node.E(node.Forbidden, "query signature")
	// ErrStale: a request outside the clock skew the holder allows.
	ErrStale = node.E(node.Invalid, "query request out of time")
	// ErrReplay: a request whose nonce was seen before.
	ErrReplay = node.E(node.Conflict, "query request replayed")
)

// malformed returns an error of kind node.Invalid for a query message
// that is not valid.
func malformed(format string, args ...any) error {
	return wire.Malformed("query message", format, args...)
}

// Limits of a request.
const (
	maxClasses = 16
	keyLen     = 32 // an X25519 public key
)

var requestMessage = wire.Message{What: "query request", Context: "medfed/query/v1 request", Version: 1, Max: 64 << 10}

// Request is a centre's signed query about one patient, on behalf of one
// of its staff.
type Request struct {
	Federation string
	Requester  peer.ID
	Staff      ledger.StaffID
	Role       consent.Role
	Action     consent.Action  // Access for a query, Copy for a transfer
	Purpose    consent.Purpose // exactly one
	Reason     consent.Reason  // for the emergency purpose
	Classes    []string        // the data classes asked for; empty: all
	Subject    ledger.Pseudonym
	Nonce      [16]byte
	Time       time.Time // to the millisecond
	// Key is the requester's X25519 public key for this query alone: the
	// holder seals the payloads to it (see Seal).
	Key []byte
	// Token is a patient-signed consent token, when the request rests on
	// one.
	Token []byte
}

// Encoding, version 1: u8 version, str federation, str requester, [16]
// staff, u8 role, u8 action, u8 purpose, u8 reason, u8 count and str
// classes, [32] subject, [16] nonce, u64 Unix milliseconds, [32] key,
// blob token; then [64] the requester's Ed25519 signature over
// "medfed/query/v1 request" || 0x00 || the bytes before it.
func (q *Request) write(w *wire.Writer) {
	w.Str(q.Federation)
	w.Str(string(q.Requester))
	w.Bytes(q.Staff[:])
	w.U8(uint8(q.Role))
	w.U8(uint8(q.Action))
	w.U8(uint8(q.Purpose))
	w.U8(uint8(q.Reason))
	w.U8(uint8(len(q.Classes)))
	for _, c := range q.Classes {
		w.Str(c)
	}
	w.Bytes(q.Subject[:])
	w.Bytes(q.Nonce[:])
	w.Millis(q.Time)
	w.Bytes(q.Key)
	w.Blob(q.Token)
}

func (q *Request) check() error {
	switch {
	case q.Federation == "" || len(q.Federation) > 64:
		return malformed("federation")
	case q.Requester == "" || len(q.Requester) > 64:
		return malformed("requester")
	case q.Subject.IsZero():
		return malformed("no patient")
	case len(q.Classes) > maxClasses:
		return malformed("%d classes, at most %d", len(q.Classes), maxClasses)
	case len(q.Key) != keyLen:
		return malformed("a sealing key of %d bytes", len(q.Key))
	case len(q.Token) > consent.MaxDocument:
		return malformed("token of %d bytes", len(q.Token))
	case q.Time.UnixMilli() <= 0 || q.Time.Unix() >= wire.MaxUnix:
		return malformed("time")
	case q.Nonce == [16]byte{}:
		return malformed("no nonce")
	}
	for _, c := range q.Classes {
		if !ledger.ValidDataClass(c) {
			return malformed("data class %q", c)
		}
	}
	// Role, action, purpose and reason are the consent evaluator's to
	// check, with the rest of the decision.
	return nil
}

// Sign returns the request signed with the requesting centre's key.
func (q Request) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	return requestMessage.Sign(key, q.write)
}

// ParseRequest decodes a signed request; it accepts only what Sign
// writes. The signature is checked against the key in the requester's
// peer ID: whether the requester is a member is the holder's to check.
func ParseRequest(b []byte) (Request, error) {
	var q Request
	o, err := requestMessage.Open(b, q.read)
	if err != nil {
		return Request{}, err
	}
	if err := q.check(); err != nil {
		return Request{}, err
	}
	if err := verifyPeer(q.Requester, o); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	return q, nil
}

func (q *Request) read(r *wire.Reader) {
	q.Federation = r.Str("federation")
	q.Requester = peer.ID(r.Str("requester"))
	r.Fixed(q.Staff[:], "staff")
	q.Role = consent.Role(r.U8("role"))
	q.Action = consent.Action(r.U8("action"))
	q.Purpose = consent.Purpose(r.U8("purpose"))
	q.Reason = consent.Reason(r.U8("reason"))
	n := int(r.U8("classes"))
	if n > maxClasses {
		r.Fail("%d classes", n)
		return
	}
	for range n {
		q.Classes = append(q.Classes, r.Str("class"))
	}
	r.Fixed(q.Subject[:], "subject")
	r.Fixed(q.Nonce[:], "nonce")
	q.Time = r.Millis("time")
	q.Key = bytes.Clone(r.Take(keyLen, "key"))
	q.Token = r.Blob("token", consent.MaxDocument)
}

// consent returns the consent request this query makes about records.
func (q Request) consent() consent.Request {
	return consent.Request{Centre: q.Requester, Role: q.Role, Staff: q.Staff, Action: q.Action, Purpose: q.Purpose, Reason: q.Reason}
}
