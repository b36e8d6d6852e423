package device

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// fuzzSeeds are real statements, a batch and a note, so that the fuzzer starts
// past the first length check.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	patient, meter := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	g, err := Registration{Federation: "f", Centre: "c", Subject: ledger.Pseudonym{1}, Device: meter.Public().(ed25519.PublicKey), Type: PulseOximeter,
		Classes: []string{"lab-result", "observation"}, NotBefore: at, Expires: at.Add(time.Hour), Nonce: [16]byte{1}, Time: at}.Sign(patient)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := Revocation{Federation: "f", Centre: "c", Subject: ledger.Pseudonym{1}, Device: meter.Public().(ed25519.PublicKey), Nonce: [16]byte{2}, Time: at}.Sign(patient)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := Batch{Federation: "f", Centre: "c", Subject: ledger.Pseudonym{1}, Nonce: [16]byte{3}, Time: at, Readings: [][]byte{[]byte(`{"resourceType":"Observation"}`), {0}}}.Sign(meter)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := Note{Federation: "f", Centre: "c", Subject: ledger.Pseudonym{1}, Nonce: [16]byte{4}, Time: at, Observation: []byte(`{"resourceType":"Observation","valueString":"a note"}`)}.Sign(patient)
	if err != nil {
		tb.Fatal(err)
	}
	return [][]byte{g, v, b, n}
}

// FuzzParse reads bytes from outside (an HTTP client's) as each message:
// what is refused is refused as invalid or forbidden, and what is
// accepted is the one encoding of its fields, its signature verified.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(append(bytes.Clone(s), 0))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(what string, err error, m wire.Message, write func(*wire.Writer), key ed25519.PublicKey) {
			if err != nil {
				if k := node.KindOf(err); k != node.Invalid && k != node.Forbidden {
					t.Fatalf("%s: an error of kind %v: %v", what, k, err)
				}
				return
			}
			if data[0]&wire.PasskeyVersion != 0 {
				return // a passkey's assertion: its own reader is fuzzed in node/wire
			}
			body := data[:len(data)-ed25519.SignatureSize]
			if !bytes.Equal(m.Encode(write), body) {
				t.Fatalf("%s accepted a non-canonical encoding %x", what, data)
			}
			if !ed25519.Verify(key, wire.Signed(m.Context, body), data[len(body):]) {
				t.Fatalf("%s accepted a signature that does not verify", what)
			}
		}
		g, err := ParseRegistration(data)
		check("registration", err, registrationMessage, g.write, g.Key)
		v, err := ParseRevocation(data)
		check("revocation", err, revocationMessage, v.write, v.Key)
		b, err := ParseBatch(data)
		check("batch", err, batchMessage, b.write, b.Device)
		n, err := ParseNote(data)
		check("note", err, noteMessage, n.write, n.Key)
	})
}
