package query

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

func testKey(tb testing.TB, name string) (ed25519.PrivateKey, peer.ID) {
	tb.Helper()
	seed := sha256.Sum256([]byte(name))
	k := ed25519.NewKeyFromSeed(seed[:])
	id, err := federation.PeerIDFromKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return k, id
}

func sampleRequest(tb testing.TB) (Request, ed25519.PrivateKey) {
	k, id := testKey(tb, "centre-a")
	q := Request{
		Federation: "medfed-fuzz", Requester: id, Staff: ledger.StaffID{7}, Role: consent.Clinician, Action: consent.Access,
		Purpose: consent.Treatment, Classes: []string{"lab-result", "imaging"}, Subject: ledger.Pseudonym{1, 2},
		Nonce: [16]byte{9}, Time: time.UnixMilli(1_780_000_000_123).UTC(), Key: bytes.Repeat([]byte{5}, keyLen), Token: []byte("a token"),
	}
	return q, k
}

func TestRequestRoundTrip(t *testing.T) {
	q, k := sampleRequest(t)
	raw, err := q.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := got.Sign(k)
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-signing the parsed request: %v", err)
	}
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x40
		if _, err := ParseRequest(bad); err == nil {
			t.Fatalf("a request with byte %d flipped parses", i)
		}
	}
}

func sampleResponse(tb testing.TB) (Response, ed25519.PrivateKey) {
	k, id := testKey(tb, "centre-b")
	return Response{
		Holder: id, Subject: ledger.Pseudonym{1, 2}, Nonce: [16]byte{9}, Permit: true, Basis: consent.BasisContract,
		Reason: "provision 1 of the contract applies", Access: 41, Session: consent.ID{3}, Denied: 1, Pending: 2,
		Checkpoint: []byte("medfed-fuzz/centre-b\n40\nroot\n\n— sig\n"), Enc: bytes.Repeat([]byte{1}, 32),
		Items: []Item{{Index: 12, Entry: []byte("entry bytes"), Proof: tlog.RecordProof{{1}, {2}}, Sealed: []byte("sealed")}, {Index: 13, Entry: []byte("erased")}},
	}, k
}

func FuzzParseRequest(f *testing.F) {
	q, k := sampleRequest(f)
	raw, err := q.Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	q.Token, q.Classes = nil, nil
	if raw, err = q.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(append(requestMessage.Encode(q.write), b[len(b)-ed25519.SignatureSize:]...), b) {
			t.Fatal("accepted a non-canonical request")
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	a, k := sampleResponse(f)
	raw, err := a.Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	a.Items, a.Checkpoint, a.Enc, a.Permit = nil, nil, nil, false
	if raw, err = a.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseResponse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(append(responseMessage.Encode(a.write), b[len(b)-ed25519.SignatureSize:]...), b) {
			t.Fatal("accepted a non-canonical response")
		}
	})
}

// A response parses back to what was signed.
func TestResponseRoundTrip(t *testing.T) {
	a, k := sampleResponse(t)
	raw, err := a.Sign(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := got.Sign(k); err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-signing the parsed response: %v", err)
	}
	raw[len(raw)-1] ^= 1
	if _, err := ParseResponse(raw); err == nil {
		t.Fatal("a response with a bad signature parses")
	}
}

// Sealed payloads open with the query's key, in order, bound to their
// index, holder and nonce.
func TestSeal(t *testing.T) {
	key, err := NewSealingKey()
	if err != nil {
		t.Fatal(err)
	}
	_, holder := testKey(t, "centre-b")
	nonce := [16]byte{1}
	s, err := newSealer(key.Public(), holder, nonce)
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.seal(5, []byte("opening-5"), []byte("payload five"))
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.seal(6, []byte("opening-6"), []byte("payload six"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := key.opener(s.enc, holder, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if op, p, err := o.open(5, one); err != nil || string(op) != "opening-5" || string(p) != "payload five" {
		t.Fatalf("open 5: %q %q %v", op, p, err)
	}
	if _, _, err := o.open(7, two); err == nil {
		t.Fatal("a payload opened under another index")
	}
	other, err := key.opener(s.enc, holder, [16]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.open(5, one); err == nil {
		t.Fatal("a payload opened for another request")
	}
}

func FuzzParseReceipt(f *testing.F) {
	k, requester := testKey(f, "centre-a")
	_, holder := testKey(f, "centre-b")
	r := Receipt{
		Federation: "medfed-fuzz", Requester: requester, Holder: holder, Subject: ledger.Pseudonym{1, 2},
		Nonce: [16]byte{9}, Access: 41, Copies: []Copied{{Source: 12, Copy: 3}, {Source: 13, Copy: 4}},
	}
	raw, err := r.Sign(k)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ParseReceipt(raw); err != nil {
		f.Fatal(err) // else the target would test nothing
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Add(raw[:len(raw)/2])
	r.Copies = r.Copies[:1]
	if raw, err = r.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("accepted a receipt that fails its checks: %v", err)
		}
		if !bytes.Equal(append(receiptMessage.Encode(r.write), b[len(b)-ed25519.SignatureSize:]...), b) {
			t.Fatal("accepted a non-canonical receipt")
		}
	})
}

func FuzzDecodeTransfer(f *testing.F) {
	p := ledger.Pseudonym{1, 2}
	_, source := testKey(f, "centre-b")
	rec, err := ledger.NewRecord(p, ledger.Record{
		Occurred: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), DataClass: "lab-result", Payload: [16]byte{4}, Commitment: [32]byte{5},
	})
	if err != nil {
		f.Fatal(err)
	}
	rec.Index, rec.Time = 12, time.Date(2026, 3, 1, 9, 1, 0, 0, time.UTC)
	entry, err := rec.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, t := range []Transfer{
		{Direction: In, Centre: source, Source: 12, Access: 41, Entry: entry, Size: 42, Root: tlog.Hash{7}, Proof: tlog.RecordProof{{1}, {2}, {3}}},
		{Direction: Out, Centre: source, Source: 12, Access: 41, Copy: 3},
	} {
		e, err := NewTransfer(p, t)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := DecodeTransfer(e); err != nil {
			f.Fatal(err) // else the target would test nothing
		}
		f.Add(e.Body)
		f.Add(e.Body[:len(e.Body)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeTransfer(ledger.Entry{Kind: ledger.KindTransfer, Subject: p, Body: b})
		if err != nil {
			return
		}
		e, err := NewTransfer(p, x)
		if err != nil {
			t.Fatalf("accepted a transfer NewTransfer refuses: %v", err)
		}
		if e.Kind != ledger.KindTransfer || e.Subject != p || !bytes.Equal(e.Body, b) {
			t.Fatal("accepted a non-canonical transfer")
		}
		if _, err := e.Encode(); err != nil {
			t.Fatalf("accepted a transfer the ledger refuses: %v", err)
		}
	})
}
