package records

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
)

// commitmentDomain separates these HMACs from any other use of the same
// bytes as a key; the trailing NUL ends the label unambiguously.
const commitmentDomain = "medfed/records/commitment/v1\x00"

// Opening is the per-payload secret that opens a [Commitment]. It is stored
// encrypted with the payload and destroyed with it on erasure. It is handed
// to a recipient together with the payload, so the recipient can check the
// payload against the commitment on the ledger.
//
// An Opening is a secret: it logs as REDACTED. Send o[:] where the bytes are
// needed.
type Opening [32]byte

// LogValue keeps an Opening out of logs.
func (Opening) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String keeps an Opening out of fmt output (%v, %s).
func (Opening) String() string { return "records.Opening(REDACTED)" }

// Commitment is a keyed commitment to a payload: HMAC-SHA256 keyed by the
// [Opening] over "medfed/records/commitment/v1\x00" followed by the payload.
// Unlike a plain hash, it does not let a reader of the ledger confirm a
// guessed payload.
type Commitment [32]byte

// Commit returns the commitment to payload under the opening o.
func Commit(o Opening, payload []byte) Commitment {
	m := hmac.New(sha256.New, o[:])
	m.Write([]byte(commitmentDomain))
	m.Write(payload)
	var c Commitment
	m.Sum(c[:0])
	return c
}

// Verify reports whether c is the commitment to payload under o. The
// comparison takes constant time.
func (c Commitment) Verify(o Opening, payload []byte) bool {
	want := Commit(o, payload)
	return hmac.Equal(c[:], want[:])
}
