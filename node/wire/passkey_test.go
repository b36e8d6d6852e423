package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/wire"
	"github.com/medfed/medfed/node/wire/passkeytest"
)

// A message a passkey signed opens and verifies against the passkey's ID,
// and against nothing else; an assertion for another message, another
// relying party, another origin, without the user's presence, of another
// WebAuthn type or with a byte changed anywhere does not verify, and
// neither kind of signature passes for the other.
func TestPasskeyMessage(t *testing.T) {
	pk := passkeytest.New(t, "portal.centre-a.example")
	id := pk.ID(t)
	for _, signer := range []bool{false, true} {
		m := wire.Message{What: "test message", Context: "medfed/test/v1", Version: 3, Max: 4 << 10, Signer: signer, Passkeys: true}
		write := func(w *wire.Writer) { w.Str("hello"); w.U32(42) }
		draft := m.Draft(true, write)
		if draft[0] != 3|wire.PasskeyVersion {
			t.Fatalf("a passkey's draft has version %#x", draft[0])
		}
		challenge := wire.Challenge(wire.Signed(m.Context, draft))
		raw, err := m.SealPasskey(draft, id, pk.Assert(t, challenge))
		if err != nil {
			t.Fatal(err)
		}
		var s string
		read := func(r *wire.Reader) { s = r.Str("greeting"); r.U32("number") }
		o, err := m.Open(raw, read)
		if err != nil || s != "hello" || o.Passkey == nil || !o.Verify(id) {
			t.Fatalf("signer %v: Open = %q %v, passkey %v", signer, s, err, o.Passkey != nil)
		}
		if signer && !bytes.Equal(o.Signer, id) {
			t.Errorf("the signer opens as %x, want the passkey's ID", o.Signer)
		}
		other := passkeytest.New(t, pk.RPID)
		if o.Verify(other.ID(t)) {
			t.Error("verifies as another passkey's")
		}
		refused := func(what string, p wire.Passkey) {
			t.Helper()
			b, err := m.SealPasskey(draft, id, p)
			if err != nil {
				return
			}
			if o, err := m.Open(b, read); err == nil && o.Verify(id) {
				t.Errorf("signer %v: %s verifies", signer, what)
			}
		}
		otherMsg := wire.Challenge(wire.Signed(m.Context, m.Draft(true, func(w *wire.Writer) { w.Str("hellO"); w.U32(42) })))
		refused("another message's assertion", pk.Assert(t, otherMsg))
		refused("a registration's client data", pk.AssertWith(t, "webauthn.create", challenge, pk.Origin, 0x05))
		refused("an origin of another host", pk.AssertWith(t, "webauthn.get", challenge, "https://evil.example", 0x05))
		refused("an http origin", pk.AssertWith(t, "webauthn.get", challenge, "http://"+pk.RPID, 0x05))
		refused("no user presence", pk.AssertWith(t, "webauthn.get", challenge, pk.Origin, 0x04))
		refused("presence without verification", pk.AssertWith(t, "webauthn.get", challenge, pk.Origin, 0x01))
		good := pk.Assert(t, challenge)
		moved := good
		moved.RPID = "centre-a.example" // the origin's host no longer matches, nor the ID
		refused("another relying party", moved)
		foreign := other.Assert(t, challenge)
		refused("another credential's assertion under this ID", foreign)
		rp := sha256.Sum256([]byte("evil.example"))
		wrongRP := good
		wrongRP.AuthData = append(rp[:], good.AuthData[32:]...)
		refused("authenticator data of another relying party", wrongRP)
		for i := range raw {
			b := bytes.Clone(raw)
			b[i] ^= 0x01
			// The signer's key is not signed: it is what the message
			// is checked against.
			o, err := m.Open(b, read)
			if err == nil && signer && !bytes.Equal(o.Signer, id) {
				continue
			}
			if err == nil && o.Verify(id) {
				t.Fatalf("signer %v: a byte changed at %d of %d still verifies", signer, i, len(raw))
			}
		}
		// An Ed25519 signature of a passkey's draft, or a passkey's
		// assertion of an Ed25519 draft, is not a message.
		if _, err := m.Seal(draft, make([]byte, 32), make([]byte, ed25519.SignatureSize)); err == nil {
			t.Error("sealed a passkey's draft with an Ed25519 signature")
		}
		if _, err := m.SealPasskey(m.Draft(false, write), id, good); err == nil {
			t.Error("sealed an Ed25519 draft with a passkey's assertion")
		}
		plain := m
		plain.Passkeys = false
		if _, err := plain.Open(raw, read); err == nil {
			t.Error("a message no passkey may sign opened a passkey's")
		}
	}
}

// A browser exports a passkey's public key as SubjectPublicKeyInfo: it
// parses to the point and the ID; an Ed25519 key, or a relying party that
// is an address or has a port, does not.
func TestParsePasskeyKey(t *testing.T) {
	pk := passkeytest.New(t, "localhost")
	point, id, err := wire.ParsePasskeyKey("localhost", pk.SPKI(t))
	if err != nil || !bytes.Equal(point, pk.Point(t)) || !bytes.Equal(id[:], pk.ID(t)) {
		t.Fatalf("ParsePasskeyKey = %x %x %v", point, id, err)
	}
	for _, rp := range []string{"", "localhost:8443", "a/b", "local host", "127.0.0.1", "[::1]"} {
		if _, _, err := wire.ParsePasskeyKey(rp, pk.SPKI(t)); err == nil {
			t.Errorf("relying party %q accepted", rp)
		}
	}
	if _, _, err := wire.ParsePasskeyKey("localhost", []byte("not a key")); err == nil {
		t.Error("garbage accepted as a key")
	}
}

// BenchmarkVerify measures what a holder spends checking a patient's
// signature: Ed25519's, and a passkey's assertion (its ID, relying party,
// client data and ECDSA P-256 signature), on the same message.
func BenchmarkVerify(b *testing.B) {
	m := wire.Message{What: "bench", Context: "medfed/bench/v1", Version: 1, Max: 4 << 10, Passkeys: true}
	write := func(w *wire.Writer) { w.Str("a consent document's worth of fields"); w.U64(42) }
	read := func(r *wire.Reader) { r.Str("fields"); r.U64("n") }
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	signed, err := m.Sign(key, write)
	if err != nil {
		b.Fatal(err)
	}
	pk := passkeytest.New(b, "portal.centre-a.example")
	draft := m.Draft(true, write)
	asserted, err := m.SealPasskey(draft, nil, pk.Assert(b, wire.Challenge(wire.Signed(m.Context, draft))))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		key  []byte
	}{{"ed25519", signed, key.Public().(ed25519.PublicKey)}, {"passkey", asserted, pk.ID(b)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				o, err := m.Open(c.raw, read)
				if err != nil || !o.Verify(c.key) {
					b.Fatal("does not verify")
				}
			}
		})
	}
}

// A holder takes one form of an assertion only: the signature's s in the
// lower half (the other is made from it without the key), and client data
// whose checked members are each there once, spelt exactly.
func TestPasskeyOneForm(t *testing.T) {
	pk := passkeytest.New(t, "localhost")
	m := wire.Message{What: "test message", Context: "medfed/test/v1", Version: 3, Max: 4 << 10, Passkeys: true}
	write := func(w *wire.Writer) { w.Str("hello") }
	draft := m.Draft(true, write)
	signed := wire.Signed(m.Context, draft)
	a := pk.Assert(t, wire.Challenge(signed))
	a.Sig = wire.LowS(a.Sig)
	if !a.Verify(pk.ID(t), signed) {
		t.Fatal("the low-S assertion does not verify")
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(a.Sig, &rs); err != nil {
		t.Fatal(err)
	}
	rs.S.Sub(elliptic.P256().Params().N, rs.S)
	high, err := asn1.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	h := a
	h.Sig = high
	if h.Verify(pk.ID(t), signed) {
		t.Error("the high-S twin verifies")
	}
	if !bytes.Equal(wire.LowS(high), a.Sig) {
		t.Error("LowS does not bring the twin back")
	}
	ch := passkeytest.ChallengeText(wire.Challenge(signed))
	good := `{"type":"webauthn.get","challenge":"` + ch + `","origin":"https://localhost:8443","crossOrigin":false,"other":{"type":1}}`
	assert := func(cd string) wire.Passkey {
		a := pk.AssertClientData(t, []byte(cd), 0x05)
		a.Sig = wire.LowS(a.Sig)
		return a
	}
	if !assert(good).Verify(pk.ID(t), signed) {
		t.Fatalf("client data %s does not verify", good)
	}
	for _, cd := range []string{
		strings.Replace(good, `"type"`, `"Type"`, 1),
		strings.Replace(good, `{`, `{"type":"webauthn.create",`, 1),
		strings.Replace(good, `"origin"`, `"origin":"https://evil.example","origin"`, 1),
		good + ` {}`,
		`[` + good + `]`,
	} {
		if assert(cd).Verify(pk.ID(t), signed) {
			t.Errorf("client data %s verifies", cd)
		}
	}
}
