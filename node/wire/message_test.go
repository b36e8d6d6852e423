package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

// A signed message opens to what was signed, with or without its signer's
// key in it, and nothing else opens: another version, a byte more or
// less, or a field beyond the message's.
func TestMessage(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	for _, signer := range []bool{false, true} {
		m := wire.Message{What: "test message", Context: "medfed/test/v1", Version: 3, Max: 1 << 10, Signer: signer}
		write := func(w *wire.Writer) { w.Str("hello"); w.U32(42) }
		raw, err := m.Sign(key, write)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		var n uint32
		read := func(r *wire.Reader) { s, n = r.Str("greeting"), r.U32("number") }
		o, err := m.Open(raw, read)
		if err != nil || s != "hello" || n != 42 || !o.Verify(pub) {
			t.Fatalf("signer %v: Open = %q %d %v, verifies %v", signer, s, n, err, o.Verify(pub))
		}
		if signer && !bytes.Equal(o.Signer, pub) {
			t.Errorf("the signer's key opens as %x", o.Signer)
		}
		if !bytes.Equal(o.Signed, wire.Signed(m.Context, m.Encode(write))) {
			t.Error("Signed is not the context and the encoding")
		}
		if o.Verify(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)) {
			t.Error("verifies with another key")
		}

		tampered := bytes.Clone(raw)
		tampered[2] ^= 1
		o, err = m.Open(tampered, read)
		if err != nil {
			t.Fatalf("a message with a flipped bit of its body no longer parses: %v", err)
		}
		if o.Verify(pub) {
			t.Error("a tampered message verifies")
		}
		other := m
		other.Version = 4
		for name, b := range map[string][]byte{"empty": nil, "short": raw[:len(raw)-1], "long": append(bytes.Clone(raw), 0)} {
			if _, err := m.Open(b, read); !errors.Is(err, node.ErrInvalid) {
				t.Errorf("signer %v, %s: %v, want an invalid error", signer, name, err)
			}
		}
		if _, err := other.Open(raw, read); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("another version opens: %v", err)
		}
		if _, err := m.Open(raw, func(r *wire.Reader) { read(r); r.U8("more") }); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("a field beyond the message reads: %v", err)
		}
		if _, err := m.Open(raw, func(r *wire.Reader) { r.Str("greeting") }); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("a message with bytes left over opens: %v", err)
		}
		small := m
		small.Max = len(raw) - 1
		if _, err := small.Sign(key, write); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("a message over Max signs: %v", err)
		}
	}
}

// TestSignIsSeal: Sign, which encodes, signs and seals in one buffer,
// gives byte for byte what Encode, Signed and Seal give (Ed25519 signs
// deterministically), for short messages and for ones that outgrow the
// buffer's first size; and Seal copies the draft it is given.
func TestSignIsSeal(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	for _, signer := range []bool{false, true} {
		for _, size := range []int{0, 100, 511, 512, 600, 5000} {
			m := wire.Message{What: "test message", Context: "medfed/test/v1", Version: 2, Max: 1 << 14, Signer: signer}
			write := func(w *wire.Writer) { w.Blob(bytes.Repeat([]byte{byte(size)}, size)); w.U64(uint64(size)) }
			raw, err := m.Sign(key, write)
			if err != nil {
				t.Fatal(err)
			}
			draft := m.Encode(write)
			want, err := m.Seal(draft, pub, ed25519.Sign(key, wire.Signed(m.Context, draft)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, want) {
				t.Fatalf("signer %v, %d bytes: Sign gives %d bytes unlike Seal's %d", signer, size, len(raw), len(want))
			}
			draft[0] ^= 0xff
			if !bytes.Equal(raw, want) || want[0] != m.Version {
				t.Fatalf("signer %v, %d bytes: the sealed message changed with its draft", signer, size)
			}
		}
	}
}
