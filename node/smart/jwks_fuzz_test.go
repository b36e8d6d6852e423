package smart

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/medfed/medfed/node"
)

// FuzzJWKS feeds registration JWK Sets of every shape: one taken comes
// back as a set of public keys only, each with a kid and RS384 or ES384,
// which parses again to itself; one refused is refused as invalid input.
func FuzzJWKS(f *testing.F) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	for _, keys := range [][]jose.JSONWebKey{
		{{Key: &ec.PublicKey, KeyID: "e", Algorithm: "ES384"}},
		{{Key: &rs.PublicKey, KeyID: "r", Algorithm: "RS384"}, {Key: &ec.PublicKey, KeyID: "e", Use: "sig"}},
		{{Key: ec, KeyID: "e", Algorithm: "ES384"}},
		{{Key: rs, KeyID: "r", Algorithm: "RS384"}},
		{{Key: []byte("0123456789abcdef0123456789abcdef0123456789abcdef"), KeyID: "k", Algorithm: "HS384"}},
	} {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{"keys":[]}`, `{"keys":[{"kty":"EC","crv":"P-384"}]}`, `{"keys":null}`, `[]`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		norm, keys, err := parseJWKS(b)
		if err != nil {
			if node.KindOf(err) != node.Invalid {
				t.Fatalf("refused, but not as invalid input: %v", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("a set taken with no key")
		}
		for _, k := range keys {
			if k.kid == "" || !slices.Contains(signingAlgs, k.alg) {
				t.Fatalf("a key taken without a kid, or for alg %s", k.alg)
			}
		}
		var members struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(norm, &members); err != nil {
			t.Fatal(err)
		}
		for _, m := range members.Keys {
			for _, p := range privateMembers {
				if _, ok := m[p]; ok {
					t.Fatalf("the set taken holds %q: %s", p, norm)
				}
			}
		}
		again, keys2, err := parseJWKS(norm)
		if err != nil || !bytes.Equal(again, norm) || len(keys2) != len(keys) {
			t.Fatalf("the set taken does not parse again to itself: %v\n%s\n%s", err, norm, again)
		}
	})
}
