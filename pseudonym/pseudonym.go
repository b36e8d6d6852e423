package pseudonym

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
)

// Pseudonym is a patient's federation-wide pseudonym: the same for the
// same patient at every centre, and not computable without t holders.
type Pseudonym [32]byte

// String returns the pseudonym in hex.
func (p Pseudonym) String() string { return hex.EncodeToString(p[:]) }

// pseudonymDomain separates pseudonyms from every other use of the OPRF.
const pseudonymDomain = "medfed/pseudonym/v1"

// derive returns H(domain || federation || OPRF output), with the
// federation ID length-prefixed.
func derive(federation string, out [sha512.Size]byte) Pseudonym {
	h := sha256.New()
	h.Write([]byte(pseudonymDomain))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(federation))))
	h.Write([]byte(federation))
	h.Write(out[:])
	var p Pseudonym
	h.Sum(p[:0])
	return p
}
