package patient

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// The fuzz targets check the decoders of the bytes a centre gets from a
// patient's device or from another centre: requests and answers. Their
// seeds are real signed encodings, so the fuzzer starts past the first
// length check; whatever a decoder accepts must be what Sign wrote.

// fuzzKey is deterministic so that every fuzz worker builds the same seeds.
func fuzzKey(tb testing.TB, name string) (ed25519.PrivateKey, peer.ID) {
	tb.Helper()
	seed := sha256.Sum256([]byte(name))
	k := ed25519.NewKeyFromSeed(seed[:])
	id, err := federation.PeerIDFromKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, id
}

func fuzzRequest(tb testing.TB) (Request, ed25519.PrivateKey) {
	k, _ := fuzzKey(tb, "patient")
	_, relay := fuzzKey(tb, "centre-a")
	return Request{
		Op: View, Federation: "fuzz-fed", Relay: relay, Subject: ledger.Pseudonym{1, 2},
		Nonce: [16]byte{9}, Time: time.UnixMilli(1_780_000_000_123).UTC(),
	}, k
}

func FuzzParseRequest(f *testing.F) {
	q, k := fuzzRequest(f)
	raw, err := q.Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ParseRequest(raw); err != nil {
		f.Fatal(err) // else the target would test nothing
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	bad := bytes.Clone(raw)
	bad[len(bad)-ed25519.SignatureSize-2] ^= 1 // the time: the signature no longer verifies
	f.Add(bad)
	_, h1 := fuzzKey(f, "centre-b")
	_, h2 := fuzzKey(f, "centre-c")
	q.Cursors = []Cursor{{Holder: min(h1, h2), From: 7}, {Holder: max(h1, h2), From: 65536}}
	if raw, err = q.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw) // a view's next page
	q.Cursors = nil
	q.Op, q.Nonce = Erase, [16]byte{1, 2, 3}
	if raw, err = q.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	q.Op, q.Nonce, q.Seal = Records, [16]byte{4}, [32]byte{5} // the records, sealed to a key
	if raw, err = q.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	q.Op, q.Seal = Erase, [32]byte{}
	// A passkey's request: its assertion where the signature was.
	pk := passkeytest.New(f, "localhost")
	draft, err := q.Draft(pk.ID(f), true)
	if err != nil {
		f.Fatal(err)
	}
	if raw, err = SealRequest(draft, nil, new(pk.Assert(f, wire.Challenge(wire.Signed(RequestContext, draft))))); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseRequest(b)
		if err != nil {
			return
		}
		if err := q.check(); err != nil {
			t.Fatalf("accepted a request that fails its checks: %v", err)
		}
		if q.signed.Passkey != nil {
			draft, err := q.Draft(q.Key, true)
			if err != nil || !bytes.HasPrefix(b, draft) || !q.signed.Passkey.Verify(q.Key, wire.Signed(RequestContext, draft)) {
				t.Fatalf("accepted a passkey's request that is not its draft and assertion: %v", err)
			}
			return
		}
		sig := b[len(b)-ed25519.SignatureSize:]
		if !bytes.Equal(append(requestMessage.Encode(q.write), sig...), b) {
			t.Fatal("accepted a non-canonical request")
		}
		if !ed25519.Verify(q.Key, wire.Signed(requestMessage.Context, requestMessage.Encode(q.write)), sig) {
			t.Fatal("accepted a request whose re-encoding the signature does not cover")
		}
	})
}

func fuzzAnswer(tb testing.TB) (Answer, ed25519.PrivateKey) {
	tb.Helper()
	k, holder := fuzzKey(tb, "centre-b")
	p := ledger.Pseudonym{1, 2}
	r := ledger.Record{
		Occurred: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), DataClass: "lab-result", Location: "ward 7",
		Payload: [16]byte{4}, Commitment: [32]byte{5},
	}
	rec, err := ledger.NewRecord(p, r)
	if err != nil {
		tb.Fatal(err)
	}
	rec.Index, rec.Time = 12, time.Date(2026, 3, 1, 9, 1, 0, 0, time.UTC)
	x, err := ledger.NewErasure(p, ledger.Erasure{Target: 12, Payload: [16]byte{4}})
	if err != nil {
		tb.Fatal(err)
	}
	x.Index, x.Time = 13, time.Date(2026, 3, 2, 9, 1, 0, 0, time.UTC)
	var entries [][]byte
	for _, e := range []ledger.Entry{rec, x} {
		b, err := e.Encode()
		if err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, b)
	}
	return Answer{
		Op: View, Holder: holder, Subject: p, Nonce: [16]byte{9}, Size: 41, Entries: entries,
	}, k
}

func FuzzParseAnswer(f *testing.F) {
	a, k := fuzzAnswer(f)
	raw, err := a.Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ParseAnswer(raw); err != nil {
		f.Fatal(err) // else the target would test nothing
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Add(raw[:len(raw)/2])
	a.Next = 14 // more from entry 14
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	a.Next = 0
	a.Op, a.Entries, a.Withdrawn, a.Problem = Erase, a.Entries[1:], true, ""
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	a.Entries, a.Withdrawn, a.Problem = nil, false, "the directory did not answer"
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	// Version 3: a centre that holds nothing about the patient.
	for _, op := range []Op{View, Erase} {
		a.Op, a.Problem, a.Nothing = op, "", true
		if raw, err = a.Sign(k); err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		flag := len(raw) - ed25519.SignatureSize - 1
		f.Add(append(bytes.Clone(raw[:flag]), raw[flag+1:]...)) // a version 3 answer without its flag
	}
	// Version 4: the patient's records, sealed.
	a.Op, a.Nothing, a.Entries = Records, false, a.Entries[:0]
	if a.Sealed, err = SealRecords([32]byte{9}, a.Holder, a.Nonce, []SealedRecord{{Index: 12, Payload: []byte("report")}, {Index: 13}}); err != nil {
		f.Fatal(err)
	}
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(flip(raw, 0)) // a version 4 answer read as another
	// Version 5: proven in the holder's final checkpoint.
	a.Op, a.Sealed = View, nil
	a.Entries = fuzzEntries(f)
	a.Checkpoint, a.Proofs = []byte("medfed/fuzz/centre-b\n41\nAAAA\n\n— centre-b sig\n"), []tlog.RecordProof{{{1}, {2}}, {{3}}}
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	a.Op, a.Sealed = Records, []byte("sealed")
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(b)
		if err != nil {
			return
		}
		if err := a.check(); err != nil {
			t.Fatalf("accepted an answer that fails its checks: %v", err)
		}
		sig, m := b[len(b)-ed25519.SignatureSize:], a.message()
		if !bytes.Equal(append(m.Encode(a.write), sig...), b) {
			t.Fatal("accepted a non-canonical answer")
		}
		if err := federation.VerifyPeer(a.Holder, wire.Signed(m.Context, m.Encode(a.write)), sig); err != nil {
			t.Fatalf("accepted an answer whose re-encoding the holder did not sign: %v", err)
		}
	})
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// fuzzEntries is the entries of fuzzAnswer.
func fuzzEntries(tb testing.TB) [][]byte {
	a, _ := fuzzAnswer(tb)
	return a.Entries
}
