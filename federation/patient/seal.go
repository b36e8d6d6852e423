package patient

import (
	"crypto/ecdh"
	"crypto/hpke"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/wire"
)

// The records a holder sends the patient (Op Records) travel sealed with
// HPKE (RFC 9180, base mode): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
// AES-256-GCM, to the X25519 key the patient's request names
// (Request.Seal), which their device made and keeps. The info binds the
// sealed bytes to the holder and the request: "medfed/patient/v1
// records", 0, the holder's peer ID as text (base58), 0, the request's
// nonce. Neither the
// relay nor anyone else on the way can read them; a browser opens them
// with WebCrypto (X25519, HMAC, AES-GCM).
//
// The plaintext: u32 count, then for each record u64 its index, u8 1 and
// blob its payload; or u8 0 when its payload is erased (or lost), u8 2
// when it is too large for an answer.

// SealedRecord is one of the patient's records as its holder sends it.
type SealedRecord struct {
	Index    int64
	Payload  []byte // nil: erased, or TooLarge
	TooLarge bool   // larger than one answer carries: the patient asks the holder for it
}

// The states of a sealed record.
const (
	sealedErased   = 0
	sealedPresent  = 1
	sealedTooLarge = 2
)

var (
	sealKEM  = hpke.DHKEM(ecdh.X25519())
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.AES256GCM()
)

func sealInfo(holder peer.ID, nonce [16]byte) []byte {
	return wire.Signed("medfed/patient/v1 records", append([]byte(holder.String()+"\x00"), nonce[:]...))
}

// SealRecords seals rs to the patient's key to, for the answer of holder
// to the request with nonce.
func SealRecords(to [32]byte, holder peer.ID, nonce [16]byte, rs []SealedRecord) ([]byte, error) {
	pk, err := sealKEM.NewPublicKey(to[:])
	if err != nil {
		return nil, malformed("the sealing key: %v", err)
	}
	w := wire.Writer{}
	w.U32(uint32(len(rs)))
	for _, r := range rs {
		w.U64(uint64(r.Index))
		switch {
		case r.TooLarge:
			w.U8(sealedTooLarge)
		case r.Payload == nil:
			w.U8(sealedErased)
		default:
			w.U8(sealedPresent)
			w.Blob(r.Payload)
		}
	}
	return hpke.Seal(pk, sealKDF, sealAEAD, sealInfo(holder, nonce), w.B)
}

// OpenRecords opens what SealRecords sealed, with the patient's private
// key (32 bytes): for tests and tools; the portal opens them in the
// browser.
func OpenRecords(key []byte, holder peer.ID, nonce [16]byte, sealed []byte) ([]SealedRecord, error) {
	k, err := sealKEM.NewPrivateKey(key)
	if err != nil {
		return nil, malformed("the opening key: %v", err)
	}
	b, err := hpke.Open(k, sealKDF, sealAEAD, sealInfo(holder, nonce), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed records do not open: %v", ErrSignature, err)
	}
	r := wire.NewReader(b, "sealed records")
	n := r.U32("count")
	if n > maxEntries {
		return nil, malformed("%d sealed records", n)
	}
	var out []SealedRecord
	for range n {
		if r.Err() != nil {
			break
		}
		s := SealedRecord{Index: int64(r.U64("index"))}
		switch st := r.U8("state"); st {
		case sealedErased:
		case sealedTooLarge:
			s.TooLarge = true
		case sealedPresent:
			s.Payload = r.Blob("payload", wire.MaxFrame)
			if s.Payload == nil {
				s.Payload = []byte{}
			}
		default:
			r.Fail("record state %d", st)
		}
		out = append(out, s)
	}
	r.End("sealed records")
	if r.Err() != nil {
		return nil, r.Err()
	}
	return out, nil
}
