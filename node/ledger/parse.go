package ledger

import (
	"encoding/hex"

	"github.com/medfed/medfed/node"
)

// ErrBadPseudonym is returned for a pseudonym that is not 64 hex digits.
var ErrBadPseudonym = node.E(node.Invalid, "a pseudonym is 64 hex digits")

// ParsePseudonym parses a pseudonym written as 64 hex digits, as String
// writes it.
func ParsePseudonym(s string) (Pseudonym, error) {
	var p Pseudonym
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(p) {
		return p, ErrBadPseudonym
	}
	return Pseudonym(b), nil
}
