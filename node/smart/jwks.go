package smart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
)

// Limits on a registered JWK Set.
const (
	MaxJWKSBytes = 64 << 10 // the JWK Set's bytes
	maxKeys      = 16
	maxKidLen    = 255
	minRSABits   = 2048
	maxRSABits   = 8192 // a bigger key only makes each verification slower
)

// privateMembers are the JWK members that hold private or symmetric key
// material (RFC 7518, section 6), and ML-DSA's "priv".
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// verifyKey is a client's public key with the one algorithm it verifies.
type verifyKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // *rsa.PublicKey or *ecdsa.PublicKey
}

// parseJWKS checks a JSON Web Key Set as registration takes it: public
// keys only, each RSA of 2048 to 8192 bits (RS384) or EC P-384 (ES384),
// with a kid of its own and an alg that suits it (or none and use "sig").
// It returns the set re-encoded with only the members medfed uses, the alg
// filled in, and its keys. Its errors are of kind node.Invalid.
//
// The set is parsed with go-jose's JSON, which matches member names
// exactly and refuses a member given twice, as the JOSE specifications
// mean them to be read.
func parseJWKS(b []byte) ([]byte, []verifyKey, error) {
	if len(b) > MaxJWKSBytes {
		return nil, nil, invalid("the JWK Set is over %d bytes", MaxJWKSBytes)
	}
	var set struct {
		Keys *[]josejson.RawMessage `json:"keys"`
	}
	if err := josejson.Unmarshal(b, &set); err != nil {
		return nil, nil, invalid("the JWK Set is not a JSON object with a \"keys\" array: %v", err)
	}
	switch {
	case set.Keys == nil:
		return nil, nil, invalid("the JWK Set has no \"keys\" array")
	case len(*set.Keys) == 0:
		return nil, nil, invalid("the JWK Set holds no key")
	case len(*set.Keys) > maxKeys:
		return nil, nil, invalid("the JWK Set holds %d keys, more than %d", len(*set.Keys), maxKeys)
	}
	var (
		keys []verifyKey
		out  jose.JSONWebKeySet
	)
	for i, raw := range *set.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			return nil, nil, invalid("the JWK Set's key %d: %v", i+1, err)
		}
		if slices.ContainsFunc(keys, func(o verifyKey) bool { return o.kid == k.kid }) {
			return nil, nil, invalid("the JWK Set's key %d: kid %q is another key's too", i+1, k.kid)
		}
		keys = append(keys, k)
		out.Keys = append(out.Keys, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	norm, err := json.Marshal(out)
	if err != nil {
		return nil, nil, invalid("the JWK Set: %v", err)
	}
	return norm, keys, nil
}

// parseJWK checks one key of a set.
func parseJWK(raw []byte) (verifyKey, error) {
	var members map[string]josejson.RawMessage
	if err := josejson.Unmarshal(raw, &members); err != nil {
		return verifyKey{}, errors.New("not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return verifyKey{}, errors.New("it holds private or symmetric key material (\"" + m + "\"): register the public key only, and keep the private one with the client")
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		if errors.Is(err, jose.ErrUnsupportedKeyType) {
			return verifyKey{}, errors.New("kty is neither RSA nor EC")
		}
		return verifyKey{}, errors.New(strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
	}
	if !k.Valid() || !k.IsPublic() {
		return verifyKey{}, errors.New("not a valid public key")
	}
	if k.KeyID == "" || len(k.KeyID) > maxKidLen || strings.ContainsFunc(k.KeyID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return verifyKey{}, errors.New("a key needs a kid of 1 to 255 printable ASCII characters, without spaces")
	}
	if k.Use != "" && k.Use != "sig" {
		return verifyKey{}, errors.New("use is not \"sig\": medfed only verifies signatures with it")
	}
	if k.Algorithm == "" && k.Use != "sig" {
		return verifyKey{}, errors.New("a key needs an alg (RS384 or ES384), or use \"sig\"")
	}
	v := verifyKey{kid: k.KeyID}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		bits := pub.N.BitLen()
		if bits < minRSABits || bits > maxRSABits {
			return verifyKey{}, errors.New("an RSA key has 2048 to 8192 bits")
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return verifyKey{}, errors.New("an RSA key's public exponent is odd and at least 3")
		}
		v.alg, v.key = jose.RS384, pub
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P384() {
			return verifyKey{}, errors.New("an EC key is on the P-384 curve (ES384)")
		}
		v.alg, v.key = jose.ES384, pub
	default:
		return verifyKey{}, errors.New("kty is neither RSA nor EC")
	}
	if k.Algorithm != "" && k.Algorithm != string(v.alg) {
		return verifyKey{}, errors.New("alg " + quote(k.Algorithm) + " does not suit the key: an RSA key is for RS384, an EC P-384 key for ES384")
	}
	return v, nil
}

// quote quotes s, something the caller sent, for an error message, cut
// short. It does not repeat a value that could be an access token or an
// assertion, pasted in the wrong field: one with the token prefix, or with
// a run of secretRun base64url characters (an access token has 43 and
// every JWS signature at least 86; no scope or alg comes near, and a host
// name only with a label that long).
func quote(s string) string {
	if strings.Contains(s, TokenPrefix) || longRun(s) {
		return "(a value not repeated here, as it may be a token or an assertion)"
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// secretRun is the shortest run of base64url characters quote does not
// repeat.
const secretRun = 40

// longRun reports whether s holds secretRun base64url characters in a row.
func longRun(s string) bool {
	n := 0
	for i := range len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			if n++; n >= secretRun {
				return true
			}
		} else {
			n = 0
		}
	}
	return false
}
