// Package passkeytest is a WebAuthn authenticator and browser in
// software, for tests: it holds a P-256 credential and writes the
// assertions a browser and an authenticator would (authenticatorData,
// clientDataJSON, the ECDSA signature), so that the protocol's passkey
// path is tested in Go without a browser. The e2e tests drive a real
// browser's virtual authenticator.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/medfed/medfed/node/wire"
)

// Passkey is a credential scoped to a relying party, used from Origin.
type Passkey struct {
	RPID   string
	Origin string
	key    *ecdsa.PrivateKey
	count  uint32
}

// New returns a new credential for rpID, used from https://rpID:8443.
func New(t testing.TB, rpID string) *Passkey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Passkey{RPID: rpID, Origin: "https://" + rpID + ":8443", key: k}
}

// SPKI is the public key as a browser exports it (getPublicKey).
func (p *Passkey) SPKI(t testing.TB) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(&p.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Point is the public key's uncompressed point.
func (p *Passkey) Point(t testing.TB) []byte {
	t.Helper()
	b, err := p.key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ID is the passkey's ID, the 32 bytes that stand for it as a patient's
// key.
func (p *Passkey) ID(t testing.TB) []byte {
	t.Helper()
	id := wire.PasskeyID(p.RPID, p.Point(t))
	return id[:]
}

// Assert returns the passkey's assertion of challenge, as a browser
// reports navigator.credentials.get: the user was present (and
// verified).
func (p *Passkey) Assert(t testing.TB, challenge [32]byte) wire.Passkey {
	t.Helper()
	return p.AssertWith(t, "webauthn.get", challenge, p.Origin, 0x05)
}

// AssertWith is Assert with the client data's type, the origin and the
// authenticator's flags chosen: for tests of what a holder refuses.
func (p *Passkey) AssertWith(t testing.TB, typ string, challenge [32]byte, origin string, flags byte) wire.Passkey {
	t.Helper()
	cd, err := json.Marshal(map[string]any{"type": typ, "challenge": base64.RawURLEncoding.EncodeToString(challenge[:]), "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return p.AssertClientData(t, cd, flags)
}

// ChallengeText is challenge as client data names it.
func ChallengeText(challenge [32]byte) string {
	return base64.RawURLEncoding.EncodeToString(challenge[:])
}

// AssertClientData signs the client data cd as it is, with the
// authenticator's flags: for tests of client data a browser should never
// write.
func (p *Passkey) AssertClientData(t testing.TB, cd []byte, flags byte) wire.Passkey {
	t.Helper()
	rp := sha256.Sum256([]byte(p.RPID))
	p.count++
	auth := binary.BigEndian.AppendUint32(append(rp[:], flags), p.count)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(auth[:len(auth):len(auth)], cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, p.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return wire.Passkey{RPID: p.RPID, PublicKey: p.Point(t), AuthData: auth, ClientData: cd, Sig: sig}
}
