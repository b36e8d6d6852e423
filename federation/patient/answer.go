package patient

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

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
	answerV5      = wire.Message{What: answerMessage.What, Context: answerMessage.Context, Version: 5, Max: answerMessage.Max}
)

const (
	maxEntries = 1 << 16
	maxProblem = 255 // a short string on the wire
	maxProof   = 64  // hashes in an inclusion proof: one per tree level
	maxNote    = 16 << 10
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
	// Checkpoint is the holder's latest final checkpoint (its note, with
	// its own signature and its witnesses' cosignatures), and Proofs the
	// inclusion proof in it of each entry it covers, in the order of
	// Entries: the patient sees which entries are proven, and the relay
	// refuses an answer whose proofs do not check. Empty when the holder
	// has no final checkpoint yet.
	Checkpoint []byte
	Proofs     []tlog.RecordProof
}

// Encoding, version 2: u8 version, u8 op, str holder, [32] subject, [16]
// nonce, u64 size, u32 count and blob entries, u64 next, u8 withdrawn,
// str problem; version 3, an answer that holds nothing (and only that):
// the same, then u8 nothing (1); version 4, the records of a Records
// request: version 2's fields, then blob sealed;
// version 5, an answer with inclusion proofs: version 2's fields, blob
// sealed (Records) or nothing, then blob checkpoint, u32 count and, for
// each proof, u8 count and [32] hashes;
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
	if len(a.Checkpoint) > 0 {
		w.Blob(a.Checkpoint)
		w.U32(uint32(len(a.Proofs)))
		for _, p := range a.Proofs {
			w.U8(uint8(len(p)))
			for _, h := range p {
				w.Bytes(h[:])
			}
		}
	}
}

// message is the version a is written in.
func (a *Answer) message() wire.Message {
	switch {
	case a.Nothing:
		return answerMessage
	case len(a.Checkpoint) > 0:
		return answerV5
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
	case a.Nothing && (len(a.Entries) > 0 || a.Next != 0 || a.Withdrawn || a.Problem != "" || len(a.Sealed) > 0 || len(a.Checkpoint) > 0):
		return malformed("entries, a next page, a withdrawal, a problem or records from a holder that holds nothing")
	case len(a.Sealed) > 0 && a.Op != Records, a.Op == Records && !a.Nothing && len(a.Sealed) == 0:
		return malformed("sealed records come with an answer to a request for them, and only then")
	case len(a.Checkpoint) > maxNote || len(a.Proofs) > len(a.Entries) || len(a.Checkpoint) == 0 && len(a.Proofs) > 0:
		return malformed("a checkpoint of %d bytes and %d proofs for %d entries", len(a.Checkpoint), len(a.Proofs), len(a.Entries))
	}
	for _, p := range a.Proofs {
		if len(p) > maxProof {
			return malformed("a proof of %d hashes", len(p))
		}
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

// ParseAnswer decodes a signed answer, of version 2 to 5; it accepts only
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
	if len(b) > 0 && b[0] == answerV5.Version {
		m, read = answerV5, a.readV5
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

func (a *Answer) readV5(r *wire.Reader) {
	a.readV2(r)
	if a.Op == Records {
		a.Sealed = r.Blob("sealed records", wire.MaxFrame)
	}
	if a.Checkpoint = r.Blob("checkpoint", maxNote); r.Err() == nil && len(a.Checkpoint) == 0 {
		r.Fail("a version 5 answer without a checkpoint")
	}
	n := r.U32("proofs")
	if n > maxEntries {
		r.Fail("%d proofs", n)
		return
	}
	for range n {
		if r.Err() != nil {
			return
		}
		k := int(r.U8("proof"))
		if k > maxProof {
			r.Fail("a proof of %d hashes", k)
			return
		}
		p := make(tlog.RecordProof, k)
		for i := range p {
			r.Fixed(p[i][:], "hash")
		}
		a.Proofs = append(a.Proofs, p)
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
