package patient

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// An answer is written in the oldest version that can carry it: version
// 2 unless the holder holds nothing, so that a relay not yet upgraded
// still reads every answer of a centre holding the patient's records, and
// one upgraded reads what holders not yet upgraded send.
var (
	answerMessage = wire.Message{What: "patient answer", Context: "medfed/patient/v1 answer", Version: 3, Max: wire.MaxFrame}
	answerV2      = wire.Message{What: answerMessage.What, Context: answerMessage.Context, Version: 2, Max: answerMessage.Max}
	answerV4      = wire.Message{What: answerMessage.What, Context: answerMessage.Context, Version: 4, Max: answerMessage.Max}
)

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
	// Nothing: the holder holds nothing about the patient (see
	// Service.Answer), so it has no entries to send and erased nothing;
	// it recorded nothing of the request either.
	Nothing bool
	// Sealed (Records): the payloads of the records in Entries, sealed to
	// the request's key (SealRecords).
	Sealed []byte
}

// Encoding, version 2: u8 version, u8 op, str holder, [32] subject, [16]
// nonce, u64 size, u32 count and blob entries, u64 next, u8 withdrawn,
// str problem; version 3, an answer that holds nothing (and only that):
// the same, then u8 nothing (1); version 4, the records of a Records
// request: version 2's fields, then blob sealed;
// then [64] the holder's Ed25519 signature over "medfed/patient/v1
// answer" || 0x00 || the bytes before it.
func (a *Answer) write(w *wire.Writer) {
	a.writeV2(w)
	switch {
	case a.Nothing:
		w.Bool(true)
	case a.Op == Records:
		w.Blob(a.Sealed)
	}
}

// message is the version a is written in.
func (a *Answer) message() wire.Message {
	switch {
	case a.Nothing:
		return answerMessage
	case a.Op == Records:
		return answerV4
	}
	return answerV2
}

func (a *Answer) writeV2(w *wire.Writer) {
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
	case a.Nothing && (len(a.Entries) > 0 || a.Next != 0 || a.Withdrawn || a.Problem != "" || len(a.Sealed) > 0):
		return malformed("entries, a next page, a withdrawal, a problem or records from a holder that holds nothing")
	case len(a.Sealed) > 0 && a.Op != Records, a.Op == Records && !a.Nothing && len(a.Sealed) == 0:
		return malformed("sealed records come with an answer to a request for them, and only then")
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
	return a.message().Sign(key, a.write)
}

// ParseAnswer decodes a signed answer, of version 2, 3 or 4; it accepts only
// what Sign writes, and checks the signature against the key in the
// holder's peer ID.
func ParseAnswer(b []byte) (Answer, error) {
	var a Answer
	m, read := answerMessage, a.read
	if len(b) > 0 && b[0] == answerV2.Version {
		m, read = answerV2, a.readV2
	}
	if len(b) > 0 && b[0] == answerV4.Version {
		m, read = answerV4, a.readV4
	}
	o, err := m.Open(b, read)
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
	a.readV2(r)
	// Version 2 carries every answer that holds something.
	if a.Nothing = r.Bool("nothing"); r.Err() == nil && !a.Nothing {
		r.Fail("a version 3 answer from a holder that holds something")
	}
}

func (a *Answer) readV4(r *wire.Reader) {
	a.readV2(r)
	if a.Sealed = r.Blob("sealed records", wire.MaxFrame); r.Err() == nil && a.Op != Records {
		r.Fail("sealed records in an answer to a %s request", a.Op)
	}
}

func (a *Answer) readV2(r *wire.Reader) {
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
