package prescription

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/wire"
)

// Token is what the patient takes to a pharmacy (as text, or a barcode of
// it): which centre issued the prescription, its index on that centre's
// ledger, and the secret that opens it. Whoever holds it can have the
// prescription dispensed, as with a paper prescription; it says nothing
// of the patient or the medication.
type Token struct {
	Issuer string // the issuing centre's name in the charter
	Index  int64
	Secret Secret
}

// tokenPrefix names the token's format and version.
const tokenPrefix = "rx1"

// NewSecret returns a random secret.
func NewSecret() Secret {
	var s Secret
	rand.Read(s[:])
	return s
}

// String returns the token as text: rx1.<issuer>.<index>.<32 hex digits>.
// Names are a-z, 0-9 and '-', so the dots separate.
func (t Token) String() string {
	return tokenPrefix + "." + t.Issuer + "." + strconv.FormatInt(t.Index, 10) + "." + hex.EncodeToString(t.Secret[:])
}

// LogValue keeps the secret out of logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("issuer", t.Issuer), slog.Int64("index", t.Index))
}

// ParseToken reads a token's text; it accepts only what String writes
// (surrounding space aside). Its errors never repeat the text.
func ParseToken(s string) (Token, error) {
	bad := func(what string) (Token, error) {
		return Token{}, wire.Malformed("prescription token", "%s: want rx1.<issuing centre>.<index>.<32 hex digits>", what)
	}
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return bad("not a prescription token")
	}
	var t Token
	if !federation.ValidName(parts[1]) {
		return bad("the issuing centre")
	}
	t.Issuer = parts[1]
	i, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || i <= 0 || strconv.FormatInt(i, 10) != parts[2] {
		return bad("the index")
	}
	t.Index = i
	if len(parts[3]) != 2*len(t.Secret) || strings.ToLower(parts[3]) != parts[3] {
		return bad("the secret")
	}
	if _, err := hex.Decode(t.Secret[:], []byte(parts[3])); err != nil {
		return bad("the secret")
	}
	return t, nil
}
