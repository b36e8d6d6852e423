package query

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

var responseMessage = wire.Message{What: "query response", Context: "medfed/query/v1 response", Version: 1, Max: maxResponse}

const (
	maxItems           = 4096
	maxProof           = 64 // hashes in an inclusion proof: one per tree level
	maxResponse        = wire.MaxFrame
	maxReason          = 255 // a short string on the wire
	maxCheckpointBytes = 64 << 10
)

// Response is a holder's signed answer to a request: the decision, the
// access entry it recorded first, and the records released, each with its
// ledger entry, an inclusion proof against the holder's latest final
// checkpoint and the payload sealed to the requester's key.
type Response struct {
	Holder     peer.ID
	Subject    ledger.Pseudonym
	Nonce      [16]byte // the request's
	Permit     bool     // something was released
	Basis      consent.Basis
	Reason     string // the decision in words (of the first record, or of the query)
	Access     int64  // the access entry's index on the holder's ledger
	Session    consent.ID
	Denied     uint32 // records withheld by consent
	Pending    uint32 // records newer than the final checkpoint: ask again shortly
	Checkpoint []byte // the final checkpoint note the proofs are against
	Enc        []byte // the HPKE encapsulated key the payloads are sealed with
	Items      []Item
}

// Item is one released record.
type Item struct {
	Index  int64
	Entry  []byte // the ledger entry's encoding
	Proof  tlog.RecordProof
	Sealed []byte // payload and commitment opening, sealed; empty when erased
}

// Encoding, version 1: u8 version, str holder, [32] subject, [16] nonce,
// u8 permit, u8 basis, str reason, u64 access, [16] session, u32 denied,
// u32 pending, blob checkpoint, blob enc, u32 count, items (u64 index,
// blob entry, u8 count and [32] proof hashes, blob sealed); then [64] the
// holder's Ed25519 signature over "medfed/query/v1 response" || 0x00 ||
// the bytes before it.
func (a *Response) write(w *wire.Writer) {
	w.Str(string(a.Holder))
	w.Bytes(a.Subject[:])
	w.Bytes(a.Nonce[:])
	w.Bool(a.Permit)
	w.U8(uint8(a.Basis))
	w.Str(a.Reason)
	w.U64(uint64(a.Access))
	w.Bytes(a.Session[:])
	w.U32(a.Denied)
	w.U32(a.Pending)
	w.Blob(a.Checkpoint)
	w.Blob(a.Enc)
	w.U32(uint32(len(a.Items)))
	for _, it := range a.Items {
		w.U64(uint64(it.Index))
		w.Blob(it.Entry)
		w.U8(uint8(len(it.Proof)))
		for _, h := range it.Proof {
			w.Bytes(h[:])
		}
		w.Blob(it.Sealed)
	}
}

func (a *Response) check() error {
	switch {
	case a.Holder == "" || len(a.Holder) > 64:
		return malformed("holder")
	case len(a.Reason) > maxReason:
		return malformed("reason of %d bytes", len(a.Reason))
	case a.Access < 0:
		return malformed("access index")
	case len(a.Items) > maxItems:
		return malformed("%d items", len(a.Items))
	case len(a.Checkpoint) > maxCheckpointBytes:
		return malformed("checkpoint of %d bytes", len(a.Checkpoint))
	}
	for _, it := range a.Items {
		if it.Index < 0 || len(it.Proof) > maxProof || len(it.Entry) > ledger.MaxEntrySize {
			return malformed("item")
		}
	}
	return nil
}

// Sign returns the response signed with the holder's key.
func (a Response) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return responseMessage.Sign(key, a.write)
}

// ParseResponse decodes a signed response and checks its signature
// against the key in the holder's peer ID. It accepts only what Sign
// writes.
func ParseResponse(b []byte) (Response, error) {
	var a Response
	o, err := responseMessage.Open(b, a.read)
	if err != nil {
		return Response{}, err
	}
	if err := a.check(); err != nil {
		return Response{}, err
	}
	if err := verifyPeer(a.Holder, o); err != nil {
		return Response{}, fmt.Errorf("response: %w", err)
	}
	return a, nil
}

func (a *Response) read(r *wire.Reader) {
	a.Holder = peer.ID(r.Str("holder"))
	r.Fixed(a.Subject[:], "subject")
	r.Fixed(a.Nonce[:], "nonce")
	a.Permit = r.Bool("permit")
	a.Basis = consent.Basis(r.U8("basis"))
	a.Reason = r.Str("reason")
	a.Access = int64(r.U64("access"))
	r.Fixed(a.Session[:], "session")
	a.Denied = r.U32("denied")
	a.Pending = r.U32("pending")
	a.Checkpoint = r.Blob("checkpoint", maxCheckpointBytes)
	a.Enc = r.Blob("enc", 1<<10)
	n := r.U32("items")
	if r.Err() == nil && n > maxItems {
		r.Fail("%d items", n)
		return
	}
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		var it Item
		it.Index = int64(r.U64("index"))
		it.Entry = r.Blob("entry", ledger.MaxEntrySize)
		hashes := int(r.U8("proof"))
		if hashes > maxProof {
			r.Fail("proof of %d hashes", hashes)
			return
		}
		for range hashes {
			var h tlog.Hash
			r.Fixed(h[:], "proof hash")
			it.Proof = append(it.Proof, h)
		}
		it.Sealed = r.Blob("sealed", maxResponse)
		a.Items = append(a.Items, it)
	}
}
