package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// The fuzz targets check the decoders of bytes that reach a centre from
// outside: entries (inclusion proofs carry them), checkpoint bodies, signed
// notes and proofs. Their seeds are real encodings, so the fuzzer starts
// from inputs that get past the first length check.

const fuzzOrigin = "medfed/fuzz-federation/centre-a"

// fuzzKey is deterministic so that every fuzz worker builds the same seeds.
func fuzzKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func fuzzPseudonym(i int) ledger.Pseudonym {
	return ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "fuzz patient %d", i)))
}

func fuzzRecord(i int) ledger.Record {
	r := ledger.Record{
		Occurred:  time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		DataClass: "lab-result",
		Location:  "ward 7/haematology",
	}
	h := sha256.Sum256(fmt.Appendf(nil, "fuzz payload %d", i))
	copy(r.Payload[:], h[:])
	r.Commitment = sha256.Sum256(h[:])
	r.Author[0] = byte(i)
	return r
}

// fuzzEntries returns one entry of each body layout the package defines,
// and a charter entry, whose body is opaque to the ledger.
func fuzzEntries(tb testing.TB) []ledger.Entry {
	tb.Helper()
	rec, err := ledger.NewRecord(fuzzPseudonym(1), fuzzRecord(1))
	if err != nil {
		tb.Fatal(err)
	}
	am := fuzzRecord(2)
	am.Replaces = 3
	amend, err := ledger.NewAmendment(fuzzPseudonym(1), am)
	if err != nil {
		tb.Fatal(err)
	}
	erasure, err := ledger.NewErasure(fuzzPseudonym(1), ledger.Erasure{Target: 3, Payload: fuzzRecord(1).Payload})
	if err != nil {
		tb.Fatal(err)
	}
	charter := ledger.Entry{Kind: ledger.KindCharter, Body: []byte("charter v2: sha256 of the text")}
	eval, err := ledger.NewEvaluation(ledger.Evaluation{Requester: []byte("a peer ID of some bytes"), Count: 4096})
	if err != nil {
		tb.Fatal(err)
	}
	byDevice := fuzzRecord(3)
	byDevice.AuthorKind = ledger.AuthorDevice
	reading, err := ledger.NewRecord(fuzzPseudonym(2), byDevice)
	if err != nil {
		tb.Fatal(err)
	}
	return []ledger.Entry{rec, amend, erasure, charter, eval, reading}
}

// openFuzzLedger opens a ledger with a fixed key and clock in a directory
// of tb's, and appends n records to it.
func openFuzzLedger(tb testing.TB, n int) *ledger.Ledger {
	tb.Helper()
	clock := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	l, err := ledger.Open(context.Background(), filepath.Join(tb.TempDir(), "ledger.db"), ledger.Options{
		Origin: fuzzOrigin,
		Key:    fuzzKey("centre-a"),
		Now:    func() time.Time { return clock },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	for i := range n {
		e, err := ledger.NewRecord(fuzzPseudonym(i%3), fuzzRecord(i))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := l.Append(context.Background(), e); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

// statementEntries returns an entry of each kind that carries a patient's
// or a pharmacy's statement: a device's registration and revocation, a
// dispense as issued and as received, and a cancellation.
func statementEntries(tb testing.TB) []ledger.Entry {
	tb.Helper()
	device, err := ledger.NewDevice(fuzzPseudonym(1), registeredDevice())
	if err != nil {
		tb.Fatal(err)
	}
	revocation, err := ledger.NewDeviceRevocation(fuzzPseudonym(1), ledger.DeviceRevocation{Device: ledger.DeviceID{7}, Registration: 9, Statement: [32]byte{5}})
	if err != nil {
		tb.Fatal(err)
	}
	out := []ledger.Entry{device, revocation}
	for _, d := range []ledger.Dispense{issuedDispense(), receivedDispense()} {
		e, err := ledger.NewDispense(fuzzPseudonym(2), d)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	cancellation, err := ledger.NewCancellation(fuzzPseudonym(2), ledger.Cancellation{Prescription: 5, Prescriber: ledger.StaffID{2}, Reason: ledger.CancelChanged})
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, cancellation)
}

// FuzzDecode decodes entries from outside (inclusion proofs, a witness's
// mirror, a patient's view, a released proof): what decodes is
// canonical, its body included.
func FuzzDecode(f *testing.F) {
	for i, e := range append(fuzzEntries(f), statementEntries(f)...) {
		// As appended (index and time zero) and as stored (stamped).
		for _, stamped := range []bool{false, true} {
			if stamped {
				e.Index, e.Time = int64(40+i), time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			}
			enc, err := e.Encode()
			if err != nil {
				f.Fatal(err)
			}
			if _, err := ledger.Decode(enc); err != nil {
				f.Fatalf("a real %s entry does not decode: %v", e.Kind, err)
			}
			f.Add(enc)
		}
		enc, _ := e.Encode()
		f.Add(enc[:len(enc)-1])                   // body cut short
		f.Add(enc[:19])                           // header only
		f.Add(append(enc[:len(enc):len(enc)], 0)) // a trailing byte
	}
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ledger.Decode(data)
		if err != nil {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap node.ErrInvalid", err)
			}
			return
		}
		enc, err := e.Encode()
		if err != nil {
			t.Fatalf("Decode accepted %x, but Encode refuses the entry: %v", data, err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("Decode accepted a non-canonical encoding:\n    input %x\ncanonical %x", data, enc)
		}
		// The body must be canonical too: decoding it and building the
		// entry again gives back the same bytes.
		var rebuilt ledger.Entry
		switch e.Kind {
		case ledger.KindRecord, ledger.KindAmendment:
			r, err := e.Record()
			if err != nil {
				t.Fatalf("Decode accepted a %s entry whose record does not decode: %v", e.Kind, err)
			}
			if e.Kind == ledger.KindRecord {
				rebuilt, err = ledger.NewRecord(e.Subject, r)
			} else {
				rebuilt, err = ledger.NewAmendment(e.Subject, r)
			}
			if err != nil {
				t.Fatalf("a decoded %s does not build again: %v", e.Kind, err)
			}
		case ledger.KindErasure:
			x, err := e.Erasure()
			if err != nil {
				t.Fatalf("Decode accepted an erasure entry whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewErasure(e.Subject, x); err != nil {
				t.Fatalf("a decoded erasure does not build again: %v", err)
			}
		case ledger.KindEvaluation:
			v, err := e.Evaluation()
			if err != nil {
				t.Fatalf("Decode accepted an evaluation entry whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewEvaluation(v); err != nil {
				t.Fatalf("a decoded evaluation does not build again: %v", err)
			}
		case ledger.KindDevice:
			d, err := e.Device()
			if err != nil {
				t.Fatalf("Decode accepted a device entry whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewDevice(e.Subject, d); err != nil {
				t.Fatalf("a decoded device does not build again: %v", err)
			}
		case ledger.KindDeviceRevoke:
			r, err := e.DeviceRevocation()
			if err != nil {
				t.Fatalf("Decode accepted a device revocation whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewDeviceRevocation(e.Subject, r); err != nil {
				t.Fatalf("a decoded device revocation does not build again: %v", err)
			}
		case ledger.KindDispense:
			d, err := e.Dispense()
			if err != nil {
				t.Fatalf("Decode accepted a dispense whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewDispense(e.Subject, d); err != nil {
				t.Fatalf("a decoded dispense does not build again: %v", err)
			}
		case ledger.KindCancellation:
			c, err := e.Cancellation()
			if err != nil {
				t.Fatalf("Decode accepted a cancellation whose body does not decode: %v", err)
			}
			if rebuilt, err = ledger.NewCancellation(e.Subject, c); err != nil {
				t.Fatalf("a decoded cancellation does not build again: %v", err)
			}
		default:
			return
		}
		if !bytes.Equal(rebuilt.Body, e.Body) {
			t.Fatalf("%s body is not canonical:\n    input %x\ncanonical %x", e.Kind, e.Body, rebuilt.Body)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	root := tlog.Hash(sha256.Sum256([]byte("a root")))
	valid := ledger.Checkpoint{Origin: fuzzOrigin, Size: 7, Root: root}.Text()
	if _, err := ledger.ParseCheckpoint(valid); err != nil {
		f.Fatalf("a real checkpoint does not parse: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString(root[:])
	// The last character of a 32-byte hash carries two padding bits; set one.
	nonCanonical := b64[:len(b64)-2] + string(b64[len(b64)-2]+1) + "="
	for _, s := range []string{
		valid,
		ledger.Checkpoint{Origin: fuzzOrigin, Size: 0, Root: root}.Text(),
		fuzzOrigin + "\n007\n" + b64 + "\n",
		strings.TrimSuffix(valid, "\n"),
		valid + "extension line\n",
		strings.ReplaceAll(valid, "\n", "\r\n"),
		fuzzOrigin + "\n7\n" + nonCanonical + "\n",
		fuzzOrigin + "\n7\n" + strings.TrimSuffix(b64, "=") + "\n",
		fuzzOrigin + "\n+7\n" + b64 + "\n",
		fuzzOrigin + "\n-0\n" + b64 + "\n",
		fuzzOrigin + "\n9223372036854775808\n" + b64 + "\n",
		"medfed/fuzz federation/centre-a\n7\n" + b64 + "\n",
		"",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, text string) {
		c, err := ledger.ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, ledger.ErrBadCheckpoint) {
				t.Fatalf("ParseCheckpoint error %v does not wrap ErrBadCheckpoint", err)
			}
			return
		}
		if c.Size < 0 {
			t.Fatalf("ParseCheckpoint accepted size %d", c.Size)
		}
		if got := c.Text(); got != text {
			t.Fatalf("ParseCheckpoint accepted a second spelling of a checkpoint:\n    input %q\ncanonical %q", text, got)
		}
	})
}

// cosign appends a signature by key (named name) to a signed note.
func cosign(tb testing.TB, msg []byte, v note.Verifier, name string, key ed25519.PrivateKey) []byte {
	tb.Helper()
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		tb.Fatal(err)
	}
	skey, _, err := note.GenerateKey(bytes.NewReader(key.Seed()), name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := note.Sign(n, s)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func FuzzOpenCheckpoint(f *testing.F) {
	ctx := context.Background()
	l := openFuzzLedger(f, 1)
	first, err := l.Sign(ctx)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := l.Append(ctx, fuzzEntries(f)...); err != nil {
		f.Fatal(err)
	}
	second, err := l.Sign(ctx)
	if err != nil {
		f.Fatal(err)
	}
	pub := l.PublicKey()
	// Only the centre's key can make a note open, so every checkpoint
	// OpenCheckpoint returns must be one the ledger signed.
	signed := map[ledger.Checkpoint]bool{first.Checkpoint: true, second.Checkpoint: true}
	v, err := ledger.NewVerifier(fuzzOrigin, pub)
	if err != nil {
		f.Fatal(err)
	}

	for _, sc := range []ledger.SignedCheckpoint{first, second} {
		msg := sc.Note
		witnessed := cosign(f, msg, v, "witness.example/w1", fuzzKey("witness"))
		for _, m := range [][]byte{msg, witnessed} {
			if _, err := ledger.OpenCheckpoint(m, fuzzOrigin, pub); err != nil {
				f.Fatalf("a real note does not open: %v\n%s", err, m)
			}
		}
		f.Add(msg)
		f.Add(witnessed)
		text := len(sc.Text())
		for _, off := range []int{0, text - 3, text + 5, len(msg) - 3} {
			flipped := bytes.Clone(msg)
			flipped[off] ^= 1
			f.Add(flipped)
		}
		f.Add(msg[:len(msg)-1])
		// Another key signing under the centre's name is not the centre.
		f.Add(cosign(f, msg, v, fuzzOrigin, fuzzKey("impostor")))
		f.Add(append(bytes.Clone(msg), msg[text+1:]...)) // the signature twice
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		sc, err := ledger.OpenCheckpoint(msg, fuzzOrigin, pub)
		if err != nil {
			if !errors.Is(err, ledger.ErrBadCheckpoint) {
				t.Fatalf("OpenCheckpoint error %v does not wrap ErrBadCheckpoint", err)
			}
			return
		}
		if sc.Origin != fuzzOrigin {
			t.Fatalf("opened a checkpoint of origin %q, want %q", sc.Origin, fuzzOrigin)
		}
		if !signed[sc.Checkpoint] {
			t.Fatalf("opened a checkpoint the centre never signed: %+v", sc.Checkpoint)
		}
		if !bytes.Equal(sc.Note, msg) {
			t.Fatal("the opened note is not the message")
		}
		if !bytes.HasPrefix(msg, []byte(sc.Text()+"\n")) {
			t.Fatalf("the note's text is not the checkpoint's:\n%q", msg)
		}
		c, err := ledger.ParseCheckpoint(sc.Text())
		if err != nil {
			t.Fatalf("an opened checkpoint's text does not parse: %v", err)
		}
		if c != sc.Checkpoint {
			t.Fatalf("an opened checkpoint's text parses to %+v, want %+v", c, sc.Checkpoint)
		}
	})
}

func FuzzVerifyInclusion(f *testing.F) {
	ctx := context.Background()
	l := openFuzzLedger(f, 10)
	sc, err := l.Sign(ctx)
	if err != nil {
		f.Fatal(err)
	}
	// What a querier holds: the checkpoint opened with the public key only.
	opened, err := ledger.OpenCheckpoint(sc.Note, fuzzOrigin, l.PublicKey())
	if err != nil {
		f.Fatal(err)
	}
	c := opened.Checkpoint
	if c.Size != 10 {
		f.Fatalf("checkpoint of size %d, want 10", c.Size)
	}
	leaves := make([][]byte, c.Size)
	proofs := make([][]byte, c.Size)
	for i := range c.Size {
		e, err := l.Entry(ctx, i)
		if err != nil {
			f.Fatal(err)
		}
		if leaves[i], err = e.Encode(); err != nil {
			f.Fatal(err)
		}
		p, err := l.ProveInclusion(ctx, i, c.Size)
		if err != nil {
			f.Fatal(err)
		}
		for _, h := range p {
			proofs[i] = append(proofs[i], h[:]...)
		}
	}

	for i := range c.Size {
		f.Add(i, leaves[i], proofs[i])
	}
	tampered := bytes.Clone(leaves[3])
	tampered[len(tampered)-1] ^= 1
	f.Add(int64(3), tampered, proofs[3])
	f.Add(int64(3), leaves[4], proofs[3])
	f.Add(int64(4), leaves[3], proofs[3])
	f.Add(int64(3), leaves[3], proofs[3][:len(proofs[3])-tlog.HashSize])
	f.Add(int64(3), leaves[3], append(bytes.Clone(proofs[3]), proofs[3][:tlog.HashSize]...))
	f.Add(int64(-1), leaves[0], proofs[0])
	f.Add(int64(10), leaves[9], proofs[9])
	f.Add(int64(8), leaves[8], []byte{})

	f.Fuzz(func(t *testing.T, index int64, entry, proofBytes []byte) {
		// A trailing part of a hash is dropped: the proof is whole hashes.
		proof := make(tlog.RecordProof, len(proofBytes)/tlog.HashSize)
		for i := range proof {
			copy(proof[i][:], proofBytes[i*tlog.HashSize:])
		}
		err := ledger.VerifyInclusion(c, index, entry, proof)
		if err != nil && !errors.Is(err, ledger.ErrBadProof) {
			t.Fatalf("VerifyInclusion error %v does not wrap ErrBadProof", err)
		}
		held := index >= 0 && index < c.Size && bytes.Equal(entry, leaves[index])
		if err == nil && !held {
			t.Fatalf("VerifyInclusion accepted entry %x at index %d, which the ledger does not hold there", entry, index)
		}
		// An RFC 6962 inclusion proof is the one list of sibling hashes, so
		// the real entry with the real proof, whole, must verify.
		if held && bytes.Equal(proofBytes, proofs[index]) && err != nil {
			t.Fatalf("the real entry %d with its real proof does not verify: %v", index, err)
		}
		if err == nil && !bytes.Equal(proofBytes[:len(proof)*tlog.HashSize], proofs[index]) {
			t.Fatalf("VerifyInclusion accepted entry %d with a proof that is not the real one", index)
		}
	})
}
