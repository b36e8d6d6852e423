package patient

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

var answerMessage = wire.Message{What: "patient answer", Context: "medfed/patient/v1 answer", Version: 2, Max: wire.MaxFrame}

const (
	maxEntries = 1 << 16
	maxProblem = 255 // a short string on the wire
)

// Answer is a holder's signed answer to a patient's request.
type Answer struct {
	Op      Op
	Holder  peer.ID
	Subject ledger.Pseudonym
	Nonce   [16]byte // the request's
	Size    int64    // the holder's ledger size when it answered
	// Entries: for View, the holder's ledger entries about the patient;
	// for Erase, its erasure entries for them.
	Entries [][]byte
	// Next (View): there are more entries, from this index on: ask again
	// with a cursor for this holder. Zero: the view is complete.
	Next int64
	// Withdrawn (Erase): the holder's directory announcement is
	// withdrawn; Problem says why not, when not.
	Withdrawn bool
	Problem   string
}

// Encoding, version 2: u8 version, u8 op, str holder, [32] subject, [16]
// nonce, u64 size, u32 count and blob entries, u64 next, u8 withdrawn,
// str problem;
// then [64] the holder's Ed25519 signature over "medfed/patient/v1
// answer" || 0x00 || the bytes before it.
func (a *Answer) write(w *wire.Writer) {
	w.U8(uint8(a.Op))
	w.Str(string(a.Holder))
	w.Bytes(a.Subject[:])
	w.Bytes(a.Nonce[:])
	w.U64(uint64(a.Size))
	w.U32(uint32(len(a.Entries)))
	for _, e := range a.Entries {
		w.Blob(e)
	}
	w.U64(uint64(a.Next))
	w.Bool(a.Withdrawn)
	w.Str(a.Problem)
}

func (a *Answer) check() error {
	switch {
	case !ops.Valid(a.Op):
		return malformed("operation %d", uint8(a.Op))
	case a.Holder == "" || len(a.Holder) > 64:
		return malformed("holder")
	case a.Size < 0:
		return malformed("size")
	case a.Next < 0 || a.Next > a.Size:
		return malformed("next")
	case len(a.Entries) > maxEntries:
		return malformed("%d entries", len(a.Entries))
	case len(a.Problem) > maxProblem:
		return malformed("problem of %d bytes", len(a.Problem))
	}
	for _, e := range a.Entries {
		if len(e) > ledger.MaxEntrySize {
			return malformed("entry of %d bytes", len(e))
		}
	}
	return nil
}

// Sign returns the answer signed with the holder's key.
func (a Answer) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return answerMessage.Sign(key, a.write)
}

// ParseAnswer decodes a signed answer; it accepts only what Sign writes,
// and checks the signature against the key in the holder's peer ID.
func ParseAnswer(b []byte) (Answer, error) {
	var a Answer
	o, err := answerMessage.Open(b, a.read)
	if err != nil {
		return Answer{}, err
	}
	if err := a.check(); err != nil {
		return Answer{}, err
	}
	if err := federation.VerifyPeer(a.Holder, o.Signed, o.Sig); err != nil {
		return Answer{}, fmt.Errorf("%w: answer: %v", ErrSignature, err)
	}
	return a, nil
}

func (a *Answer) read(r *wire.Reader) {
	a.Op = Op(r.U8("op"))
	a.Holder = peer.ID(r.Str("holder"))
	r.Fixed(a.Subject[:], "subject")
	r.Fixed(a.Nonce[:], "nonce")
	a.Size = int64(r.U64("size"))
	n := r.U32("entries")
	if n > maxEntries {
		r.Fail("%d entries", n)
		return
	}
	for range n {
		if r.Err() != nil {
			break
		}
		a.Entries = append(a.Entries, r.Blob("entry", ledger.MaxEntrySize))
	}
	a.Next = int64(r.U64("next"))
	a.Withdrawn = r.Bool("withdrawn")
	a.Problem = r.Str("problem")
}
