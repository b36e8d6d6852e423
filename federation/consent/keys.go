package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
)

// A patient key file is the Ed25519 private key in PKCS #8, PEM-encoded
// ("PRIVATE KEY"): what OpenSSL and other tools read and write, so a
// patient's own software can hold it. It never leaves the patient: the
// CLI signs locally and sends only signed documents.
const keyBlock = "PRIVATE KEY"

// GenerateKey draws a new patient key and returns it with its file form.
func GenerateKey() (ed25519.PrivateKey, []byte, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: keyBlock, Bytes: der}), nil
}

// ParseKey reads a patient key file.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != keyBlock || len(bytes.TrimSpace(rest)) > 0 {
		return nil, malformed("not a PEM %q block alone", keyBlock)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, malformed("%v", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, malformed("a %T, want an Ed25519 key", k)
	}
	return ek, nil
}

// FormatPublicKey returns a patient's public key as the registrar reads
// it: 64 hex digits.
func FormatPublicKey(k ed25519.PublicKey) string { return hex.EncodeToString(k) }

// ParsePublicKey parses FormatPublicKey's form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, malformed("a patient's public key is 64 hex digits")
	}
	return ed25519.PublicKey(b), nil
}

// FormatHash writes a document's hash (Document.Hash) as it is named to
// people: 64 hex digits.
func FormatHash(h [32]byte) string { return hex.EncodeToString(h[:]) }

// ParseHash parses FormatHash's form.
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, malformed("a document's hash is 64 hex digits")
	}
	copy(h[:], b)
	return h, nil
}
