package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/url"
)

// A patient may sign with a passkey instead of an Ed25519 key: a WebAuthn
// credential (ECDSA on P-256, COSE algorithm -7) that a browser or a
// security key holds and never lets out. A passkey cannot sign arbitrary
// bytes; it signs an assertion: authenticatorData || SHA-256(clientDataJSON),
// where clientDataJSON names a challenge. medfed's challenge is the
// SHA-256 of what an Ed25519 key would sign (Signed), so the assertion
// covers the message exactly; the message, its assertion and the
// credential's public key travel together (Passkey), and every holder
// checks them all.
//
// Where the protocol names a patient's key (an attestation, a request's
// Key), a passkey is named by its ID: 32 bytes, a hash of the relying
// party it is scoped to and its public key (PasskeyID), so that the 32-byte
// key of every document and ledger entry stays what it was. An Ed25519 key
// whose public key equals a passkey's ID would need a discrete logarithm;
// the version byte says which kind signed, so neither kind's signature
// verifies as the other's.

// PasskeyVersion is the flag on a message's version byte that says a
// passkey signed it: a message of Version v signed by a passkey starts
// with v|PasskeyVersion, and its signature is a Passkey.
const PasskeyVersion = 0x80

// Limits of a passkey's assertion: what browsers and security keys
// write is far smaller.
const (
	passkeyPoint      = 65 // an uncompressed P-256 point
	maxAuthData       = 1024
	maxClientData     = 2048
	maxPasskeySig     = 80 // an ASN.1 ECDSA P-256 signature is at most 72
	minAuthData       = 37 // rpIdHash, flags, signCount
	authDataUserFound = 0x01
)

// Passkey is a WebAuthn assertion standing in for an Ed25519 signature.
type Passkey struct {
	RPID       string // the relying party the credential is scoped to: the portal's host name
	PublicKey  []byte // the credential's P-256 public key, an uncompressed point
	AuthData   []byte // authenticatorData, as the authenticator wrote it
	ClientData []byte // clientDataJSON, as the browser wrote it
	Sig        []byte // the ECDSA signature, ASN.1 DER
}

// PasskeyID is the 32 bytes that name a passkey where the protocol names
// a patient's key: SHA-256 of "medfed/passkey/v1", 0, the relying party's
// ID, 0 and the public key's point.
func PasskeyID(rpID string, point []byte) [32]byte {
	h := sha256.New()
	h.Write(Signed("medfed/passkey/v1", nil))
	h.Write([]byte(rpID))
	h.Write([]byte{0})
	h.Write(point)
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// ParsePasskeyKey reads a passkey's public key as a browser exports it
// (AuthenticatorAttestationResponse.getPublicKey: SubjectPublicKeyInfo,
// DER) and returns its point and its ID for relying party rpID.
func ParsePasskeyKey(rpID string, spki []byte) ([]byte, [32]byte, error) {
	if err := checkRPID(rpID); err != nil {
		return nil, [32]byte{}, err
	}
	k, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, [32]byte{}, Malformed("passkey", "not a public key: %v", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, [32]byte{}, Malformed("passkey", "a %T, want an ECDSA P-256 key (COSE -7)", k)
	}
	point, err := ek.Bytes()
	if err != nil {
		return nil, [32]byte{}, Malformed("passkey", "%v", err)
	}
	return point, PasskeyID(rpID, point), nil
}

// checkRPID checks a relying party ID: a host name, as WebAuthn requires
// (not an IP address, no port).
func checkRPID(rpID string) error {
	if rpID == "" || len(rpID) > 253 {
		return Malformed("passkey", "a relying party ID of %d bytes", len(rpID))
	}
	u, err := url.Parse("https://" + rpID)
	if err != nil || u.Host != rpID || u.Port() != "" || u.Hostname() != rpID {
		return Malformed("passkey", "the relying party ID is not a host name")
	}
	return nil
}

// Challenge is what a passkey is asked to sign for the message whose
// signed bytes (Signed) are signed: their SHA-256.
func Challenge(signed []byte) [32]byte { return sha256.Sum256(signed) }

// clientData is the part of clientDataJSON a holder checks.
type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

// Verify reports whether the assertion is the passkey id's signature of
// signed: the key is id's, the authenticator saw the user and scoped the
// assertion to the key's relying party, the browser wrote a webauthn.get
// for signed's challenge from an https origin of that relying party, and
// the signature verifies.
func (p Passkey) Verify(id []byte, signed []byte) bool {
	if len(p.PublicKey) != passkeyPoint || len(id) != 32 || checkRPID(p.RPID) != nil {
		return false
	}
	if want := PasskeyID(p.RPID, p.PublicKey); !bytes.Equal(id, want[:]) {
		return false
	}
	rp := sha256.Sum256([]byte(p.RPID))
	if len(p.AuthData) < minAuthData || !bytes.Equal(p.AuthData[:32], rp[:]) || p.AuthData[32]&authDataUserFound == 0 {
		return false
	}
	var cd clientData
	if err := json.Unmarshal(p.ClientData, &cd); err != nil || cd.Type != "webauthn.get" || cd.CrossOrigin {
		return false
	}
	c := Challenge(signed)
	if cd.Challenge != base64.RawURLEncoding.EncodeToString(c[:]) {
		return false
	}
	origin, err := url.Parse(cd.Origin)
	if err != nil || origin.Scheme != "https" || origin.Hostname() != p.RPID || origin.Path != "" {
		return false
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), p.PublicKey)
	if err != nil {
		return false
	}
	cdHash := sha256.Sum256(p.ClientData)
	digest := sha256.Sum256(append(bytes.Clone(p.AuthData), cdHash[:]...))
	return ecdsa.VerifyASN1(pub, digest[:], p.Sig)
}

// write encodes the assertion: str RPID, [65] point, then authData,
// clientDataJSON and the signature, each u16 length and bytes.
func (p Passkey) write(w *Writer) {
	w.Str(p.RPID)
	w.Bytes(p.PublicKey)
	for _, b := range [][]byte{p.AuthData, p.ClientData, p.Sig} {
		w.U16(uint16(len(b)))
		w.Bytes(b)
	}
}

func (p Passkey) check() error {
	switch {
	case checkRPID(p.RPID) != nil:
		return checkRPID(p.RPID)
	case len(p.PublicKey) != passkeyPoint:
		return Malformed("passkey", "a public key of %d bytes, want an uncompressed P-256 point", len(p.PublicKey))
	case len(p.AuthData) < minAuthData || len(p.AuthData) > maxAuthData:
		return Malformed("passkey", "authenticator data of %d bytes", len(p.AuthData))
	case len(p.ClientData) == 0 || len(p.ClientData) > maxClientData:
		return Malformed("passkey", "client data of %d bytes", len(p.ClientData))
	case len(p.Sig) == 0 || len(p.Sig) > maxPasskeySig:
		return Malformed("passkey", "a signature of %d bytes", len(p.Sig))
	}
	return nil
}

func readPasskey(b []byte, what string) (*Passkey, error) {
	r := NewReader(b, what)
	p := &Passkey{RPID: r.Str("relying party")}
	p.PublicKey = bytes.Clone(r.Take(passkeyPoint, "passkey"))
	for _, f := range []*[]byte{&p.AuthData, &p.ClientData, &p.Sig} {
		n := int(r.U16("length"))
		*f = bytes.Clone(r.Take(n, "assertion"))
	}
	r.End("the passkey's assertion")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// passkeyTail splits a message a passkey signed: the bytes before its
// assertion, and the assertion, whose length is the message's last two
// bytes.
func passkeyTail(b []byte) (head, proof []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[len(b)-2:]))
	if n > len(b)-2 {
		return nil, nil, false
	}
	return b[:len(b)-2-n], b[len(b)-2-n : len(b)-2], true
}
