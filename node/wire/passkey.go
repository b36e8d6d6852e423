package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"net"
	"net/url"
	"strings"
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
	passkeyPoint     = 65 // an uncompressed P-256 point
	maxAuthData      = 1024
	maxClientData    = 2048
	maxPasskeySig    = 80   // an ASN.1 ECDSA P-256 signature is at most 72
	minAuthData      = 37   // rpIdHash, flags, signCount
	authDataPresent  = 0x01 // UP: the user touched the authenticator
	authDataVerified = 0x04 // UV: and proved to it who they are (PIN, biometric)
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
	if err != nil || u.Host != rpID || u.Port() != "" || u.Hostname() != rpID || net.ParseIP(rpID) != nil || strings.ContainsAny(rpID, "[]") {
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

// parseClientData reads clientDataJSON strictly: one object, whose
// members the holder checks are each there once, spelt exactly (Go's
// decoder would take "Type" for "type", and the last of two).
func parseClientData(b []byte) (clientData, bool) {
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&members); err != nil || dec.More() {
		return clientData{}, false
	}
	seen := map[string]int{}
	keys := json.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := keys.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
			} else {
				depth--
			}
		case string:
			// At depth 1, a member's name comes before each value.
			if depth == 1 && keys.More() {
				if _, ok := members[t]; ok {
					seen[t]++
				}
				var skip json.RawMessage
				if keys.Decode(&skip) != nil {
					return clientData{}, false
				}
			}
		}
	}
	for _, k := range []string{"type", "challenge", "origin"} {
		if seen[k] != 1 {
			return clientData{}, false
		}
	}
	if n := seen["crossOrigin"]; n > 1 {
		return clientData{}, false
	}
	var cd clientData
	for k, v := range members {
		var err error
		switch k {
		case "type":
			err = json.Unmarshal(v, &cd.Type)
		case "challenge":
			err = json.Unmarshal(v, &cd.Challenge)
		case "origin":
			err = json.Unmarshal(v, &cd.Origin)
		case "crossOrigin":
			err = json.Unmarshal(v, &cd.CrossOrigin)
		}
		if err != nil {
			return clientData{}, false
		}
	}
	return cd, true
}

// lowS reports whether an ASN.1 ECDSA P-256 signature is in its one
// accepted form: DER as Go writes it, with s in the lower half of the
// group's order, so that no one who relays a passkey's document can make
// a second valid copy of it (and a second hash) by negating s.
func lowS(sig []byte) bool {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil || len(rest) > 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
		return false
	}
	if again, err := asn1.Marshal(rs); err != nil || !bytes.Equal(again, sig) {
		return false
	}
	return rs.S.Cmp(halfOrder) <= 0
}

var halfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// LowS returns sig, an ASN.1 ECDSA P-256 signature as an authenticator
// wrote it, in the form Verify accepts: s in the lower half of the order.
// Anything that is not such a signature comes back as it was.
func LowS(sig []byte) []byte {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) > 0 || rs.S == nil || rs.S.Sign() <= 0 {
		return sig
	}
	if rs.S.Cmp(halfOrder) > 0 {
		rs.S = new(big.Int).Sub(elliptic.P256().Params().N, rs.S)
	}
	out, err := asn1.Marshal(rs)
	if err != nil {
		return sig
	}
	return out
}

// Verify reports whether the assertion is the passkey id's signature of
// signed: the key is id's, the authenticator saw the user and verified
// them (a PIN or a biometric: a security key found in the street signs
// nothing), and scoped the assertion to the key's relying party, the
// browser wrote a webauthn.get for signed's challenge from an https
// origin of that relying party, and the signature, in its low-S form,
// verifies.
func (p Passkey) Verify(id []byte, signed []byte) bool {
	if len(p.PublicKey) != passkeyPoint || len(id) != 32 || checkRPID(p.RPID) != nil {
		return false
	}
	if want := PasskeyID(p.RPID, p.PublicKey); !bytes.Equal(id, want[:]) {
		return false
	}
	rp := sha256.Sum256([]byte(p.RPID))
	flags := byte(0)
	if len(p.AuthData) >= minAuthData {
		flags = p.AuthData[32]
	}
	if len(p.AuthData) < minAuthData || !bytes.Equal(p.AuthData[:32], rp[:]) || flags&authDataPresent == 0 || flags&authDataVerified == 0 || !lowS(p.Sig) {
		return false
	}
	cd, ok := parseClientData(p.ClientData)
	if !ok || cd.Type != "webauthn.get" || cd.CrossOrigin {
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
	if err := checkRPID(p.RPID); err != nil {
		return err
	}
	switch {
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
